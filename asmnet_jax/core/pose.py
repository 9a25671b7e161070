"""Head-pose labels from 2D landmarks: fit the 3D mean face under weak perspective.

No face-landmark dataset ships head pose, so the builders label it by fitting the
68-point 3D mean face (`asmnet_jax.core.rotation.load_mean_face`) to each face's 2D
landmarks with a scaled orthographic camera

    p_i ~= s * (R @ X_i)[:2] + t,      R in SO(3), s > 0, t in R^2,

where X_i is mean-face point i (camera frame: x right, y down, z into the scene)
and p_i the landmark in image pixels (x right, y down; the origin and pixel scale do
not matter: s and t absorb them). The fit is a weighted least-squares affine
camera, projected to the nearest scaled rotation, then refined by Gauss-Newton on
(R, s). The angles read from R follow `asmnet_jax.core.rotation` exactly: yaw > 0 turns
the face to the image's right, pitch > 0 tilts it up, roll > 0 rotates it clockwise
on screen.

`load_pose_overrides` reads externally produced labels (e.g. HopeNet, as in the
paper) that the builders use instead of the fit.
"""

from __future__ import annotations

import csv
import math
import os
from typing import NamedTuple

import numpy as np

from asmnet_jax.core import rotation

# WFLW (98 points) -> iBUG 300-W (68 points), the usual correspondence. Jaw: every
# other contour point; brows: the upper brow contours; nose: 51-59; eyes: corners and
# the 1st/3rd upper and lower lid points of WFLW's 8-point contours (300-W has 6);
# mouth: 76-95. The pupils (96, 97) have no 300-W counterpart.
WFLW_TO_300W = np.array(
    list(range(0, 33, 2))  # jaw 0-16
    + [33, 34, 35, 36, 37]  # image-left brow 17-21 (outer -> inner)
    + [42, 43, 44, 45, 46]  # image-right brow 22-26 (inner -> outer)
    + list(range(51, 60))  # nose bridge 27-30, lower nose 31-35
    + [60, 61, 63, 64, 65, 67]  # image-left eye 36-41 (outer corner first)
    + [68, 69, 71, 72, 73, 75]  # image-right eye 42-47 (inner corner first)
    + list(range(76, 96)),  # mouth 48-67
    dtype=np.int64,
)

# The 300-W/WFLW jaw points follow the visible outline, which slides over the head as
# it turns, so they match fixed mean-face points worse than the inner points do.
DEFAULT_JAW_WEIGHT = 0.5


class WeakPerspectiveFit(NamedTuple):
  """A batch of fitted cameras: p ~= scale * (rotation @ X)[:2] + translation."""

  rotation: np.ndarray  # float64 (batch, 3, 3), proper rotations.
  scale: np.ndarray  # float64 (batch,), image pixels per mean-face unit.
  translation: np.ndarray  # float64 (batch, 2), image pixels.
  rms_error: np.ndarray  # float64 (batch,), weighted RMS residual, image pixels.


def to_68_points(landmarks: np.ndarray) -> np.ndarray:
  """(..., 68, 2) from (..., 68, 2) or WFLW (..., 98, 2) landmarks (`WFLW_TO_300W`)."""
  landmarks = np.asarray(landmarks)
  n = landmarks.shape[-2]
  if n == 68:
    return landmarks
  if n == 98:
    return landmarks[..., WFLW_TO_300W, :]
  raise ValueError(f"expected 68 or 98 landmarks, got {n} (shape {landmarks.shape})")


def default_weights() -> np.ndarray:
  """Per-point fit weights (68,): `DEFAULT_JAW_WEIGHT` on the jaw 0-16, 1 elsewhere."""
  weights = np.ones(68)
  weights[:17] = DEFAULT_JAW_WEIGHT
  return weights


def _skew(v: np.ndarray) -> np.ndarray:
  """Cross-product matrices (..., 3, 3) of vectors (..., 3): skew(v) @ u = v x u."""
  x, y, z = v[..., 0], v[..., 1], v[..., 2]
  zero = np.zeros_like(x)
  return np.stack([
      np.stack([zero, -z, y], axis=-1),
      np.stack([z, zero, -x], axis=-1),
      np.stack([-y, x, zero], axis=-1),
  ], axis=-2)


