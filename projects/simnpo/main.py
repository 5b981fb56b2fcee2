"""Launch simnpo from a config file (flags and errors: harness/cli.py).

    python -m projects.simnpo.main --config=configs/simnpo/default.py:quick --workdir=runs/simnpo
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("simnpo", module="run")
