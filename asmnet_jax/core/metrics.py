"""The field's standard face-alignment and head-pose metrics (METHOD.md, section 7).

NME values are fractions (0.05 is the "5 %" of the papers). All functions are pure
JAX and jittable; they compute in float32 at least.
"""

from __future__ import annotations

import jax.numpy as jnp

from asmnet_jax.core.numerics import at_least_float32

# Zero-based outer eye corners for the inter-ocular normalisation.
OUTER_EYE_CORNERS = {68: (36, 45), 98: (60, 72)}
FAILURE_THRESHOLD = 0.1


def nme(pred: jnp.ndarray, gt: jnp.ndarray,
        eye_indices: tuple[int, int] | None = None) -> jnp.ndarray:
  """Per-image normalised mean error (inter-ocular: outer eye corners).

  Args:
    pred, gt: (batch, n, 2) landmarks in the same (any) units.
    eye_indices: the two zero-based landmark indices whose ground-truth distance
      normalises the error; defaults to (36, 45) for 68 points, (60, 72) for 98.

  Returns:
    (batch,) mean point-to-point Euclidean error divided by the inter-ocular
    distance, as a fraction.
  """
  if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
    raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (batch, n, 2)")
  num_points = gt.shape[1]
  if eye_indices is None:
    if num_points not in OUTER_EYE_CORNERS:
      raise ValueError(
          f"no standard eye corners for {num_points} points (known: "
          f"{sorted(OUTER_EYE_CORNERS)}); pass eye_indices=(left, right)")
    eye_indices = OUTER_EYE_CORNERS[num_points]
  left, right = eye_indices
  pred, gt = at_least_float32(pred), at_least_float32(gt)
  errors = jnp.linalg.norm(pred - gt, axis=-1).mean(axis=-1)
  interocular = jnp.linalg.norm(gt[:, left] - gt[:, right], axis=-1)
  return errors / interocular


def failure_rate(nmes: jnp.ndarray, threshold: float = FAILURE_THRESHOLD) -> jnp.ndarray:
  """The share of images (a fraction) whose NME exceeds `threshold`."""
  return jnp.mean(at_least_float32(nmes) > threshold)


def auc(nmes: jnp.ndarray, threshold: float = FAILURE_THRESHOLD) -> jnp.ndarray:
  """Area under the CED curve from 0 to `threshold`, divided by `threshold`.

  The CED is F(x) = share of images with NME <= x, and ∫₀ᵀ F(x) dx equals the mean
  of max(0, T − e) over the images, so the area is exact, with no grid. A
  perfect model scores 1; one failing on every image scores 0.
  """
  return jnp.mean(jnp.clip(1.0 - at_least_float32(nmes) / threshold, 0.0, 1.0))


def ced(nmes: jnp.ndarray, threshold: float = FAILURE_THRESHOLD,
        num_points: int = 1001) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The cumulative error distribution, for plotting.

  Returns:
    x: (num_points,) NME values from 0 to `threshold`, and
    y: (num_points,) the share of images with NME <= x.
  """
  x = jnp.linspace(0.0, threshold, num_points)
  y = jnp.mean(at_least_float32(nmes)[None, :] <= x[:, None], axis=1)
  return x, y


def pose_mae(pred: jnp.ndarray, gt: jnp.ndarray) -> jnp.ndarray:
  """Mean absolute error per angle: (batch, 3) degrees -> (3,) yaw, pitch, roll.

  Differences are wrapped to [-180, 180) so that 179° and -179° are 2° apart.
  """
  if pred.shape != gt.shape or pred.shape[-1] != 3:
    raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (batch, 3)")
  diff = at_least_float32(pred) - at_least_float32(gt)
  diff = jnp.mod(diff + 180.0, 360.0) - 180.0
  return jnp.mean(jnp.abs(diff), axis=0)
