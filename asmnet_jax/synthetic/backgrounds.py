"""Backdrops with natural-image statistics for the synthetic-face renderer.

Photographs behind faces are not gradients with a few flat shapes: their amplitude
spectrum falls as about 1/f, they are made of occluding objects with roughly uniform
colour and texture, and they carry large-scale illumination gradients and colour
casts. `natural_background` draws one backdrop of a randomly chosen kind:

  dead_leaves  overlapping discs, ellipses, rectangles and polygons with power-law
               sizes (p(r) ~ r^-3: the classic scale-invariant model of natural images),
               each with its own colour, shading and texture.
  foliage      dead leaves of small greenish ellipses over dark gaps and sky.
  pink         colour 1/f noise, sometimes soft-quantised into regions (landscapes).
  texture      stripes, wood grain, fabric weave or tiles/bricks, often seen in
               perspective.
  bokeh        a smooth out-of-focus scene with soft bright discs (lights).
  indoor       walls, a corner, a floor, doors, windows, pictures and book shelves,
               slightly rolled.
  studio       a near-uniform backdrop with a soft gradient (passport-style photos).

then, by chance, defocuses it (rendered small and upscaled: portraits usually have a
shallow depth of field), puts a second kind in front of part of it (occlusion edges
between textures), shades it with a smooth illumination field, gives it a colour cast
and sets its overall brightness. All randomness comes from the given generator;
the fixed noise banks are seeded constants, so the output is deterministic.

Units: images are float32 (H, W, 3) RGB in [0, 255]; lengths inside are in pixels or,
where named `*_frac`, as fractions of the longer image side.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import cv2
import numpy as np

_BANK = 512  # Side of the cached noise fields; larger requests are synthesised afresh.

KINDS = ("dead_leaves", "foliage", "pink", "texture", "bokeh", "indoor", "studio")
_KIND_P = np.array([0.24, 0.1, 0.14, 0.14, 0.1, 0.2, 0.08])
_UNIT_16 = (np.cos(np.linspace(0.0, 2.0 * math.pi, 16, endpoint=False)),
            np.sin(np.linspace(0.0, 2.0 * math.pi, 16, endpoint=False)))


def spectral_noise(rng: np.random.Generator, height: int, width: int,
                   beta: float = 1.0) -> np.ndarray:
  """Periodic Gaussian noise with amplitude spectrum 1/f^beta.

  Args:
    rng: the source of the white noise.
    height, width: output shape in pixels.
    beta: amplitude exponent (1: power ~ f^-2, natural images; larger: smoother).

  Returns:
    float32 (height, width), zero mean, unit standard deviation.
  """
  white = rng.standard_normal((height, width), dtype=np.float32)
  spec = np.fft.rfft2(white)
  fy = np.fft.fftfreq(height).astype(np.float32)[:, None]
  fx = np.fft.rfftfreq(width).astype(np.float32)[None, :]
  f2 = fy * fy + fx * fx
  f2[0, 0] = 1.0
  spec *= f2 ** np.float32(-0.5 * beta)
  spec[0, 0] = 0.0
  out = np.fft.irfft2(spec, s=(height, width)).astype(np.float32)
  out -= out.mean()
  return out / max(float(out.std()), 1e-12)


@functools.cache
def _noise_bank() -> np.ndarray:
  """(6, 512, 512) float32 fixed fields: 0-3 amplitude 1/f, 4-5 1/f^1.6 (smooth)."""
  rng = np.random.default_rng(914_2027)
  return np.stack([spectral_noise(rng, _BANK, _BANK, b) for b in (1, 1, 1, 1, 1.6, 1.6)])


def _noise(rng: np.random.Generator, height: int, width: int,
           smooth: bool = False) -> np.ndarray:
  """float32 (height, width) 1/f (or smoother) noise: a random crop of the bank,
  randomly flipped; a fresh field when the bank is too small."""
  if height > _BANK or width > _BANK:
    return spectral_noise(rng, height, width, 1.6 if smooth else 1.0)
  bank = _noise_bank()
  k = int(rng.integers(4, 6) if smooth else rng.integers(0, 4))
  y = int(rng.integers(0, _BANK - height + 1))
  x = int(rng.integers(0, _BANK - width + 1))
  flip = int(rng.integers(4))
  patch = bank[k, y:y + height, x:x + width]
  return patch[::1 - 2 * (flip & 1), ::1 - (flip & 2)]  # A view: callers must not write.


# ----------------------------------------------------------------------------------
# Colours.


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Hue in turns, saturation and value in [0, 1] (all (N,)) -> (N, 3) RGB in [0, 1]."""
  k = (np.array([5.0, 3.0, 1.0]) + 6.0 * h[:, None]) % 6.0
  return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _colours(rng: np.random.Generator, n: int, hue: tuple[float, float] = (0.0, 1.0),
             sat: tuple[float, float] = (0.0, 0.7),
             val: tuple[float, float] = (0.08, 0.95)) -> np.ndarray:
  """(n, 3) float32 RGB in [0, 255]; saturation skewed low, as in most scenes."""
  h = rng.uniform(*hue, n) % 1.0
  s = sat[0] + (sat[1] - sat[0]) * rng.random(n) ** 1.6
  v = rng.uniform(*val, n)
  return (255.0 * _hsv_to_rgb(h, s, v)).astype(np.float32)


