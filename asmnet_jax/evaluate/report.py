"""Evaluates a trained work directory on every test split and writes the report.

Writes under DIR/eval/: results.json (per split: count, nme, failure_rate, auc as
fractions; pose_mae yaw/pitch/roll/mean in degrees, null for a dataset without pose;
the NME normaliser), results.md (a table laid out
like the paper's, NME in %), ced.png, samples_<split>.png (test faces with
predicted and true landmarks and pose axes) and predictions_<split>.npz (per face:
landmarks, gt_landmarks, pose, gt_pose, index, nme).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from asmnet_jax.data import registry
from asmnet_jax.data import scheme as scheme_lib
from asmnet_jax.evaluate import evaluator as evaluator_lib
from asmnet_jax.evaluate import plots
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib
from asmnet_jax.train.step import make_mesh

NUM_SAMPLES = 12


def eval_dir(workdir: str, dataset: str | None = None, checkpoint: str = "best") -> str:
  """DIR/eval, or DIR/eval_<dataset> for another dataset than the run's; the latest
  checkpoint's evaluation goes to its `latest/` subfolder."""
  if dataset is None:
    base = os.path.join(workdir, "eval")
  else:
    base = os.path.join(workdir, "eval_" + dataset.replace("/", "_").replace(":", "_"))
  return os.path.join(base, "latest") if checkpoint == "latest" else base


def prediction_file(workdir: str, split: str, dataset: str | None = None,
                    checkpoint: str = "best") -> str:
  """Per-face predictions and NMEs of a split: DIR/eval/predictions_<split>.npz."""
  return os.path.join(eval_dir(workdir, dataset, checkpoint), f"predictions_{split}.npz")


