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
