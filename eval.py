"""Evaluates a trained work directory on every test split of its dataset.

    python eval.py --workdir DIR [--split common --split challenging] [--checkpoint latest]

Writes DIR/eval/results.json, results.md, ced.png and samples_<split>.png.
"""

from __future__ import annotations

import sys

from absl import app, flags

from asmnet_jax.evaluate import report
from asmnet_jax.runtime import allocator
from asmnet_jax.runtime import distributed

_WORKDIR = flags.DEFINE_string("workdir", None, "A train.py work directory.", required=True)
_SPLITS = flags.DEFINE_multi_string("split", None, "Splits to evaluate (default: all test splits).")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "best", ["best", "latest"],
                                "Which checkpoint to evaluate.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  distributed.initialize_if_available()
  results = report.evaluate_workdir(_WORKDIR.value, _SPLITS.value, _CHECKPOINT.value)
  print(report.results_table(results, f"{_WORKDIR.value} ({_CHECKPOINT.value} checkpoint)"))


if __name__ == "__main__":
  allocator.reexec_with_tuned_malloc(sys.argv)  # Faster XLA:CPU steps; see allocator.py.
  app.run(main)