def normalizer_description(workdir: str, dataset: str | None = None,
                           checkpoint: str = "best") -> str | None:
  """The NME normaliser (words) of the last results.json, None without one."""
  path = os.path.join(eval_dir(workdir, dataset, checkpoint), "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f).get("normalizer_description")


def results_table(results: dict[str, dict[str, Any]], title: str,
                  normalizer: str | None = None) -> str:
  """A Markdown table of the splits, NME/FR in %, AUC@0.1, pose MAE in degrees
  ("n/a" for a dataset without pose); `normalizer` (words) is stated under the title."""
  lines = [f"### {title}", ""]
  if normalizer:
    lines += [f"NME normalised by the {normalizer}.", ""]
  lines += [
           "| split | images | NME (%) | FR@0.1 (%) | AUC@0.1 | yaw MAE (°) | pitch MAE (°) "
           "| roll MAE (°) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
  for split, r in results.items():
    pose = r["pose_mae"]
    angles = (" | ".join(f"{pose[a]:.2f}" for a in evaluator_lib.ANGLES) if pose
              else "n/a | n/a | n/a")
    lines.append(f"| {split} | {r['count']} | {100 * r['nme']:.2f} | "
                 f"{100 * r['failure_rate']:.2f} | {r['auc']:.4f} | {angles} |")
  visible = {split: r["nme_visible"] for split, r in results.items() if "nme_visible" in r}
  if visible:
    lines += ["", "NME over the visible (unoccluded) points only: " + ", ".join(
        f"{split} {100 * value:.2f} %" for split, value in visible.items()) + "."]
  return "\n".join(lines) + "\n"


class Evaluation(NamedTuple):
  """What `evaluate_checkpoint` scored and with which checkpoint."""
  results: dict[str, dict[str, Any]]  # per split, as results.json's "splits".
  checkpoint_dir: str  # the step folder read (after any fallback on damage).
  step: int


def evaluate_workdir(workdir: str, splits: Sequence[str] | None = None,
                     checkpoint: str = "best", dataset: str | None = None,
                     manual_dir: str | None = None) -> dict[str, dict[str, Any]]:
  """Scores the run in `workdir` on `splits` (default: the dataset's test splits).

  `dataset` (built from `manual_dir` if needed) scores it on another dataset with the
  same point count instead, e.g. a 300-W run on `cofw/cofw68`; its reports go to
  DIR/eval_<dataset>/ (`eval_dir`).

  Raises:
    ValueError: the other dataset's point count is not the run's.
  """
  return evaluate_checkpoint(workdir, splits, checkpoint, dataset, manual_dir).results


def evaluate_checkpoint(workdir: str, splits: Sequence[str] | None = None,
                        checkpoint: str = "best", dataset: str | None = None,
                        manual_dir: str | None = None) -> Evaluation:
  """`evaluate_workdir`, also saying which checkpoint it used.

  checkpoint: "best", "latest" or a step number (`checkpoints.step_candidates`);
  a damaged one is reported, moved aside, and the next older one is used.
  """
  config = config_lib.load_config(workdir)
  path, tree = checkpoints.restore_workdir(workdir, checkpoint)
  step = int(os.path.basename(path))
  logging.info("Evaluating %s (step %d)", path, step)
  variables = {"params": tree["params"], "batch_stats": tree["batch_stats"]}
  name = dataset or config.dataset
  builder = registry.prepare(name, config.data_dir,
                             manual_dir if dataset else config.manual_dir)
  splits = list(splits or registry.test_splits(name, builder))
  data_scheme = scheme_lib.scheme_of(builder)
  num_points = tree["params"]["heads"]["landmarks"]["kernel"].shape[-1] // 2
  if num_points != data_scheme.num_points:
    raise ValueError(f"{workdir} predicts {num_points} points, {name} has "
                     f"{data_scheme.num_points}")
  model = state_lib.create_model(config, data_scheme.num_points)
  evaluator = evaluator_lib.Evaluator(model, config, make_mesh(), scheme=data_scheme)
  out_dir = eval_dir(workdir, dataset, checkpoint)
  os.makedirs(out_dir, exist_ok=True)

  results, nmes = {}, {}
  for split, source in registry.open_splits(builder, splits).items():
    logging.info("Evaluating %s on %s (%d faces)", workdir, split, len(source))
    predictions = evaluator.predict(variables, source)
    results[split] = evaluator_lib.compute_metrics(
        predictions, data_scheme, evaluator_lib.visible_points(source, predictions.index))
    nmes[split] = evaluator_lib.face_nmes(predictions, data_scheme)
    if jax.process_index() == 0:
      np.savez(prediction_file(workdir, split, dataset, checkpoint), nme=nmes[split],
               **predictions._asdict())
      _sample_grid(source, predictions, nmes[split],
                   os.path.join(out_dir, f"samples_{split}.png"), data_scheme.has_pose)

  if jax.process_index() == 0:
    report = {"workdir": os.path.abspath(workdir), "checkpoint": checkpoint, "step": step,
              "checkpoint_dir": os.path.relpath(path, workdir),
              "dataset": name, "trained_on": config.dataset, "model": config.model,
              "loss": config.loss,
              "normalizer": data_scheme.normalizer,
              "normalizer_description": data_scheme.describe_normalizer(),
              "splits": results}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
      json.dump(report, f, indent=2)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
      f.write(results_table(results, f"{config.model} ({config.loss} loss) on "
                            f"{name}, {checkpoint} checkpoint (step {step})",
                            data_scheme.describe_normalizer()))
    plots.ced_curves(nmes, os.path.join(out_dir, "ced.png"))
  return Evaluation(results, path, step)


def _sample_grid(source, predictions: evaluator_lib.Predictions, nmes: np.ndarray,
                 out_path: str, draw_pose: bool = True) -> None:
  """Evenly spaced faces of the split, drawn in their record's image."""
  picks = np.linspace(0, len(predictions.index) - 1, min(NUM_SAMPLES, len(predictions.index)))
  picks = np.unique(picks.astype(int))
  images = [source[int(predictions.index[i])]["image"] for i in picks]
  titles = [f"NME {100 * value:.1f}%" for value in nmes[picks]]
  plots.face_grid(images, predictions.landmarks[picks], predictions.gt_landmarks[picks],
                  predictions.pose[picks], predictions.gt_pose[picks], out_path, titles,
                  draw_pose=draw_pose)
