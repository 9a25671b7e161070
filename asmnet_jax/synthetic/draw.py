"""Drawing machinery of the synthetic renderer: camera, painter, polygons, backdrop.

Coordinates: a `Camera` maps head-frame points to pixels. Drawing happens on a canvas
`supersample` times larger than the output (`canvas_camera`), which is then box
downsampled, so edges are anti-aliased and landmarks stay sub-pixel exact.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from asmnet_jax.synthetic.config import RenderConfig

DrawFn = Callable[[ImageDraw.ImageDraw], None]


def rgb(c: np.ndarray) -> tuple[int, int, int]:
  c = np.clip(np.asarray(c) * 255.0 + 0.5, 0, 255).astype(int)
  return int(c[0]), int(c[1]), int(c[2])


def rgb_many(c: np.ndarray) -> list[tuple[int, int, int]]:
  """(N, 3) colours in [0, 1] -> N PIL colour tuples."""
  return list(map(tuple, np.clip(c * 255.0 + 0.5, 0, 255).astype(np.int64).tolist()))


def luma(c: np.ndarray) -> float:
  return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def clip_convex(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
  """Sutherland-Hodgman: subject (N, 2) polygon clipped by convex clip (M, 2)."""
  area = np.sum(clip[:, 0] * np.roll(clip[:, 1], -1) - np.roll(clip[:, 0], -1) * clip[:, 1])
  orient = 1.0 if area > 0 else -1.0
  out = list(map(tuple, subject))
  m = len(clip)
  for i in range(m):
    if not out:
      break
    ax, ay = clip[i]
    bx, by = clip[(i + 1) % m]
    ex, ey = bx - ax, by - ay
    inside = lambda p: orient * (ex * (p[1] - ay) - ey * (p[0] - ax)) >= 0  # pylint: disable=cell-var-from-loop,unnecessary-lambda-assignment
    src, out = out, []
    prev = src[-1]
    for cur in src:
      ci, pi = inside(cur), inside(prev)
      if ci != pi:
        dx, dy = cur[0] - prev[0], cur[1] - prev[1]
        den = ex * dy - ey * dx
        if abs(den) > 1e-12:
          t = (ex * (ay - prev[1]) - ey * (ax - prev[0])) / den
          out.append((prev[0] + t * dx, prev[1] + t * dy))
      if ci:
        out.append(cur)
      prev = cur
  return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def split_polygon(poly: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Cuts polygon (K, D) along f = 0 (f (K,) linear along edges): (f < 0 part, rest)."""
  neg, pos = [], []
  k = len(poly)
  for i in range(k):
    a, b, fa, fb = poly[i], poly[(i + 1) % k], f[i], f[(i + 1) % k]
    (neg if fa < 0 else pos).append(a)
    if (fa < 0) != (fb < 0):
      x = a + (fa / (fa - fb)) * (b - a)
      neg.append(x)
      pos.append(x)
  return np.asarray(neg).reshape(-1, poly.shape[1]), np.asarray(pos).reshape(-1, poly.shape[1])


