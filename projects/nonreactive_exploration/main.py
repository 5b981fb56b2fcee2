"""Launch nonreactive_exploration from a config file.

    python -m projects.nonreactive_exploration.main --config=configs/nonreactive_exploration/default.py:quick \
        --workdir=runs/nonreactive_exploration
"""

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/nonreactive_exploration/default.py:quick",
                                          "Config file (optionally :preset).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/nonreactive_exploration", "Output directory; a rerun resumes from it.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from projects import common

    common.run_main("nonreactive_exploration", _CONFIG.value, _WORKDIR.value, module="run")


if __name__ == "__main__":
    from projects import common

    common.reexec_with_huge_pages()  # once, before JAX starts: 2 MB pages for XLA's per-step buffers
    app.run(main)
