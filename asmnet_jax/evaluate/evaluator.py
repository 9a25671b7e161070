"""Runs a model over a data source and scores it with the field's metrics.

Predictions are mapped back from the normalised crop to the record's image pixels
before scoring, so the NME does not depend on the crop's (non-uniform) resize.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from flax import traverse_util
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from asmnet_jax.core import metrics
from asmnet_jax.data import pipeline
from asmnet_jax.data import scheme as scheme_lib
from asmnet_jax.core import geometry
from asmnet_jax.train import config as config_lib
from asmnet_jax.train.step import DATA_AXIS

ANGLES = ("yaw", "pitch", "roll")


class Predictions(NamedTuple):
  """Per-example results in record order, in the record's image pixels / degrees.

  landmarks, gt_landmarks: (N, n, 2); pose, gt_pose: (N, 3) yaw, pitch, roll;
  index: (N,) record index in the data source.
  """

  landmarks: np.ndarray
  gt_landmarks: np.ndarray
  pose: np.ndarray
  gt_pose: np.ndarray
  index: np.ndarray


def _gather(x) -> np.ndarray:
  """The whole batch on every host (a no-op copy with one process)."""
  if jax.process_count() == 1:
    return np.asarray(jax.device_get(x))
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


class Evaluator:
  """Jitted, data-parallel inference plus host-side scoring.

  Args:
    model: the network; its eval-mode `apply` is jitted with the batch sharded over
      `mesh`'s `data` axis.
    config: the training config (image_size, eval_batch_size, pose_scale_deg, input).
    mesh: the device mesh (`asmnet_jax.train.step.make_mesh`).
    apply_fn: another network function to score instead of `model`'s:
      (variables, images float32 (B, S, S, 3) sharded over `data`) ->
      (landmarks (B, n, 2) normalised crop coordinates, pose (B, 3) / pose_scale_deg).
      Called as it is, once per batch in order (not jitted here): e.g. a jitted
      BN-folded network, or an oracle in a test. `model` may then be None.
    scheme: the dataset's landmark scheme (`data.scheme.scheme_of(builder)`): its
      NME normaliser and whether it has pose labels; None: the built-in scheme of
      the point count.
  """

  def __init__(self, model: nn.Module | None, config: ml_collections.ConfigDict, mesh: Mesh,
               apply_fn: Callable[[Any, jax.Array], tuple[Any, Any]] | None = None,
               scheme: scheme_lib.LandmarkScheme | None = None):
    if model is None and apply_fn is None:
      raise ValueError("Evaluator needs a model or an apply_fn")
    self.scheme = scheme
    self._config = config
    self._mesh = mesh
    # One pass in-process: starting a worker process (config.input.worker_count,
    # for the training stream) would cost more than it saves.
    self._input_config = dataclasses.replace(config_lib.input_config(config), worker_count=0)
    replicated = NamedSharding(mesh, PartitionSpec())
    sharded = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    if apply_fn is None:
      apply_fn = jax.jit(lambda variables, images: model.apply(variables, images, train=False),
                         in_shardings=(replicated, sharded), out_shardings=sharded)
    self._apply = apply_fn
    self._sharding = sharded

  def predict(self, variables: Any, data_source) -> Predictions:
    """Predictions for every record of `data_source`.

    Args:
      variables: {"params", "batch_stats"}, or a train state holding them; given
        to the network function (`apply_fn`) as they are.
    """
    if hasattr(variables, "params"):
      variables = {"params": variables.params, "batch_stats": variables.batch_stats}
    scale = self._config.pose_scale_deg
    size = self._config.image_size
    parts = []
    for batch in pipeline.create_eval_iterator(
        data_source, batch_size=self._config.eval_batch_size, config=self._input_config):
      images = jax.make_array_from_process_local_data(self._sharding, batch["image"])
      landmarks, pose = self._apply(variables, images)
      host = {k: _gather(batch[k]) for k in ("landmarks", "pose", "mask", "crop_to_image",
                                              "index")}
      mask = host["mask"].astype(bool)
      to_source = host["crop_to_image"][mask]
      parts.append(Predictions(
          landmarks=geometry.crop_to_image_points(_gather(landmarks)[mask], to_source, size),
          gt_landmarks=geometry.crop_to_image_points(host["landmarks"][mask], to_source, size),
          pose=_gather(pose)[mask].astype(np.float64) * scale,
          gt_pose=host["pose"][mask].astype(np.float64),
          index=host["index"][mask]))
    return Predictions(*(np.concatenate(field) for field in zip(*parts)))

  def evaluate(self, variables: Any, data_source) -> dict[str, Any]:
    predictions = self.predict(variables, data_source)
    return compute_metrics(predictions, self.scheme,
                           visible_points(data_source, predictions.index))


def visible_points(data_source, index: np.ndarray) -> np.ndarray | None:
  """bool (N, n): the points of records `index` not flagged `occluded`, or None for a
  dataset without occlusion flags (images are not decoded)."""
  if len(index) == 0 or "occluded" not in _first_record_keys(data_source):
    return None
  return ~pipeline.read_fields(data_source, index, "occluded").astype(bool)


def _first_record_keys(data_source) -> set[str]:
  features = getattr(getattr(data_source, "dataset_info", None), "features", None)
  if features is not None:
    return set(features.keys())
  return set(data_source[0].keys())


def scheme_for(predictions: Predictions,
               scheme: scheme_lib.LandmarkScheme | None = None) -> scheme_lib.LandmarkScheme:
  """`scheme`, or the built-in one of the predictions' point count."""
  return scheme or scheme_lib.default_scheme(predictions.gt_landmarks.shape[1])