def _palette(rng: np.random.Generator, n: int, **kw) -> np.ndarray:
  """(n, 3) colours drawn around a few base colours (scenes have related colours)."""
  base = _colours(rng, int(rng.integers(2, 7)), **kw)
  pick = base[rng.integers(len(base), size=n)]
  jitter = rng.uniform(0.75, 1.25, (n, 1)) * rng.uniform(0.9, 1.1, (n, 3))
  return (pick * jitter).astype(np.float32)


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """Centred coordinates in units of the longer side: y (H, 1), x (1, W)."""
  s = float(max(height, width))
  y = ((np.arange(height, dtype=np.float32) - 0.5 * (height - 1)) / s)[:, None]
  x = ((np.arange(width, dtype=np.float32) - 0.5 * (width - 1)) / s)[None, :]
  return y, x


# Colour images are assembled from (H, W) planes with cv2: numpy broadcasting against a
# trailing axis of 3 runs many times slower than plane-wise arithmetic.


def _merge(planes) -> np.ndarray:
  """Three (H, W) planes -> float32 (H, W, 3)."""
  return cv2.merge([np.ascontiguousarray(p, dtype=np.float32) for p in planes])


def _times(field: np.ndarray, colour: np.ndarray) -> np.ndarray:
  """(H, W) field times a (3,) colour -> (H, W, 3)."""
  return _merge([field * c for c in colour])


def _lerp(c0: np.ndarray, c1: np.ndarray, m: np.ndarray) -> np.ndarray:
  """(H, W, 3) blend from colour c0 (m = 0) to c1 (m = 1)."""
  return _merge([c0[i] + (c1[i] - c0[i]) * m for i in range(3)])


def _scale(img: np.ndarray, field: np.ndarray) -> np.ndarray:
  """img (H, W, 3) times field (H, W), in place."""
  field = np.ascontiguousarray(np.broadcast_to(field, img.shape[:2]), dtype=np.float32)
  return cv2.multiply(img, cv2.cvtColor(field, cv2.COLOR_GRAY2RGB), dst=img)


def _box(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour) -> None:
  """Fills pixels x0 <= x < x1, y0 <= y < y1 of img (H, W, 3) with colour, in place."""
  x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
  if x1 > x0 and y1 > y0:
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), tuple(float(c) for c in colour), -1)


# ----------------------------------------------------------------------------------
# Kinds.