def circle3d(centre: np.ndarray, u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
  a = np.linspace(0, 2 * math.pi, n, endpoint=False)
  return centre + np.cos(a)[:, None] * u + np.sin(a)[:, None] * v


def flat(p: np.ndarray) -> list[float]:
  return p.reshape(-1).tolist()


@dataclasses.dataclass
class Camera:
  """Head frame -> canvas pixels: rotate, put the head at `distance` on the optical
  axis, pinhole-project (1 unit at the head centre -> `scale` px), then shift."""
  rot: np.ndarray
  distance: float
  scale: float
  offset: np.ndarray

  def to_camera(self, x: np.ndarray) -> np.ndarray:
    return x @ self.rot.T + np.array([0.0, 0.0, self.distance])

  def project_camera(self, xc: np.ndarray) -> np.ndarray:
    return self.scale * self.distance * xc[..., :2] / xc[..., 2:3] + self.offset

  def project(self, x: np.ndarray) -> np.ndarray:
    return self.project_camera(self.to_camera(x))


def canvas_camera(cam: Camera, ss: int) -> Camera:
  """The camera drawing at `ss` times the output resolution.

  Output pixel x -> canvas ss * (x + 0.5): PIL fills canvas pixel k over [k, k + 1),
  and output pixel i (centre i) is the box average of canvas pixels [ss i, ss i + ss).
  """
  return Camera(cam.rot, cam.distance, cam.scale * ss, cam.offset * ss + 0.5 * ss)


class Painter:
  """Collects primitives as (layer, depth, draw-callable); paints far to near."""

  def __init__(self):
    self.items: list[tuple[int, float, int, DrawFn]] = []

  def add(self, layer: int, depth: float, fn: DrawFn):
    """Lower layers first; within a layer, larger camera depth (farther) first."""
    self.items.append((layer, -depth, len(self.items), fn))

  def paint(self, draw: ImageDraw.ImageDraw):
    for _, _, _, fn in sorted(self.items, key=lambda t: t[:3]):
      fn(draw)


def polygon(pts: np.ndarray, fill) -> DrawFn:
  """Draws the filled polygon pts (K, 2)."""
  return polygon_flat(flat(pts), fill)


def polygon_flat(coords: list[float], fill) -> DrawFn:
  """Draws the filled polygon [x0, y0, x1, y1, ...]."""
  # The outline closes the hairline cracks between adjacent mesh polygons.
  return lambda draw: draw.polygon(coords, fill=fill, outline=fill)


def background(rng: np.random.Generator, size: int, cfg: RenderConfig) -> Image.Image:
  """A random backdrop: a linear colour gradient plus clutter shapes."""
  c0, c1 = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
  angle = rng.uniform(0, 2 * math.pi)
  # A linear gradient is separable: t(x, y) = a x + b y, normalised to [0, 1].
  r = np.linspace(0.0, 1.0, size, dtype=np.float32)
  ax, ay = math.cos(angle), math.sin(angle)
  t_min = min(0.0, ax) + min(0.0, ay)
  span = abs(ax) + abs(ay)
  gx = ((ax * r - t_min / 2) / span)[None, :, None]
  gy = ((ay * r - t_min / 2) / span)[:, None, None]
  c0, c1 = (c0 * 255).astype(np.float32), ((c1 - c0) * 255).astype(np.float32)
  arr = (c0 + c1 * gx) + c1 * gy
  img = Image.fromarray(arr.astype(np.uint8), "RGB")
  if cfg.clutter:
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 14))):
      col = rgb(rng.uniform(0.0, 1.0, 3))
      x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
      w, h = rng.uniform(0.05, 0.6, 2) * size
      kind = rng.integers(4)
      if kind == 0:
        draw.rectangle([x0, y0, x0 + w, y0 + h], fill=col)
      elif kind == 1:
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=col)
      elif kind == 2:
        draw.line([x0, y0, x0 + w, y0 + h], fill=col, width=int(rng.integers(2, 10)))
      else:
        pts = rng.uniform(-0.1, 1.1, (int(rng.integers(3, 6)), 2)) * size
        draw.polygon(flat(pts), fill=col)
  return img


@functools.cache
def _noise_bank() -> np.ndarray:
  """A fixed (512, 512, 3) float32 N(0, 1) tile; patches of it are much cheaper than
  fresh Gaussian noise per image."""
  return np.random.default_rng(12345).standard_normal((512, 512, 3), dtype=np.float32)


def noise_patch(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
  """float32 (H, W, 3) unit Gaussian noise (a random patch of a fixed tile)."""
  bank = _noise_bank()
  h, w = shape
  if h > bank.shape[0] or w > bank.shape[1]:
    return rng.standard_normal((h, w, 3), dtype=np.float32)
  y, x = rng.integers(0, bank.shape[0] - h + 1), rng.integers(0, bank.shape[1] - w + 1)
  patch = bank[y:y + h, x:x + w]
  return patch[::-1] if rng.random() < 0.5 else patch


def add_split(painter: Painter, layer: int, visible: np.ndarray, polys: np.ndarray,
              f: np.ndarray, depth: list[float], neg_cols: list, pos_cols: list):
  """Adds the visible polygons (N, K, 2), each cut along f (N, K) = 0 (f linear along
  edges): the f < 0 part coloured neg_cols[i], the rest pos_cols[i]."""
  all_neg, all_pos = np.all(f < 0, axis=1), np.all(f >= 0, axis=1)
  coords = polys.reshape(len(polys), -1).tolist()
  for i in np.flatnonzero(visible):
    if all_neg[i]:
      painter.add(layer, depth[i], polygon_flat(coords[i], neg_cols[i]))
    elif all_pos[i]:
      painter.add(layer, depth[i], polygon_flat(coords[i], pos_cols[i]))
    else:
      neg, pos = split_polygon(polys[i], f[i])
      painter.add(layer, depth[i], polygon(neg, neg_cols[i]))
      painter.add(layer, depth[i], polygon(pos, pos_cols[i]))
