"""Evaluates a trained work directory on every test split of its dataset.

    python eval.py --workdir DIR [--split common --split challenging] [--checkpoint both]

By default both checkpoints: the best on the validation split (DIR/eval/) and the
last one (DIR/eval/latest/), each with results.json, results.md, ced.png and
samples_<split>.png; prints one results table for each, titled with which it is.
When the last checkpoint is also the best, it is evaluated once. A DIR that is not
a train.py work directory (or has no such checkpoint) stops with one line
`error: ...` (exit status 2).
"""

from __future__ import annotations

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
  flags.DEFINE_enum("checkpoint", "both", ["both", "best", "latest"],
                    "Which checkpoint to evaluate: the best on validation, the last, or both.",
                    flag_values=fv)


def _run(fv: flags.FlagValues) -> None:
  distributed.initialize_if_available()
  # The work directory's config and checkpoint first: a wrong --workdir is one line.
  kinds = ["best", "latest"] if fv.checkpoint == "both" else [fv.checkpoint]
  with cli.reported(FileNotFoundError):
    config_lib.load_config(fv.workdir)
    steps = {kind: _step(checkpoints.step_dir(fv.workdir, kind)) for kind in kinds}
  titles = {kind: f"{fv.workdir}: {_TITLES[kind]} (step {step})" for kind, step in steps.items()}
  if len(kinds) == 2 and steps["best"] == steps["latest"]:
    kinds = ["best"]  # one evaluation for the one checkpoint.
    titles["best"] += ", which is also the last checkpoint"
  for kind in kinds:
    results = report.evaluate_workdir(fv.workdir, fv.split, kind)
    print(report.results_table(results, titles[kind]))


_TITLES = {"best": "best checkpoint on the validation split", "latest": "last checkpoint"}


def _step(path: str) -> int:
  return int(path.rstrip("/").rsplit("/", 1)[-1])


def main(argv: Sequence[str] | None = None) -> int:
  """Evaluates per `argv` (default sys.argv[1:]); returns the exit status."""
  # Faster XLA:CPU steps; see asmnet_jax/runtime/allocator.py.
  return cli.run(define_flags, _run, argv, tuned_malloc=True)


if __name__ == "__main__":
  sys.exit(main())
