"""Tests for the photographic backgrounds and camera effects of the synthetic renderer."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
from PIL import Image

from asmnet_jax.synthetic import backgrounds as bg
from asmnet_jax.synthetic import camera as cam

BLOB_YX = (30.3, 37.6)  # Sub-pixel, so no test passes by grid symmetry alone.


def _blob(h: int, w: int, cy: float, cx: float, sigma: float) -> np.ndarray:
  """A Gaussian blob of peak 200 on black, float32 (h, w, 3)."""
  y, x = np.mgrid[:h, :w].astype(np.float64)
  g = 200.0 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2.0 * sigma * sigma))
  return np.repeat(g[..., None], 3, axis=-1).astype(np.float32)


def _centroid(img: np.ndarray) -> np.ndarray:
  """Intensity centroid (y, x) in pixels, pixel i at coordinate i."""
  g = np.asarray(img, np.float64).mean(axis=-1)
  y, x = np.mgrid[:g.shape[0], :g.shape[1]]
  return np.array([(g * y).sum(), (g * x).sum()]) / g.sum()


def _power_slope(img: np.ndarray) -> float:
  """Least-squares slope of log radially averaged power vs log frequency.

  Hann-windowed (no edge leakage), over log-spaced bands from 4 cycles per image to
  0.35 cycles per pixel.
  """
  g = np.asarray(img, np.float64).mean(axis=-1)
  n = g.shape[0]
  win = np.hanning(n)
  p = np.abs(np.fft.fft2((g - g.mean()) * np.outer(win, win))) ** 2
  f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")).ravel()
  edges = np.geomspace(4.0 / n, 0.35, 14)
  band = np.digitize(f, edges)
  lf = [np.log(f[band == i].mean()) for i in range(1, len(edges))]
  lp = [np.log(p.ravel()[band == i].mean()) for i in range(1, len(edges))]
  return float(np.polyfit(lf, lp, 1)[0])


def _only(**kw) -> cam.CameraEffects:
  return dataclasses.replace(cam.NO_EFFECTS, **kw)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
  return bg.natural_background(np.random.default_rng(7), 48, 64)


# ----------------------------------------------------------------------------------
# Camera effects.


def test_same_seed_same_bytes_different_seed_differs(photo):
  a = cam.apply_camera_effects(np.random.default_rng(3), photo)
  b = cam.apply_camera_effects(np.random.default_rng(3), photo)
  c = cam.apply_camera_effects(np.random.default_rng(4), photo)
  assert a[1] == b[1]
  np.testing.assert_array_equal(a[0], b[0])
  assert a[1] != c[1]


@pytest.mark.parametrize("seed", range(6))
def test_output_is_the_decoded_jpeg_and_input_is_untouched(photo, seed):
  before = photo.copy()
  pixels, jpeg = cam.apply_camera_effects(np.random.default_rng(seed), photo)
  assert pixels.shape == (48, 64, 3) and pixels.dtype == np.uint8
  assert jpeg[:2] == b"\xff\xd8"
  decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
  np.testing.assert_array_equal(pixels, decoded)
  np.testing.assert_array_equal(photo, before)


def test_bad_image_and_bad_settings_are_named():
  with pytest.raises(ValueError, match=r"image must be \(H, W, 3\), got shape \(8, 8\)"):
    cam.apply_camera_effects(np.random.default_rng(0), np.zeros((8, 8), np.float32))
  with pytest.raises(ValueError, match=r"CameraEffects.low_res_factor must be \(low, high\)"):
    cam.CameraEffects(low_res_factor=(0.5, 2.0))
  with pytest.raises(ValueError, match=r"CameraEffects.grey_prob must be a chance"):
    cam.CameraEffects(grey_prob=1.5)
  with pytest.raises(ValueError, match=r"CameraEffects.jpeg_quality must be integers"):
    cam.CameraEffects(jpeg_quality=(30.5, 90))


@pytest.mark.parametrize("name, fn", [
    ("disc r=0.7", lambda im: cam.defocus_blur(im, 0.7)),
    ("disc r=2.6", lambda im: cam.defocus_blur(im, 2.6)),
    ("gauss r=3", lambda im: cam.defocus_blur(im, 3.0, disc=False)),
    ("motion 2px 0deg", lambda im: cam.motion_blur(im, 2.0, 0.0)),
    ("motion 5.5px 33deg", lambda im: cam.motion_blur(im, 5.5, math.radians(33))),
    ("motion 8px 120deg", lambda im: cam.motion_blur(im, 8.0, math.radians(120))),
    ("low-res 1.5x", lambda im: cam.low_resolution(im, 1.5)),
    ("low-res 2x cubic", lambda im: cam.low_resolution(im, 2.0, cubic=True)),
    ("low-res 2.7x", lambda im: cam.low_resolution(im, 2.7)),
    ("low-res 4x cubic", lambda im: cam.low_resolution(im, 4.0, cubic=True)),
    ("sharpen", lambda im: cam.unsharp_mask(im, 0.8, 1.2)),
])
def test_geometric_filters_do_not_move_content(name, fn):
  im = _blob(64, 72, *BLOB_YX, sigma=3.0)
  shift = _centroid(fn(im)) - BLOB_YX
  assert np.abs(shift).max() < 0.05, (name, shift)


def test_centroid_check_catches_a_corner_aligned_resize():
  # Nearest-neighbour 2x down and up takes the top-left pixel of each 2x2 block: a
  # half-pixel shift that the 0.05 px tolerance must see.
  im = _blob(64, 72, *BLOB_YX, sigma=3.0)
  naive = np.repeat(np.repeat(im[::2, ::2], 2, axis=0), 2, axis=1)
  assert np.abs(_centroid(naive) - BLOB_YX).min() > 0.3


def test_dot_at_an_integer_pixel_stays_centred_at_low_resolution():
  # 3x on a 90 px side: small pixel 10 covers input pixels 30-32, centred on 31.
  dot = np.zeros((90, 90, 3), np.float32)
  dot[31, 40] = 255.0
  out = cam.low_resolution(dot, 3.0)[..., 0]
  np.testing.assert_allclose(_centroid(out[..., None]), [31.0, 40.0], atol=1e-6)
  np.testing.assert_allclose(out[31 - 4:31 + 5], out[31 - 4:31 + 5][::-1], atol=1e-5)
  np.testing.assert_allclose(out[:, 40 - 4:40 + 5], out[:, 40 - 4:40 + 5][:, ::-1], atol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_whole_pipeline_with_geometric_effects_keeps_the_blob(seed):
  im = _blob(64, 72, *BLOB_YX, sigma=3.0)
  effects = _only(defocus_prob=1.0, motion_prob=1.0, low_res_prob=1.0, sharpen_prob=1.0)
  pixels, _ = cam.apply_camera_effects(np.random.default_rng(seed), im, effects)
  assert np.abs(_centroid(pixels) - BLOB_YX).max() < 0.05


def test_kernels_are_normalised_and_shaped_as_documented():
  disc = cam.disc_kernel(3.0)
  assert disc.shape == (9, 9) and disc.sum() == pytest.approx(1.0, abs=1e-6)
  area = 1.0 / disc.max()  # Full-weight pixels have weight 1 / area.
  assert area == pytest.approx(math.pi * 9.0, rel=0.05)
  length, angle = 7.0, math.radians(30)
  k = cam.motion_kernel(length, angle).astype(np.float64)
  assert k.sum() == pytest.approx(1.0, abs=1e-6)
  c = (k.shape[0] - 1) / 2
  y, x = np.mgrid[:k.shape[0], :k.shape[1]] - c
  along = x * math.cos(angle) + y * math.sin(angle)
  across = -x * math.sin(angle) + y * math.cos(angle)
  # A uniform segment of length L has variance L^2 / 12; bilinear splatting adds < 1/6.
  assert (k * along ** 2).sum() == pytest.approx(length ** 2 / 12, abs=0.3)
  assert (k * across ** 2).sum() < 0.2


def test_greyscale_has_equal_channels_before_and_after_jpeg(photo, monkeypatch):
  seen = []
  encode = cam.encode_jpeg
  monkeypatch.setattr(cam, "encode_jpeg", lambda px, *a: seen.append(px) or encode(px, *a))
  pixels, _ = cam.apply_camera_effects(np.random.default_rng(1), photo,
                                       dataclasses.replace(cam.CameraEffects(), grey_prob=1.0))
  before = seen[0].astype(int)
  assert np.array_equal(before[..., 0], before[..., 1]) and np.array_equal(
      before[..., 1], before[..., 2])
  assert np.abs(np.diff(pixels.astype(int), axis=-1)).max() <= 1
  assert np.abs(np.diff(photo, axis=-1)).max() > 10  # The input was colourful.


def test_low_resolution_removes_high_frequencies():
  white = np.random.default_rng(0).uniform(0, 255, (96, 96, 3)).astype(np.float32)

  def high_fraction(img):
    p = np.abs(np.fft.fft2(img[..., 0] - img[..., 0].mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(96), np.fft.fftfreq(96), indexing="ij"))
    return p[f > 0.25].sum() / p.sum()  # Above 0.25 cycles/px: beyond a 3x grid's 1/6.

  assert high_fraction(white) > 0.6
  # Bilinear upsampling leaks a little energy (sinc^2 sidelobes) above the cut-off.
  assert high_fraction(cam.low_resolution(white, 3.0)) < 0.05
  assert high_fraction(cam.low_resolution(white, 1.5)) < 0.5 * high_fraction(white)


def test_noise_is_shot_plus_read_noise(monkeypatch):
  seen = []
  encode = cam.encode_jpeg
  monkeypatch.setattr(cam, "encode_jpeg", lambda px, *a: seen.append(px) or encode(px, *a))
  im = np.zeros((64, 128, 3), np.float32)
  im[:, :64], im[:, 64:] = 40.0, 160.0
  effects = _only(noise_prob=1.0, full_well=(1000.0, 1000.0), read_noise=(2.0, 2.0),
                  chroma_noise_prob=1.0)
  cam.apply_camera_effects(np.random.default_rng(0), im, effects)
  px = seen[0].astype(np.float64)
  for sl, level in ((np.s_[:, :64], 40.0), (np.s_[:, 64:], 160.0)):
    # Shot variance 255 L / full_well, read variance 4, rounding 1 / 12.
    expected = math.sqrt(255.0 * level / 1000.0 + 4.0 + 1.0 / 12.0)
    assert px[sl].std() == pytest.approx(expected, rel=0.08)
    assert px[sl].mean() == pytest.approx(level, abs=0.5)


def test_white_balance_and_vignetting_numbers(monkeypatch):
  seen = []
  encode = cam.encode_jpeg
  monkeypatch.setattr(cam, "encode_jpeg", lambda px, *a: seen.append(px) or encode(px, *a))
  grey = np.full((60, 80, 3), 100.0, np.float32)
  cam.apply_camera_effects(np.random.default_rng(0), grey,
                           _only(white_balance_prob=1.0, temperature=(0.2, 0.2), tint=(0, 0)))
  np.testing.assert_allclose(seen[0][0, 0], [120, 100, 80], atol=1)
  cam.apply_camera_effects(np.random.default_rng(0), grey,
                           _only(vignette_prob=1.0, vignette_strength=(0.4, 0.4)))
  v = seen[1][..., 1].astype(np.float64) / 100.0
  corners = np.mean([v[0, 0], v[0, -1], v[-1, 0], v[-1, -1]])
  assert corners == pytest.approx(0.6, abs=0.03)  # The centre moves by up to 5 %.
  assert v.max() > 0.98


def test_low_light_is_darker_and_noisier(monkeypatch):
  seen = []
  encode = cam.encode_jpeg
  monkeypatch.setattr(cam, "encode_jpeg", lambda px, *a: seen.append(px) or encode(px, *a))
  flat = np.full((48, 48, 3), 150.0, np.float32)
  noise = dict(noise_prob=1.0, full_well=(3000.0, 3000.0), read_noise=(1.0, 1.0))
  cam.apply_camera_effects(np.random.default_rng(0), flat, _only(**noise))
  cam.apply_camera_effects(np.random.default_rng(0), flat, _only(
      low_light_prob=1.0, low_light_level=(0.1, 0.1), low_light_recovery=(0.7, 0.7), **noise))
  normal, dark = (p.astype(np.float64) for p in seen)
  assert dark.mean() == pytest.approx(150.0 * 0.1 ** 0.3, rel=0.03)
  assert dark.std() > 2.0 * normal.std()


# ----------------------------------------------------------------------------------
# Backgrounds.


def test_background_is_deterministic_float32_in_range():
  a = bg.natural_background(np.random.default_rng(5), 40, 56)
  b = bg.natural_background(np.random.default_rng(5), 40, 56)
  c = bg.natural_background(np.random.default_rng(6), 40, 56)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert a.shape == (40, 56, 3) and a.dtype == np.float32


@pytest.mark.parametrize("kind", bg.KINDS)
def test_every_kind_renders_any_shape(kind):
  for h, w in ((1, 1), (37, 52), (20, 600)):  # 600 > the noise bank: fresh noise.
    img = bg.background_of_kind(np.random.default_rng(0), kind, h, w)
    assert img.shape == (h, w, 3) and img.dtype == np.float32
    assert np.all(np.isfinite(img)) and img.min() >= 0.0 and img.max() <= 255.0
  assert bg.background_of_kind(np.random.default_rng(1), kind, 37, 52).std() > 1.0


def test_mixture_draws_every_kind_and_varies_brightness(monkeypatch):
  drawn = []
  for kind, fn in list(bg._KIND_FNS.items()):  # pylint: disable=protected-access
    monkeypatch.setitem(bg._KIND_FNS, kind,  # pylint: disable=protected-access
                        lambda *a, k=kind, f=fn: drawn.append(k) or f(*a))
  means = [bg.natural_background(np.random.default_rng(s), 32, 32).mean() for s in range(60)]
  assert set(drawn) == set(bg.KINDS)
  assert len(drawn) > 60  # Some backdrops put a second kind in front of the first.
  assert min(means) < 60 and max(means) > 140


def test_bad_sizes_and_kinds_are_named():
  with pytest.raises(ValueError, match="background size must be positive, got 0x5"):
    bg.natural_background(np.random.default_rng(0), 0, 5)
  with pytest.raises(ValueError, match="unknown background kind 'sky'"):
    bg.background_of_kind(np.random.default_rng(0), "sky", 8, 8)


@pytest.mark.parametrize("kind", ["pink", "dead_leaves"])
def test_background_power_spectrum_falls_as_f_to_the_minus_two(kind):
  slopes = [_power_slope(bg.background_of_kind(np.random.default_rng(s), kind, 128, 128))
            for s in range(4)]
  assert -2.45 < np.mean(slopes) < -1.6, slopes
  # The same fit on white noise (flat spectrum) is far outside that band.
  white = np.random.default_rng(0).uniform(0, 255, (128, 128, 3))
  assert abs(_power_slope(white)) < 0.3
