"""Per-example image transforms for face-landmark records: the bilinear crop warp and
the photometric augmentation. The crop maps themselves are `asmnet_jax.core.geometry`.
"""


from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from asmnet_jax.core.geometry import apply_affine, compose

if TYPE_CHECKING:  # For annotations only: this module does not import JAX at run time.
  import jax

# Luma weights (ITU-R BT.601) for greyscale, contrast and saturation.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


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


def occlude(image: np.ndarray, rng: np.random.Generator, probability: float,
            size_range: tuple[float, float]) -> np.ndarray:
  """With `probability`, one rectangle of uniform random colour pasted over the float
  (S, S, 3) image in place (sides U(lo, hi) x S, centre uniform over the crop, cut by
  the border): random erasing, a stand-in for occluders. Returns `image`."""
  if rng.random() >= probability:
    return image
  s = image.shape[0]
  sides = rng.uniform(size_range[0], size_range[1], size=2) * s
  centre = rng.uniform(0.0, 1.0, size=2) * s
  colour = rng.uniform(0.0, 1.0, size=3).astype(image.dtype)
  # Pixel k (centre k + 0.5) is inside when |k + 0.5 - c| < side / 2.
  lo = np.clip(np.ceil(centre - 0.5 * sides - 0.5), 0, s).astype(int)
  hi = np.clip(np.ceil(centre + 0.5 * sides - 0.5), 0, s).astype(int)
  image[lo[1]:hi[1], lo[0]:hi[0]] = colour
  return image


# Kernel sides of `random_convolution`, drawn uniformly (Xu et al. 2021 use 1-7).
RANDOM_CONV_KERNELS = (1, 3, 5, 7)


def random_conv_kernel(normal: np.ndarray | jax.Array,
                       side: int | jax.Array) -> np.ndarray | jax.Array:
  """A (K, K, 3, 3) kernel (K = max(`RANDOM_CONV_KERNELS`)) from standard normal draws
  `normal` (K, K, 3, 3): the centred side x side window, scaled by He's 1 / sqrt(3
  side²) so that the output keeps the input's scale; zero outside it.

  Written with operators and array methods only, so that the device path
  (`device_augment.random_convolution`) calls it on traced arrays and a traced side.
  """
  k = normal.shape[0]
  reach = np.abs(np.arange(k) - (k - 1) // 2) <= (side - 1) // 2
  window = reach[:, None] & reach[None, :]
  return normal * window[:, :, None, None] / (3.0 * side * side) ** 0.5


def mix_convolved(image: np.ndarray | jax.Array, convolved: np.ndarray | jax.Array,
                  keep: float | jax.Array) -> np.ndarray | jax.Array:
  """keep · image + (1 − keep) · `convolved` rescaled to the image's per-channel mean
  and standard deviation, clipped to [0, 1]; all (S, S, 3), NumPy or JAX arrays."""
  mean, std = image.mean(axis=(0, 1)), image.std(axis=(0, 1))
  c_mean, c_std = convolved.mean(axis=(0, 1)), convolved.std(axis=(0, 1))
  rescaled = (convolved - c_mean) / (c_std + 1e-6) * std + mean
  return (keep * image + (1.0 - keep) * rescaled).clip(0.0, 1.0)


def random_convolution(image: np.ndarray, rng: np.random.Generator,
                       probability: float) -> np.ndarray:
  """With `probability`, the float (S, S, 3) image in [0, 1] filtered by a random
  convolution and mixed with itself (RandConv, Xu et al. ICLR 2021): a kernel of
  random weights and side drawn from `RANDOM_CONV_KERNELS` (reflected borders) scrambles
  local texture and colour while edges, and so the face's shape, stay where they
  are, so that the network leans on shape, which renders and photographs share.
  The result is rescaled to the crop's own colour statistics and mixed back with
  weight U(0, 1) on the original. Returns a new array, or `image` untouched.
  """
  if rng.random() >= probability:
    return image
  side = int(rng.choice(RANDOM_CONV_KERNELS))
  keep = float(rng.uniform())
  k = max(RANDOM_CONV_KERNELS)
  kernel = random_conv_kernel(rng.standard_normal((k, k, 3, 3)), side).astype(np.float32)
  lo = (k - side) // 2
  kernel = kernel[lo:lo + side, lo:lo + side]  # The rest is zero.
  # OpenCV correlates as the device's convolution does; reflect-101 is np.pad's "reflect".
  convolved = np.stack([
      sum(cv2.filter2D(image[..., c], -1, kernel[:, :, c, d], borderType=cv2.BORDER_REFLECT_101)
          for c in range(3))
      for d in range(3)], axis=-1)
  return mix_convolved(image, convolved, keep).astype(np.float32)
