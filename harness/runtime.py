"""Process settings chosen before JAX starts: XLA's CPU thread pool and glibc's 2 MB malloc pages."""

from __future__ import annotations

import os
import platform
import sys

from harness.validation import ConfigError

# (The often-quoted companion "intra_op_parallelism_threads=1" is not an XLA flag, and XLA stops reading XLA_FLAGS at
# the first token without "--", silently dropping any flag after it; measured 2026-12-05, jax 0.10.2.)
SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"


XLA_THREAD_MODES = ("single", "default")


def configure_xla_cpu_threads(preferred: str = "single") -> str:
    """Chooses XLA's CPU threading before JAX starts; returns the mode used.

    Default "single" (`--xla_cpu_multi_thread_eigen=false`, Eigen's thread pool off): on the 2-core reference machine
    the projects' small-matrix steps ran 1.7× faster with it than with XLA's thread pool (benchmarks/RESULTS.md).
    It is not one thread per process: on jax 0.10 XLA's CPU kernels (dots, large elementwise fusions) still run on an
    intra-op pool of one thread per core, and a process alone kept 1.7-2.0 of the 2 cores busy (benchmarks/RESULTS.md,
    "XLA CPU threads"); pin the process (`os.sched_setaffinity`) for one core. A config may
    prefer "default" (its `xla_cpu_threads` field: autoprm's paper preset, whose 3-seed SFT step ran 0.98-1.13×
    as fast with the pool in three runs of benchmarks/autoprm_sft_threads.py); REPROJAX_XLA_THREADS=single|default
    overrides both, and an XLA_FLAGS you set yourself always wins. Multi-device CPU runs keep the default (forced
    CPU devices hung in collectives under the single-thread flags; DESIGN.md)."""
    if preferred not in XLA_THREAD_MODES:
        raise ConfigError(f"config.xla_cpu_threads={preferred!r} is invalid: expected one of {list(XLA_THREAD_MODES)}")
    mode = os.environ.get("REPROJAX_XLA_THREADS", preferred)
    if mode not in XLA_THREAD_MODES:
        raise ConfigError(f"REPROJAX_XLA_THREADS={mode!r} is invalid: expected 'single' or 'default'")
    if "jax" in sys.modules or "XLA_FLAGS" in os.environ or mode == "default":
        return "default" if "XLA_FLAGS" not in os.environ else "user XLA_FLAGS"
    os.environ["XLA_FLAGS"] = SINGLE_THREAD_XLA_FLAGS
    return "single"


def use_compilation_cache(directory: str, min_compile_secs: float = 0.5) -> str:
    """XLA's persistent compilation cache in `directory` (JAX_COMPILATION_CACHE_DIR, if set, wins: the tests' shared
    cache), for programs that took at least `min_compile_secs` to compile (JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS
    wins). Processes that compile the same programs then load them: autoprm's worker processes, each of which
    compiled every sampler, verifier and fine-tuning shape anew (one EI stage, 215 s in a fresh process with 71 s of
    it compiling, ran 171 s with a warm cache), and a rerun that resumes. Keyed by program, flags and versions, so
    it changes no result. Call it before the process compiles anything: JAX reads the setting once. Returns the
    directory used."""
    import jax

    path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or directory
    jax.config.update("jax_compilation_cache_dir", path)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_secs))
    return path


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
    env = huge_pages_env()
    if env.get("GLIBC_TUNABLES") == os.environ.get("GLIBC_TUNABLES"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
