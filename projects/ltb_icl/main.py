"""Launch ltb_icl from a config file.

    python -m projects.ltb_icl.main --config=configs/ltb_icl/default.py:quick --workdir=runs/ltb_icl
"""

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/ltb_icl/default.py:quick",
                                          "Config file (optionally :preset).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/ltb_icl", "Output directory; a rerun resumes from it.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from projects import common

    config = _CONFIG.value
    threads = common.configure_xla_cpu_threads() if config.num_devices in (0, 1) else "default"
    import jax

    from projects.ltb_icl import train

    print(f"ltb_icl: preset={config.preset} devices={jax.local_devices()} xla_cpu_threads={threads}")
    train.validate(config)
    common.save_config(config, _WORKDIR.value)
    results = train.train_and_evaluate(config, _WORKDIR.value)
    for c in results["claims"]:
        mark = {True: "holds", False: "FAILS", None: "n/a"}[c["holds"]]
        print(f"[{mark:5}] {c['id']}: {c['ours']}")
    print(f"results: {_WORKDIR.value}/results.json")


if __name__ == "__main__":
    app.run(main)
