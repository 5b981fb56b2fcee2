"""Launch autoprm from a config file (flags and errors: harness/cli.py).

    python -m projects.autoprm.main --config=configs/autoprm/default.py:quick --workdir=runs/autoprm
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("autoprm", module="run")
