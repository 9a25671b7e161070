"""Evaluates a trained work directory on every test split and writes the report.

Writes under DIR/eval/: results.json (per split: count, nme, failure_rate, auc as
fractions; pose_mae yaw/pitch/roll/mean in degrees), results.md (a table laid out
like the paper's, NME in %), ced.png, samples_<split>.png (test faces with
predicted and true landmarks and pose axes) and predictions_<split>.npz (per face:
landmarks, gt_landmarks, pose, gt_pose, index, nme).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Sequence

import jax
import numpy as np

from asmnet_jax.core import metrics
from asmnet_jax.data import registry
from asmnet_jax.evaluate import evaluator as evaluator_lib
from asmnet_jax.evaluate import plots
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib
from asmnet_jax.train.step import make_mesh

NUM_SAMPLES = 12


# Where the evaluation of each checkpoint goes, under the work directory.
EVAL_DIRS = {"best": "eval", "latest": os.path.join("eval", "latest")}


def prediction_file(workdir: str, split: str, checkpoint: str = "best") -> str:
  """Per-face predictions and NMEs of a split: DIR/eval/predictions_<split>.npz (the
  best checkpoint's; DIR/eval/latest/... the latest's)."""
  return os.path.join(workdir, EVAL_DIRS[checkpoint], f"predictions_{split}.npz")


def results_table(results: dict[str, dict[str, Any]], title: str) -> str:
  """A Markdown table of the splits, NME/FR in %, AUC@0.1, pose MAE in degrees."""
  lines = [f"### {title}", "",
           "| split | images | NME (%) | FR@0.1 (%) | AUC@0.1 | yaw MAE (°) | pitch MAE (°) "
           "| roll MAE (°) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
  for split, r in results.items():
    pose = r["pose_mae"]
    lines.append(f"| {split} | {r['count']} | {100 * r['nme']:.2f} | "
                 f"{100 * r['failure_rate']:.2f} | {r['auc']:.4f} | {pose['yaw']:.2f} | "
                 f"{pose['pitch']:.2f} | {pose['roll']:.2f} |")
  return "\n".join(lines) + "\n"


def evaluate_workdir(workdir: str, splits: Sequence[str] | None = None,
                     checkpoint: str = "best") -> dict[str, dict[str, Any]]:
  """Scores the run in `workdir` on `splits` (default: the dataset's test splits).

  Writes to DIR/eval/ for the best checkpoint, DIR/eval/latest/ for the latest.
  """
  config = config_lib.load_config(workdir)
  path = checkpoints.step_dir(workdir, checkpoint)  # fails before any dataset work.
  step = int(os.path.basename(path))
  tree = checkpoints.restore_tree(path)
  variables = {"params": tree["params"], "batch_stats": tree["batch_stats"]}
  builder = registry.prepare(config.dataset, config.data_dir, config.manual_dir)
  splits = list(splits or registry.test_splits(config.dataset))
  num_landmarks = builder.info.features["landmarks"].shape[0]
  model = state_lib.create_model(config, num_landmarks)
  evaluator = evaluator_lib.Evaluator(model, config, make_mesh())
  out_dir = os.path.join(workdir, EVAL_DIRS[checkpoint])
  os.makedirs(out_dir, exist_ok=True)

  results, nmes = {}, {}
  for split, source in registry.open_splits(builder, splits).items():
    logging.info("Evaluating %s on %s (%d faces)", workdir, split, len(source))
    predictions = evaluator.predict(variables, source)
    results[split] = evaluator_lib.compute_metrics(predictions)
    nmes[split] = np.asarray(metrics.nme(predictions.landmarks, predictions.gt_landmarks))
    if jax.process_index() == 0:
      np.savez(prediction_file(workdir, split, checkpoint), nme=nmes[split],
               **predictions._asdict())
      _sample_grid(source, predictions, os.path.join(out_dir, f"samples_{split}.png"))

  if jax.process_index() == 0:
    report = {"workdir": os.path.abspath(workdir), "checkpoint": checkpoint, "step": step,
              "dataset": config.dataset, "model": config.model, "loss": config.loss,
              "splits": results}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
      json.dump(report, f, indent=2)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
      f.write(results_table(results, f"{config.model} ({config.loss} loss) on "
                            f"{config.dataset}, {checkpoint} checkpoint (step {step})"))
    plots.ced_curves(nmes, os.path.join(out_dir, "ced.png"))
  return results


def _sample_grid(source, predictions: evaluator_lib.Predictions, out_path: str) -> None:
  """Evenly spaced faces of the split, drawn in their record's image."""
  picks = np.linspace(0, len(predictions.index) - 1, min(NUM_SAMPLES, len(predictions.index)))
  picks = np.unique(picks.astype(int))
  images = [source[int(predictions.index[i])]["image"] for i in picks]
  nmes = np.asarray(metrics.nme(predictions.landmarks[picks], predictions.gt_landmarks[picks]))
  titles = [f"NME {100 * value:.1f}%" for value in nmes]
  plots.face_grid(images, predictions.landmarks[picks], predictions.gt_landmarks[picks],
                  predictions.pose[picks], predictions.gt_pose[picks], out_path, titles)