def face_nmes(predictions: Predictions,
              scheme: scheme_lib.LandmarkScheme | None = None) -> np.ndarray:
  """(N,) each face's NME under the scheme's normaliser (`scheme_for`)."""
  return np.asarray(scheme_for(predictions, scheme).nme(predictions.landmarks,
                                                        predictions.gt_landmarks))


def compute_metrics(predictions: Predictions,
                    scheme: scheme_lib.LandmarkScheme | None = None,
                    visible: np.ndarray | None = None) -> dict[str, Any]:
  """count, nme, failure_rate, auc (fractions) and pose_mae (degrees) of a split.

  NME is normalised as `scheme` says (`scheme_for`); pose_mae is None for a
  dataset without pose labels. With `visible` (bool (N, n), COFW's unoccluded
  points) also nme_visible: the mean over faces of the error over their visible
  points (same normaliser; faces with none left out).
  """
  scheme = scheme_for(predictions, scheme)
  nmes = face_nmes(predictions, scheme)
  pose_mae = None
  if scheme.has_pose:
    mae = np.asarray(metrics.pose_mae(predictions.pose, predictions.gt_pose))
    pose_mae = {**{a: float(v) for a, v in zip(ANGLES, mae)}, "mean": float(mae.mean())}
  results = {
      "count": int(len(nmes)),
      "nme": float(np.mean(nmes)),
      "failure_rate": float(metrics.failure_rate(nmes)),
      "auc": float(metrics.auc(nmes)),
      "pose_mae": pose_mae,
  }
  if visible is not None:
    visible_nmes = np.asarray(scheme.nme(predictions.landmarks, predictions.gt_landmarks,
                                         point_mask=np.asarray(visible, bool)))
    results["nme_visible"] = float(np.nanmean(visible_nmes))
  return results


def flatten(results: dict[str, Any]) -> dict[str, Any]:
  """{"pose_mae": {"yaw": 1}} -> {"pose_mae_yaw": 1}, for one-line logs (None values,
  such as the pose MAE of a dataset without pose, are left out)."""
  return {k: v for k, v in traverse_util.flatten_dict(results, sep="_").items()
          if v is not None}
