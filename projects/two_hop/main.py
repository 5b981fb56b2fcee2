"""Launch two_hop from a config file.

    python -m projects.two_hop.main --config=configs/two_hop/default.py:quick --workdir=runs/two_hop
"""

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/two_hop/default.py:quick",
                                          "Config file (optionally :preset).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/two_hop", "Output directory; a rerun resumes from it.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from projects import common

    common.run_main("two_hop", _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    from projects import common

    common.reexec_with_huge_pages()  # once, before JAX starts: 2 MB pages for XLA's per-step buffers
    app.run(main)
