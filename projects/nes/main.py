"""Launch nes from a config file (flags and errors: harness/cli.py).

    python -m projects.nes.main --config=configs/nes/default.py:quick --workdir=runs/nes
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("nes", module="run")
