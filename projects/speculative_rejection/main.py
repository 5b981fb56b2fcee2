"""Launch speculative_rejection from a config file (flags and errors: harness/cli.py).

    python -m projects.speculative_rejection.main --config=configs/speculative_rejection/default.py:quick \
        --workdir=runs/speculative_rejection
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("speculative_rejection", module="run")