def _exp_so3(omega: np.ndarray) -> np.ndarray:
  """Rodrigues: rotation matrices (..., 3, 3) of axis-angle vectors (..., 3) (radians)."""
  theta = np.linalg.norm(omega, axis=-1)[..., None, None]
  k = _skew(omega)
  small = theta < 1e-8
  safe = np.where(small, 1.0, theta)
  a = np.where(small, 1.0, np.sin(safe) / safe)
  b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
  return np.eye(3) + a * k + b * (k @ k)


def fit_weak_perspective(
    landmarks: np.ndarray,
    weights: np.ndarray | None = None,
    iterations: int = 10,
) -> WeakPerspectiveFit:
  """Fits the mean face to 2D landmarks; see the module doc for the camera model.

  Args:
    landmarks: (batch, n, 2) image coordinates (x right, y down), n = 68 or 98
      (98 uses the `WFLW_TO_300W` subset).
    weights: optional (68,) or (batch, 68) non-negative point weights; defaults to
      `default_weights()`.
    iterations: Gauss-Newton steps after the closed-form initialisation.

  Returns:
    The fitted cameras. Rows whose landmarks are degenerate (all coincident, or
    non-finite) get NaN rotation and scale.
  """
  points = to_68_points(np.asarray(landmarks, dtype=np.float64))
  if points.ndim != 3 or points.shape[-1] != 2:
    raise ValueError(f"expected landmarks (batch, n, 2), got {points.shape}")
  batch = points.shape[0]
  w = default_weights() if weights is None else np.asarray(weights, dtype=np.float64)
  w = np.broadcast_to(w, (batch, 68))
  w = w / w.sum(axis=-1, keepdims=True)

  model = rotation.load_mean_face()  # (68, 3)
  # Weighted centring removes the translation exactly for any (R, s).
  model_mean = np.einsum("bi,ij->bj", w, model)  # (batch, 3)
  model_c = model[None] - model_mean[:, None]  # (batch, 68, 3)
  point_mean = np.einsum("bi,bij->bj", w, points)
  points_c = points - point_mean[:, None]

  # Affine camera A (2, 3) by weighted least squares: A = (P^T W X)(X^T W X)^-1.
  xtx = np.einsum("bi,bij,bik->bjk", w, model_c, model_c)
  ptx = np.einsum("bi,bij,bik->bjk", w, points_c, model_c)
  finite = np.isfinite(points).all(axis=(1, 2))
  ptx = np.where(finite[:, None, None], ptx, 0.0)
  affine = ptx @ np.linalg.inv(xtx)
  # Nearest scaled row-orthonormal matrix: singular values replaced by their mean.
  u, sv, vt = np.linalg.svd(affine, full_matrices=False)  # (b,2,2), (b,2), (b,2,3)
  top = u @ vt
  rot = np.concatenate([top, np.cross(top[:, 0], top[:, 1])[:, None]], axis=1)
  scale = sv.mean(axis=-1)

  # Gauss-Newton on R <- exp(skew(omega)) R and s, residual r_i = p_i - s (R X_i)[:2].
  sqrt_w = np.sqrt(w)[..., None]  # (batch, 68, 1)
  for _ in range(iterations):
    y = np.einsum("bjk,bik->bij", rot, model_c)  # rotated model (batch, 68, 3)
    residual = points_c - scale[:, None, None] * y[..., :2]
    # d(-s (exp(skew(omega)) Y)[:2]) / d omega = s * skew(Y)[:2];  d / ds = -Y[:2].
    j_rot = scale[:, None, None, None] * _skew(y)[..., :2, :]  # (batch, 68, 2, 3)
    j_scale = -y[..., :2, None]  # (batch, 68, 2, 1)
    jac = np.concatenate([j_rot, j_scale], axis=-1) * sqrt_w[..., None]
    jac = jac.reshape(batch, 68 * 2, 4)
    res = (residual * sqrt_w).reshape(batch, 68 * 2)
    jtj = np.einsum("bki,bkj->bij", jac, jac) + 1e-12 * np.eye(4)
    jtr = np.einsum("bki,bk->bi", jac, res)
    step = -np.linalg.solve(jtj, jtr[..., None])[..., 0]
    step = np.where(np.isfinite(step), step, 0.0)
    rot = _exp_so3(step[:, :3]) @ rot
    scale = scale + step[:, 3]

  y = np.einsum("bjk,bik->bij", rot, model_c)
  residual = points_c - scale[:, None, None] * y[..., :2]
  rms = np.sqrt(np.einsum("bi,bij->b", w, residual**2))
  translation = point_mean - scale[:, None] * np.einsum("bjk,bk->bj", rot[:, :2], model_mean)
  bad = ~finite | ~(scale > 1e-9 * (np.abs(points_c).max(axis=(1, 2)) + 1e-30))
  rot = np.where(bad[:, None, None], np.nan, rot)
  scale = np.where(bad, np.nan, scale)
  return WeakPerspectiveFit(rot, scale, translation, rms)


