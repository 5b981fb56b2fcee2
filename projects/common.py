"""Helpers at the project boundary: config validation, config/results files, claims.

Everything here is shared by the projects' `main.py`/`train.py`; `lib/` never imports it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from lib.metrics import write_json_atomic


class ConfigError(ValueError):
    """A config value is invalid; the message names the field, the value and what is accepted."""


def require(ok: bool, field: str, value: Any, accepted: str) -> None:
    """Raises ConfigError("config.<field>=<value> is invalid: expected <accepted>") unless ok."""
    if not ok:
        raise ConfigError(f"config.{field}={value!r} is invalid: expected {accepted}")


def require_int(config, field: str, *, min_value: int | None = None) -> int:
    value = _get(config, field)
    ok = isinstance(value, int) and not isinstance(value, bool) and (min_value is None or value >= min_value)
    require(ok, field, value, "an integer" + (f" >= {min_value}" if min_value is not None else ""))
    return value


def require_float(config, field: str, *, min_value: float | None = None, strict: bool = False) -> float:
    value = _get(config, field)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and min_value is not None:
        ok = value > min_value if strict else value >= min_value
    bound = "" if min_value is None else (f" > {min_value}" if strict else f" >= {min_value}")
    require(ok, field, value, "a number" + bound)
    return float(value)


def require_choice(config, field: str, choices: Sequence[Any]) -> Any:
    value = _get(config, field)
    require(value in choices, field, value, f"one of {list(choices)}")
    return value


def require_sequence(config, field: str, *, item_ok=lambda v: True, item_desc: str = "items",
                     min_len: int = 1) -> tuple:
    value = _get(config, field)
    ok = isinstance(value, (list, tuple)) and len(value) >= min_len and all(item_ok(v) for v in value)
    require(ok, field, value, f"a list of at least {min_len} {item_desc}")
    return tuple(value)


def _get(config, field: str) -> Any:
    node = config
    for part in field.split("."):
        node = node[part]
    return node


def save_config(config, workdir: str) -> None:
    """Writes `workdir/config.json`; a rerun in the same workdir with a different config is refused
    (the checkpoints there belong to the old one)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    new = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(
                f"workdir {workdir!r} holds a run with a different config (top-level fields differing: "
                f"{changed}); resuming it would mix two runs. Use another --workdir or delete this one.")
    write_json_atomic(path, new)


def claim(claim_id: str, text: str, *, paper: str, ours: str, holds: bool | None) -> dict:
    """One headline claim: `holds` is True/False computed by code, or None (not measurable here)."""
    return {"id": claim_id, "claim": text, "paper": paper, "ours": ours,
            "holds": None if holds is None else bool(holds)}


def write_results(workdir: str, *, project: str, preset: str, seeds: Iterable[int], metrics: dict,
                  claims: list[dict], plots: Iterable[str] = ()) -> dict:
    """Writes `workdir/results.json` atomically in the shape `projects.reproduce` reads."""
    for c in claims:
        if set(c) != {"id", "claim", "paper", "ours", "holds"} or c["holds"] not in (True, False, None):
            raise ValueError(f"malformed claim {c!r}: build claims with projects.common.claim")
    results = {"project": project, "preset": preset, "seeds": list(seeds), "metrics": metrics,
               "claims": claims, "plots": list(plots)}
    write_json_atomic(os.path.join(workdir, "results.json"), results)
    return results


SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def configure_xla_cpu_threads() -> str:
    """Chooses XLA's CPU threading before JAX starts; returns the mode used.

    Default "single": on the 2-core reference machine the projects' small-matrix steps ran 1.7×
    faster single-threaded than with XLA's default thread pool (benchmarks/RESULTS.md). Set
    REPROJAX_XLA_THREADS=default to keep XLA's default; an XLA_FLAGS you set yourself always wins.
    Multi-device CPU runs keep the default (forced CPU devices hung in collectives under the
    single-thread flags; DESIGN.md)."""
    import sys

    mode = os.environ.get("REPROJAX_XLA_THREADS", "single")
    if mode not in ("single", "default"):
        raise ConfigError(f"REPROJAX_XLA_THREADS={mode!r} is invalid: expected 'single' or 'default'")
    if "jax" in sys.modules or "XLA_FLAGS" in os.environ or mode == "default":
        return "default" if "XLA_FLAGS" not in os.environ else "user XLA_FLAGS"
    os.environ["XLA_FLAGS"] = SINGLE_THREAD_XLA_FLAGS
    return "single"


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def huge_pages_env(environ: dict | None = None) -> dict:
    """A copy of `environ` (default os.environ) with glibc's transparent-huge-page malloc tunable added
    (GLIBC_TUNABLES=glibc.malloc.hugetlb=1) where it applies: Linux, glibc >= 2.35, transparent huge pages not
    disabled, REPROJAX_HUGE_PAGES not "0", and the tunable not already set.

    Why: XLA's CPU runtime maps a fresh buffer for every execution's temporaries (about 700 MB per two_hop
    paper-size step) and unmaps it afterwards; with 4 KB pages that is ~171k page faults per step. Backed by
    2 MB pages the same step ran about 10% faster here (benchmarks/RESULTS.md). glibc reads the tunable only at
    process start, so launchers pass this environment to a child or restart themselves with it."""
    env = dict(os.environ if environ is None else environ)
    mode = env.get("REPROJAX_HUGE_PAGES", "1")
    if mode not in ("0", "1"):
        raise ConfigError(f"REPROJAX_HUGE_PAGES={mode!r} is invalid: expected '1' (default) or '0'")
    tunables = env.get("GLIBC_TUNABLES", "")
    if mode == "0" or "glibc.malloc.hugetlb" in tunables or not huge_pages_supported():
        return env
    env["GLIBC_TUNABLES"] = f"{tunables}:{HUGE_PAGES_TUNABLE}" if tunables else HUGE_PAGES_TUNABLE
    return env


def huge_pages_supported() -> bool:
    """Linux with glibc >= 2.35 (the first with the glibc.malloc.hugetlb tunable) and transparent huge pages not
    switched off ("always" or "madvise" in /sys/kernel/mm/transparent_hugepage/enabled)."""
    import platform
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc, version = platform.libc_ver()
    try:
        if libc != "glibc" or tuple(int(v) for v in version.split(".")[:2]) < (2, 35):
            return False
        with open("/sys/kernel/mm/transparent_hugepage/enabled", encoding="ascii") as f:
            return "[never]" not in f.read()
    except (OSError, ValueError):
        return False


def reexec_with_huge_pages() -> None:
    """Restarts this process once, same interpreter and arguments, with `huge_pages_env()` when that adds the
    tunable; returns without doing anything otherwise. Call it first thing in a launcher's `__main__` block
    (never from library code or tests: it replaces the running process). REPROJAX_HUGE_PAGES=0 turns it off."""
    import sys

    env = huge_pages_env()
    if env.get("GLIBC_TUNABLES") == os.environ.get("GLIBC_TUNABLES"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def run_main(project: str, config, workdir: str, *, module: str = "train") -> dict:
    """The body of every `projects/<p>/main.py`: choose XLA threading (before JAX starts), log the
    devices, validate, write config.json, run `projects.<p>.<module>.train_and_evaluate`, print claims."""
    import importlib

    n_dev = config.get("num_devices", 1)
    threads = configure_xla_cpu_threads() if n_dev in (0, 1) else "default"
    import jax

    mod = importlib.import_module(f"projects.{project}.{module}")
    pages = "2MB" if HUGE_PAGES_TUNABLE in os.environ.get("GLIBC_TUNABLES", "") else "default"
    print(f"{project}: preset={config.get('preset')} devices={jax.local_devices()} xla_cpu_threads={threads} "
          f"malloc_pages={pages}")
    mod.validate(config)
    save_config(config, workdir)
    results = mod.train_and_evaluate(config, workdir)
    for c in results["claims"]:
        mark = {True: "holds", False: "FAILS", None: "n/a"}[c["holds"]]
        print(f"[{mark:5}] {c['id']}: {c['ours']}")
    print(f"results: {workdir}/results.json")
    return results


def figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs):
    """(fig, axes) without pyplot: no global backend switch, so notebooks keep inline plotting."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)
