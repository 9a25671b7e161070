"""Face crops for the dataset builders: cut a padded square around the landmarks, cap its resolution, and map coordinates back and forth.

Coordinates are 0-based pixel positions (x right, y down) with pixel centres on
integers: pixel (i, j) covers [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5].

A crop is described by `crop_box` = (x0, y0, x1, y1), integers in the original image,
x1 - x0 == y1 - y0 == the square's side before resizing. If that side exceeds
`max_size` the crop is resized to `max_size`, and with s = size / (x1 - x0):

    crop = (original - (x0, y0) + 0.5) * s - 0.5
    original = (crop + 0.5) / s - 0.5 + (x0, y0)

which is `original = crop + (x0, y0)` when no resize happened (s = 1).
"""

from __future__ import annotations

import io
import math
from typing import NamedTuple

import numpy as np
from PIL import Image

# Margin on each side of the landmark box, as a fraction of its longer side. The
# training crop (landmark box + up to 10% a side) rotated by up to 30 degrees spans
# at most 1.2 * (cos 30 + sin 30) = 1.64 box sides, so 0.35 (1.7 sides) keeps real
# pixels under any such augmented crop whenever the image has them.
DEFAULT_MARGIN = 0.35
# Longer side of a stored crop: ~188 px for the landmark box, a little under the
# 224 px network input, keeps the datasets small and decoding fast.
DEFAULT_MAX_SIZE = 320
# A crop more than this many times the image's longer side is a wrong annotation:
# refused before its pixels are allocated.
MAX_CROP_TO_IMAGE = 4


def crop_box_for_landmarks(landmarks: np.ndarray, margin: float = DEFAULT_MARGIN) -> np.ndarray:
  """Square integer crop box around landmarks, enlarged by `margin` on each side.

  Args:
    landmarks: (n, 2) finite 0-based pixel coordinates.
    margin: added on every side, as a fraction of the landmark box's longer side.

  Returns:
    float32 (4,), x0 y0 x1 y1 (integers, x1 exclusive) centred on the landmark box;
    it may extend beyond the image.
  """
  landmarks = np.asarray(landmarks, dtype=np.float64)
  lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
  centre = (lo + hi) / 2
  extent = (hi - lo).max()
  # At least extent + 2 so that every landmark lies in [x0, x1 - 1] even if margin = 0.
  side = max(math.ceil(extent * (1 + 2 * margin)), math.ceil(extent) + 2)
  x0, y0 = (math.floor(c - (side - 1) / 2 + 0.5) for c in centre)
  return np.array([x0, y0, x0 + side, y0 + side], dtype=np.float32)


def original_to_crop(points: np.ndarray, crop_box: np.ndarray, size: int) -> np.ndarray:
  """Maps (..., 2) original coordinates into a crop resized to `size` (module doc)."""
  crop_box = np.asarray(crop_box, dtype=np.float64)
  s = size / (crop_box[2] - crop_box[0])
  return (np.asarray(points, dtype=np.float64) - crop_box[:2] + 0.5) * s - 0.5


def crop_to_original(points: np.ndarray, crop_box: np.ndarray, size: int) -> np.ndarray:
  """Maps (..., 2) crop coordinates back to the original image (module doc)."""
  crop_box = np.asarray(crop_box, dtype=np.float64)
  s = size / (crop_box[2] - crop_box[0])
  return (np.asarray(points, dtype=np.float64) + 0.5) / s - 0.5 + crop_box[:2]


def cut_padded(image: np.ndarray, crop_box: np.ndarray, pad: str = "constant") -> np.ndarray:
  """The pixels of an integer `crop_box`, padded where it leaves the image.

  Args:
    image: (H, W, C) array.
    crop_box: x0 y0 x1 y1, integers (x1, y1 exclusive).
    pad: "constant" (zeros: black) or "edge" (replicate the border pixels).

  Returns:
    (y1 - y0, x1 - x0, C) array of the image's dtype.
  """
  x0, y0, x1, y1 = (int(round(float(v))) for v in crop_box)
  h, w = image.shape[:2]
  inner = image[max(y0, 0):max(min(y1, h), 0), max(x0, 0):max(min(x1, w), 0)]
  widths = ((max(0, -y0), y1 - y0 - max(0, -y0) - inner.shape[0]),
            (max(0, -x0), x1 - x0 - max(0, -x0) - inner.shape[1]), (0, 0))
  if inner.size == 0:  # the box misses the image: nothing to replicate.
    return np.zeros((y1 - y0, x1 - x0, image.shape[2]), image.dtype)
  if pad == "edge":
    return np.pad(inner, widths, mode="edge")
  if pad == "constant":
    return np.pad(inner, widths, mode="constant")
  raise ValueError(f"pad must be 'constant' or 'edge', got {pad!r}")


class FaceCrop(NamedTuple):
  image: np.ndarray  # uint8 (size, size, 3).
  landmarks: np.ndarray  # float32 (n, 2), 0-based pixel coordinates in the crop.
  crop_box: np.ndarray  # float32 (4,), x0 y0 x1 y1 in the original image.


def crop_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    margin: float = DEFAULT_MARGIN,
    max_size: int | None = DEFAULT_MAX_SIZE,
    pad: str = "constant",
) -> FaceCrop:
  """Square face crop around `landmarks`, padded, with its longer side <= `max_size`.

  Args:
    image: uint8 (H, W, 3).
    landmarks: (n, 2) finite 0-based pixel coordinates in `image`.
    margin: see `crop_box_for_landmarks`.
    max_size: crops larger than this are downsampled (Lanczos) to it; None keeps
      the original resolution.
    pad: see `cut_padded`.

  Raises:
    ValueError: the crop would be over `MAX_CROP_TO_IMAGE` times the image's size.
  """
  box = crop_box_for_landmarks(landmarks, margin)
  limit = MAX_CROP_TO_IMAGE * max(image.shape[:2])
  if box[2] - box[0] > limit:
    raise ValueError(f"a {int(box[2] - box[0])} px crop of a {image.shape[1]}x"
                     f"{image.shape[0]} image (over {MAX_CROP_TO_IMAGE} times its size): "
                     "landmarks far outside it")
  pixels = cut_padded(image, box, pad)
  side = pixels.shape[0]
  if max_size is not None and side > max_size:
    pixels = np.asarray(
        Image.fromarray(pixels).resize((max_size, max_size), Image.Resampling.LANCZOS))
    size = max_size
  else:
    size = side
  points = original_to_crop(landmarks, box, size)
  return FaceCrop(pixels, points.astype(np.float32), box)


def encode_image(image: np.ndarray, image_format: str = "png", jpeg_quality: int = 95) -> bytes:
  """uint8 (H, W, 3) -> PNG or JPEG bytes (what `tfds.features.Image` stores)."""
  buffer = io.BytesIO()
  fmt = image_format.lower()
  if fmt == "png":
    Image.fromarray(image).save(buffer, format="PNG", compress_level=6)
  elif fmt in ("jpeg", "jpg"):
    Image.fromarray(image).save(buffer, format="JPEG", quality=jpeg_quality, subsampling=0)
  else:
    raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
  return buffer.getvalue()
