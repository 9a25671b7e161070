"""Procedurally rendered synthetic faces with exact 68-point landmarks and head pose.

The embedded default data set: a new user without 300W/WFLW trains on these.

A face is the 68-point 3D mean face (`rotation.load_mean_face`) deformed by a small
hand-made identity model and expression model, wrapped in a coarse head (a face mesh
through the landmarks and extra skin points, an ellipsoid skull with hair, ears, neck,
torso), rotated by `rotation.euler_to_rotation(yaw, pitch, roll)` and projected with
a pinhole camera looking at the head centre. The labels are the projections of the
68 deformed 3D points, so they are exact; the pose label is the rotation's angles.

Drawing uses the painter's algorithm (back-face culling, then far to near), so the
far side of a turned face hides behind the nose and cheek while its landmarks stay at
their projected positions (as 300W annotates self-occluded points). Each landmark
chain is drawn as a visible feature: jaw = face outline, brows = hair bands, eyes =
lid contours around sclera and iris, nose = ridge shading, nostrils and base
shadow, lips = filled outer/inner lip contours.

`render_face(seed)` is deterministic: all randomness comes from
`np.random.default_rng(seed)`.

  python -m asmnet_jax.synthetic_faces --grid docs/synthetic_samples.png
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import math
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from asmnet_jax import rotation

NUM_LANDMARKS = 68
JAW = np.arange(0, 17)
BROWS = (np.arange(17, 22), np.arange(22, 27))  # Subject's right (image left), left.
NOSE_RIDGE = np.arange(27, 31)
NOSE_BASE = np.arange(31, 36)
EYES = (np.arange(36, 42), np.arange(42, 48))
LIPS_OUTER = np.arange(48, 60)
LIPS_INNER = np.arange(60, 68)
UPPER_LIP = np.array([48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60])
LOWER_LIP = np.array([54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64])

# Skull ellipsoid in mean-face units (outer eye corners ~0.76 apart): centre, semi-axes.
SKULL_CENTRE = np.array([0.0, -0.42, 0.38])
SKULL_AXES = np.array([0.70, 0.88, 0.80])
HAIR_SHADE = 0.85  # Hair albedo multiplier (hair reflects less than skin).


@dataclasses.dataclass(frozen=True)
class RenderConfig:
  """What `render_face` samples. Ranges are (low, high), drawn uniformly.

  Attributes:
    yaw, pitch, roll: head-pose ranges in degrees (`asmnet_jax.rotation` signs).
    identity_scale: multiplies every identity deformation (0: the mean shape).
    expression_scale: multiplies every expression deformation (0: neutral).
    face_size: jaw width (mean-face 1.25 units) as a fraction of the image side.
    shift: position jitter, as a fraction of the slack that keeps landmarks inside.
    margin: the least distance in pixels from any landmark to the image border.
    camera_distance: pinhole camera distance in face units (smaller: stronger
      perspective); the head centre is on the optical axis so the appearance of the
      crop matches the pose label.
    occluder_prob: chance of one occluder (glasses, hand, mask or object).
    clutter: draw random shapes in the background.
    blur, noise: upper bounds of the Gaussian blur radius (px) and noise sigma (0-255).
    jpeg_quality: range of the JPEG quality the image is round-tripped through.
    supersample: drawing resolution factor (anti-aliasing).
  """
  yaw: tuple[float, float] = (-60.0, 60.0)
  pitch: tuple[float, float] = (-30.0, 30.0)
  roll: tuple[float, float] = (-30.0, 30.0)
  identity_scale: float = 1.0
  expression_scale: float = 1.0
  face_size: tuple[float, float] = (0.5, 0.67)
  shift: float = 1.0
  margin: float = 3.0
  camera_distance: tuple[float, float] = (5.0, 15.0)
  occluder_prob: float = 0.25
  clutter: bool = True
  blur: float = 1.0
  noise: float = 6.0
  jpeg_quality: tuple[int, int] = (40, 95)
  supersample: int = 2


DEFAULT_CONFIG = RenderConfig()
# Frontal, mean shape, neutral, clean: for tests and for seeing the geometry.
CLEAN_FRONTAL_CONFIG = RenderConfig(
    yaw=(0.0, 0.0), pitch=(0.0, 0.0), roll=(0.0, 0.0), identity_scale=0.0,
    expression_scale=0.0, shift=0.0, occluder_prob=0.0, clutter=False, blur=0.0,
    noise=0.0, jpeg_quality=(95, 95))


# ----------------------------------------------------------------------------------
# Geometry template (built once from the mean face).


@dataclasses.dataclass(frozen=True)
class _Template:
  vertices: np.ndarray  # (V, 3) mean-face landmarks then extra skin points.
  triangles: np.ndarray  # (T, 3) face mesh, wound so normals point out of the face.
  lip_triangles: np.ndarray  # (L, 3) the lip hole, drawn only under a mask.
  aux_weights: np.ndarray  # (V - 68, 68) how extra points follow landmark moves.
  vertex_normals: np.ndarray  # (V, 3) unit, outward.
  vertex_ao: np.ndarray  # (V,) ambient-occlusion darkening in the creases.


def _skull_front_z(x: np.ndarray, y: np.ndarray, inset: float = 0.0) -> np.ndarray:
  """z of the skull ellipsoid's front surface at (x, y), moved forward by `inset`."""
  u = 1.0 - (x / SKULL_AXES[0]) ** 2 - ((y - SKULL_CENTRE[1]) / SKULL_AXES[1]) ** 2
  return SKULL_CENTRE[2] - SKULL_AXES[2] * np.sqrt(np.clip(u, 0.02, None)) - inset


