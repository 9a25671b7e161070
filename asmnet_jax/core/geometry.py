"""Crop geometry: the affine maps between image pixels and normalised crop coordinates.

Coordinate conventions (used by the input pipeline, the evaluator and the Predictor):
  * Pixel coordinates are 0-based with integer values at pixel *centres*, the same
    convention as the `landmarks` stored in every record: pixel (row i, column j)
    covers x in [j - 0.5, j + 0.5], y in [i - 0.5, i + 0.5].
  * Normalised crop coordinates run over the crop's *edges*: -0.5 at the left/top
    edge of the resized crop, +0.5 at its right/bottom edge, 0 at its centre. With
    S the crop size in pixels and x_px a pixel-centre coordinate in the resized
    crop, x_norm = (x_px + 0.5) / S - 0.5. They do not depend on S: the landmark
    bounding box plus margins always spans the same normalised range.

A crop is one affine map, source pixel -> normalised crop coordinate:
    norm = diag(1 / box_w, 1 / box_h) @ (R(theta) @ (p - c) - box_centre)
where c is the landmark bounding-box centre, R a rotation about it, and the box is
the rotated landmarks' bounding box plus per-side margins, shrunk by the zoom
factor (`crop_matrix`). Affine maps are (..., 2, 3) arrays [A | t]. NumPy only.
"""

from __future__ import annotations

import math

import numpy as np


def normalize_landmarks(landmarks_px: np.ndarray, image_size: int) -> np.ndarray:
  """Pixel-centre coordinates in an S x S crop (..., 2) -> normalised (..., 2).

  x_norm = (x_px + 0.5) / S - 0.5; exact inverse of `denormalize_landmarks`.
  """
  landmarks_px = np.asarray(landmarks_px)
  dtype = landmarks_px.dtype if np.issubdtype(landmarks_px.dtype, np.floating) else np.float32
  return ((landmarks_px + 0.5) / image_size - 0.5).astype(dtype, copy=False)


def denormalize_landmarks(landmarks_norm: np.ndarray, image_size: int) -> np.ndarray:
  """Normalised crop coordinates (..., 2) -> pixel-centre coordinates in the S x S crop.

  x_px = (x_norm + 0.5) * S - 0.5; works on numpy and jax arrays alike.
  """
  return (landmarks_norm + 0.5) * image_size - 0.5


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
  """Applies affine maps (..., 2, 3) to points (..., n, 2); returns (..., n, 2)."""
  matrix = np.asarray(matrix)
  points = np.asarray(points)
  return points @ np.swapaxes(matrix[..., :, :2], -1, -2) + matrix[..., None, :, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
  """Inverse of an affine map given as (2, 3) [A | t]."""
  a_inv = np.linalg.inv(matrix[:, :2])
  return np.concatenate([a_inv, -a_inv @ matrix[:, 2:]], axis=1)


def rotation_matrix(theta_deg: float) -> np.ndarray:
  """(2, 2) rotation of points by `theta_deg` in pixel coordinates (y down): positive
  angles turn the image content clockwise as displayed, the same sense as a positive
  roll in `asmnet_jax.core.rotation`."""
  t = math.radians(theta_deg)
  c, s = math.cos(t), math.sin(t)
  return np.array([[c, -s], [s, c]])


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
  """(..., n, 2) points -> (..., 4) x0 y0 x1 y1 of their bounding box."""
  landmarks = np.asarray(landmarks, np.float64)
  return np.concatenate([landmarks.min(axis=-2), landmarks.max(axis=-2)], axis=-1)


def crop_matrix(
    landmarks: np.ndarray,
    margins: np.ndarray | tuple[float, float, float, float] = (0.05, 0.05, 0.05, 0.05),
    rotation_deg: float = 0.0,
    scale: float = 1.0,
) -> tuple[np.ndarray, float]:
  """The affine map (2, 3) from source pixel-centre coordinates to normalised crop ones.

  Args:
    landmarks: (n, 2) source pixel coordinates.
    margins: left, top, right, bottom margins as fractions of the (rotated)
      landmark box width (left, right) or height (top, bottom); >= 0 keeps every
      landmark inside the crop.
    rotation_deg: in-plane rotation of the content about the box centre, degrees,
      positive clockwise as displayed.
    scale: zoom; > 1 enlarges the face. Clamped so that no landmark leaves the crop.

  Returns:
    (matrix, scale actually used).
  """
  landmarks = np.asarray(landmarks, dtype=np.float64)
  lo, hi = np.split(landmark_box(landmarks), 2)
  centre = 0.5 * (lo + hi)
  rot = rotation_matrix(rotation_deg)
  rotated = (landmarks - centre) @ rot.T
  r_lo, r_hi = np.split(landmark_box(rotated), 2)
  size = np.maximum(r_hi - r_lo, 1.0)  # guards degenerate (collinear) shapes.
  m = np.asarray(margins, dtype=np.float64)
  box_lo = r_lo - m[:2] * size
  box_hi = r_hi + m[2:] * size
  box_centre = 0.5 * (box_lo + box_hi)
  half = 0.5 * (box_hi - box_lo)
  if scale > 1.0:
    # Largest zoom that keeps every landmark inside the box (clamp, never drop).
    reach = np.max(np.abs(rotated - box_centre), axis=0)
    limit = float(np.min(half / np.maximum(reach, 1e-9)))
    scale = min(scale, max(limit, 1.0))
  half = half / scale
  lin = rot / (2.0 * half)[:, None]
  offset = -lin @ centre - box_centre / (2.0 * half)
  return np.concatenate([lin, offset[:, None]], axis=1), float(scale)


def norm_to_pixel_matrix(image_size: int) -> np.ndarray:
  """Affine (2, 3): normalised crop coordinates -> pixel-centre coordinates in the crop."""
  s = float(image_size)
  return np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
  """The affine map (2, 3) x -> outer(inner(x))."""
  return np.concatenate([outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2:] + outer[:, 2:]], axis=1)


