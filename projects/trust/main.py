"""Launch trust from a config file (flags and errors: harness/cli.py).

    python -m projects.trust.main --config=configs/trust/default.py:quick --workdir=runs/trust
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("trust", module="run")
