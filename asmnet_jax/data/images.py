"""Image decoding: files, PIL images and arrays of any mode to uint8 (H, W, 3) RGB.

`load_image` (inference) turns photos upright by their EXIF orientation;
`load_rgb_image` (dataset builders) keeps the stored pixel grid, which the
annotations refer to.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np
from PIL import Image, ImageOps

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]


class ImageLoadError(ValueError):
  """An image file is missing, unreadable, or in an unsupported mode."""


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
  """Any PIL mode -> uint8 (H, W, 3); alpha dropped, 16-bit grey scaled to 8 bits."""
  if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
    grey = np.clip(np.round(np.asarray(img, np.float64) / 257.0), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
  if img.mode == "F":
    grey = np.clip(np.round(np.asarray(img, np.float64)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
  if img.mode == "P" and "transparency" in img.info:
    img = img.convert("RGBA")  # PIL warns when a transparent palette goes to RGB.
  if img.mode != "RGB":
    img = img.convert("RGB")
  return np.asarray(img, np.uint8).copy()


def _array_to_rgb(image: np.ndarray) -> np.ndarray:
  """(H, W), (H, W, 1|2|3|4) of any numeric dtype -> uint8 (H, W, 3).

  Floats are taken as [0, 1] (the network's range), or as [0, 255] when any value
  exceeds 1.5; uint16 as 16-bit. The last channel of 2 or 4 is alpha: dropped.
  """
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] in (1, 2):
    image = image[..., 0]
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] not in (3, 4) or 0 in image.shape:
    raise ValueError(f"an image array must be (H, W), (H, W, 1-4); got {image.shape}")
  image = image[..., :3]
  if image.dtype == np.uint8:
    return np.ascontiguousarray(image)
  if image.dtype == np.bool_:
    return image.astype(np.uint8) * 255
  if image.dtype == np.uint16:
    return np.round(image / 257.0).astype(np.uint8)
  values = image.astype(np.float64)
  if np.issubdtype(image.dtype, np.floating) and not np.nanmax(values) > 1.5:
    values = values * 255.0
  return np.clip(np.round(np.nan_to_num(values)), 0, 255).astype(np.uint8)


def _open_rgb(path: str | os.PathLike, upright: bool) -> np.ndarray:
  try:
    with Image.open(path) as img:
      img.load()  # decode now, so that truncated files fail here.
      return _pil_to_rgb(ImageOps.exif_transpose(img) if upright else img)
  except FileNotFoundError:
    raise ImageLoadError(f"image not found: {os.fspath(path)}") from None
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise ImageLoadError(f"cannot read image {os.fspath(path)}: {e}") from None


def load_rgb_image(path: str | os.PathLike) -> np.ndarray:
  """Decodes an image file to uint8 (H, W, 3) RGB, EXIF orientation ignored.

  Annotations refer to the stored pixel grid. Modes as in `load_image`.

  Raises:
    ImageLoadError: naming the file, if it is missing or cannot be decoded.
  """
  return _open_rgb(path, upright=False)


def load_image(image: ImageInput) -> np.ndarray:
  """A path, PIL image or array -> uint8 (H, W, 3) RGB, upright by its EXIF tag.

  Paths and PIL images are turned by their EXIF orientation
  (`PIL.ImageOps.exif_transpose`); grayscale, palette, 16-bit and alpha images
  become RGB (alpha dropped). Arrays: see `_array_to_rgb`.

  Raises:
    ImageLoadError: for an unreadable or missing file.
  """
  if isinstance(image, np.ndarray):
    return _array_to_rgb(image)
  if isinstance(image, Image.Image):
    return _pil_to_rgb(ImageOps.exif_transpose(image))
  if isinstance(image, (str, os.PathLike)):
    return _open_rgb(image, upright=True)
  if hasattr(image, "__array__"):
    return _array_to_rgb(np.asarray(image))
  raise TypeError(f"unsupported image type {type(image).__name__}")
