"""Trains ASMNet (or the MobileNetV2 baseline).

    python train.py --workdir DIR [--config configs/NAME.py] [--config.field=value ...]

Running the same command again resumes from the latest checkpoint in DIR.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from asmnet_jax.runtime import allocator
from asmnet_jax.runtime import distributed
from asmnet_jax.train import loop

_HERE = os.path.dirname(os.path.abspath(__file__))
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(_HERE, "configs", "synthetic.py"), "Training configuration file.",
    lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  distributed.initialize_if_available()
  logging.info("Config:\n%s", _CONFIG.value)
  results = loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  logging.info("Final validation: %s", results)


if __name__ == "__main__":
  allocator.reexec_with_tuned_malloc(sys.argv)  # Faster XLA:CPU steps; see allocator.py.
  app.run(main)
