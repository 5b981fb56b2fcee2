"""Tests for lib/parallel.py on 4 fake CPU devices (set in tests/conftest.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from lib import parallel

pytestmark = pytest.mark.timeout(300)  # forced-CPU collectives have hung under some thread flags
TX = optax.adam(1e-2)


def _loss(params, batch):
    h = jnp.tanh(batch["x"] @ params["w1"])
    return jnp.mean((h @ params["w2"] - batch["y"]) ** 2)


def _step(state, batch):
    loss, grads = jax.value_and_grad(_loss)(state["params"], batch)
    updates, opt = TX.update(grads, state["opt"])
    return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, {"loss": loss}


def _init():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    params = {"w1": jax.random.normal(k1, (3, 16)), "w2": jax.random.normal(k2, (16, 1))}
    x = jax.random.normal(k3, (32, 3))
    batch = {"x": x, "y": jnp.sin(x.sum(-1, keepdims=True))}
    return {"params": params, "opt": TX.init(params)}, batch


def test_four_fake_devices_present():
    """conftest gives every test 4 CPU devices."""
    assert len(jax.local_devices()) == 4


@pytest.mark.parametrize("n", [1, 2, 4])
def test_data_parallel_step_equals_single_device(n):
    """Five data-parallel Adam steps on n devices give the single-device parameters (float tolerance)."""
    state, batch = _init()
    ref = state
    single = jax.jit(_step)
    for _ in range(5):
        ref, ref_m = single(ref, batch)
    mesh = parallel.make_mesh(n)
    step = parallel.data_parallel(_step, mesh)
    st = parallel.replicate(state, mesh)
    sharded = parallel.shard_batch(batch, mesh)
    assert sharded["x"].sharding.spec == P("data")
    for _ in range(5):
        st, m = step(st, sharded)
    assert st["params"]["w1"].sharding.is_fully_replicated
    chex_tol = dict(rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), **chex_tol),
                 st["params"], ref["params"])
    np.testing.assert_allclose(m["loss"], ref_m["loss"], **chex_tol)


def test_shard_map_with_pmean_before_grad_equals_single_device():
    """per_device (shard_map): pmean of the loss before grad gives the global-batch gradient."""
    state, batch = _init()
    mesh = parallel.make_mesh(4)

    def local_grad(params, b):
        return jax.grad(lambda p: jax.lax.pmean(_loss(p, b), parallel.DATA_AXIS))(params)

    g = parallel.per_device(local_grad, mesh, in_specs=(P(), P("data")), out_specs=P())(
        state["params"], batch)
    g_ref = jax.grad(_loss)(state["params"], batch)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g, g_ref)


def test_shard_batch_rejects_indivisible_batch():
    """A batch that does not split evenly names the leaf, its shape and the device count."""
    mesh = parallel.make_mesh(4)
    with pytest.raises(ValueError, match=r"\['x'\] has shape \(6, 3\).*devices in the mesh \(4\)"):
        parallel.shard_batch({"x": np.zeros((6, 3))}, mesh)


def test_make_mesh_rejects_too_many_devices():
    """Asking for more devices than exist is a clear error."""
    with pytest.raises(ValueError, match="num_devices=5 is invalid: expected 1..4"):
        parallel.make_mesh(5)
