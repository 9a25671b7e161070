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


# How an NME is normalised (`nme`'s `normalizer`), with the words reports print.
NORMALIZERS = {
    "inter_ocular": "inter-ocular distance (outer eye corners)",
    "box_diagonal": "diagonal of the ground-truth landmark box",
    "box_area": "square root of the ground-truth landmark box area",
}


def default_normalizer(num_points: int, eye_indices: tuple[int, int] | None = None) -> str:
  """"inter_ocular" when the eye corners are known (given, or 68/98 points), else
  "box_diagonal"."""
  known = eye_indices is not None or num_points in OUTER_EYE_CORNERS
  return "inter_ocular" if known else "box_diagonal"


def describe_normalizer(normalizer: str, eye_indices: tuple[int, int] | None = None,
                        num_points: int | None = None) -> str:
  """The normaliser in words for reports, e.g. "inter-ocular distance (outer eye
  corners 36, 45)"."""
  if normalizer not in NORMALIZERS:
    raise ValueError(f"unknown normalizer {normalizer!r}; known: {', '.join(NORMALIZERS)}")
  text = NORMALIZERS[normalizer]
  if normalizer == "inter_ocular":
    builtin = OUTER_EYE_CORNERS.get(num_points)
    if eye_indices is None or tuple(eye_indices) == builtin:
      if builtin is not None:
        text = text[:-1] + f" {builtin[0]}, {builtin[1]})"
    else:  # a dataset's own pair: eye corners or centres, whatever it declared.
      text = f"inter-ocular distance (eye points {eye_indices[0]}, {eye_indices[1]})"
  return text


def normalizing_distance(gt: jnp.ndarray, normalizer: str = "inter_ocular",
                         eye_indices: tuple[int, int] | None = None) -> jnp.ndarray:
  """(batch,) the distance each face's error is divided by, in `gt`'s units.

  Args:
    gt: (batch, n, 2) ground-truth landmarks.
    normalizer: "inter_ocular" (ground-truth distance of the points `eye_indices`,
      by default the outer eye corners of the 68/98-point schemes), "box_diagonal"
      (sqrt(w² + h²) of the box around all ground-truth points) or "box_area"
      (sqrt(w · h) of that box).
    eye_indices: the two zero-based eye-corner indices for "inter_ocular".
  """
  if normalizer not in NORMALIZERS:
    raise ValueError(f"unknown normalizer {normalizer!r}; known: {', '.join(NORMALIZERS)}")
  gt = at_least_float32(gt)
  if normalizer == "inter_ocular":
    num_points = gt.shape[1]
    if eye_indices is None:
      if num_points not in OUTER_EYE_CORNERS:
        raise ValueError(
            f"no standard eye corners for {num_points} points (known: "
            f"{sorted(OUTER_EYE_CORNERS)}); pass eye_indices=(left, right) or a box "
            "normalizer")
      eye_indices = OUTER_EYE_CORNERS[num_points]
    left, right = eye_indices
    return jnp.linalg.norm(gt[:, left] - gt[:, right], axis=-1)
  size = gt.max(axis=1) - gt.min(axis=1)  # (batch, 2) width, height.
  if normalizer == "box_diagonal":
    return jnp.linalg.norm(size, axis=-1)
  return jnp.sqrt(size[:, 0] * size[:, 1])


def nme(pred: jnp.ndarray, gt: jnp.ndarray,
        eye_indices: tuple[int, int] | None = None,
        normalizer: str = "inter_ocular",
        point_mask: jnp.ndarray | None = None) -> jnp.ndarray:
  """Per-image normalised mean error (by default inter-ocular: outer eye corners).

  Args:
    pred, gt: (batch, n, 2) landmarks in the same (any) units.
    eye_indices: the two zero-based landmark indices whose ground-truth distance
      normalises the error; defaults to (36, 45) for 68 points, (60, 72) for 98.
    normalizer: "inter_ocular", "box_diagonal" or "box_area" (`normalizing_distance`).
    point_mask: optional (batch, n) bool, the points to average over (e.g. COFW's
      visible ones); the normaliser still uses every ground-truth point. A face
      with no point in the mask gets NaN.

  Returns:
    (batch,) mean point-to-point Euclidean error divided by the normalising
    distance, as a fraction.
  """
  if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
    raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (batch, n, 2)")
  distance = normalizing_distance(gt, normalizer, eye_indices)
  pred, gt = at_least_float32(pred), at_least_float32(gt)
  point_errors = jnp.linalg.norm(pred - gt, axis=-1)  # (batch, n)
  if point_mask is None:
    errors = point_errors.mean(axis=-1)
  else:
    if point_mask.shape != point_errors.shape:
      raise ValueError(f"point_mask {point_mask.shape} must be (batch, n) = "
                       f"{point_errors.shape}")
    weights = jnp.asarray(point_mask, point_errors.dtype)
    errors = (point_errors * weights).sum(axis=-1) / weights.sum(axis=-1)
  return errors / distance


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
