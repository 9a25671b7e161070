"""Trains ASMNet (or the MobileNetV2 baseline).

    python train.py --workdir DIR [--config configs/NAME.py] [--config.field=value ...]

The default config is the checkout's configs/synthetic.py, from any directory.
Running the same command again resumes from the latest readable checkpoint in DIR
(damaged newer ones are moved to DIR/checkpoints/damaged/). A bad config value, an
unknown dataset, a dataset that cannot be built or a config that does not fit the
run already in DIR (another model, dataset or image size; see
--config.allow_changed) stops with one line `error: ...` (exit status 2) before DIR
changes; so does a DIR whose checkpoints are all unreadable. Another train.py
running in DIR, a failed checkpoint save (full disk) or a NaN loss stop with one line
and exit status 1. --verbose adds the traceback. See docs/training.md.
"""

from __future__ import annotations

import sys
from typing import Sequence

from absl import flags, logging
from ml_collections import config_flags

from asmnet_jax import cli
from asmnet_jax.data import registry
from asmnet_jax.data import scheme
from asmnet_jax.runtime import distributed
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import loop
from asmnet_jax.train import workdir_lock


def define_flags(fv: flags.FlagValues) -> None:
  """train.py's flags: --workdir and --config (with --config.<field> overrides)."""
  flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.",
                      required=True, flag_values=fv)
  config_flags.DEFINE_config_file("config", cli.config_file("synthetic"),
                                  "Training configuration file.", flag_values=fv,
                                  lock_config=True)


def _run(fv: flags.FlagValues) -> None:
  distributed.initialize_if_available()
  config = fv.config
  with cli.reported(ValueError):  # validate_config names the bad field.
    config_lib.validate_config(config)
    registry.builder_class(config.dataset)  # an unknown dataset.
  # Missing or mis-laid downloads (TFDS asserts on a missing manual directory): the
  # message says what to do. Building now, not inside the loop, keeps its bugs apart.
  with cli.reported(AssertionError, FileNotFoundError, ValueError):
    builder = registry.prepare(config.dataset, config.data_dir, config.manual_dir)
    loop.check_splits(config, builder)
    loop.dataset_input_config(config, scheme.scheme_of(builder))  # flips need a mirror map.
  with cli.reported(ValueError):  # a stored config.json it does not fit, or a bad one.
    config_lib.check_resume_compatible(config, fv.workdir)
  logging.info("Config:\n%s", config)
  with cli.reported(config_lib.ConfigFileError, config_lib.IncompatibleRunError,
                    checkpoints.CheckpointError), \
       cli.reported(workdir_lock.WorkdirBusyError, checkpoints.CheckpointSaveError,
                    loop.NonFiniteLossError, status=cli.EXIT_FAILURE):
    try:
      results = loop.train_and_evaluate(config, fv.workdir)
    except OSError as e:  # metrics, plots: a full or read-only disk is no bug.
      if e.errno not in checkpoints.DISK_ERRNOS:
        raise
      raise cli.CommandError(f"writing to {fv.workdir} failed: {e}; the last good "
                             "checkpoint is kept, run the same command to resume") from e
  logging.info("Final validation: %s", results)


def main(argv: Sequence[str] | None = None) -> int:
  """Trains per `argv` (default sys.argv[1:]); returns the exit status."""
  # Faster XLA:CPU steps; see asmnet_jax/runtime/allocator.py.
  return cli.run(define_flags, _run, argv, tuned_malloc=True)


if __name__ == "__main__":
  sys.exit(main())
