"""Per-example crop, geometric and photometric transforms for face-landmark records.

Coordinate conventions (used throughout `asmnet_jax.input_pipeline`):
  * Pixel coordinates are 0-based with integer values at pixel *centres*, the same
    convention as the `landmarks` stored in every record (`face_features`): pixel
    (row i, column j) covers x in [j - 0.5, j + 0.5], y in [i - 0.5, i + 0.5].
  * Normalised crop coordinates run over the crop's *edges*: -0.5 at the left/top
    edge of the resized crop, +0.5 at its right/bottom edge, 0 at its centre. With
    S the crop size in pixels and x_px a pixel-centre coordinate in the resized
    crop, x_norm = (x_px + 0.5) / S - 0.5, i.e. `x / S - 0.5` with x measured from
    the crop's left edge. They do not depend on S: the landmark bounding box plus
    margins always spans the same normalised range whatever the input size.

A crop is one affine map, source pixel -> normalised crop coordinate:
    norm = diag(1 / box_w, 1 / box_h) @ (R(theta) @ (p - c) - box_centre)
where c is the landmark bounding-box centre, R a rotation about it, and the box is
the rotated landmarks' bounding box plus per-side margins, shrunk by the zoom
factor. The image is resampled once (PIL bilinear) with exactly the same matrix, so
pixels and landmarks move together.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

# Luma weights (ITU-R BT.601) for greyscale, contrast and saturation.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


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


def _rotation(theta_deg: float) -> np.ndarray:
  # Positive angles turn the image content clockwise as displayed (y down), the same
  # sense as a positive roll in `asmnet_jax.rotation`.
  t = math.radians(theta_deg)
  c, s = math.cos(t), math.sin(t)
  return np.array([[c, -s], [s, c]])


def landmarks_box(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Min and max corners (2,) of the landmarks' bounding box (pixel coordinates)."""
  return landmarks.min(axis=0), landmarks.max(axis=0)


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
  lo, hi = landmarks_box(landmarks)
  centre = 0.5 * (lo + hi)
  rot = _rotation(rotation_deg)
  rotated = (landmarks - centre) @ rot.T
  r_lo, r_hi = landmarks_box(rotated)
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


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if image.dtype != np.uint8:
    image = np.clip(image, 0, 255).astype(np.uint8)
  return np.ascontiguousarray(image[..., :3])


def warp_image(image: np.ndarray, crop_to_image: np.ndarray, image_size: int) -> np.ndarray:
  """Bilinear resample of `image` (H, W, 3) uint8 onto an S x S crop, uint8 (S, S, 3).

  `crop_to_image` (2, 3) maps crop pixel-centre coordinates to source pixel-centre
  coordinates. Outside the source is black. When the crop shrinks the source by 2x
  or more, the needed region is first box-filtered by the integer factor
  (`Image.reduce`), so bilinear sampling does not alias and touches fewer pixels.
  """
  image = _as_rgb_uint8(image)
  h, w = image.shape[:2]
  m = np.asarray(crop_to_image, dtype=np.float64)
  # Source pixels per crop pixel along the crop's axes.
  step = np.linalg.norm(m[:, :2], axis=0)
  factor = int(math.floor(min(step)))
  pil = Image.fromarray(image)
  if factor >= 2:
    corners = apply_affine(m, np.array([[-0.5, -0.5], [image_size - 0.5, -0.5],
                                        [-0.5, image_size - 0.5], [image_size - 0.5, image_size - 0.5]]))
    x0 = int(max(0, math.floor(corners[:, 0].min()) - factor))
    y0 = int(max(0, math.floor(corners[:, 1].min()) - factor))
    x1 = int(min(w, math.ceil(corners[:, 0].max()) + 1 + factor))
    y1 = int(min(h, math.ceil(corners[:, 1].max()) + 1 + factor))
    if x1 - x0 >= factor and y1 - y0 >= factor:
      # Keep whole blocks: reduced pixel k covers source [x0 + f k, x0 + f (k + 1)).
      x1 = x0 + (x1 - x0) // factor * factor
      y1 = y0 + (y1 - y0) // factor * factor
      pil = pil.reduce(factor, box=(x0, y0, x1, y1))
      # Source pixel-centre p -> reduced pixel-centre (p + 0.5 - origin) / f - 0.5.
      to_reduced = np.array([[1.0 / factor, 0.0, (0.5 - x0) / factor - 0.5],
                             [0.0, 1.0 / factor, (0.5 - y0) / factor - 0.5]])
      m = compose(to_reduced, m)
  # PIL samples at edge-based coordinates (pixel centres at k + 0.5) on both sides:
  # in_e = A out_e + t + 0.5 - A 0.5.
  a, t = m[:, :2], m[:, 2]
  t_edge = t + 0.5 - a @ np.array([0.5, 0.5])
  data = (a[0, 0], a[0, 1], t_edge[0], a[1, 0], a[1, 1], t_edge[1])
  out = pil.transform((image_size, image_size), Image.Transform.AFFINE, data,
                      resample=Image.Resampling.BILINEAR)
  return np.asarray(out)


