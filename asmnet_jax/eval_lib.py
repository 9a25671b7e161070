"""Evaluates a trained work directory on every test split and writes the report.

Writes under DIR/eval/: results.json (per split: count, nme, failure_rate, auc as
fractions; pose_mae yaw/pitch/roll/mean in degrees), results.md (a table laid out
like the paper's, NME in %), ced.png, samples_<split>.png (test faces with
predicted and true landmarks and pose axes) and predictions_<split>.npz (per face:
landmarks, gt_landmarks, pose, gt_pose, index, nme).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from asmnet_jax import checkpoints, data, evaluation, metrics, models, plots, train_state

NUM_SAMPLES = 12


def prediction_file(workdir: str, split: str) -> str:
  """Per-face predictions and NMEs of a split: DIR/eval/predictions_<split>.npz."""
  return os.path.join(workdir, "eval", f"predictions_{split}.npz")


# Config fields added after the first release, with the values that runs trained
# before them used (their config.json lacks them).
_ADDED_FIELDS = {"bn_momentum": models.BN_MOMENTUM, "dropout_rate": models.DROPOUT_RATE,
                 "precise_bn_batches": 0}


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run stored in its work directory."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir} a train.py work directory?")
  with open(path) as f:
    stored = json.load(f)
  for field, value in _ADDED_FIELDS.items():
    stored.setdefault(field, value)
  return ml_collections.ConfigDict(stored)


def restore_variables(config: ml_collections.ConfigDict, workdir: str, num_landmarks: int,
                      which: str = "best") -> tuple[Any, Any, int]:
  """(model, train state, step) from the `best` or `latest` checkpoint of a run."""
  if which not in ("best", "latest"):
    raise ValueError(f"checkpoint must be 'best' or 'latest', got {which!r}")
  mesh = train_state.make_mesh()
  model = train_state.create_model(config, num_landmarks)
  init = functools.partial(train_state.create_train_state, config, model)
  state = jax.jit(init, out_shardings=NamedSharding(mesh, PartitionSpec()))(
      jax.random.key(0))
  manager = checkpoints.CheckpointManager(workdir, keep=config.keep_checkpoints)
  if manager.latest_step() is None:
    raise FileNotFoundError(f"no checkpoint under {workdir}: train it first")
  state = manager.restore_best(state) if which == "best" else manager.restore_latest(state)
  manager.close()
  return model, state, int(state.step)


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
  """Scores the run in `workdir` on `splits` (default: the dataset's test splits)."""
  config = load_config(workdir)
  builder = data.prepare(config.dataset, config.data_dir, config.manual_dir)
  splits = list(splits or data.TEST_SPLITS[data.dataset_family(config.dataset)])
  num_landmarks = builder.info.features["landmarks"].shape[0]
  model, state, step = restore_variables(config, workdir, num_landmarks, checkpoint)
  evaluator = evaluation.Evaluator(model, config, train_state.make_mesh())
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)

  results, nmes = {}, {}
  for split, source in data.open_splits(builder, splits).items():
    logging.info("Evaluating %s on %s (%d faces)", workdir, split, len(source))
    predictions = evaluator.predict(state, source)
    results[split] = evaluation.compute_metrics(predictions)
    nmes[split] = np.asarray(metrics.nme(predictions.landmarks, predictions.gt_landmarks))
    if jax.process_index() == 0:
      np.savez(prediction_file(workdir, split), nme=nmes[split], **predictions._asdict())
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


def _sample_grid(source, predictions: evaluation.Predictions, out_path: str) -> None:
  """Evenly spaced faces of the split, drawn in their record's image."""
  picks = np.linspace(0, len(predictions.index) - 1, min(NUM_SAMPLES, len(predictions.index)))
  picks = np.unique(picks.astype(int))
  images = [source[int(predictions.index[i])]["image"] for i in picks]
  nmes = np.asarray(metrics.nme(predictions.landmarks[picks], predictions.gt_landmarks[picks]))
  titles = [f"NME {100 * value:.1f}%" for value in nmes]
  plots.face_grid(images, predictions.landmarks[picks], predictions.gt_landmarks[picks],
                  predictions.pose[picks], predictions.gt_pose[picks], out_path, titles)