def eval_crop_to_image(landmark_box_xyxy: np.ndarray, image_size: int,
                       margin: float) -> np.ndarray:
  """Affine (2, 3) from S x S crop pixel-centre to image pixel-centre coordinates.

  The evaluation crop: the landmark box (x0, y0, x1, y1) plus `margin` of its width
  (height) left and right (top and bottom), no rotation or zoom, resized to S square.
  """
  corners = np.asarray(landmark_box_xyxy, np.float64).reshape(2, 2)
  image_to_norm, _ = crop_matrix(corners, (margin,) * 4)
  return invert_affine(compose(norm_to_pixel_matrix(image_size), image_to_norm))


def crop_to_image_points(landmarks_norm: np.ndarray, crop_to_image: np.ndarray,
                         image_size: int) -> np.ndarray:
  """Normalised crop landmarks (..., n, 2) -> image pixel-centre coordinates (..., n, 2).

  `crop_to_image` (..., 2, 3) maps crop pixel-centre to image pixel-centre coordinates
  (the pipeline's `crop_to_image` field, or `eval_crop_to_image`).
  """
  pixels = denormalize_landmarks(np.asarray(landmarks_norm, np.float64), image_size)
  return apply_affine(np.asarray(crop_to_image, np.float64), pixels)


def eval_normalized(landmarks: np.ndarray, margin: float) -> np.ndarray:
  """Points (..., n, 2) in their own evaluation crop (`crop_matrix` with equal margins
  and no rotation), normalised, float32 (..., n, 2): vectorised over the leading axes.
  """
  points = np.asarray(landmarks, np.float64)
  lo, hi = points.min(axis=-2, keepdims=True), points.max(axis=-2, keepdims=True)
  size = np.maximum(hi - lo, 1.0)
  box_lo, box_hi = lo - margin * size, hi + margin * size
  return ((points - 0.5 * (box_lo + box_hi)) / (box_hi - box_lo)).astype(np.float32)


def box_size(boxes: np.ndarray) -> np.ndarray:
  """sqrt(width * height) of boxes (..., 4) x0 y0 x1 y1 -> (...,), each side floored at
  1e-6 so that a degenerate box still divides."""
  boxes = np.asarray(boxes, np.float64)
  return np.sqrt(np.prod(np.maximum(boxes[..., 2:] - boxes[..., :2], 1e-6), axis=-1))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Intersection over union of boxes a (k, 4) and b (m, 4), x0 y0 x1 y1 -> (k, m)."""
  a = np.asarray(a, np.float64).reshape(-1, 1, 4)
  b = np.asarray(b, np.float64).reshape(1, -1, 4)
  size = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
  inter = size[..., 0] * size[..., 1]
  area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)  # pylint: disable=unnecessary-lambda-assignment
  union = area(a) + area(b) - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
