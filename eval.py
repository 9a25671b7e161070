"""Evaluates a trained work directory on every test split of its dataset.

    python eval.py --workdir DIR [--split common --split challenging] [--checkpoint latest|best|STEP]
    python eval.py --workdir DIR --dataset cofw/cofw68 --manual_dir ~/data/COFW  # another

Writes DIR/eval/results.json, results.md, ced.png and samples_<split>.png, and
prints the results table, headed by the checkpoint it used. A damaged checkpoint
is reported, moved to <its folder>/damaged/, and the next older one is used. A DIR
that is not a train.py work directory, has a bad config.json or no such (readable)
checkpoint stops with one line `error: ...` (exit status 2) before any other work.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Sequence

from absl import flags

from asmnet_jax import cli
from asmnet_jax.evaluate import report
from asmnet_jax.runtime import distributed
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib


def define_flags(fv: flags.FlagValues) -> None:
  """eval.py's flags."""
  flags.DEFINE_string("workdir", None, "A train.py work directory.", required=True,
                      flag_values=fv)
  flags.DEFINE_multi_string("split", None, "Splits to evaluate (default: all test splits).",
                            flag_values=fv)
  flags.DEFINE_string("checkpoint", "best", "Which checkpoint to evaluate: best, latest or "
                      "a step number.", flag_values=fv)
  flags.register_validator("checkpoint", _is_checkpoint_choice,
                           "must be best, latest or a step number", flag_values=fv)
  flags.DEFINE_string("dataset", None, "Another dataset with the run's point count to score "
                      "it on (e.g. cofw/cofw68 for a 300-W run); reports go to "
                      "DIR/eval_<dataset>/.", flag_values=fv)
  flags.DEFINE_string("manual_dir", None, "The --dataset's download or folder.",
                      flag_values=fv)


def _is_checkpoint_choice(value: str) -> bool:
  return value in checkpoints.CHECKPOINT_CHOICES or value.isdigit()


def _run(fv: flags.FlagValues) -> None:
  distributed.initialize_if_available()
  # The work directory's config and checkpoint first: a wrong --workdir is one line.
  with cli.reported(FileNotFoundError, ValueError):
    config_lib.load_config(fv.workdir)
    checkpoints.step_dir(fv.workdir, fv.checkpoint)
  with cli.reported(checkpoints.CheckpointError), (
      cli.reported(AssertionError, FileNotFoundError, ValueError) if fv.dataset
      else contextlib.nullcontext()):  # another dataset: its download, point count, splits.
    evaluation = report.evaluate_checkpoint(fv.workdir, fv.split, fv.checkpoint, fv.dataset,
                                            fv.manual_dir)
  used = os.path.relpath(evaluation.checkpoint_dir, fv.workdir)
  print(f"eval.py: {fv.checkpoint} checkpoint -> {used}", file=sys.stderr)
  on = f" on {fv.dataset}" if fv.dataset else ""
  print(report.results_table(evaluation.results,
                             f"{fv.workdir} ({fv.checkpoint} checkpoint: {used}){on}",
                             report.normalizer_description(fv.workdir, fv.dataset)))


def main(argv: Sequence[str] | None = None) -> int:
  """Evaluates per `argv` (default sys.argv[1:]); returns the exit status."""
  # Faster XLA:CPU steps; see asmnet_jax/runtime/allocator.py.
  return cli.run(define_flags, _run, argv, tuned_malloc=True)


if __name__ == "__main__":
  sys.exit(main())
