"""harness/runtime: the launchers' process settings (2 MB malloc pages via glibc's tunable)."""

import os
import subprocess
import sys
import textwrap

import pytest

from harness import runtime, validation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def supported(monkeypatch):
    monkeypatch.setattr(runtime, "huge_pages_supported", lambda: True)


def test_huge_pages_env_adds_the_tunable_once(supported):
    env = runtime.huge_pages_env({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert runtime.huge_pages_env(env) == env  # idempotent: a restarted launcher does not restart again


def test_huge_pages_env_keeps_other_tunables_and_a_users_choice(supported):
    env = runtime.huge_pages_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    mine = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert runtime.huge_pages_env(mine) == mine


def test_huge_pages_env_off_switch_and_unsupported_systems(supported, monkeypatch):
    assert "GLIBC_TUNABLES" not in runtime.huge_pages_env({"REPROJAX_HUGE_PAGES": "0"})
    monkeypatch.setattr(runtime, "huge_pages_supported", lambda: False)
    assert "GLIBC_TUNABLES" not in runtime.huge_pages_env({})


def test_huge_pages_env_rejects_a_bad_switch_value():
    with pytest.raises(validation.ConfigError, match=r"REPROJAX_HUGE_PAGES='yes' is invalid: expected '1'"):
        runtime.huge_pages_env({"REPROJAX_HUGE_PAGES": "yes"})


@pytest.mark.skipif(not runtime.huge_pages_supported(), reason="needs Linux, glibc >= 2.35 and THP not 'never'")
def test_reexec_restarts_once_with_the_same_arguments(tmp_path):
    script = tmp_path / "launcher.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {ROOT!r})
        print("start", os.environ.get("GLIBC_TUNABLES"), sys.argv[1:], flush=True)
        from harness import runtime
        runtime.reexec_with_huge_pages()
        print("run", os.environ.get("GLIBC_TUNABLES"), sys.argv[1:])
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "REPROJAX_HUGE_PAGES")}
    out = subprocess.run([sys.executable, str(script), "a", "--b=1"], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["start None ['a', '--b=1']", "start glibc.malloc.hugetlb=1 ['a', '--b=1']",
                   "run glibc.malloc.hugetlb=1 ['a', '--b=1']"]


def test_retain_heap_switch_rejects_a_bad_value():
    with pytest.raises(validation.ConfigError, match=r"REPROJAX_RETAIN_HEAP='yes' is invalid: expected '0'"):
        runtime.retain_freed_memory({"REPROJAX_RETAIN_HEAP": "yes"})
    with pytest.raises(validation.ConfigError,
                       match=r"config.malloc_heap='kept' is invalid: expected one of \['default', 'retained'\]"):
        runtime.retain_freed_memory({}, preferred="kept")
    assert runtime.retain_freed_memory({"REPROJAX_RETAIN_HEAP": "0"}) is False
    assert runtime.retain_freed_memory({}) is False  # off unless asked for
    assert runtime.retain_freed_memory({"REPROJAX_RETAIN_HEAP": "0"}, preferred="retained") is False  # env wins


def test_retain_heap_follows_the_config_unless_the_environment_says():
    enabled = runtime.retain_heap_enabled
    assert enabled({}, "retained") and not enabled({}, "default") and not enabled({})
    assert enabled({"REPROJAX_RETAIN_HEAP": "1"}, "default") and not enabled({"REPROJAX_RETAIN_HEAP": "0"}, "retained")
    from configs.npo import tofu_smollm2 as npo_cfg
    from configs.simnpo import tofu_smollm2 as simnpo_cfg
    assert npo_cfg.get_config("quick").malloc_heap == simnpo_cfg.get_config("quick").malloc_heap == "retained"


@pytest.mark.skipif(not sys.platform.startswith("linux") or runtime.platform.libc_ver()[0] != "glibc",
                    reason="glibc's mallopt")
def test_retained_heap_reuses_xlas_per_execution_buffer(tmp_path):
    """A jitted function with a 144 MB temporary (`x·xᵀ`, 6000², then `·x`): with the heap retained its third call
    takes no page fault (the block comes back from the heap); by default XLA's executing thread gets it by mmap on
    every call (35k faults with 4 KB pages, measured 2026-12-07)."""
    script = tmp_path / "faults.py"
    script.write_text(textwrap.dedent(f"""
        import os, resource, sys
        sys.path.insert(0, {ROOT!r})
        from harness import runtime
        print(runtime.retain_freed_memory())
        import jax, jax.numpy as jnp
        f = jax.jit(lambda x: ((x @ x.T) @ x).sum(0))
        x = jnp.ones((6000, 64), jnp.float32)
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            jax.block_until_ready(f(x))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """))

    def faults(switch):
        env = dict(os.environ, REPROJAX_RETAIN_HEAP=switch)
        return subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                              check=True).stdout.split()

    applied, third_call = faults("1")
    assert applied == "True"
    assert int(third_call) < 2000, third_call


def test_compilation_cache_goes_to_the_given_directory_unless_the_environment_names_one(tmp_path):
    script = tmp_path / "compile.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        from harness import runtime
        print(runtime.use_compilation_cache(sys.argv[1], min_compile_secs=0))
        import jax
        print(float(jax.jit(lambda x: x * 2.0 + 1.0)(20.0)))
    """))
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    given, named = tmp_path / "given", tmp_path / "named"

    def run(env):
        return subprocess.run([sys.executable, str(script), str(given)], env=env, capture_output=True, text=True,
                              check=True).stdout.split()

    assert run(env) == [str(given), "41.0"]
    entries = sorted(os.listdir(given))
    assert entries  # the program was written to the cache
    assert run(env) == [str(given), "41.0"]  # a second process loads it: same result, nothing new compiled
    assert sorted(os.listdir(given)) == entries
    assert run({**env, "JAX_COMPILATION_CACHE_DIR": str(named)}) == [str(named), "41.0"]
    assert os.listdir(named) and sorted(os.listdir(given)) == entries