def pose_from_landmarks(
    landmarks: np.ndarray,
    weights: np.ndarray | None = None,
    iterations: int = 10,
) -> np.ndarray:
  """Yaw, pitch, roll in degrees of faces, from their 2D landmarks.

  Args:
    landmarks: (batch, n, 2) or (n, 2) image coordinates in pixels (x to the right,
      y down), n = 68 (iBUG 300-W order) or 98 (WFLW order). Any origin and scale.
    weights: optional (68,) point weights for the fit (see `fit_weak_perspective`).
    iterations: Gauss-Newton refinement steps.

  Returns:
    float64 (batch, 3) or (3,): yaw, pitch, roll in degrees, the conventions of
    `asmnet_jax.core.rotation`: yaw > 0 when the face turns toward the image's right
    (the subject looks to their own left), pitch > 0 when it tilts up, roll > 0
    when it rotates clockwise as displayed. Frontal and upright is (0, 0, 0).
    NaN for degenerate or non-finite landmarks.
  """
  landmarks = np.asarray(landmarks)
  single = landmarks.ndim == 2
  fit = fit_weak_perspective(landmarks[None] if single else landmarks, weights, iterations)
  angles = rotation.rotation_to_euler(fit.rotation)
  return angles[0] if single else angles


def normalize_key(name: str) -> str:
  """The form in which override filenames are compared: '/' separators, no './'."""
  name = name.strip().replace("\\", "/")
  while name.startswith("./"):
    name = name[2:]
  return name


def load_pose_overrides(csv_path: str | os.PathLike) -> dict[str, tuple[float, float, float]]:
  """Reads externally produced head-pose labels (e.g. HopeNet's) from a CSV file.

  Format: one face a row, `filename,yaw,pitch,roll` with angles in degrees in the
  conventions of `asmnet_jax.core.rotation` (see `pose_from_landmarks`); an optional
  header row `filename,yaw,pitch,roll`; blank lines and lines starting with '#' are
  ignored. Filenames are relative to the dataset's manual directory ('/' or '\\').

  Returns:
    {filename: (yaw, pitch, roll)} with filenames normalised by `normalize_key`.

  Raises:
    ValueError: naming the file and line of a malformed row (wrong column count,
      non-numeric or non-finite angle, empty or duplicate filename).
  """
  overrides: dict[str, tuple[float, float, float]] = {}
  with open(csv_path, newline="", encoding="utf-8-sig") as f:
    for line_no, row in enumerate(csv.reader(f), start=1):
      if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
        continue
      cells = [c.strip() for c in row]
      if line_no == 1 and [c.lower() for c in cells] == ["filename", "yaw", "pitch", "roll"]:
        continue
      where = f"{os.fspath(csv_path)}, line {line_no}"
      if len(cells) != 4:
        raise ValueError(
            f"{where}: expected 4 columns 'filename,yaw,pitch,roll', got {len(cells)}: {row!r}"
        )
      name = normalize_key(cells[0])
      if not name:
        raise ValueError(f"{where}: empty filename")
      try:
        angles = tuple(float(c) for c in cells[1:])
      except ValueError:
        raise ValueError(f"{where}: angles must be numbers in degrees, got {cells[1:]!r}") from None
      if not all(math.isfinite(a) for a in angles):
        raise ValueError(f"{where}: angles must be finite, got {cells[1:]!r}")
      if name in overrides:
        raise ValueError(f"{where}: duplicate filename {name!r}")
      overrides[name] = angles
  return overrides
