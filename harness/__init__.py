"""The shared harness at the project boundary: everything every project's launcher uses that is not a paper.

    harness/validation.py   ConfigError and the `require_*` checks each project's `validate(config)` calls
    harness/cli.py          the launcher behind every `projects/<p>/main.py`: flags, config overrides, one-line errors
    harness/rundir.py       the workdir: writable, `--fresh`, `config.json` (a different config is refused)
    harness/outputs.py      `claim` and `results.json`, the shape `projects.reproduce` reads
    harness/runtime.py      process settings chosen before JAX starts: XLA CPU threads, malloc pages and heap
    harness/plotting.py     matplotlib figures without pyplot's global state
    harness/reproduce.py    runs projects' presets in subprocesses and writes runs/report.md
    harness/readme.py       writes README result blocks from results.json (`python -m harness.readme <p>`)
    harness/lm_sample.py    sample from a local checkpoint with lib/ (`python -m harness.lm_sample`)

`lib/` never imports this package; `projects/` and `configs/` do. `projects/` itself holds only the papers and
`projects/reproduce.py`, the registry of projects.
"""