def _extra_points(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
  """Skin points that the landmarks alone leave out: forehead, cheeks, nose sides.

  Returns (points (A, 3), ambient-occlusion factors (A,), outline indices into the
  full vertex list for the forehead/temple boundary, ordered from jaw 16 to jaw 0).
  """
  pts, ao = [], []

  def add(p, a=1.0):
    pts.append(np.asarray(p, dtype=np.float64))
    ao.append(a)
    return NUM_LANDMARKS + len(pts) - 1

  # Forehead rows above the brows, up to the hairline, on the skull surface.
  brow_idx = np.arange(17, 27)
  rows = []
  for dy, spread in ((0.12, 1.04), (0.27, 1.06), (0.42, 1.06), (0.55, 1.02)):
    row = []
    xs = mean[brow_idx, 0] * spread
    ys = mean[brow_idx, 1] - dy
    # Close the gap between the inner brow points with a middle point.
    xs = np.concatenate([xs[:5], [0.0], xs[5:]])
    ys = np.concatenate([ys[:5], [0.5 * (ys[4] + ys[5])], ys[5:]])
    for x, y in zip(xs, ys):
      row.append(add([x, y, _skull_front_z(x, y, 0.01)]))
    rows.append(row)
  glabella = add([0.0, -0.44, -0.445])
  # Temples: between the brow tail, the forehead and jaw points 0 / 16.
  temples = {}
  for s in (-1.0, 1.0):
    col = []
    for x, y in ((0.60, -0.44), (0.58, -0.60), (0.53, -0.76), (0.47, -0.92)):
      col.append(add([s * x, y, _skull_front_z(s * x, y, 0.01)]))
    temples[s] = col
  # Per side: around the eye, the cheek, the nose sides, the mouth and chin.
  for s in (-1.0, 1.0):
    for p, a in (
        ((0.30, -0.415, -0.375), 0.93),  # Above the upper lid.
        ((0.19, -0.40, -0.40), 0.90),
        ((0.44, -0.38, -0.24), 0.95),
        ((0.47, -0.28, -0.18), 0.97),  # Outer eye corner, toward the temple.
        ((0.10, -0.33, -0.40), 0.85),  # Inner eye corner / nose root.
        ((0.21, -0.22, -0.37), 0.93),  # Below the lower lid.
        ((0.34, -0.22, -0.30), 0.95),
        ((0.50, -0.17, -0.10), 1.0),  # Zygoma.
        ((0.32, -0.08, -0.36), 1.0),  # Mid cheek.
        ((0.50, 0.02, -0.08), 1.0),
        ((0.21, 0.06, -0.41), 0.90),  # Nasolabial fold top.
        ((0.28, 0.18, -0.36), 0.93),
        ((0.42, 0.16, -0.20), 1.0),  # Lower cheek.
        ((0.33, 0.34, -0.26), 0.97),  # Jowl.
        ((0.13, 0.43, -0.43), 0.97),  # Chin side.
        ((0.06, -0.27, -0.46), 0.92),  # Nose side, along the ridge.
        ((0.075, -0.17, -0.49), 0.95),
        ((0.07, -0.07, -0.53), 0.95),  # Nose tip side.
        ((0.14, -0.03, -0.43), 0.85),  # Ala top.
        ((0.185, 0.02, -0.39), 0.80),  # Ala outer crease.
        ((0.10, 0.10, -0.48), 0.95),  # Philtrum side.
    ):
      add([s * p[0], p[1], p[2]], a)
  add([0.0, -0.07, -0.585])  # Under the nose tip.
  add([0.0, 0.10, -0.515], 0.92)  # Philtrum.
  add([0.0, 0.44, -0.47])  # Chin boss.
  add([0.0, 0.36, -0.46], 0.90)  # Below the lower lip.
  # Boundary from jaw 16 up the temple, over the hairline row, down to jaw 0.
  outline = (list(temples[1.0]) + rows[-1][::-1] + list(temples[-1.0])[::-1])
  return np.stack(pts), np.asarray(ao), outline


def _triangle_normals(v: np.ndarray, tri: np.ndarray) -> np.ndarray:
  n = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
  return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def _point_in_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
  """Even-odd rule; pts (N, 2), poly (M, 2) -> bool (N,)."""
  x, y = pts[:, 0:1], pts[:, 1:2]
  x0, y0 = poly[:, 0][None], poly[:, 1][None]
  x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
  crosses = (y0 > y) != (y1 > y)
  with np.errstate(divide="ignore", invalid="ignore"):
    xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
  return np.sum(crosses & (x < xc), axis=1) % 2 == 1


@functools.cache
def _template() -> _Template:
  import matplotlib.tri  # Delaunay, once; deferred so importing this module is cheap.

  mean = rotation.load_mean_face()
  extra, extra_ao, outline = _extra_points(mean)
  vertices = np.concatenate([mean, extra])
  # Triangulate the frontal view (the face is a height field z(x, y) there); the
  # inner-lip points belong to the lip features, not the skin.
  used = np.array([i for i in range(len(vertices)) if not 60 <= i < 68])
  tri = used[matplotlib.tri.Triangulation(vertices[used, 0], vertices[used, 1]).triangles]
  centroids = vertices[tri, :2].mean(axis=1)
  face_outline = vertices[list(JAW) + outline, :2]
  keep = _point_in_polygon(centroids, face_outline)
  for eye in EYES:
    keep &= ~_point_in_polygon(centroids, vertices[eye, :2])
  in_lips = _point_in_polygon(centroids, vertices[LIPS_OUTER, :2])
  tri_normals = _triangle_normals(vertices, tri)
  tri = np.where((tri_normals[:, 2] > 0)[:, None], tri[:, ::-1], tri)  # Face -z.
  lip_tri = tri[keep & in_lips]
  tri = tri[keep & ~in_lips]
  # Vertex normals: area-weighted mean of the adjacent triangles' normals.
  all_tri = np.concatenate([tri, lip_tri])
  n = np.cross(vertices[all_tri[:, 1]] - vertices[all_tri[:, 0]],
               vertices[all_tri[:, 2]] - vertices[all_tri[:, 0]])
  vn = np.zeros_like(vertices)
  for k in range(3):
    np.add.at(vn, all_tri[:, k], n)
  vn /= np.maximum(np.linalg.norm(vn, axis=-1, keepdims=True), 1e-12)
  # Extra points follow nearby landmark moves (RBF weights, normalised when >1), so
  # an open jaw or a smile drags the cheeks and chin along.
  d2 = np.sum((extra[:, None, :] - mean[None, :, :]) ** 2, axis=-1)
  w = np.exp(-d2 / (2 * 0.09 ** 2))
  w /= np.maximum(w.sum(axis=1, keepdims=True), 1.0)
  ao = np.concatenate([np.ones(NUM_LANDMARKS), extra_ao])
  ao[list(NOSE_BASE)] = 0.85
  ao[[39, 42]] = 0.9
  for a in (vertices, vn, ao, tri, lip_tri, w):
    a.setflags(write=False)
  return _Template(vertices, tri, lip_tri, w, vn, ao)


@functools.cache
def _skull_grid(n_theta: int = 11, n_phi: int = 22) -> np.ndarray:
  """Unit directions (n_theta + 1, n_phi, 3) of a lat-long grid; theta 0 is the top
  (-y) and phi 0 the front (-z); the bottom (under the skull, inside the neck) is left
  open."""
  theta = np.linspace(0.0, 0.80 * math.pi, n_theta + 1)
  phi = np.linspace(-math.pi, math.pi, n_phi, endpoint=False)
  t, p = np.meshgrid(theta, phi, indexing="ij")
  d = np.stack([np.sin(t) * np.sin(p), -np.cos(t), -np.sin(t) * np.cos(p)], axis=-1)
  d.setflags(write=False)
  return d


# ----------------------------------------------------------------------------------
# Shape model.


def _identity_and_expression(rng: np.random.Generator, cfg: RenderConfig,
                             mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
  """Landmark displacements (68, 3), a global axis scale (3,), expression info."""
  k, e = cfg.identity_scale, cfg.expression_scale
  d = np.zeros_like(mean)
  x, y = mean[:, 0], mean[:, 1]
  sgn = np.sign(x + 1e-9)
  n = lambda s: rng.normal(0.0, s)  # pylint: disable=unnecessary-lambda-assignment

  # Identity. Jaw: width of the lower face, chin length.
  low = np.clip((y - 0.0) / 0.55, 0.0, 1.0)
  d[JAW, 0] += (n(0.06) * k) * x[JAW] * low[JAW]
  d[JAW, 1] += (n(0.05) * k) * np.clip((y[JAW] - 0.2) / 0.4, 0, 1)
  # Eyes: spacing, size, opening, tilt.
  spacing, size, opening, tilt = n(0.025) * k, n(0.08) * k, n(0.18) * k, n(4.0) * k
  for side, eye in enumerate(EYES):
    c = mean[eye].mean(axis=0)
    rel = mean[eye] - c
    rel[:, 1] *= 1.0 + opening
    rel *= 1.0 + size
    a = math.radians(tilt) * (1 if side == 0 else -1)
    ca, sa = math.cos(a), math.sin(a)
    rel[:, :2] = rel[:, :2] @ np.array([[ca, sa], [-sa, ca]])
    d[eye] += c + rel - mean[eye]
    d[eye, 0] += spacing * (1 if side else -1)
  # Brows: height, arch, follow the eye spacing a little.
  brow_h, arch = n(0.025) * k, n(0.015) * k
  for side, brow in enumerate(BROWS):
    d[brow, 1] += brow_h
    d[brow[1:4], 1] -= arch
    d[brow, 0] += 0.5 * spacing * (1 if side else -1)
  # Nose: length, width, protrusion.
  nose_len, nose_w, nose_z = n(0.03) * k, n(0.12) * k, n(0.15) * k
  d[30:36, 1] += nose_len * np.array([0.6, 1, 1, 1, 1, 1])
  d[NOSE_BASE, 0] += nose_w * (x[NOSE_BASE] - x[33])
  d[27:36, 2] += nose_z * (mean[27:36, 2] - mean[27, 2])
  # Mouth: width, lip thickness, height.
  mouth = np.arange(48, 68)
  mw, up_t, lo_t, mouth_y = n(0.08) * k, n(0.015) * k, n(0.02) * k, n(0.02) * k
  d[mouth, 0] += mw * (x[mouth] - x[51])
  d[49:54, 1] -= up_t
  d[55:60, 1] += lo_t
  d[mouth, 1] += mouth_y
  d += rng.normal(0.0, 0.004 * k, size=d.shape)  # A little asymmetry.
  axis_scale = 1.0 + k * rng.normal(0.0, [0.05, 0.05, 0.08])

  # Expression.
  info = {}
  mouth_open = e * (rng.uniform(0.0, 1.0) if rng.random() < 0.35 else 0.0)
  smile = e * (rng.uniform(0.0, 1.0) if rng.random() < 0.35 else 0.0)
  blink = rng.random()
  closing = [0.0, 0.0]
  if blink < 0.12:
    closing = [e * rng.uniform(0.5, 1.0)] * 2
  elif blink < 0.18:
    closing[int(rng.integers(2))] = e * rng.uniform(0.6, 1.0)
  brow_raise = e * (rng.uniform(-0.6, 1.0) if rng.random() < 0.4 else 0.0)
  # Mouth open: jaw rotates down about the ears; lower lip and chin follow.
  drop = 0.16 * mouth_open
  w_jaw = np.clip((y[JAW] - y[0]) / (y[8] - y[0]), 0.0, 1.0) ** 1.5
  d[JAW, 1] += drop * w_jaw
  d[JAW, 2] += 0.3 * drop * w_jaw
  d[[55, 56, 57, 58, 59, 65, 66, 67], 1] += drop
  d[[48, 54, 60, 64], 1] += 0.35 * drop
  d[[61, 62, 63], 1] -= 0.08 * drop
  # Smile: corners out and up, lips stretch.
  d[[48, 60], 0] -= 0.05 * smile
  d[[54, 64], 0] += 0.05 * smile
  d[[48, 54, 60, 64], 1] -= 0.045 * smile
  d[[49, 53, 59, 55], 1] -= 0.015 * smile
  d[[49, 59], 0] -= 0.02 * smile
  d[[53, 55], 0] += 0.02 * smile
  # Eyes closing: the upper lid comes down onto the lower lid.
  for side, eye in enumerate(EYES):
    c = closing[side]
    p = mean[eye] + d[eye]
    for up, lo in ((1, 5), (2, 4)):
      d[eye[up]] += c * 0.92 * (p[lo] - p[up])
  # Brows: raise (all up, inner more) or frown (inner down and in).
  for brow in BROWS:
    inner_w = np.linspace(0.6, 1.0, 5) if brow[0] == 17 else np.linspace(1.0, 0.6, 5)
    d[brow, 1] -= 0.06 * brow_raise * inner_w
    if brow_raise < 0:
      d[brow, 0] += 0.03 * brow_raise * np.sign(x[brow]) * inner_w ** 4
  info.update(mouth_open=mouth_open, smile=smile, closing=closing)
  return d, axis_scale, info


# ----------------------------------------------------------------------------------
# Colours.

_SKIN = np.array([
    [255, 224, 196], [241, 194, 167], [224, 172, 138], [198, 134, 96],
    [161, 102, 69], [121, 76, 52], [88, 57, 39], [236, 188, 150], [210, 160, 120],
    [250, 210, 180], [232, 185, 160], [245, 200, 160],
]) / 255.0
_HAIR = np.array([
    [20, 16, 14], [45, 30, 22], [80, 52, 32], [120, 80, 45], [170, 125, 70],
    [205, 170, 110], [140, 60, 30], [150, 150, 150], [60, 45, 40],
]) / 255.0
_IRIS = np.array([
    [60, 35, 20], [95, 60, 30], [40, 25, 15], [70, 110, 150], [80, 120, 80],
    [110, 110, 120],
]) / 255.0


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
  c = np.clip(np.asarray(c) * 255.0 + 0.5, 0, 255).astype(int)
  return int(c[0]), int(c[1]), int(c[2])


def _rgb_many(c: np.ndarray) -> list[tuple[int, int, int]]:
  """(N, 3) colours in [0, 1] -> N PIL colour tuples."""
  return list(map(tuple, np.clip(c * 255.0 + 0.5, 0, 255).astype(np.int64).tolist()))


def _luma(c: np.ndarray) -> float:
  return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


# ----------------------------------------------------------------------------------
# Polygon helpers.


def _clip_convex(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
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


def _split_polygon(poly: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _circle3d(centre: np.ndarray, u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
  a = np.linspace(0, 2 * math.pi, n, endpoint=False)
  return centre + np.cos(a)[:, None] * u + np.sin(a)[:, None] * v


def _flat(p: np.ndarray) -> list[float]:
  return p.reshape(-1).tolist()


# ----------------------------------------------------------------------------------
# Rendering.


@dataclasses.dataclass
class _Camera:
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


def _canvas_camera(cam: _Camera, ss: int) -> _Camera:
  """The camera drawing at `ss` times the output resolution.

  Output pixel x -> canvas ss * (x + 0.5): PIL fills canvas pixel k over [k, k + 1),
  and output pixel i (centre i) is the box average of canvas pixels [ss i, ss i + ss).
  """
  return _Camera(cam.rot, cam.distance, cam.scale * ss, cam.offset * ss + 0.5 * ss)


def project_points(points: np.ndarray, pose: np.ndarray, distance: float,
                   scale: float, offset: np.ndarray) -> np.ndarray:
  """The renderer's projection of head-frame points (N, 3) to pixels (N, 2).

  `pose` is (yaw, pitch, roll) in degrees; rotation by `rotation.euler_to_rotation`,
  then the head centre at `distance` on the optical axis, `scale` px per unit there,
  then `offset` (2,) pixels added. 0-based pixel coordinates, pixel centres at
  integers.
  """
  rot = rotation.euler_to_rotation(*np.asarray(pose, dtype=np.float64))
  return _Camera(rot, distance, scale, np.asarray(offset, np.float64)).project(
      np.asarray(points, dtype=np.float64))


class _Painter:
  """Collects primitives as (layer, depth, draw-callable); paints far to near."""

  def __init__(self):
    self.items: list[tuple[int, float, int, Callable[[ImageDraw.ImageDraw], None]]] = []

  def add(self, layer: int, depth: float, fn: Callable[[ImageDraw.ImageDraw], None]):
    self.items.append((layer, -depth, len(self.items), fn))

  def paint(self, draw: ImageDraw.ImageDraw):
    for _, _, _, fn in sorted(self.items, key=lambda t: t[:3]):
      fn(draw)


def _polygon(pts: np.ndarray, fill) -> Callable[[ImageDraw.ImageDraw], None]:
  return _polygon_flat(_flat(pts), fill)


def _polygon_flat(flat: list[float], fill) -> Callable[[ImageDraw.ImageDraw], None]:
  # The outline closes the hairline cracks between adjacent mesh polygons.
  return lambda draw: draw.polygon(flat, fill=fill, outline=fill)


def _background(rng: np.random.Generator, size: int, cfg: RenderConfig) -> Image.Image:
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
      col = _rgb(rng.uniform(0.0, 1.0, 3))
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
        draw.polygon(_flat(pts), fill=col)
  return img


def render_face(seed: int, image_size: int = 192,
                config: RenderConfig = DEFAULT_CONFIG) -> dict[str, Any]:
  """Renders one synthetic face.

  Args:
    seed: the only source of randomness (same seed, same pixels).
    image_size: output side H = W in pixels.
    config: what to sample (`RenderConfig`).

  Returns:
    dict with
      image:     uint8 (H, W, 3) RGB, after the JPEG round trip (equals decoding `jpeg`).
      jpeg:      the JPEG bytes of `image`.
      landmarks: float32 (68, 2), 0-based pixel x, y (pixel centres at integers).
      pose:      float32 (3,), yaw, pitch, roll in degrees (`asmnet_jax.rotation`).
      points3d:  float64 (68, 3), the deformed face in the head frame (mean-face units).
      camera:    dict(distance, scale, offset (2,)) such that
                 `project_points(points3d, pose, **camera) == landmarks` (float32).
  """
  scene = _sample_scene(seed, image_size, config)
  return _render_scene(scene)


@dataclasses.dataclass
class _Scene:
  rng: np.random.Generator
  cfg: RenderConfig
  size: int
  vertices: np.ndarray  # (V, 3) deformed template, head frame.
  pose: np.ndarray  # (3,) degrees.
  camera: _Camera  # Output-pixel camera.
  axis_scale: np.ndarray
  expression: dict


def _sample_scene(seed: int, size: int, cfg: RenderConfig) -> _Scene:
  rng = np.random.default_rng(seed)
  tpl = _template()
  mean = tpl.vertices[:NUM_LANDMARKS]
  d, axis_scale, expression = _identity_and_expression(rng, cfg, mean)
  vertices = tpl.vertices.copy()
  vertices[:NUM_LANDMARKS] += d
  vertices[NUM_LANDMARKS:] += tpl.aux_weights @ d
  vertices *= axis_scale
  pose = np.array([rng.uniform(*cfg.yaw), rng.uniform(*cfg.pitch), rng.uniform(*cfg.roll)])
  rot = rotation.euler_to_rotation(*pose)
  distance = rng.uniform(*cfg.camera_distance)
  scale = rng.uniform(*cfg.face_size) * size / 1.25
  cam = _Camera(rot, distance, scale, np.zeros(2))
  # Fit the landmark box inside the image, then jitter it within the slack.
  lo_px, hi_px = cfg.margin, size - 1 - cfg.margin
  for _ in range(20):
    lm = cam.project(vertices[:NUM_LANDMARKS])
    extent = lm.max(axis=0) - lm.min(axis=0)
    if np.all(extent <= (hi_px - lo_px)):
      break
    cam.scale *= 0.97 * (hi_px - lo_px) / extent.max()
  lm = cam.project(vertices[:NUM_LANDMARKS])
  centre = 0.5 * (lm.max(axis=0) + lm.min(axis=0))
  slack = np.maximum(0.5 * ((hi_px - lo_px) - (lm.max(axis=0) - lm.min(axis=0))), 0.0)
  jitter = rng.uniform(-1.0, 1.0, 2) * slack * cfg.shift
  cam.offset = 0.5 * (lo_px + hi_px) + jitter - centre
  return _Scene(rng, cfg, size, vertices, pose, cam, axis_scale, expression)


def _render_scene(scene: _Scene) -> dict[str, Any]:
  rng, cfg, size = scene.rng, scene.cfg, scene.size
  tpl = _template()
  ss = cfg.supersample
  canvas_size = size * ss
  cam = _canvas_camera(scene.camera, ss)
  rot = cam.rot
  v = scene.vertices
  vc = cam.to_camera(v)
  v2 = cam.project_camera(vc)
  landmarks = scene.camera.project(v[:NUM_LANDMARKS])

  # Appearance draws.
  skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.08, 3)
  skin = np.clip(skin, 0.0, 1.0)
  hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.15)
  brow_col = hair if _luma(hair) < 0.6 * _luma(skin) else skin * rng.uniform(0.25, 0.45)
  iris_col = _IRIS[rng.integers(len(_IRIS))]
  lip_col = np.clip(skin * np.array([0.95, 0.58, 0.62]) * rng.uniform(0.62, 0.82), 0, 1)
  if rng.random() < 0.25:  # Lipstick.
    lip_col = np.array([rng.uniform(0.45, 0.8), rng.uniform(0.05, 0.25), rng.uniform(0.1, 0.3)])
  shirt = rng.uniform(0.05, 0.95, 3)
  light = np.array([rng.uniform(-1.2, 1.2), rng.uniform(-1.2, 0.6), -1.0])
  light /= np.linalg.norm(light)
  ambient = rng.uniform(0.5, 0.75)
  diffuse = rng.uniform(0.35, 0.6)
  # Light colour: warm (less blue) or cool (less red), never green-shifted skin.
  warm = rng.uniform(0.0, 1.0)
  tint = np.array([1.0, 1.0 - 0.06 * warm, 1.0 - 0.14 * warm]) if rng.random() < 0.7 else \
      np.array([1.0 - 0.1 * warm, 1.0 - 0.04 * warm, 1.0])
  hair_style = rng.choice(["short", "long", "bald", "short", "long"])
  hairline = rng.uniform(-0.12, 0.12)
  hair_volume = rng.uniform(1.02, 1.1)

  def shade(normals: np.ndarray) -> np.ndarray:
    lam = np.clip(normals @ -light, 0.0, 1.0)  # Normals out of the head, light toward.
    return ambient + diffuse * lam

  def colour(albedo: np.ndarray, s: float) -> tuple[int, int, int]:
    return _rgb(albedo * s * tint)

  def hair_y(azimuth: np.ndarray) -> np.ndarray:
    """Hairline height (head frame y) by azimuth around the vertical (0 front)."""
    a = np.abs(azimuth)
    if hair_style == "bald":
      return np.full_like(a, -10.0)
    xp = [0.0, 0.6, 1.1, 1.6, 2.2, math.pi]
    fp = [-0.92 + hairline, -0.86 + hairline, -0.45, -0.25,
          0.55 if hair_style == "long" else 0.35, 0.55 if hair_style == "long" else 0.35]
    return np.interp(a, xp, fp)

  def azimuth(p: np.ndarray) -> np.ndarray:
    return np.arctan2(p[..., 0], -(p[..., 2] - SKULL_CENTRE[2]))

  painter = _Painter()

  # Layer 1: torso and long hair behind; layer 2: neck; layer 3: skull, hair, ears.
  body_rot = rotation.euler_to_rotation(0.25 * scene.pose[0], 0.0, 0.3 * scene.pose[2])
  neck_rot = rotation.euler_to_rotation(0.4 * scene.pose[0], 0.2 * scene.pose[1],
                                        0.4 * scene.pose[2])
  pivot = np.array([0.0, 0.35, 0.40]) * scene.axis_scale
  pivot_c = cam.to_camera(pivot[None])[0]

  def body_to_camera(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (p - pivot) @ r.T + pivot_c

  sh = np.array([[-0.40, 0.92], [-0.95, 1.08], [-1.55, 1.3], [-1.9, 2.6], [1.9, 2.6],
                 [1.55, 1.3], [0.95, 1.08], [0.40, 0.92]]) * [rng.uniform(0.9, 1.2), 1.0]
  torso = np.concatenate([sh, np.full((len(sh), 1), 0.5)], axis=1)
  tc = body_to_camera(torso, body_rot)
  painter.add(1, 10.0, _polygon(cam.project_camera(tc), colour(shirt, 0.5 + 0.5 * ambient)))
  if hair_style == "long":
    # A flat sheet behind the head: rounded lower edge, closed over the crown.
    length = rng.uniform(0.6, 1.4)
    a = np.linspace(0, math.pi, 12)
    curtain = np.stack([0.78 * np.cos(a) * hair_volume, -0.5 + length * np.sin(a) ** 0.3,
                        np.full_like(a, 0.55)], axis=1)
    curtain = np.concatenate([curtain, [[-0.6, -0.9, 0.6], [0.6, -0.9, 0.6]]])
    cc = cam.to_camera(curtain * scene.axis_scale)
    painter.add(1, 5.0, _polygon(cam.project_camera(cc), colour(hair, 0.5 * (1 + ambient))))
  # Neck: from a ring inside the head (moving with it) down to a ring in the body frame.
  a = np.linspace(-math.pi, math.pi, 14, endpoint=False)
  ring_n = np.stack([np.sin(a), np.zeros_like(a), -np.cos(a)], axis=1)
  ring = ring_n * [0.33, 0.0, 0.36] + [0.0, 0.0, 0.42]
  top_c = cam.to_camera((ring + [0.0, 0.2, 0.0]) * scene.axis_scale)
  bot_c = body_to_camera((ring * [1.1, 1.0, 1.05] + [0.0, 1.6, 0.0]) * scene.axis_scale,
                         neck_rot)
  nn = ring_n @ rot.T + ring_n @ neck_rot.T
  j = np.roll(np.arange(len(a)), -1)
  quads_c = np.stack([top_c, top_c[j], bot_c[j], bot_c], axis=1)  # (Q, 4, 3)
  quad_n = nn + nn[j]
  quad_n /= np.linalg.norm(quad_n, axis=-1, keepdims=True)
  vis = np.einsum("ij,ij->i", quad_n, quads_c.mean(axis=1)) < 0
  cols = _rgb_many(skin * tint * (0.8 * shade(quad_n))[:, None])
  q2 = cam.project_camera(quads_c).reshape(len(a), -1).tolist()
  depth = quads_c[:, :, 2].mean(axis=1).tolist()
  for i in np.flatnonzero(vis):
    painter.add(2, depth[i], _polygon_flat(q2[i], cols[i]))
  # Skull: lat-long quads on the ellipsoid; hair above the hairline (cut exactly
  # along it), puffed out away from the hairline.
  dirs = _skull_grid()
  axes = SKULL_AXES * scene.axis_scale
  centre = SKULL_CENTRE * scene.axis_scale
  pts = centre + dirs * axes
  f_hair = pts[..., 1] - hair_y(azimuth(pts))
  puff = 1.0 + (hair_volume - 1.0) * np.clip(-f_hair / 0.15, 0.0, 1.0)
  pts = centre + (pts - centre) * puff[..., None]
  normals = dirs / axes
  normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
  pc = cam.to_camera(pts.reshape(-1, 3)).reshape(pts.shape)
  p2 = cam.project_camera(pc)
  nc = normals @ rot.T
  jn = np.roll(np.arange(dirs.shape[1]), -1)

  def corners(a):  # (T, P, ...) grid -> (T - 1, P, 4, ...) quads.
    return np.stack([a[:-1], a[:-1, jn], a[1:, jn], a[1:]], axis=2)

  qc = corners(pc).reshape(-1, 4, 3)
  qn = corners(nc).sum(axis=2).reshape(-1, 3)
  qn /= np.linalg.norm(qn, axis=-1, keepdims=True)
  qf = corners(f_hair).reshape(-1, 4)
  vis = np.einsum("ij,ij->i", qn, qc.mean(axis=1)) < 0
  s = shade(qn)[:, None]
  hair_cols = _rgb_many(hair * HAIR_SHADE * s * tint)
  skin_cols = _rgb_many(skin * 0.95 * s * tint)
  q2 = corners(p2).reshape(len(qc), 4, 2)
  depth = qc[:, :, 2].mean(axis=1).tolist()
  _add_split(painter, 3, vis, q2, qf, depth, hair_cols, skin_cols)
  # Ears: outward normal tilted forward; shown only when it faces the camera.
  for s_ in (-1.0, 1.0):
    t = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    ear = np.stack([s_ * (0.66 + 0.05 * np.cos(t)), -0.15 - 0.17 * np.sin(t),
                    0.43 + 0.09 * np.cos(t) + 0.02 * np.sin(t)], axis=1)
    ear *= scene.axis_scale
    ec = cam.to_camera(ear)
    en = rot @ (np.array([s_, 0.0, -0.6]) / math.hypot(1.0, 0.6))
    if en @ ec.mean(axis=0) >= 0:
      continue
    sv = shade(en)
    e2 = cam.project_camera(ec)
    inner = e2.mean(axis=0) + 0.55 * (e2 - e2.mean(axis=0))

    def draw_ear(draw, e2=e2, inner=inner, sv=sv):
      draw.polygon(_flat(e2), fill=colour(skin, 0.9 * sv), outline=colour(skin, 0.6 * sv))
      draw.polygon(_flat(inner), fill=colour(skin, 0.65 * sv))

    painter.add(3, -1e3, draw_ear)  # After the skull: it sits on the skull surface.

  # Layer 4: the face mesh, depth-sorted together with the features.
  vn = tpl.vertex_normals @ rot.T
  vshade = shade(vn) * tpl.vertex_ao
  tri = tpl.triangles
  tri_c = vc[tri]
  tri_n = np.cross(tri_c[:, 1] - tri_c[:, 0], tri_c[:, 2] - tri_c[:, 0])
  facing = np.einsum("ij,ij->i", tri_n, tri_c.mean(axis=1)) < 0
  # Masks recolour the lower face mesh (and fill the lip hole) instead of the lips.
  occluder = None
  if rng.random() < cfg.occluder_prob:
    occluder = rng.choice(["glasses", "hand", "mask", "object", "glasses"])
  masked = occluder == "mask"
  if masked:
    tri = np.concatenate([tri, tpl.lip_triangles])
    tri_c = vc[tri]
    tri_n = np.cross(tri_c[:, 1] - tri_c[:, 0], tri_c[:, 2] - tri_c[:, 0])
    facing = np.einsum("ij,ij->i", tri_n, tri_c.mean(axis=1)) < 0
  depth = tri_c[:, :, 2].mean(axis=1).tolist()
  s = vshade[tri].mean(axis=1)[:, None]
  skin_cols = _rgb_many(skin * s * tint)
  if masked:
    mask_col = np.array([[0.75, 0.85, 0.95], [0.95, 0.95, 0.95], [0.1, 0.1, 0.12],
                         [0.4, 0.6, 0.8]])[rng.integers(4)]
    # Mask where y is below a line from the nose bridge sloping down to the cheeks.
    f_v = v[29, 1] + 0.02 + 0.16 * np.abs(v[:, 0]) - v[:, 1]
    neg_cols = _rgb_many(mask_col * (0.6 + 0.4 * s) * tint)
  else:
    f_v = v[:, 1] - hair_y(azimuth(v))
    neg_cols = _rgb_many(hair * HAIR_SHADE * s * tint)
  _add_split(painter, 4, facing, v2[tri], f_v[tri], depth, neg_cols, skin_cols)
  # Under the jaw: a strip from the jaw line back to the throat (seen when the face
  # tilts up or turns), in shadow.
  jaw = np.arange(3, 14)
  under = v[jaw] * [0.62, 1.0, 1.0] + [0.0, 0.1, 0.0]
  under[:, 1] = np.maximum(under[:, 1], 0.45)
  under[:, 2] = np.maximum(v[jaw, 2], -0.1) + 0.32
  strip = np.stack([v[jaw[:-1]], v[jaw[1:]], under[1:], under[:-1]], axis=1)
  strip_c = cam.to_camera(strip.reshape(-1, 3)).reshape(strip.shape)
  sn = np.cross(strip[:, 1] - strip[:, 0], strip[:, 3] - strip[:, 0])
  sn *= np.sign(sn[:, 1:2] + 1e-9)  # Outward = down.
  sn /= np.linalg.norm(sn, axis=-1, keepdims=True)
  sn_c = sn @ rot.T
  s_vis = np.einsum("ij,ij->i", sn_c, strip_c.mean(axis=1)) < 0
  s_cols = _rgb_many(skin * (0.7 * shade(sn_c))[:, None] * tint)
  s2 = cam.project_camera(strip_c)
  s_depth = strip_c[:, :, 2].mean(axis=1).tolist()
  for i in np.flatnonzero(s_vis):
    painter.add(4, s_depth[i] + 0.05, _polygon(s2[i], s_cols[i]))

  def facing_dir(normal_head: np.ndarray, at: np.ndarray) -> bool:
    return float((rot @ normal_head) @ at) < 0

  def feature(points_idx, normal_head, fn, bias=0.06):
    c = vc[points_idx].mean(axis=0)
    if facing_dir(np.asarray(normal_head, float), c):
      painter.add(4, float(c[2]) - bias, fn)

  lm2 = v2[:NUM_LANDMARKS]
  px = cam.scale / 100.0  # Canvas pixels per 0.01 face units (line widths).
  # Brows: bands hanging below the landmark chains, thick at the inner end.
  brow_thick = rng.uniform(0.035, 0.06)
  for side, brow in enumerate(BROWS):
    p = v[brow]
    order = np.linspace(0.0, 1.0, 5) if side == 0 else np.linspace(1.0, 0.0, 5)
    thick = brow_thick * (0.55 + 0.45 * order)  # Tail (outer end) thinner.
    top = p + np.stack([np.zeros(5), -0.2 * thick, -0.005 * np.ones(5)], 1)
    bottom = p + np.stack([np.zeros(5), 0.8 * thick, -0.005 * np.ones(5)], 1)
    band = cam.project(np.concatenate([top, bottom[::-1]]))
    bc = colour(brow_col, 0.6 + 0.4 * float(vshade[brow].mean()))
    feature(brow, [0.3 * (1 if side else -1), 0, -1], _polygon(band, bc), bias=0.08)

  # Eyes: sclera, iris and pupil clipped to the lids, lid lines, a catch light.
  iris_r = rng.uniform(0.25, 0.3)
  gaze = rng.uniform(-0.25, 0.25, 2) * [1.0, 0.5]
  lash = colour(np.minimum(hair, 0.25) * 0.5, 1.0)
  for side, eye in enumerate(EYES):
    p = v[eye]
    e2 = lm2[eye]
    width = np.linalg.norm(p[3] - p[0])
    opening = 0.5 * (np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4]))
    c3 = p.mean(axis=0) + np.array([gaze[0] * width * 0.5, gaze[1] * opening, -0.012])
    iris = cam.project(_circle3d(c3, [iris_r * width, 0, 0], [0, iris_r * width, 0], 16))
    pupil = cam.project(_circle3d(c3 - [0, 0, 0.003], [0.42 * iris_r * width, 0, 0],
                                  [0, 0.42 * iris_r * width, 0], 12))
    spot = cam.project(c3[None] + [[-0.25 * iris_r * width, -0.3 * iris_r * width, -0.004]])[0]
    sv = float(vshade[eye].mean())
    lid_w = max(1, int(round(rng.uniform(1.2, 2.0) * px)))

    def draw_eye(draw, e2=e2, iris=iris, pupil=pupil, spot=spot, sv=sv, lid_w=lid_w,
                 open_=opening / max(width, 1e-6)):
      upper = _flat(e2[[0, 1, 2, 3]])
      lower = _flat(e2[[3, 4, 5, 0]])
      if open_ > 0.08:
        draw.polygon(_flat(e2), fill=colour(np.array([0.93, 0.91, 0.88]), 0.55 + 0.45 * sv))
        for poly, col in ((iris, colour(iris_col, 0.7 + 0.3 * sv)), (pupil, (8, 6, 6))):
          clipped = _clip_convex(poly, e2)
          if len(clipped) >= 3:
            draw.polygon(_flat(clipped), fill=col)
        r = 0.6 * px
        if _point_in_polygon(spot[None], e2)[0]:
          draw.ellipse([spot[0] - r, spot[1] - r, spot[0] + r, spot[1] + r],
                       fill=(245, 245, 245))
        draw.line(lower, fill=colour(skin, 0.45 * sv), width=max(1, lid_w // 2), joint="curve")
      draw.line(upper, fill=lash, width=lid_w, joint="curve")

    feature(eye, [0.3 * (1 if side else -1), 0, -1], draw_eye, bias=0.08)

  # Nose: base shadow line, alae, nostrils, tip highlight.
  if not masked:  # The mask covers the nose base.
    nose_w = max(1, int(round(1.0 * px)))
    sv_n = float(vshade[NOSE_BASE].mean())
    dark = colour(skin, 0.4 * sv_n)
    for side, (outer, inner) in enumerate(((31, 32), (35, 34))):
      sgn = 1 if side else -1
      po, pi = v[outer], v[inner]
      ala = cam.project(np.stack([po + [0.0, 0.0, 0.0], po + [sgn * 0.03, -0.04, 0.02],
                                  po + [sgn * 0.01, -0.085, 0.0], po + [-sgn * 0.03, -0.1, -0.02]]))
      c = 0.5 * (po + pi) + [0.0, -0.012, -0.005]
      nostril = cam.project(_circle3d(c, [0.033, 0, 0], [0, 0.011, 0.011], 10))

      def draw_ala(draw, ala=ala, nostril=nostril):
        draw.polygon(_flat(nostril), fill=colour(skin, 0.25 * sv_n))
        draw.line(_flat(ala), fill=colour(skin, 0.6 * sv_n), width=nose_w, joint="curve")

      feature([outer, inner], [sgn * 0.6, 0.4, -0.7], draw_ala, bias=0.1)
    base = _flat(lm2[NOSE_BASE])
    feature(NOSE_BASE, [0, 0.6, -0.8],
            lambda draw: draw.line(base, fill=dark, width=nose_w, joint="curve"), bias=0.1)
    tip = lm2[30]
    hl = colour(np.minimum(skin * 1.25 + 0.05, 1.0), float(vshade[30]))
    r_tip = 1.2 * px
    feature([30], [0, 0, -1], lambda draw: draw.ellipse(
        [tip[0] - r_tip, tip[1] - 0.7 * r_tip, tip[0] + r_tip, tip[1] + 0.7 * r_tip], fill=hl),
        bias=0.1)

  # Lips: upper and lower lip polygons, the mouth opening, teeth.
  if not masked:
    sv_m = float(vshade[LIPS_OUTER].mean())
    up, lo = lm2[UPPER_LIP], lm2[LOWER_LIP]
    inner = lm2[LIPS_INNER]
    gap = np.linalg.norm(v[[61, 62, 63]] - v[[67, 66, 65]], axis=1).mean()
    show_teeth = gap > 0.035 and rng.random() < 0.8
    teeth = None
    if show_teeth:
      tp = v[[60, 61, 62, 63, 64]]
      bot = v[[64, 65, 66, 67, 60]]
      teeth = cam.project(np.concatenate([tp, tp[::-1] + 0.35 * (bot - tp[::-1]).clip(0)
                                          * [0, 1, 0]]))

    def draw_lips(draw, up=up, lo=lo, inner=inner, gap=gap, teeth=teeth):
      draw.polygon(_flat(up), fill=colour(lip_col, 0.8 * sv_m))
      draw.polygon(_flat(lo), fill=colour(lip_col, 0.95 * sv_m + 0.05))
      # The vermilion border: a thin darker outline makes the outer chain visible.
      draw.line(_flat(lm2[np.r_[LIPS_OUTER, 48]]), fill=colour(lip_col, 0.55 * sv_m),
                width=max(1, int(round(0.6 * px))), joint="curve")
      if gap > 0.01:
        draw.polygon(_flat(inner), fill=colour(np.array([0.25, 0.06, 0.07]), 0.6))
        if teeth is not None:
          draw.polygon(_flat(teeth), fill=colour(np.array([0.92, 0.9, 0.84]), 0.6 + 0.4 * sv_m))
      draw.line(_flat(inner[[0, 1, 2, 3, 4]]), fill=colour(lip_col, 0.35 * sv_m),
                width=max(1, int(round(0.8 * px))), joint="curve")

    feature(LIPS_OUTER, [0, 0, -1], draw_lips, bias=0.1)

  # Layer 5: occluders in front of everything.
  if occluder == "glasses":
    _add_glasses(painter, rng, cam, v, px)
  elif occluder == "hand":
    _add_hand(painter, rng, lm2, skin, px)
  elif occluder == "object":
    _add_object(painter, rng, lm2, px)

  img = _background(rng, canvas_size, cfg)
  draw = ImageDraw.Draw(img, "RGBA")
  painter.paint(draw)
  if ss > 1:
    img = img.reduce(ss)
  if cfg.blur > 0 and rng.random() < 0.5:
    # A box blur with a fractional radius: much cheaper than PIL's GaussianBlur.
    img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.3, cfg.blur)))
  arr = np.asarray(img, dtype=np.float32)
  gain = (rng.uniform(0.8, 1.2) * rng.uniform(0.96, 1.04, 3)).astype(np.float32)
  arr = arr * gain + np.float32(rng.uniform(-20, 20) + 0.5)
  if cfg.noise > 0:
    arr += _noise_patch(rng, arr.shape[:2]) * np.float32(rng.uniform(0.0, cfg.noise))
  arr = np.clip(arr, 0, 255).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format="JPEG",
                            quality=int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
  jpeg = buf.getvalue()
  image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
  return {
      "image": image,
      "jpeg": jpeg,
      "landmarks": landmarks.astype(np.float32),
      "pose": scene.pose.astype(np.float32),
      "points3d": v[:NUM_LANDMARKS].copy(),
      "camera": {"distance": scene.camera.distance, "scale": scene.camera.scale,
                 "offset": scene.camera.offset.copy()},
  }


@functools.cache
def _noise_bank() -> np.ndarray:
  """A fixed (512, 512, 3) float32 N(0, 1) tile; patches of it are much cheaper than
  fresh Gaussian noise per image."""
  return np.random.default_rng(12345).standard_normal((512, 512, 3), dtype=np.float32)


def _noise_patch(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
  bank = _noise_bank()
  h, w = shape
  if h > bank.shape[0] or w > bank.shape[1]:
    return rng.standard_normal((h, w, 3), dtype=np.float32)
  y, x = rng.integers(0, bank.shape[0] - h + 1), rng.integers(0, bank.shape[1] - w + 1)
  patch = bank[y:y + h, x:x + w]
  return patch[::-1] if rng.random() < 0.5 else patch


def _add_split(painter: _Painter, layer: int, visible: np.ndarray, polys: np.ndarray,
               f: np.ndarray, depth: list[float], neg_cols: list, pos_cols: list):
  """Adds polygons (N, K, 2), each cut along f (N, K) = 0: f < 0 part in neg_cols."""
  all_neg, all_pos = np.all(f < 0, axis=1), np.all(f >= 0, axis=1)
  flat = polys.reshape(len(polys), -1).tolist()
  for i in np.flatnonzero(visible):
    if all_neg[i]:
      painter.add(layer, depth[i], _polygon_flat(flat[i], neg_cols[i]))
    elif all_pos[i]:
      painter.add(layer, depth[i], _polygon_flat(flat[i], pos_cols[i]))
    else:
      neg, pos = _split_polygon(polys[i], f[i])
      painter.add(layer, depth[i], _polygon(neg, neg_cols[i]))
      painter.add(layer, depth[i], _polygon(pos, pos_cols[i]))


def _add_glasses(painter: _Painter, rng, cam: _Camera, v: np.ndarray, px: float):
  frame = _rgb(rng.choice([[0.05, 0.05, 0.05], [0.35, 0.2, 0.1], [0.7, 0.7, 0.72],
                           [0.5, 0.1, 0.1]]))
  sun = rng.random() < 0.3
  w = max(1, int(round(rng.uniform(0.8, 2.0) * px)))
  hw, hh = rng.uniform(0.13, 0.16), rng.uniform(0.08, 0.11)
  lenses = []
  for eye in EYES:
    c = v[eye].mean(axis=0) + [0.0, 0.015, -0.1]
    lenses.append(cam.project(_circle3d(c, [hw, 0, 0], [0, hh, 0], 20) + 0.0))
  bridge = cam.project(np.stack([v[EYES[0]].mean(0) + [hw, 0.0, -0.1],
                                 v[28] + [0.0, 0.0, -0.05],
                                 v[EYES[1]].mean(0) + [-hw, 0.0, -0.1]]))
  arms = [cam.project(np.stack([v[EYES[s]].mean(0) + [sg * hw, 0.0, -0.1],
                                [sg * 0.66, -0.2, 0.35]]))
          for s, sg in ((0, -1.0), (1, 1.0))]
  arm_vis = [float((cam.rot @ np.array([sg, 0.0, -0.3])) @ cam.to_camera(
      v[[EYES[s][0]]])[0]) < 0 for s, sg in ((0, -1.0), (1, 1.0))]

  def draw_glasses(draw):
    for a, vis in zip(arms, arm_vis):
      if vis:
        draw.line(_flat(a), fill=frame, width=w)
    for lens in lenses:
      if sun:
        draw.polygon(_flat(lens), fill=(15, 15, 20, 215))
      draw.line(_flat(np.concatenate([lens, lens[:1]])), fill=frame, width=w, joint="curve")
    draw.line(_flat(bridge), fill=frame, width=w, joint="curve")

  painter.add(5, 0.0, draw_glasses)


def _add_hand(painter: _Painter, rng, lm2: np.ndarray, skin: np.ndarray, px: float):
  anchor = rng.choice([0, 1, 2, 3])
  region = [np.arange(48, 68), np.arange(2, 6), np.arange(11, 15), np.arange(5, 12)][anchor]
  c = lm2[region].mean(axis=0)
  face_w = np.linalg.norm(lm2[16] - lm2[0])
  size = rng.uniform(0.35, 0.55) * face_w
  ang = rng.uniform(0, 2 * math.pi)
  c = c + size * 0.6 * np.array([math.cos(ang), math.sin(ang)])
  up = np.array([math.cos(ang + math.pi), math.sin(ang + math.pi)])
  side = np.array([-up[1], up[0]])
  col = _rgb(np.clip(skin * rng.uniform(0.85, 1.05), 0, 1))
  edge = _rgb(np.clip(skin * 0.6, 0, 1))
  palm = c + np.stack([np.cos(t) * 0.42 * size * side + np.sin(t) * 0.5 * size * up
                       for t in np.linspace(0, 2 * math.pi, 16, endpoint=False)])
  fingers = []
  for i, off in enumerate((-0.3, -0.1, 0.1, 0.3)):
    base = c + up * 0.35 * size + side * off * size
    length = size * (0.55 + 0.12 * (1.5 - abs(i - 1.5)))
    fingers.append((base, base + up * length + side * rng.normal(0, 0.05) * size))
  thumb = (c - side * 0.35 * size, c - side * 0.75 * size + up * 0.35 * size)
  fw = max(2, int(round(0.17 * size)))

  def draw_hand(draw):
    draw.polygon(_flat(palm), fill=col, outline=edge)
    for a, b in fingers + [thumb]:
      draw.line([*a, *b], fill=edge, width=fw + 2)
      draw.line([*a, *b], fill=col, width=fw)
      r = fw / 2
      draw.ellipse([b[0] - r, b[1] - r, b[0] + r, b[1] + r], fill=col)

  painter.add(5, 0.0, draw_hand)


def _add_object(painter: _Painter, rng, lm2: np.ndarray, px: float):
  c = lm2[rng.integers(NUM_LANDMARKS)]
  face_w = np.linalg.norm(lm2[16] - lm2[0])
  w, h = rng.uniform(0.15, 0.45, 2) * face_w
  ang = rng.uniform(0, math.pi)
  rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
  box = (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [w, h]) @ rot.T + c + rng.normal(
      0, 0.15 * face_w, 2)
  col = _rgb(rng.uniform(0, 1, 3))
  painter.add(5, 0.0, _polygon(box, col))


# ----------------------------------------------------------------------------------
# Sample grid.


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, scale: int = 2) -> Image.Image:
  """The image (H, W, 3) upscaled by `scale` with the 68 landmarks drawn as dots."""
  img = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale),
                                      Image.NEAREST)
  draw = ImageDraw.Draw(img)
  groups = [(JAW, (255, 255, 0)), (np.arange(17, 27), (255, 128, 0)),
            (np.arange(27, 36), (0, 255, 255)), (np.arange(36, 48), (0, 255, 0)),
            (np.arange(48, 68), (255, 0, 255))]
  for idx, col in groups:
    for x, y in landmarks[idx]:
      cx, cy = (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5
      draw.ellipse([cx - 1.5, cy - 1.5, cx + 1.5, cy + 1.5], fill=col)
  return img


def sample_grid(seeds, image_size: int = 192, config: RenderConfig = DEFAULT_CONFIG,
                cols: int = 6, with_landmarks: bool = True, scale: int = 1) -> Image.Image:
  """A grid of rendered faces (optionally with their landmarks drawn)."""
  tiles = []
  for seed in seeds:
    out = render_face(int(seed), image_size, config)
    if with_landmarks:
      tiles.append(draw_landmarks(out["image"], out["landmarks"], scale))
    else:
      tiles.append(Image.fromarray(out["image"]).resize(
          (image_size * scale, image_size * scale), Image.NEAREST))
  t = image_size * scale
  rows = math.ceil(len(tiles) / cols)
  grid = Image.new("RGB", (cols * t, rows * t), (255, 255, 255))
  for i, tile in enumerate(tiles):
    grid.paste(tile, ((i % cols) * t, (i // cols) * t))
  return grid


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--grid", default="docs/synthetic_samples.png", help="output PNG")
  parser.add_argument("--n", type=int, default=24, help="number of faces")
  parser.add_argument("--cols", type=int, default=6)
  parser.add_argument("--first-seed", type=int, default=0)
  parser.add_argument("--size", type=int, default=192)
  parser.add_argument("--scale", type=int, default=1, help="tile upscaling")
  parser.add_argument("--no-landmarks", action="store_true")
  args = parser.parse_args(argv)
  grid = sample_grid(range(args.first_seed, args.first_seed + args.n), args.size,
                     cols=args.cols, with_landmarks=not args.no_landmarks, scale=args.scale)
  grid.save(args.grid)
  print(f"wrote {args.grid} ({grid.size[0]}x{grid.size[1]})")


if __name__ == "__main__":
  main()
