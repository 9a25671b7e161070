"""ASMNet's losses (METHOD.md, section 3) as pure, jittable JAX functions.

Landmarks are (batch, n, 2) in any consistent units (the training loop uses
normalised crop coordinates); poses are (batch, 3) yaw, pitch, roll in whatever
units the caller trains in. Every loss is computed in float32 at least and
returns a scalar.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from asmnet_jax.core import asm
from asmnet_jax.core.numerics import at_least_float32

# Task weights of Eq. 12.
FACIAL_WEIGHT = 1.0
POSE_WEIGHT = 0.5
# α of Eq. 10 in the first, second and last third of the epochs.
ALPHA_STAGES = (2.0, 1.0, 0.5)
# How far a predicted point is from its target: the paper's squared distance (Eq. 7),
# the distance itself (what NME averages) or the wing loss (Feng et al., CVPR 2018).
LANDMARK_DISTANCES = ("squared", "euclidean", "wing")
# Feng et al.'s w = 10 and ε = 2 pixels of a 64-pixel input, in crop widths (the
# units of normalised crop coordinates).
WING_WIDTH = 10.0 / 64.0
WING_CURVATURE = 2.0 / 64.0


def wing(x: jnp.ndarray, width: float = WING_WIDTH,
         curvature: float = WING_CURVATURE) -> jnp.ndarray:
  """The wing loss of each element of `x` (any shape; the units of `width`).

  width·log(1 + |x| / curvature) below |x| = width, |x| − C above it, C chosen so
  the two pieces meet: steep near zero, so small errors keep pulling, and linear
  for large ones, so outliers pull no harder than an L1 loss.
  """
  magnitude = jnp.abs(x)
  offset = width - width * math.log1p(width / curvature)
  return jnp.where(magnitude < width, width * jnp.log1p(magnitude / curvature),
                   magnitude - offset)


def landmark_loss(pred: jnp.ndarray, target: jnp.ndarray,
                  distance: str = "squared") -> jnp.ndarray:
  """Eq. 7 (distance="squared"): mean over images and points of the squared
  Euclidean distance; "euclidean": of the distance; "wing": of the wing loss summed
  over x and y.

  Args:
    pred, target: (batch, n, 2).
    distance: one of `LANDMARK_DISTANCES` (static under jit).
  """
  if pred.shape != target.shape:
    raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
  difference = at_least_float32(pred) - at_least_float32(target)
  if distance == "squared":
    per_point = jnp.sum(jnp.square(difference), axis=-1)
  elif distance == "euclidean":
    squared = jnp.sum(jnp.square(difference), axis=-1)
    # The inner where keeps the gradient finite (zero) where a point is exact.
    positive = squared > 0
    per_point = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
  elif distance == "wing":
    per_point = jnp.sum(wing(difference), axis=-1)
  else:
    raise ValueError(f"distance={distance!r}: must be one of {LANDMARK_DISTANCES}")
  return jnp.mean(per_point)


def asm_loss(pred: jnp.ndarray, gt: jnp.ndarray, shape_model: asm.ShapeModel,
             distance: str = "squared") -> jnp.ndarray:
  """Eq. 8: distance to the ASM-smoothed ground truth (a constant target).

  Args:
    pred, gt: (batch, n, 2).
    shape_model: the ASM fitted on the training shapes, in the same coordinates.
    distance: as in `landmark_loss`.
  """
  smoothed = jax.lax.stop_gradient(asm.project(shape_model, at_least_float32(gt)))
  return landmark_loss(pred, smoothed, distance)


def facial_loss(pred: jnp.ndarray, gt: jnp.ndarray, shape_model: asm.ShapeModel,
                alpha: float | jnp.ndarray, distance: str = "squared") -> jnp.ndarray:
  """Eq. 9: L_mse + α · L_asm, with (batch, n, 2) inputs and a scalar α (both terms
  measured with `distance`, as in `landmark_loss`)."""
  return (landmark_loss(pred, gt, distance)
          + alpha * asm_loss(pred, gt, shape_model, distance))


def pose_loss(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
  """Eq. 11: mean over images of the mean squared error of the three angles.

  Args:
    pred, target: (batch, 3) yaw, pitch, roll.
  """
  if pred.shape != target.shape or pred.shape[-1] != 3:
    raise ValueError(f"pred {pred.shape} and target {target.shape} must both be (batch, 3)")
  return jnp.mean(jnp.square(at_least_float32(pred) - at_least_float32(target)))


def total_loss(
    pred_landmarks: jnp.ndarray,
    pred_pose: jnp.ndarray,
    gt_landmarks: jnp.ndarray,
    gt_pose: jnp.ndarray,
    shape_model: asm.ShapeModel | None = None,
    alpha: float | jnp.ndarray = 0.0,
    pose_weight: float = POSE_WEIGHT,
    distance: str = "squared",
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
  """Eq. 12: 1 · L_facial + 0.5 · L_pose.

  With `shape_model=None` the facial term is L_mse alone: the paper's "_nr"
  variants trained without the ASM-assisted loss.

  Args:
    pred_landmarks, gt_landmarks: (batch, n, 2).
    pred_pose, gt_pose: (batch, 3).
    shape_model: the ASM, or None to turn the assistant term off.
    alpha: the weight of the ASM term (see `alpha_schedule`).
    pose_weight: the pose task weight (0.5 in the paper).
    distance: how the facial terms measure a point's error (`landmark_loss`).

  Returns:
    The scalar loss and its terms: `loss`, `landmark_loss`, `asm_loss` (0 without
    a shape model), `pose_loss`.
  """
  landmark = landmark_loss(pred_landmarks, gt_landmarks, distance)
  if shape_model is None:
    facial, assistant = landmark, jnp.zeros((), landmark.dtype)
  else:
    assistant = asm_loss(pred_landmarks, gt_landmarks, shape_model, distance)
    facial = landmark + alpha * assistant
  pose = pose_loss(pred_pose, gt_pose)
  loss = FACIAL_WEIGHT * facial + pose_weight * pose
  return loss, {"loss": loss, "landmark_loss": landmark, "asm_loss": assistant, "pose_loss": pose}


def alpha_schedule(steps_per_epoch: int, num_epochs: int) -> optax.Schedule:
  """Eq. 10 as an optax schedule: step -> α, float32.

  Epoch i = step // steps_per_epoch of l = num_epochs gets α = 2 for i < l/3,
  1 for l/3 <= i < 2l/3 and 0.5 afterwards (also past the last epoch).
  """
  if steps_per_epoch < 1 or num_epochs < 1:
    raise ValueError(
        f"steps_per_epoch and num_epochs must be >= 1, got {steps_per_epoch}, {num_epochs}")
  first, second, last = ALPHA_STAGES
  # Stage k starts at the first epoch i with 3i >= k·l (integers: no rounding decides
  # a stage); for l = 1 both stages start at epoch 1, so their factors multiply.
  boundaries: dict[int, float] = {}
  for stage, scale in ((1, second / first), (2, last / second)):
    start = -(-stage * num_epochs // 3) * steps_per_epoch
    boundaries[start] = boundaries.get(start, 1.0) * scale
  schedule = optax.piecewise_constant_schedule(first, boundaries)
  return lambda step: jnp.asarray(schedule(step), jnp.float32)
