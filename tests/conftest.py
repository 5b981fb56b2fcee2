"""Test setup: 4 fake CPU devices (before JAX initialises) so multi-device paths run everywhere."""

import os
import sys
import tempfile

os.environ.setdefault("REPROJAX_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests build their own checkpoints; never download
# One persistent XLA compilation cache per test run, shared by the xdist workers, the launchers the tests start and
# the notebook kernels (all inherit these variables): many tests compile the same smoke-preset programs, and a cached
# program loads in a fraction of the compile time (an ltb_icl smoke run: 39 s -> 8 s here). Keyed by the program, the
# flags and the versions, so it changes no result.
_run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"reprojax-test-xla-{_run}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# XLA's CPU backend at LLVM optimisation level 0, one thread per process (two xdist workers share the 2 cores): the
# suite is dominated by compiling many small smoke-preset programs, and level 0 compiles them about twice as fast while
# the library calls that do the heavy work (dots, convolutions) are unchanged (an ltb_icl smoke run: 25.7 s -> 13.5 s
# wall, same claims). Set before JAX starts and inherited by the launchers and notebook kernels the tests start (the
# harness keeps an XLA_FLAGS it finds). Flags must all start with "--": XLA stops reading at the first token that
# does not, so the often-quoted "intra_op_parallelism_threads=1" silently drops every flag after it.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)


import pytest  # noqa: E402


def pytest_itemcollected(item):
    """Under pytest-xdist (`--dist loadgroup`), keep every test of a module that uses a module- or session-scoped
    fixture defined in that module on one worker, so the expensive fixture (a trained smoke run, a loaded model) is
    built once, not once per worker; the other tests spread over the workers one by one. (Marked here, as each item
    is collected, so that xdist's own collection hook sees the group.)"""
    module_id = item.nodeid.split("::")[0]
    defs = getattr(item, "_fixtureinfo", None)
    for fixturedefs in (defs.name2fixturedefs.values() if defs else ()):
        if any(d.scope in ("module", "session") and d.baseid == module_id for d in fixturedefs):
            item.add_marker(pytest.mark.xdist_group(name=module_id))
            return
