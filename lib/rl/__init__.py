"""Off-policy actor-critic building blocks (spec `papers/spreeze.md` §5.2) as pure functions.

    networks      flax.linen MLPs: tanh-squashed Gaussian actor, deterministic actor, twin-Q critic
    sac, td3      init / critic_step / actor_step (/ alpha_step) / fused update, jit-able with donation;
                  sac.update_stale is the actor/critic split's maths (each side one step stale)
    replay        in-process JAX ring buffer (flashbax-style init / add / sample)
    shm_replay    shared-memory ring of float32 transition rows for sampler and learner processes
    paramsync     seqlock parameter broadcast through shared memory, plus policy-lag accounting
    pendulum      Pendulum-v1 as pure JAX functions (gymnax's dynamics), for fully fused sampling
    types         the `Transition` batch layout shared by all of the above

`types`, `shm_replay` and `paramsync` import only numpy, so a process can use them before (or
without) importing JAX; this package's `__init__` imports nothing, for the same reason (spec pitfall 1).
"""