@dataclasses.dataclass(frozen=True)
class Photometric:
  """Magnitudes of the photometric augmentation; 0 disables a term.

  brightness: additive offset drawn from U(-b, b) (image in [0, 1]).
  contrast: factor U(1 - c, 1 + c) about the mean luma.
  colour: saturation factor U(1 - k, 1 + k) and per-channel gains U(1 - k/2, 1 + k/2)
    (a mild colour cast, the "hue-ish" part).
  noise: additive per-pixel noise, standard deviation drawn from U(0, noise).
  salt_pepper: fraction of pixels, drawn from U(0, p), set to black or white.
  """

  brightness: float = 0.0
  contrast: float = 0.0
  colour: float = 0.0
  noise: float = 0.0
  salt_pepper: float = 0.0


def to_float_image(image: np.ndarray, photometric: Photometric | None = None,
                   rng: np.random.Generator | None = None) -> np.ndarray:
  """uint8 (S, S, 3) -> float32 (S, S, 3) in [0, 1], with optional random photometrics.

  Brightness, contrast, saturation and channel gains are all affine in the colour, so
  they fold into one 3 x 3 matrix and offset: a single pass over the pixels.
  """
  if photometric is None or rng is None:
    return image.astype(np.float32) * np.float32(1.0 / 255.0)
  p = photometric
  u = lambda k: float(rng.uniform(-k, k)) if k > 0 else 0.0
  pixels = image.reshape(-1, 3).astype(np.float32)
  mat = np.eye(3) / 255.0  # acts on row vectors: colour_out = colour_in @ mat + bias.
  bias = np.zeros(3)
  if p.colour > 0:
    sat = 1.0 + u(p.colour)
    # x -> luma(x) + sat (x - luma(x)), luma(x) = x . w.
    mat = mat @ (sat * np.eye(3) + (1.0 - sat) * np.outer(_LUMA, np.ones(3)))
    gains = 1.0 + rng.uniform(-0.5 * p.colour, 0.5 * p.colour, size=3)
    mat = mat * gains[None, :]
  if p.contrast > 0:
    factor = 1.0 + u(p.contrast)
    # Mean colour via a matrix-vector product: far faster than .mean(axis=0) here.
    mean = (np.ones(pixels.shape[0], np.float32) @ pixels) / pixels.shape[0]
    mean_luma = float(mean @ mat @ _LUMA + bias @ _LUMA)
    mat = mat * factor
    bias = bias * factor + (1.0 - factor) * mean_luma
  if p.brightness > 0:
    bias = bias + u(p.brightness)
  out = pixels @ mat.astype(np.float32)
  out += bias.astype(np.float32)
  out = out.reshape(image.shape)
  if p.noise > 0:
    sigma = float(rng.uniform(0.0, p.noise))
    # Zero-mean uniform noise with standard deviation sigma: ~3x cheaper to draw
    # than Gaussian, and the shape of the distribution does not matter here.
    noise = rng.random(out.shape, dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= np.float32(sigma * math.sqrt(12.0))
    out += noise
  if p.salt_pepper > 0:
    frac = float(rng.uniform(0.0, p.salt_pepper))
    count = int(round(frac * image.shape[0] * image.shape[1]))
    if count:
      flat = out.reshape(-1, 3)
      where = rng.integers(0, flat.shape[0], size=count)
      flat[where] = rng.integers(0, 2, size=(count, 1)).astype(np.float32)
  np.clip(out, 0.0, 1.0, out=out)
  return out
