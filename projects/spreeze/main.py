"""Launch spreeze's JAX-native experiments from a config file (flags and errors: harness/cli.py).

    python -m projects.spreeze.main --config=configs/spreeze/default.py:quick --workdir=runs/spreeze
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("spreeze", module="run")
