"""Process settings chosen before JAX starts: XLA's CPU thread pool, glibc's 2 MB malloc pages and, where a config
asks for it, a retained malloc heap."""

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


_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc's mallopt parameters (malloc.h)


MALLOC_HEAPS = ("default", "retained")


def retain_freed_memory(environ: dict | None = None, preferred: str = "default") -> bool:
    """Tells glibc's malloc, in this running process, to keep freed memory for reuse: one arena for every thread,
    no `mmap` for large blocks, never trim the heap's top (`mallopt` M_ARENA_MAX=1, M_MMAP_MAX=0,
    M_TRIM_THRESHOLD=-1). Returns whether it applied: glibc on Linux, and `preferred` "retained" (a config's
    `malloc_heap` field; "default" unless a config asks) or REPROJAX_RETAIN_HEAP=1, which overrides the config
    either way (REPROJAX_RETAIN_HEAP=0 keeps glibc's defaults).

    Why: XLA's CPU runtime allocates each execution's temporaries as one block (2.26 GB for SmolLM2-135M's
    fine-tuning step at 8 × 128 tokens, about 700 MB for two_hop's paper-size step) from the thread that runs it,
    and frees it at the end. That thread allocates from a secondary glibc arena, which serves any block over
    64 MB with `mmap` and unmaps it when freed, whatever M_MMAP_THRESHOLD says, so every step faults the whole
    block in again, 4 KB at a time: 551k page faults per SmolLM2 step on the reference VM (benchmarks/RESULTS.md,
    "lm fine-tuning step"), 4-6 s of kernel time per step by getrusage. With this the block comes from the main
    heap and is reused: in a process that ran one jitted SmolLM2 step, no page fault from the third step on. The
    price: the process keeps its peak heap until it exits.

    Which configs ask for it: npo's and simnpo's SmolLM2 TOFU configs (`configs/{npo,simnpo}/tofu_smollm2.py`),
    whose fine-tuning and unlearning steps donate what they train. Their quick pipeline's first stages (fine-tune
    the original model, 20 steps; evaluate it on forget01; 8 NPO steps; evaluate; 2 cores, the launcher's 2 MB
    pages; one process each, 2026-12-07) ran 202 s retained against 225 s by default (system time 16 s against
    42 s; no page fault in any step after the first two), with peak resident memory 4.9 GiB against
    4.4 GiB and no growth after the fine-tuning.

    Off by default for every other config until measured on a quieter machine: in the recorded run of
    benchmarks/lm_finetune_probe.py (benchmarks/RESULTS.md, "lm fine-tuning step") it took the undonated step from
    894k faults and 26.2 s to 99k and 12.2 s (PyTorch eager, same setting: 13.9 s), and the donated step from 637k /
    27.2 s to 137k / 17.7 s, but in benchmarks/lm_decode.py's child, which also decodes and runs PyTorch, one run
    kept 549k faults per step, and the machine's speed varied by 1.5× within the hour (2026-12-07). A process
    jitting only the undonated step, six steps (one core, getrusage and /proc/self/statm): retained, faults 813k,
    261k, 0, 29k, 153k, 24k and resident memory growing 4.9 → 6.7 GiB (the freed blocks fragment, so the heap keeps
    growing), 14.0-21.2 s after the first; by default 438k faults a step from the third on, resident memory flat at
    6.3 GiB, 14.2-16.5 s. Measured as a training run would run it (benchmarks/lm_decode.py's fine-tuning rows,
    2026-12-07: each library alone in fresh processes, our step donated, the same heap for both, 10 timed steps
    each): with the heap retained our step took no page fault and ran 1.04× / 1.01× PyTorch eager's speed at 1 / 2
    threads, against 0.77× / 0.93× with glibc's defaults (637k faults a step for ours, 344k for PyTorch); an earlier
    run the same day: 1.01× / 0.97× and 0.79× / 1.03×. Even a donated step's retained heap can grow once or twice
    more after its first two steps: of six such processes run alone later that day, two faulted 555-592k pages in
    one or two of their third to fifth steps (strace: the heap grew by another 2.27 GB with brk, the freed block no
    longer fitting), and none after.

    Call it before JAX starts its threads (a thread keeps the arena it first allocated from); calling it later, or
    twice, is harmless. `mallopt` acts on the running process, so no restart is needed (GLIBC_TUNABLES
    glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=... does the same from the
    environment, for other programs)."""
    if (not retain_heap_enabled(environ, preferred) or not sys.platform.startswith("linux")
            or platform.libc_ver()[0] != "glibc"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(param, value) == 1
               for param, value in ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))


def retain_heap_enabled(environ: dict | None = None, preferred: str = "default") -> bool:
    """Whether the heap is to be retained: REPROJAX_RETAIN_HEAP ("0" or "1") read from `environ` (default
    os.environ) when set, else whether `preferred` (a config's `malloc_heap`) is "retained". ConfigError on any
    other value of either."""
    if preferred not in MALLOC_HEAPS:
        raise ConfigError(f"config.malloc_heap={preferred!r} is invalid: expected one of {list(MALLOC_HEAPS)}")
    mode = (os.environ if environ is None else environ).get("REPROJAX_RETAIN_HEAP")
    if mode is None:
        return preferred == "retained"
    if mode not in ("0", "1"):
        raise ConfigError(f"REPROJAX_RETAIN_HEAP={mode!r} is invalid: expected '0' (glibc's defaults) or '1' "
                          "(retained)")
    return mode == "1"


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