def _dead_leaves(rng: np.random.Generator, height: int, width: int,
                 n: tuple[int, int] = (350, 700),
                 radius_frac: tuple[float, float] = (0.01, 0.5), alpha: float = 3.0,
                 shape_p: tuple[float, ...] = (0.3, 0.2, 0.3, 0.2),
                 palette: np.ndarray | None = None) -> np.ndarray:
  """Random occluding shapes, later over earlier, radii with density ~ r^-alpha.

  Shapes are discs, ellipses, rectangles and star-convex polygons (`shape_p`), all
  drawn as polygons at 1/16 px. Each large shape has its own colour, texture strength
  and shading slope; each run of consecutive small shapes (r < 4 % of the side) shares
  one colour, so a few hundred shapes cost a few dozen `cv2.fillPoly` calls.
  """
  s = max(height, width)
  count = int(rng.integers(*n))
  r0 = max(radius_frac[0] * s, 0.8)
  r1 = max(radius_frac[1] * s, r0 + 0.5)
  # Inverse CDF of p(r) ~ r^-alpha on [r0, r1].
  e = 1.0 - alpha
  r = (r0 ** e - rng.random(count) * (r0 ** e - r1 ** e)) ** (1.0 / e)
  cx = rng.uniform(-0.1, 1.1, count) * width
  cy = rng.uniform(-0.1, 1.1, count) * height
  # The rearmost few are huge (the tail of the size law behind the rest): a few
  # hundred shapes alone would leave much of the frame uncovered.
  r[:4] = rng.uniform(0.3, 0.8, 4) * s
  kind = np.searchsorted(np.cumsum(shape_p) / np.sum(shape_p), rng.random(count))
  kind = np.minimum(kind, 3)
  aspect = np.where(kind == 0, 1.0, rng.uniform(0.25, 1.0, count)).astype(np.float32)
  angle = rng.uniform(0.0, math.pi, count)
  # Every shape is a 16-gon: discs and ellipses sample 16 angles, rectangles repeat
  # their 4 corners, polygons their 3-6 random (sorted) vertices.
  k = 16
  cos_t, sin_t = _UNIT_16
  px = np.broadcast_to(cos_t, (count, k)).copy()
  py = np.broadcast_to(sin_t, (count, k)).copy()
  rect, poly = kind == 2, kind == 3
  px[rect] = np.repeat([1.0, -1.0, -1.0, 1.0], 4)
  py[rect] = np.repeat([1.0, 1.0, -1.0, -1.0], 4)
  n_poly = int(poly.sum())
  if n_poly:
    ang = np.sort(rng.uniform(0.0, 2.0 * math.pi, (n_poly, 6)), axis=1)
    rad = rng.uniform(0.5, 1.0, (n_poly, 6))
    slot = (np.arange(k)[None, :] * rng.integers(3, 7, n_poly)[:, None]) // k
    px[poly] = np.take_along_axis(rad * np.cos(ang), slot, axis=1)
    py[poly] = np.take_along_axis(rad * np.sin(ang), slot, axis=1)
  py *= aspect[:, None]
  ca, sa = np.cos(angle)[:, None], np.sin(angle)[:, None]
  vx = (cx[:, None] + r[:, None] * (ca * px - sa * py)) * 16
  vy = (cy[:, None] + r[:, None] * (sa * px + ca * py)) * 16
  verts = list(np.stack([vx, vy], axis=-1).round().astype(np.int32))
  # Labels: a new one for every large shape and for every run of small ones.
  big = r >= 0.04 * s
  new = big | np.append(True, big[:-1])
  starts = np.flatnonzero(new).tolist() + [count]
  labels = np.zeros((height, width), np.uint16)
  for j in range(len(starts) - 1):
    cv2.fillPoly(labels, verts[starts[j]:starts[j + 1]], j + 1, cv2.LINE_8, 4)
  nl = len(starts)
  cols = _palette(rng, nl) if palette is None else palette[:nl]
  # Per-label texture strength and a linear shading slope (objects are lit from a
  # side), per unit of shape size, about the shape's centre (in `_coords` units).
  amp = (rng.uniform(0.0, 0.3, nl) * (rng.random(nl) < 0.6)).astype(np.float32)
  first = np.asarray(starts[:-1])
  size = np.append(1.0, np.where(big[first], r[first] / s, np.inf))
  g = np.clip(rng.normal(0.0, 0.2, (2, nl)) / size, -10, 10)
  ccx = np.append(0.0, (cx[first] - 0.5 * width) / s)
  ccy = np.append(0.0, (cy[first] - 0.5 * height) / s)
  gx, gy = g.astype(np.float32)
  g0 = (-(g[0] * ccx + g[1] * ccy)).astype(np.float32)
  y, x = _coords(height, width)
  # np.take is several times faster than fancy indexing for these lookups; in-place
  # arithmetic avoids fresh (H, W) buffers, whose page faults dominate at 384 px.
  shade = np.take(amp, labels, mode="clip")
  shade *= _noise(rng, height, width)
  tmp = np.take(gx, labels, mode="clip")
  shade += np.multiply(tmp, x, out=tmp)
  np.take(gy, labels, mode="clip", out=tmp)
  shade += np.multiply(tmp, y, out=tmp)
  shade += np.take(g0, labels, mode="clip", out=tmp)
  shade += np.float32(1.0)
  np.clip(shade, 0.2, 2.0, out=shade)
  cols = cols.astype(np.float32)
  planes = [np.take(cols[:, i], labels, mode="clip") for i in range(3)]
  return _merge([np.multiply(p, shade, out=p) for p in planes])


