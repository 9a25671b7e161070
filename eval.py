"""Evaluates a trained work directory on every test split of its dataset.

    python eval.py --workdir DIR [--split common --split challenging] [--checkpoint both|best|latest|STEP]
    python eval.py --workdir DIR --dataset cofw/cofw68 --manual_dir ~/data/COFW  # another

By default both checkpoints: the best on the validation split (DIR/eval/) and the
last one (DIR/eval/latest/), each with results.json, results.md, ced.png and
samples_<split>.png; prints one results table for each, headed by which it is and
the checkpoint it used. When the last checkpoint is also the best, it is evaluated
once. A damaged checkpoint is reported, moved to <its folder>/damaged/, and the next
older one is used. A DIR that is not a train.py work directory, has a bad
config.json or no such (readable) checkpoint stops with one line `error: ...` (exit
status 2) before any other work.
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
  flags.DEFINE_string("checkpoint", "both", "Which checkpoint to evaluate: both (the best "
                      "on the validation split and the last), best, latest or a step number.",
                      flag_values=fv)
  flags.register_validator("checkpoint", _is_checkpoint_choice,
                           "must be both, best, latest or a step number", flag_values=fv)
  flags.DEFINE_string("dataset", None, "Another dataset with the run's point count to score "
                      "it on (e.g. cofw/cofw68 for a 300-W run); reports go to "
                      "DIR/eval_<dataset>/.", flag_values=fv)
  flags.DEFINE_string("manual_dir", None, "The --dataset's download or folder.",
                      flag_values=fv)


def _is_checkpoint_choice(value: str) -> bool:
  return value == "both" or value in checkpoints.CHECKPOINT_CHOICES or value.isdigit()


_TITLES = {"best": "best checkpoint on the validation split", "latest": "last checkpoint"}


def _run(fv: flags.FlagValues) -> None:
  distributed.initialize_if_available()
  # The work directory's config and checkpoint first: a wrong --workdir is one line.
  kinds = ["best", "latest"] if fv.checkpoint == "both" else [fv.checkpoint]
  with cli.reported(FileNotFoundError, ValueError):
    config_lib.load_config(fv.workdir)
    paths = {kind: checkpoints.step_dir(fv.workdir, kind) for kind in kinds}
  same = len(kinds) == 2 and paths["best"] == paths["latest"]
  if same:
    kinds = ["best"]  # one evaluation for the one checkpoint.
  on = f" on {fv.dataset}" if fv.dataset else ""
  for kind in kinds:
    with cli.reported(checkpoints.CheckpointError), (
        cli.reported(AssertionError, FileNotFoundError, ValueError) if fv.dataset
        else contextlib.nullcontext()):  # another dataset: its download, point count, splits.
      evaluation = report.evaluate_checkpoint(fv.workdir, fv.split, kind, fv.dataset,
                                              fv.manual_dir)
    used = os.path.relpath(evaluation.checkpoint_dir, fv.workdir)
    print(f"eval.py: {kind} checkpoint -> {used}", file=sys.stderr)
    which = _TITLES.get(kind, f"{kind} checkpoint")
    if same:
      which += ", which is also the last checkpoint"
    print(report.results_table(evaluation.results, f"{fv.workdir}: {which} ({used}){on}",
                               report.normalizer_description(fv.workdir, fv.dataset, kind)))


def main(argv: Sequence[str] | None = None) -> int:
  """Evaluates per `argv` (default sys.argv[1:]); returns the exit status."""
  # Faster XLA:CPU steps; see asmnet_jax/runtime/allocator.py.
  return cli.run(define_flags, _run, argv, tuned_malloc=True)


if __name__ == "__main__":
  sys.exit(main())
