"""Camera effects for rendered images: the optics, sensor and processing of real photos.

`apply_camera_effects` turns a clean render into what phones, webcams, old compact
cameras and CCTV produce. Each effect has a chance and a range (`CameraEffects`),
applied in the physical order:

  optics      defocus (disc or Gaussian), motion blur (a centred line at a random
              angle), vignetting;
  light       exposure error, low light (less signal, the camera's gain amplifies the
              noise);
  sensor      low resolution (the image is carried at a 1.5-4x smaller size until
              the end), shot noise (variance proportional to the signal) plus read
              noise, luminance-only or with chroma, sometimes spatially correlated
              (demosaicing and denoising);
  processing  white balance error (warm / cool / green-magenta casts), black level,
              gamma and contrast curve, unsharp-mask sharpening, upscaling back to
              the input size, greyscale, JPEG at quality 30-95.

Geometry is untouched, so landmarks stay exact: every kernel is point-symmetric about
its centre (zero first moment), and resampling uses pixel-centre alignment (pixel i
covers [i - 0.5, i + 0.5]; cv2.resize maps destination x to source
(x + 0.5) * scale - 0.5), the convention of the landmark labels.

Images are float32 RGB in [0, 255] until the final rounding to uint8. All randomness
comes from the given generator; the cached noise bank is a seeded constant.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math

import cv2
import numpy as np
from PIL import Image

_BANK = 512  # Side of the cached Gaussian noise bank; larger images draw fresh noise.


@dataclasses.dataclass(frozen=True)
class CameraEffects:
  """Chances and ranges of each degradation. Ranges are (low, high), drawn uniformly
  unless said otherwise; `*_prob` fields are chances in [0, 1].

  Attributes:
    defocus_prob: chance of a defocus blur.
    defocus_radius: blur size in output pixels: the radius of a disc kernel, or the
      standard deviation of a Gaussian kernel (half of the drawn value).
    defocus_disc_prob: chance that a defocus uses the disc (lens aperture) kernel
      rather than the Gaussian one.
    motion_prob: chance of a motion blur.
    motion_length: full length in pixels of the straight line the camera moves along
      during the exposure (centred, at a uniformly random angle).
    vignette_prob: chance of vignetting.
    vignette_strength: fraction of light lost at the image corners (quadratic falloff
      from a centre up to 5 % of the diagonal off the image centre).
    exposure_prob: chance of an exposure error.
    exposure_gain: multiplier of the light reaching the sensor (< 1 under-, > 1
      over-exposed; drawn log-uniformly).
    low_light_prob: chance of a low-light shot.
    low_light_level: fraction of the normal light in a low-light shot (log-uniform).
    low_light_recovery: how much of the lost brightness the camera's gain restores,
      as a power: the output brightness is level^(1 - recovery), and the gain
      level^-recovery amplifies the noise with the signal.
    low_res_prob: chance of a low-resolution camera.
    low_res_factor: the image is downscaled by this factor (area average) right after
      the optics, processed at that size, and upscaled back (bilinear or bicubic) at
      the end.
    noise_prob: chance of sensor noise.
    full_well: photo-electrons at full scale (255), drawn log-uniformly: the shot
      noise standard deviation at level L (0-255) is sqrt(255 L / full_well).
    read_noise: standard deviation of signal-independent noise, in 0-255 units.
    chroma_noise_prob: chance that the noise is mostly independent per channel
      (colour speckle) rather than mostly luminance (phones denoise chroma).
    noise_blur_prob: chance that the noise is spatially correlated (Gaussian of
      0.5-1 px, variance kept), as after demosaicing and denoising.
    white_balance_prob: chance of a white balance error.
    temperature: warm (+) / cool (-) cast: red gain 1 + t, blue gain 1 - t.
    tint: green (+) / magenta (-) cast: green gain 1 + t.
    tone_prob: chance of a tone change (black level, gamma and contrast).
    black_level: raised black as a fraction of full scale (washed-out shadows).
    gamma: output = input^(1 / gamma) on [0, 1] (> 1 brightens the mid-tones).
    contrast: blend weight toward (+) or away from (-) a smoothstep S-curve.
    sharpen_prob: chance of unsharp-mask sharpening.
    sharpen_amount: weight of the high-pass added back (0: none).
    sharpen_sigma: standard deviation in pixels of the unsharp mask's Gaussian.
    grey_prob: chance of a greyscale photo (luma 0.299 R + 0.587 G + 0.114 B in all
      three channels, before JPEG).
    jpeg_quality: JPEG quality range (integers, inclusive).
    jpeg_444_prob: chance that JPEG keeps full-resolution chroma (4:4:4) instead of
      the usual 4:2:0.
  """
  defocus_prob: float = 0.25
  defocus_radius: tuple[float, float] = (0.5, 2.5)
  defocus_disc_prob: float = 0.5
  motion_prob: float = 0.12
  motion_length: tuple[float, float] = (1.5, 8.0)
  vignette_prob: float = 0.3
  vignette_strength: tuple[float, float] = (0.1, 0.5)
  exposure_prob: float = 0.5
  exposure_gain: tuple[float, float] = (0.6, 1.5)
  low_light_prob: float = 0.12
  low_light_level: tuple[float, float] = (0.05, 0.35)
  low_light_recovery: tuple[float, float] = (0.5, 0.9)
  low_res_prob: float = 0.25
  low_res_factor: tuple[float, float] = (1.5, 4.0)
  noise_prob: float = 0.85
  full_well: tuple[float, float] = (300.0, 6000.0)
  read_noise: tuple[float, float] = (0.3, 3.0)
  chroma_noise_prob: float = 0.4
  noise_blur_prob: float = 0.3
  white_balance_prob: float = 0.6
  temperature: tuple[float, float] = (-0.2, 0.25)
  tint: tuple[float, float] = (-0.06, 0.06)
  tone_prob: float = 0.7
  black_level: tuple[float, float] = (0.0, 0.06)
  gamma: tuple[float, float] = (0.75, 1.35)
  contrast: tuple[float, float] = (-0.5, 0.8)
  sharpen_prob: float = 0.3
  sharpen_amount: tuple[float, float] = (0.2, 1.0)
  sharpen_sigma: tuple[float, float] = (0.6, 1.5)
  grey_prob: float = 0.07
  jpeg_quality: tuple[int, int] = (30, 95)
  jpeg_444_prob: float = 0.2

  def __post_init__(self):
    # (lowest allowed low, highest allowed high) of each range.
    limits = {
        "defocus_radius": (0.0, 50.0), "motion_length": (0.0, 100.0),
        "vignette_strength": (0.0, 1.0), "exposure_gain": (1e-3, 100.0),
        "low_light_level": (1e-3, 1.0), "low_light_recovery": (0.0, 1.0),
        "low_res_factor": (1.0, 64.0), "full_well": (1.0, 1e7), "read_noise": (0.0, 255.0),
        "temperature": (-0.9, 0.9), "tint": (-0.9, 0.9), "black_level": (0.0, 0.5),
        "gamma": (0.05, 20.0), "contrast": (-1.0, 1.0), "sharpen_amount": (0.0, 10.0),
        "sharpen_sigma": (0.1, 20.0), "jpeg_quality": (1, 100),
    }
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      if f.name.endswith("_prob"):
        if not 0.0 <= value <= 1.0:
          raise ValueError(f"CameraEffects.{f.name} must be a chance in [0, 1], got {value!r}")
        continue
      lo, hi = limits[f.name]
      if (not isinstance(value, (tuple, list)) or len(value) != 2
          or not lo <= value[0] <= value[1] <= hi):
        raise ValueError(f"CameraEffects.{f.name} must be (low, high) with "
                         f"{lo} <= low <= high <= {hi}, got {value!r}")
    q = self.jpeg_quality
    if int(q[0]) != q[0] or int(q[1]) != q[1]:
      raise ValueError(f"CameraEffects.jpeg_quality must be integers, got {q!r}")


NO_EFFECTS = CameraEffects(
    defocus_prob=0.0, motion_prob=0.0, vignette_prob=0.0, exposure_prob=0.0,
    low_light_prob=0.0, low_res_prob=0.0, noise_prob=0.0, white_balance_prob=0.0,
    tone_prob=0.0, sharpen_prob=0.0, grey_prob=0.0, jpeg_quality=(95, 95))
"""Only the JPEG round trip at quality 95: a base to switch single effects on."""


# ----------------------------------------------------------------------------------
# Geometric filters: each leaves the intensity centroid of any blob where it was.


def disc_kernel(radius: float) -> np.ndarray:
  """float32 (2k + 1, 2k + 1) disc of `radius` px, edge anti-aliased, sum 1."""
  k = int(math.ceil(radius + 0.5))
  d = np.hypot(*np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1)))
  w = np.clip(radius + 0.5 - d, 0.0, 1.0)
  return (w / w.sum()).astype(np.float32)


def motion_kernel(length: float, angle: float) -> np.ndarray:
  """float32 (2k + 1, 2k + 1) line of `length` px at `angle` radians (x right, y down),
  centred and point-symmetric, sum 1.

  The line is sampled at the midpoints of m equal pieces (positions t and -t in
  pairs), each sample splatted bilinearly, so the kernel is symmetric under a half
  turn and moves nothing.
  """
  length = max(length, 0.0)
  half = 0.5 * length
  k = int(math.ceil(half)) + 1
  m = max(int(math.ceil(4.0 * length)), 1)
  t = (np.arange(m) + 0.5) * (length / m) - half
  x, y = k + t * math.cos(angle), k + t * math.sin(angle)
  x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
  fx, fy = x - x0, y - y0
  kern = np.zeros((2 * k + 1, 2 * k + 1))
  for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                    (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
    np.add.at(kern, (y0 + dy, x0 + dx), w)
  kern = 0.5 * (kern + kern[::-1, ::-1])  # Exact symmetry despite rounding.
  return (kern / kern.sum()).astype(np.float32)


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
  # cv2.filter2D correlates; for these point-symmetric kernels that is convolution.
  return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def defocus_blur(image: np.ndarray, radius: float, disc: bool = True) -> np.ndarray:
  """Out-of-focus blur of float32 (H, W, C): a disc of `radius` px, or a Gaussian of
  standard deviation radius / 2."""
  if disc:
    return _filter(image, disc_kernel(radius))
  return cv2.GaussianBlur(image, (0, 0), max(0.5 * radius, 1e-3),
                          borderType=cv2.BORDER_REFLECT_101)


def motion_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
  """Camera-shake blur of float32 (H, W, C) along a centred line (see `motion_kernel`)."""
  return _filter(image, motion_kernel(length, angle))


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
  """Area-average float32 (H, W, C) to about (H / factor, W / factor), at least 1x1.

  Pixel centres stay aligned: small pixel j covers [j s, (j + 1) s) - 0.5 of the input
  (s = input / output size per axis), which `upscale` inverts.
  """
  h, w = image.shape[:2]
  size = (max(int(round(w / factor)), 1), max(int(round(h / factor)), 1))
  return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def upscale(image: np.ndarray, height: int, width: int, cubic: bool = False) -> np.ndarray:
  """Bilinear (or bicubic) resize to (height, width) with pixel-centre alignment."""
  return cv2.resize(image, (width, height),
                    interpolation=cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR)


def low_resolution(image: np.ndarray, factor: float, cubic: bool = False) -> np.ndarray:
  """`downscale` by `factor`, then `upscale` back to the input size."""
  return upscale(downscale(image, factor), *image.shape[:2], cubic=cubic)


def unsharp_mask(image: np.ndarray, amount: float, sigma: float) -> np.ndarray:
  """image + amount * (image - Gaussian(image, sigma px))."""
  blurred = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
  return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0)


# ----------------------------------------------------------------------------------
# Noise.


@functools.cache
def _normal_bank() -> np.ndarray:
  """A fixed (4, 512, 512) float32 N(0, 1) bank; crops of it are much cheaper than
  fresh Gaussian noise per image."""
  return np.random.default_rng(2027_0314).standard_normal((4, _BANK, _BANK), dtype=np.float32)


def _normal_planes(rng: np.random.Generator, n: int, height: int,
                   width: int) -> list[np.ndarray]:
  """n independent-looking (height, width) float32 N(0, 1) planes."""
  if height > _BANK or width > _BANK:
    return list(rng.standard_normal((n, height, width), dtype=np.float32))
  bank = _normal_bank()
  ks = rng.permutation(len(bank))[:n]
  ys = rng.integers(0, _BANK - height + 1, n)
  xs = rng.integers(0, _BANK - width + 1, n)
  flips = rng.integers(0, 2, n)
  out = []
  for k, y, x, f in zip(ks, ys, xs, flips):
    p = bank[k, y:y + height, x:x + width]
    out.append(np.ascontiguousarray(p[::-1] if f else p))
  return out


def _blur_noise(plane: np.ndarray, sigma: float) -> np.ndarray:
  """Spatially correlated noise of the same variance: blurred, then rescaled."""
  k1 = cv2.getGaussianKernel(2 * int(math.ceil(3 * sigma)) + 1, sigma)
  gain = 1.0 / float(np.sum(k1 * k1))  # 1 / sum of the 2D kernel's squares (separable).
  return cv2.sepFilter2D(plane, -1, k1, k1, borderType=cv2.BORDER_REFLECT_101) * np.float32(
      gain)


# ----------------------------------------------------------------------------------
# The pipeline.


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
  return float(math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]))))


def encode_jpeg(image: np.ndarray, quality: int, subsampling: int = 2) -> tuple[np.ndarray, bytes]:
  """uint8 (H, W, 3) -> (the decoded JPEG, its bytes); subsampling 0: 4:4:4, 2: 4:2:0."""
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="JPEG", quality=int(quality), subsampling=subsampling)
  jpeg = buf.getvalue()
  return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")), jpeg


def apply_camera_effects(rng: np.random.Generator, image: np.ndarray,
                         effects: CameraEffects = CameraEffects()) -> tuple[np.ndarray, bytes]:
  """Degrades a rendered image as a real camera would (see the module docstring).

  Args:
    rng: the only source of randomness (same state, same bytes).
    image: float32 (H, W, 3) RGB in [0, 255] (linear-ish, as rendered); not modified.
    effects: the chances and ranges of each effect.

  Returns:
    (uint8 (H, W, 3) after a JPEG round trip, the JPEG bytes); the array equals the
    decoded bytes. Content is not moved: landmarks of the input stay exact.
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
    raise ValueError(f"apply_camera_effects: image must be (H, W, 3), got shape {image.shape}")
  e = effects
  h, w = image.shape[:2]
  img = np.array(image, dtype=np.float32)  # A copy: later steps work in place.

  # Optics.
  if rng.random() < e.defocus_prob:
    img = defocus_blur(img, rng.uniform(*e.defocus_radius), disc=rng.random() < e.defocus_disc_prob)
  if rng.random() < e.motion_prob:
    img = motion_blur(img, rng.uniform(*e.motion_length), rng.uniform(0.0, math.pi))
  light = 1.0
  if rng.random() < e.exposure_prob:
    light *= _log_uniform(rng, e.exposure_gain)
  amplify = 1.0
  if rng.random() < e.low_light_prob:
    level = _log_uniform(rng, e.low_light_level)
    light *= level
    amplify = level ** -rng.uniform(*e.low_light_recovery)
  if rng.random() < e.vignette_prob:
    c = rng.uniform(-0.05, 0.05, 2) * math.hypot(h, w)
    y = (np.arange(h, dtype=np.float32) - np.float32(0.5 * (h - 1) + c[1]))[:, None]
    x = (np.arange(w, dtype=np.float32) - np.float32(0.5 * (w - 1) + c[0]))[None, :]
    fall = np.float32(light * rng.uniform(*e.vignette_strength) / (0.25 * (h * h + w * w)))
    field = np.float32(light) - fall * (y * y + x * x)
    img = cv2.multiply(img, cv2.cvtColor(np.maximum(field, 0.0), cv2.COLOR_GRAY2RGB))
  elif light != 1.0:
    img *= np.float32(light)

  # Sensor: resolution, then noise at that resolution.
  small = rng.random() < e.low_res_prob
  if small:
    img = downscale(img, rng.uniform(*e.low_res_factor))
  planes = list(cv2.split(img))
  sh, sw = planes[0].shape
  if rng.random() < e.noise_prob:
    k = np.float32(255.0 / _log_uniform(rng, e.full_well))
    read2 = np.float32(rng.uniform(*e.read_noise) ** 2)
    chroma = rng.uniform(0.5, 1.0) if rng.random() < e.chroma_noise_prob else rng.uniform(0.0, 0.3)
    sigma = rng.uniform(0.5, 1.0) if rng.random() < e.noise_blur_prob else 0.0
    normal = _normal_planes(rng, 4, sh, sw)
    if sigma:
      normal = [_blur_noise(n, sigma) for n in normal]
    a, b = np.float32(math.sqrt(1.0 - chroma * chroma)), np.float32(chroma)
    for i in range(3):
      std = np.sqrt(np.maximum(planes[i], 0.0) * k + read2)
      planes[i] = planes[i] + (a * normal[3] + b * normal[i]) * std

  # Processing.
  gains = np.full(3, amplify)
  if rng.random() < e.white_balance_prob:
    t, g = rng.uniform(*e.temperature), rng.uniform(*e.tint)
    gains *= [1.0 + t, 1.0 + g, 1.0 - t]
  if rng.random() < e.tone_prob:
    black = np.float32(rng.uniform(*e.black_level))
    inv_gamma = 1.0 / rng.uniform(*e.gamma)
    contrast = np.float32(rng.uniform(*e.contrast))
    for i in range(3):
      x = np.clip(planes[i] * np.float32(gains[i] / 255.0), 0.0, 1.0)
      x = cv2.pow(x, inv_gamma)
      x += contrast * (x * x * (3.0 - 2.0 * x) - x)
      planes[i] = (black + (1.0 - black) * x) * np.float32(255.0)
  elif np.any(gains != 1.0):
    planes = [p * np.float32(gains[i]) for i, p in enumerate(planes)]
  img = cv2.merge(planes)
  if rng.random() < e.sharpen_prob:
    img = unsharp_mask(img, rng.uniform(*e.sharpen_amount), rng.uniform(*e.sharpen_sigma))
  if small:
    img = upscale(img, h, w, cubic=rng.random() < 0.5)
  if rng.random() < e.grey_prob:
    img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
  quality = int(rng.integers(e.jpeg_quality[0], e.jpeg_quality[1] + 1))
  subsampling = 0 if rng.random() < e.jpeg_444_prob else 2
  pixels = (np.clip(img, 0.0, 255.0) + np.float32(0.5)).astype(np.uint8)
  return encode_jpeg(pixels, quality, subsampling)
