"""Launch ltb_icl from a config file (flags and errors: harness/cli.py).

    python -m projects.ltb_icl.main --config=configs/ltb_icl/default.py:quick --workdir=runs/ltb_icl
"""

from harness import cli

if __name__ == "__main__":
    cli.launch("ltb_icl", module="train")
