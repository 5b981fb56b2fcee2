"""Launch nonreactive_exploration from a config file.

    python -m projects.nonreactive_exploration.main \
        --config=configs/nonreactive_exploration/default.py:quick --workdir=runs/nonreactive_exploration
"""

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/nonreactive_exploration/default.py:quick",
                                          "Config file (optionally :preset).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/nonreactive_exploration",
                               "Output directory; a rerun resumes from its saved seed batches.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from projects import common

    config = _CONFIG.value
    threads = common.configure_xla_cpu_threads()
    import jax

    from projects.nonreactive_exploration import run

    print(f"nonreactive_exploration: preset={config.preset} devices={jax.local_devices()} xla_cpu_threads={threads}")
    run.validate(config)
    common.save_config(config, _WORKDIR.value)
    results = run.train_and_evaluate(config, _WORKDIR.value)
    for c in results["claims"]:
        mark = {True: "holds", False: "FAILS", None: "n/a"}[c["holds"]]
        print(f"[{mark:5}] {c['id']}: {c['ours']}")
    print(f"results: {_WORKDIR.value}/results.json")


if __name__ == "__main__":
    app.run(main)
