"""Test setup: 4 fake CPU devices (before JAX initialises) so multi-device paths run everywhere."""

import os
import sys

os.environ.setdefault("REPROJAX_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests build their own checkpoints; never download
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`--dist loadgroup`), keep every test of a module that defines a module- or session-scoped
    fixture on one worker, so the expensive fixture (a trained smoke run, a loaded model) is built once, not once
    per worker; the other tests spread over the workers one by one."""
    import pytest

    for item in items:
        module_id = item.nodeid.split("::")[0]
        defs = getattr(item, "_fixtureinfo", None)
        for fixturedefs in (defs.name2fixturedefs.values() if defs else ()):
            if any(d.scope in ("module", "session") and d.baseid == module_id for d in fixturedefs):
                item.add_marker(pytest.mark.xdist_group(name=module_id))
                break
