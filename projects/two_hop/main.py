"""Launch two_hop from a config file (flags and errors: harness/cli.py).

    python -m projects.two_hop.main --config=configs/two_hop/default.py:quick --workdir=runs/two_hop
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("two_hop", module="train")
