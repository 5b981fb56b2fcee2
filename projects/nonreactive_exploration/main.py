"""Launch nonreactive_exploration from a config file (flags and errors: harness/cli.py).

    python -m projects.nonreactive_exploration.main --config=configs/nonreactive_exploration/default.py:quick \
        --workdir=runs/nonreactive_exploration
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("nonreactive_exploration", module="run")