def _foliage(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  count = 600
  greens = _palette(rng, count + 1, hue=(0.12, 0.42), sat=(0.25, 0.85), val=(0.08, 0.7))
  if rng.random() < 0.5:  # Flowers, fruit or sky showing through.
    other = rng.random(count + 1) < rng.uniform(0.02, 0.15)
    greens[other] = _colours(rng, int(other.sum()), val=(0.5, 1.0))
  greens[0] *= 0.3  # Deep shade between the leaves.
  return _dead_leaves(rng, height, width, n=(300, count), radius_frac=(0.01, 0.1), alpha=2.5,
                      shape_p=(0.15, 0.7, 0.0, 0.15), palette=greens)


def _pink(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  lum = _noise(rng, height, width)
  if rng.random() < 0.35:  # Soft quantisation: regions with soft occlusion-like edges.
    k = np.float32(rng.uniform(1.5, 5.0))
    lum = np.tanh(k * lum) / np.tanh(k)
  base = _colours(rng, 1, val=(0.2, 0.8))[0]
  a, c = np.float32(rng.uniform(20.0, 60.0)), np.float32(rng.uniform(3.0, 25.0))
  # Opponent colour axes: luminance, red-green, blue-yellow.
  lum = a * lum
  rg = (c * np.float32(0.7)) * _noise(rng, height, width)
  by = (c * np.float32(0.35)) * _noise(rng, height, width)
  r = lum + rg
  r += base[0] - by
  lum -= by
  g = lum - rg
  g += base[1]
  lum += by + by + by
  lum += base[2]
  return _merge([r, g, lum])


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  y, x = _coords(height, width)
  s = max(height, width)
  th = rng.uniform(0.0, math.pi)
  u, v = x * math.cos(th) + y * math.sin(th), y * math.cos(th) - x * math.sin(th)
  if rng.random() < 0.5:  # A plane seen in perspective.
    d = 1.0 + np.float32(rng.uniform(-0.9, 0.9)) * x + np.float32(rng.uniform(-0.9, 0.9)) * y
    u, v = u / d, v / d
  else:
    u, v = np.broadcast_to(u, (height, width)), np.broadcast_to(v, (height, width))
  variant = int(rng.integers(4))
  c0, c1 = _colours(rng, 2)
  two_pi = np.float32(2 * math.pi)
  if variant == 0:  # Stripes: soft to hard edged, slightly wavy.
    period = rng.uniform(min(max(3.0 / s, 0.015), 0.25), 0.25)
    phase = u * np.float32(two_pi / period)
    phase += np.float32(rng.uniform(0.0, 1.5)) * _noise(rng, height, width, smooth=True)
    k = np.float32(rng.uniform(0.5, 8.0))
    m = 0.5 + 0.5 * np.tanh(k * np.sin(phase)) / np.tanh(k)
  elif variant == 1:  # Wood: warped growth rings with fine grain.
    c0, c1 = _colours(rng, 2, hue=(0.03, 0.11), sat=(0.35, 0.75), val=(0.2, 0.8))
    warp = np.float32(rng.uniform(0.5, 3.0)) * _noise(rng, height, width, smooth=True)
    m = (0.5 + 0.5 * np.sin(u * np.float32(two_pi * rng.uniform(4.0, 20.0)) + warp)) ** 2
    m = np.clip(m + 0.12 * _noise(rng, height, width), 0.0, 1.0)
  elif variant == 2:  # Fabric: a weave under a plaid of coloured bands.
    period = rng.uniform(min(2.5 / s, 0.03), 0.03)
    weave = np.sin(u * np.float32(two_pi / period)) * np.sin(v * np.float32(two_pi / period))
    band = np.sin(u * np.float32(two_pi * rng.uniform(2, 12))) > 0.3
    band2 = np.sin(v * np.float32(two_pi * rng.uniform(2, 12))) > 0.3
    m = np.clip(0.5 * (band.astype(np.float32) + band2) + 0.2 * weave, 0.0, 1.0)
  else:  # Tiles or bricks with grout and tile-to-tile variation.
    period = rng.uniform(0.04, 0.3)
    fu = u / np.float32(period)
    fv = v / np.float32(period * rng.uniform(0.4, 1.0))
    if rng.random() < 0.5:
      fu = fu + 0.5 * (np.floor(fv) % 2)
    iu, iv = np.floor(fu), np.floor(fv)
    table = rng.uniform(0.0, 0.5, (32, 32)).astype(np.float32)
    tile = table[iu.astype(np.int64) % 32, iv.astype(np.int64) % 32]
    du, dv = np.abs(fu - iu - 0.5), np.abs(fv - iv - 0.5)
    edge = np.float32(0.5 - rng.uniform(0.02, 0.08))
    m = np.where(np.maximum(du, dv) > edge, np.float32(1.0), tile)
  return _scale(_lerp(c0, c1, m),
                1.0 + np.float32(rng.uniform(0.0, 0.15)) * _noise(rng, height, width))


def _bokeh(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  small = _pink(rng, max(height // 8, 2), max(width // 8, 2))
  img = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR) * np.float32(
      rng.uniform(0.3, 0.8))
  s = max(height, width)
  count = int(rng.integers(4, 40))
  light = _colours(rng, count, sat=(0.0, 0.8), val=(0.6, 1.0)) * rng.uniform(
      0.15, 0.7, (count, 1)).astype(np.float32)
  rad = rng.uniform(0.015, 0.1, count) * s
  cx, cy = rng.uniform(0, width, count), rng.uniform(0, height, count)
  soft = rng.uniform(0.7, 3.0)
  for i in range(count):
    x0, x1 = max(int(cx[i] - rad[i] - soft), 0), min(int(cx[i] + rad[i] + soft) + 2, width)
    y0, y1 = max(int(cy[i] - rad[i] - soft), 0), min(int(cy[i] + rad[i] + soft) + 2, height)
    if x0 >= x1 or y0 >= y1:
      continue
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx[i])
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy[i])
    mask = np.clip((np.float32(rad[i]) - np.sqrt(dx * dx + dy * dy)) / np.float32(soft) + 0.5,
                   0.0, 1.0)
    img[y0:y1, x0:x1] += mask[..., None] * light[i]
  return img


def _indoor(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  img = np.empty((height, width, 3), np.float32)
  _box(img, 0, 0, width, height, _colours(rng, 1, sat=(0.0, 0.35), val=(0.35, 0.95))[0])
  if rng.random() < 0.5:  # A corner: the other wall takes the light differently.
    xc = int(rng.uniform(0.1, 0.9) * width)
    side = slice(0, xc) if rng.random() < 0.5 else slice(xc, width)
    img[:, side] *= np.float32(rng.uniform(0.6, 0.95))
  floor_y = height
  frame = max(width // 60, 1)
  if rng.random() < 0.6:
    floor_y = int(rng.uniform(0.55, 1.0) * height)
    _box(img, 0, floor_y, width, height, _colours(rng, 1, hue=(0.0, 0.15), val=(0.15, 0.7))[0])
    _box(img, 0, floor_y - 2 * frame, width, floor_y, _colours(rng, 1)[0])  # Skirting.
  for _ in range(int(rng.integers(1, 6))):
    what = int(rng.integers(5))
    x0 = max(int(rng.uniform(-0.1, 0.95) * width), 0)
    x1 = min(x0 + int(rng.uniform(0.12, 0.4) * width) + 1, width)
    if what == 0:  # Door down to the floor, in a darker frame.
      y0 = int(rng.uniform(0.0, 0.25) * floor_y)
      door = _colours(rng, 1, hue=(0.02, 0.12), val=(0.15, 0.95))[0]
      _box(img, x0 - frame, y0 - frame, x1 + frame, floor_y, door * 0.6)
      _box(img, x0, y0, x1, floor_y, door)
      _box(img, x1 - 4 * frame, (y0 + floor_y) // 2, x1 - 3 * frame, (y0 + floor_y) // 2 + frame,
           door * 0.3)  # Handle.
    elif what == 1:  # Window: bright, with bars, an out-of-focus outside.
      y0 = int(rng.uniform(0.05, 0.4) * height)
      y1 = min(y0 + int(rng.uniform(0.2, 0.5) * height) + 1, floor_y)
      if y1 <= y0 or x1 <= x0:
        continue
      out = 1.0 + 0.15 * _noise(rng, y1 - y0, x1 - x0, smooth=True)
      img[y0:y1, x0:x1] = _times(out, _colours(rng, 1, sat=(0.0, 0.3), val=(0.7, 1.0))[0])
      bar = _colours(rng, 1, val=(0.1, 1.0))[0]
      ym, xm = (y0 + y1) // 2, (x0 + x1) // 2
      _box(img, x0, ym - frame, x1, ym + frame, bar)
      _box(img, xm - frame, y0, xm + frame, y1, bar)
    elif what == 2:  # A picture in a frame.
      y0 = int(rng.uniform(0.05, 0.5) * height)
      y1 = min(y0 + int(rng.uniform(0.1, 0.35) * height) + 1, height)
      if y1 - y0 <= 2 * frame or x1 - x0 <= 2 * frame:
        continue
      _box(img, x0, y0, x1, y1, _colours(rng, 1)[0])
      img[y0 + frame:y1 - frame, x0 + frame:x1 - frame] = _pink(
          rng, y1 - y0 - 2 * frame, x1 - x0 - 2 * frame)
    elif what == 3:  # A shelf of books.
      y1 = int(rng.uniform(0.2, 0.9) * height)
      h_book = rng.uniform(0.06, 0.15) * height + 1
      _box(img, x0, y1, x1, y1 + frame + 1, _colours(rng, 1, val=(0.2, 0.8))[0])
      cols = _colours(rng, 64, sat=(0.1, 0.8), val=(0.1, 0.9))
      widths = np.cumsum(rng.integers(2, max(width // 25, 3) + 1, 64)) + x0
      tops = y1 - (h_book * rng.uniform(0.7, 1.0, 64)).astype(int)
      for j in range(int(np.searchsorted(widths, x1)) - 1):
        _box(img, widths[j], tops[j], widths[j + 1], y1, cols[j])
    else:  # A lamp's glow on the wall.
      y, x = _coords(height, width)
      c = rng.uniform(-0.5, 0.5, 2).astype(np.float32)
      glow = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2) / np.float32(rng.uniform(0.005, 0.05)))
      img += _times(glow, _colours(rng, 1, hue=(0.05, 0.15), val=(0.3, 0.8))[0])
  _scale(img, 1.0 + np.float32(rng.uniform(0.02, 0.1)) * _noise(rng, height, width))
  if rng.random() < 0.6:  # The camera is never quite level.
    m = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), rng.uniform(-8, 8),
                                rng.uniform(1.0, 1.2))
    img = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)
  return img


def _studio(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  y, x = _coords(height, width)
  c = _colours(rng, 1, sat=(0.0, 0.5), val=(0.3, 1.0))[0]
  r2 = (x - np.float32(rng.uniform(-0.3, 0.3))) ** 2 + (y - np.float32(rng.uniform(-0.3, 0.3))) ** 2
  fall = 1.0 - np.float32(rng.uniform(0.0, 0.8)) * r2
  fall = fall + np.float32(rng.uniform(0.0, 4.0) / 255) * _noise(rng, height, width, smooth=True)
  return _times(fall, c)


_KIND_FNS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "dead_leaves": _dead_leaves, "foliage": _foliage, "pink": _pink, "texture": _texture,
    "bokeh": _bokeh, "indoor": _indoor, "studio": _studio,
}


def background_of_kind(rng: np.random.Generator, kind: str, height: int,
                       width: int) -> np.ndarray:
  """One backdrop of a given kind (one of `KINDS`), without the global effects.

  Returns:
    float32 (height, width, 3) RGB in [0, 255].
  """
  if kind not in _KIND_FNS:
    raise ValueError(f"unknown background kind {kind!r}; expected one of {', '.join(KINDS)}")
  if height < 1 or width < 1:
    raise ValueError(f"background size must be positive, got {height}x{width}")
  return np.clip(_KIND_FNS[kind](rng, height, width), 0.0, 255.0).astype(np.float32)


def _layer(rng: np.random.Generator, height: int, width: int, blur_prob: float) -> np.ndarray:
  """One kind drawn at random by `_KIND_P`; out of focus with chance `blur_prob`."""
  kind = KINDS[int(rng.choice(len(KINDS), p=_KIND_P))]
  if kind in ("bokeh", "studio") or rng.random() >= blur_prob:
    return _KIND_FNS[kind](rng, height, width)
  k = rng.uniform(2.0, 6.0)
  h, w = max(int(round(height / k)), 2), max(int(round(width / k)), 2)
  # Blurred before upscaling: interpolating sharp edges alone leaves visible steps.
  small = cv2.GaussianBlur(_KIND_FNS[kind](rng, h, w), (0, 0), 0.8)
  return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def natural_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """float32 (height, width, 3) RGB in [0, 255]: a backdrop with natural-image statistics.

  A random kind of `KINDS` (see the module docstring), out of focus with chance 0.3
  (drawn 2-6x smaller and upscaled); with chance 0.25 a second kind in front of it
  inside a few large soft-edged polygons; then a global brightness (0.55-1.35), with
  chance 0.7 a smooth illumination field (linear gradient, sometimes a quadratic
  falloff from a light; 0.3-1.7) and with chance 0.5 a colour cast (per-channel
  gains 0.85-1.15). Deterministic given the generator's state.
  """
  if height < 1 or width < 1:
    raise ValueError(f"background size must be positive, got {height}x{width}")
  img = _layer(rng, height, width, blur_prob=0.3)
  if rng.random() < 0.25:
    # A second kind in front, inside a few large polygons: occlusion edges between
    # regions of different texture (a plant before a wall, a sofa, a person's back).
    front = _layer(rng, height, width, blur_prob=0.5)
    mask = np.zeros((height, width), np.float32)
    s = max(height, width)
    for _ in range(int(rng.integers(1, 4))):
      nv = int(rng.integers(3, 8))
      t = np.sort(rng.uniform(0.0, 2.0 * math.pi, nv))
      rad = rng.uniform(0.15, 0.6, nv) * s
      centre = rng.uniform(-0.2, 1.2, 2) * (width, height)
      pts = centre + rad[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
      cv2.fillPoly(mask, [(pts * 16).round().astype(np.int32)], 1.0, cv2.LINE_8, 4)
    mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.5, 2.0))
    img = cv2.blendLinear(front, np.ascontiguousarray(img), mask, 1.0 - mask)
  light = np.float32(rng.uniform(0.55, 1.35))
  if rng.random() < 0.7:
    y, x = _coords(height, width)
    a = rng.normal(0.0, 0.35, 2).astype(np.float32)
    field = 1.0 + a[0] * x + a[1] * y
    if rng.random() < 0.5:  # Falloff from a light source somewhere in or near the frame.
      c = rng.uniform(-0.7, 0.7, 2).astype(np.float32)
      field = field - np.float32(rng.uniform(0.0, 0.6)) * ((x - c[0]) ** 2 + (y - c[1]) ** 2)
    light = light * np.clip(field, 0.3, 1.7)
  gains = rng.uniform(0.85, 1.15, 3) if rng.random() < 0.5 else np.ones(3)
  # In place, with few temporaries: fresh pages are what costs most at 384 px.
  img = np.ascontiguousarray(img, dtype=np.float32)
  if np.ndim(light):
    _scale(img, light)
    light = 1.0
  cv2.multiply(img, tuple(float(light * g) for g in gains) + (0.0,), dst=img)
  return np.clip(img, 0.0, 255.0, out=img)
