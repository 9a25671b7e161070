"""Evaluates a trained work directory on every test split of its dataset.

    python eval.py --workdir DIR [--split common --split challenging] [--checkpoint latest]
    python eval.py --workdir DIR --dataset cofw/cofw68 --manual_dir ~/data/COFW  # another

Writes DIR/eval/results.json, results.md, ced.png and samples_<split>.png, and
prints the results table. A DIR that is not a train.py work directory (or has no
such checkpoint) stops with one line `error: ...` (exit status 2).
"""

from __future__ import annotations

import contextlib
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
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to evaluate.",
                    flag_values=fv)
  flags.DEFINE_string("dataset", None, "Another dataset with the run's point count to score "
                      "it on (e.g. cofw/cofw68 for a 300-W run); reports go to "
                      "DIR/eval_<dataset>/.", flag_values=fv)
  flags.DEFINE_string("manual_dir", None, "The --dataset's download or folder.",
                      flag_values=fv)


def _run(fv: flags.FlagValues) -> None:
  distributed.initialize_if_available()
  # The work directory's config and checkpoint first: a wrong --workdir is one line.
  with cli.reported(FileNotFoundError):
    config_lib.load_config(fv.workdir)
    checkpoints.step_dir(fv.workdir, fv.checkpoint)
  with cli.reported(AssertionError, FileNotFoundError, ValueError) if fv.dataset else (
      contextlib.nullcontext()):  # another dataset: its download, point count, splits.
    results = report.evaluate_workdir(fv.workdir, fv.split, fv.checkpoint, fv.dataset,
                                      fv.manual_dir)
  on = f" on {fv.dataset}" if fv.dataset else ""
  print(report.results_table(results, f"{fv.workdir} ({fv.checkpoint} checkpoint){on}",
                             report.normalizer_description(fv.workdir, fv.dataset)))


def main(argv: Sequence[str] | None = None) -> int:
  """Evaluates per `argv` (default sys.argv[1:]); returns the exit status."""
  # Faster XLA:CPU steps; see asmnet_jax/runtime/allocator.py.
  return cli.run(define_flags, _run, argv, tuned_malloc=True)


if __name__ == "__main__":
  sys.exit(main())
