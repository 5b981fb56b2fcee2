"""Launch npo from a config file (flags and errors: harness/cli.py).

    python -m projects.npo.main --config=configs/npo/default.py:quick --workdir=runs/npo
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("npo", module="run")
