"""A trained network ready for inference: BatchNorm folded, with what its inputs and
outputs mean, loaded from a work directory or a checkpoint step directory.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asmnet_jax.core import mirror
from asmnet_jax.data import scheme as scheme_lib
from asmnet_jax.nn import models
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib


@dataclasses.dataclass(frozen=True, eq=False)
class InferenceModel:
  """A BN-folded network and what its inputs and outputs mean.

  `forward(variables, images)`: images float32 (B, S, S, 3) RGB in [0, 1], S =
  image_size -> (landmarks float32 (B, n, 2) normalised crop coordinates
  (x_norm = (x_px + 0.5) / S - 0.5, crop edges at -0.5 and +0.5), pose float32
  (B, 3) yaw, pitch, roll in degrees).
  """
  module: nn.Module  # BN-folded (`models.fold_batch_norm`).
  variables: dict[str, Any]  # {"params": ...} of the folded module.
  image_size: int
  num_landmarks: int
  model_name: str = "asmnet"
  pose_scale_deg: float = 90.0  # the network regresses pose / this.
  eval_margin: float = 0.05  # per-side crop margin, fraction of the landmark box.
  step: int | None = None  # the checkpoint's step, when loaded from one.
  source: str = ""  # where the weights came from.
  # The left-right mirror permutation of the points (`core.mirror`): the run's
  # dataset scheme; None: the built-in one of the point count, if any.
  mirror_map: tuple[int, ...] | None = None
  # The re-crop box: the predicted landmarks' box scaled by (width, height) about its
  # centre (`Predictor`); a model whose landmarks come out smaller than labelled on the
  # faces it is used on carries the measured correction (the bundle's: its metadata).
  recrop_scale: tuple[float, float] = (1.0, 1.0)
  # Test-time augmentation: every crop also runs with its box scaled by each of
  # `tta_scales` and its content turned by each of `tta_rotations` (degrees), and the
  # predictions are averaged (`Predictor`); the bundle's: its metadata.
  tta_scales: tuple[float, ...] = (1.0,)
  tta_rotations: tuple[float, ...] = (0.0,)

  @property
  def mirror_permutation(self) -> np.ndarray | None:
    """The mirror permutation (n,) for flips: `mirror_map`, else the built-in one of
    68 or 98 points, else None (the model cannot be flip-tested)."""
    if self.mirror_map is not None:
      return np.asarray(self.mirror_map, np.int64)
    return mirror.builtin_permutation(self.num_landmarks)

  def forward(self, variables: dict[str, Any], images: jax.Array) -> tuple[jax.Array, jax.Array]:
    landmarks, pose = self.module.apply(variables, images)
    return landmarks, pose * jnp.float32(self.pose_scale_deg)

  def apply(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`forward` with this model's variables closed over (for tracing and export)."""
    return self.forward(self.variables, images)

  def with_depthwise_impl(self, impl: str) -> InferenceModel:
    """The same network with another depthwise convolution ("shift", "lax", "auto")."""
    return dataclasses.replace(self, module=self.module.clone(depthwise_impl=impl))


def validate_recrop_scale(scale: Any) -> tuple[float, float]:
  """`recrop_scale` as (width, height) floats, each finite and in [0.5, 2].

  Raises:
    ValueError: anything else.
  """
  try:
    values = np.asarray(scale, np.float64).reshape(-1)
  except (TypeError, ValueError):
    values = np.zeros(0)
  if values.shape != (2,) or not np.all(np.isfinite(values)) or np.any(values < 0.5) \
      or np.any(values > 2.0):
    raise ValueError(f"recrop_scale needs two factors in [0.5, 2], got {scale!r}")
  return float(values[0]), float(values[1])


def validate_tta(scales: Any, rotations: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """`tta_scales` (box factors, each finite and in [0.5, 2]) and `tta_rotations`
  (degrees, each finite and within ±45) as tuples of floats, neither empty.

  Raises:
    ValueError: anything else.
  """
  def floats(values: Any, name: str, lo: float, hi: float, unit: str) -> tuple[float, ...]:
    try:
      array = np.asarray(values, np.float64).reshape(-1)
    except (TypeError, ValueError):
      array = np.zeros(0)
    if not len(array) or not np.all(np.isfinite(array)) or np.any(array < lo) \
        or np.any(array > hi):
      raise ValueError(f"{name} needs one or more {unit} in [{lo:g}, {hi:g}], got {values!r}")
    return tuple(float(v) for v in array)
  return (floats(scales, "tta_scales", 0.5, 2.0, "factors"),
          floats(rotations, "tta_rotations", -45.0, 45.0, "angles (degrees)"))


def fold(model_name: str, params: Any, batch_stats: Any, **fields) -> InferenceModel:
  num_landmarks = int(params["heads"]["landmarks"]["kernel"].shape[-1]) // 2
  # float32 whatever the training compute dtype: inference here is on the host.
  model = models.create_model(model_name, num_landmarks)
  module, variables = models.fold_batch_norm(
      model, {"params": params, "batch_stats": batch_stats})
  return InferenceModel(module, variables, num_landmarks=num_landmarks,
                        model_name=model_name, **fields)


def load_checkpoint(path: str, config: ml_collections.ConfigDict | str | None = None
                    ) -> InferenceModel:
  """The folded network of a checkpoint step directory (DIR/best/<step> etc.).

  config: the run's config (a ConfigDict, or a work directory holding config.json);
  default the work directory two levels above `path`.

  Raises:
    checkpoints.CheckpointError: the checkpoint cannot be read (one line).
  """
  path = checkpoints.normalize_step_dir(path)
  if config is None:
    config = os.path.dirname(os.path.dirname(path))
  workdir = config if isinstance(config, str) else None
  if isinstance(config, str):
    config = config_lib.load_config(config)
  return _fold_checkpoint(checkpoints.restore_tree(path), config, path, workdir)


def load_workdir(workdir: str, checkpoint: str = "best") -> InferenceModel:
  """The folded network of a train.py work directory's best, latest or given-step
  checkpoint; a damaged one is reported, moved aside and the next older one used
  (`checkpoints.restore_workdir`)."""
  config = config_lib.load_config(workdir)  # a clear error for a wrong directory.
  path, tree = checkpoints.restore_workdir(workdir, checkpoint)
  return _fold_checkpoint(tree, config, path, workdir)


def _fold_checkpoint(tree: dict[str, Any], config: ml_collections.ConfigDict,
                     path: str, workdir: str | None = None) -> InferenceModel:
  scheme = scheme_lib.load_from_workdir(workdir) if workdir else None
  mirror_map = None if scheme is None else scheme.mirror_map
  model = fold(config.model, tree["params"], tree["batch_stats"],
               image_size=int(config.image_size),
               pose_scale_deg=float(config.pose_scale_deg),
               eval_margin=float(config.input.eval_margin),
               step=int(os.path.basename(path)), source=path, mirror_map=mirror_map)
  if scheme is not None and scheme.num_points != model.num_landmarks:
    raise ValueError(f"{os.path.join(workdir, scheme_lib.WORKDIR_FILE)}: {scheme.num_points} "
                     f"points, the network has {model.num_landmarks}")
  return model
