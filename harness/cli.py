"""The launcher behind every `projects/<p>/main.py`.

    python -m projects.<p>.main --config=configs/<p>/default.py[:smoke|quick|paper] [--workdir=DIR] [--fresh] \
        [--config.FIELD=VALUE ...]

Bad input (an unknown flag or field, a value of the wrong type or out of range, a missing config file, an
unknown preset, a workdir that is a file or not writable, a workdir holding another config's run) ends in one
line on stderr that names the field, the value and what is accepted, with exit status 2, before anything is
written. A run stopped by a non-finite loss or by damaged saved state ends in one line too (exit status 1).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.util
import os
import sys

from absl import logging

from harness import rundir, runtime
from harness.validation import ConfigError
from lib.metrics import CheckpointMismatchError, DamagedStateError, NonFiniteError

USAGE = ("usage: python -m projects.{p}.main [--config=configs/{p}/default.py[:smoke|quick|paper]] "
         "[--workdir=DIR] [--fresh] [--config.FIELD=VALUE ...]")


@dataclasses.dataclass
class Args:
    config: str
    workdir: str
    fresh: bool = False
    overrides: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def parse_args(argv: list[str], *, project: str) -> Args:
    """`--config`, `--workdir`, `--fresh` and `--config.FIELD=VALUE` overrides (in order); ConfigError otherwise."""
    args = Args(config=f"configs/{project}/default.py:quick", workdir=f"runs/{project}")
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("-h", "--help", "--helpfull"):
            print(__doc__.strip().split("\n\n")[0].replace("<p>", project))
            print(USAGE.format(p=project))
            raise SystemExit(0)
        if name in ("--fresh", "--nofresh") and not eq:
            args.fresh = name == "--fresh"
        elif name in ("--config", "--workdir") or name.startswith("--config."):
            if not eq:  # "--workdir DIR"
                if i + 1 >= len(argv):
                    raise ConfigError(f"{name} needs a value")
                i += 1
                value = argv[i]
            if name == "--config":
                args.config = value
            elif name == "--workdir":
                if not value:
                    raise ConfigError("--workdir='' is invalid: expected a directory path")
                args.workdir = value
            else:
                args.overrides.append((name[len("--config."):], value))
        else:
            raise ConfigError(f"unknown argument {arg!r}; accepted: --config=FILE[:PRESET], --workdir=DIR, --fresh, "
                              "--config.FIELD=VALUE")
        i += 1
    return args


def load_config(spec: str):
    """`path/to/config.py[:arg]` -> `get_config(arg)`, locked so an unknown field cannot be added."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"--config={spec!r} is invalid: no config file {path!r} (relative to {os.getcwd()!r})")
    module_spec = importlib.util.spec_from_file_location(f"_reprojax_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"--config={spec!r} is invalid: {path} defines no get_config(arg)")
    try:
        config = module.get_config(arg or None)
    except (ValueError, KeyError, ConfigError) as e:
        raise ConfigError(f"--config={spec!r} is invalid: {e}") from None
    config.lock()
    return config


def _fields(node) -> list[str]:
    return sorted(node.keys())


def _parse_value(field: str, raw: str, current):
    """Parses a command-line value by the type of the field it replaces."""
    def bad(accepted: str):
        return ConfigError(f"config.{field}={raw!r} is invalid: expected {accepted}")

    if isinstance(current, bool):
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise bad("true or false")
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError:
            raise bad("an integer") from None
    if isinstance(current, float):
        try:
            return float(raw)
        except ValueError:
            raise bad("a number") from None
    if isinstance(current, str):
        return raw
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if isinstance(current, (tuple, list)):
            raise bad("a Python tuple literal such as '(1, 2)'") from None
        return raw  # a None-valued field given a plain string
    if isinstance(current, (tuple, list)):
        if not isinstance(value, (tuple, list)):
            value = (value,)
        return tuple(value)
    return value


def apply_override(config, field: str, raw: str) -> None:
    """Sets `config.<field>` from a command-line string; an unknown field names the close matches and the fields
    that exist there."""
    parts = field.split(".")
    node, path = config, "config"
    for depth, part in enumerate(parts):
        keys = _fields(node)
        if part not in keys:
            close = difflib.get_close_matches(part, keys, n=3)
            hint = f"did you mean {', '.join(f'{path}.{c}' for c in close)}? " if close else ""
            raise ConfigError(f"{path}.{part} is not a field ({'--config.' + field}={raw!r}); {hint}"
                              f"{path} has: {', '.join(keys)}")
        child = node[part]
        if depth == len(parts) - 1:
            if hasattr(child, "keys"):
                raise ConfigError(f"{path}.{part} is a group of fields, not a value; set one of them: "
                                  f"{', '.join(f'--config.{field}.{k}' for k in _fields(child))}")
            value = _parse_value(field, raw, child)
            try:
                node[part] = value
            except (TypeError, ValueError) as e:
                raise ConfigError(f"config.{field}={raw!r} is invalid: expected a value of type "
                                  f"{type(child).__name__} ({e})") from None
            return
        if not hasattr(child, "keys"):
            raise ConfigError(f"{path}.{part} is a value, not a group: {'--config.' + field} cannot be set")
        node, path = child, f"{path}.{part}"


def config_from_args(args: Args):
    config = load_config(args.config)
    for field, raw in args.overrides:
        apply_override(config, field, raw)
    return config


def run_main(project: str, config, workdir: str, *, module: str = "train", fresh: bool = False) -> dict:
    """Chooses XLA threading (before JAX starts), logs the devices, validates, prepares the workdir, runs
    `projects.<p>.<module>.train_and_evaluate`, prints the claims. Raises ConfigError on bad input before
    anything is written; notebooks and tests call this directly."""
    n_dev = config.get("num_devices", 1)
    preferred = config.get("xla_cpu_threads", "single")
    threads = runtime.configure_xla_cpu_threads(preferred) if n_dev in (0, 1) else "default"
    # before JAX's threads start (see runtime); REPROJAX_RETAIN_HEAP overrides the config's preference
    heap = "retained" if runtime.retain_freed_memory(preferred=config.get("malloc_heap", "default")) else "default"
    import jax  # here, not at the top: XLA reads its thread flags when JAX starts, and they are set just above

    mod = importlib.import_module(f"projects.{project}.{module}")
    pages = "2MB" if runtime.HUGE_PAGES_TUNABLE in os.environ.get("GLIBC_TUNABLES", "") else "default"
    mod.validate(config)
    rundir.prepare(config, workdir, fresh=fresh)
    print(f"{project}: preset={config.get('preset')} devices={jax.local_devices()} xla_cpu_threads={threads} "
          f"malloc_pages={pages} malloc_heap={heap}")
    results = mod.train_and_evaluate(config, workdir)
    for c in results["claims"]:
        mark = {True: "holds", False: "FAILS", None: "n/a"}[c["holds"]]
        print(f"[{mark:5}] {c['id']}: {c['ours']}")
    print(f"results: {workdir}/results.json")
    return results


def fail(project: str, message: str, code: int) -> None:
    sys.stdout.flush()
    print(f"projects.{project}.main: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def launch(project: str, *, module: str = "train", argv: list[str] | None = None) -> None:
    """The body of `projects/<p>/main.py`'s `__main__` block: restart once with 2 MB pages, parse, run; every
    expected failure is one line on stderr (exit 2 for bad input, 1 for a run stopped by its guards)."""
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    try:
        runtime.reexec_with_huge_pages()  # once, before JAX starts: 2 MB pages for XLA's per-step buffers
        args = parse_args(sys.argv[1:] if argv is None else argv, project=project)
        config = config_from_args(args)
        run_main(project, config, args.workdir, module=module, fresh=args.fresh)
    except (ConfigError, CheckpointMismatchError) as e:
        fail(project, str(e), 2)
    except NonFiniteError as e:
        fail(project, f"{e} To continue with changed settings, {rundir.FRESH_HINT}.", 1)
    except DamagedStateError as e:
        fail(project, f"{e} (or {rundir.FRESH_HINT})", 1)
    except KeyboardInterrupt:
        fail(project, "interrupted; rerun the same command to resume from the last checkpoint", 130)
