"""The synthetic head in 3D: landmark groups, face mesh, identity and expressions.

Frame and units: the head frame of `asmnet_jax.core.rotation` (x right, y down, z away from
the camera at zero pose) in mean-face units (outer eye corners about 0.76 apart).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from asmnet_jax.core import mirror as mirror_lib
from asmnet_jax.core import rotation
from asmnet_jax.synthetic.config import RenderConfig

NUM_LANDMARKS = 68
JAW = np.arange(0, 17)
BROWS = (np.arange(17, 22), np.arange(22, 27))  # Subject's right (image left), left.
NOSE_RIDGE = np.arange(27, 31)
NOSE_BASE = np.arange(31, 36)
EYES = (np.arange(36, 42), np.arange(42, 48))  # Each: corner, 2 upper, corner, 2 lower.
LIPS_OUTER = np.arange(48, 60)
LIPS_INNER = np.arange(60, 68)
UPPER_LIP = np.array([48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60])
LOWER_LIP = np.array([54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64])

# Skull ellipsoid: centre, semi-axes.
SKULL_CENTRE = np.array([0.0, -0.42, 0.38])
SKULL_AXES = np.array([0.70, 0.88, 0.80])


@dataclasses.dataclass(frozen=True)
class Template:
  """The undeformed head mesh (built once from the mean face)."""
  vertices: np.ndarray  # (V, 3) the 68 mean-face landmarks, then extra skin points.
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
  add([0.0, -0.44, -0.445])  # Glabella.
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


def point_in_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
  """Even-odd rule; pts (N, 2), poly (M, 2) -> bool (N,)."""
  x, y = pts[:, 0:1], pts[:, 1:2]
  x0, y0 = poly[:, 0][None], poly[:, 1][None]
  x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
  crosses = (y0 > y) != (y1 > y)
  with np.errstate(divide="ignore", invalid="ignore"):
    xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
  return np.sum(crosses & (x < xc), axis=1) % 2 == 1


@functools.cache
def template() -> Template:
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
  keep = point_in_polygon(centroids, face_outline)
  for eye in EYES:
    keep &= ~point_in_polygon(centroids, vertices[eye, :2])
  in_lips = point_in_polygon(centroids, vertices[LIPS_OUTER, :2])
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
  return Template(vertices, tri, lip_tri, w, vn, ao)


@functools.cache
def skull_grid(n_theta: int = 11, n_phi: int = 22) -> np.ndarray:
  """Unit directions (n_theta + 1, n_phi, 3) of a lat-long grid; theta 0 is the top
  (-y) and phi 0 the front (-z); the bottom (under the skull, inside the neck) is left
  open."""
  theta = np.linspace(0.0, 0.80 * math.pi, n_theta + 1)
  phi = np.linspace(-math.pi, math.pi, n_phi, endpoint=False)
  t, p = np.meshgrid(theta, phi, indexing="ij")
  d = np.stack([np.sin(t) * np.sin(p), -np.cos(t), -np.sin(t) * np.cos(p)], axis=-1)
  d.setflags(write=False)
  return d


# How photographed faces in the 300-W convention differ from the mean face, in
# proportions of the jaw width (docs/experiments.md, 2026-12-02): smaller eyes set
# closer together, a longer and narrower nose, a slightly longer lower face, and
# longer, more arched brows whose inner ends come closer together.
EYE_SIZE = 0.86  # Each eye about its centre.
EYE_SPACING = 0.95  # Eye centres' distance from the midline.
LOWER_FACE_STRETCH = 1.03  # Vertical distances below the eye line.
NOSE_DROP = 0.03  # Extra downward shift of the nose base, head units.
NOSE_WIDTH = 0.9  # Nose base about the midline.
NOSE_TIP_AT = 0.74  # Where the tip (30) sits from the root (27) to the base (33).
# How far the tip (30) comes forward, head units (about 10 mm): the stored mean face's
# tip stands 10 mm in front of the subnasale (33), a photographed adult's about 20 mm.
NOSE_PROTRUSION = 0.085
# How far the nose base (31-35) comes forward, head units, from the alae (half) to the
# subnasale (all): photographed nose bases stand about 5 mm further forward than the
# renders' relative to the eyes (the development faces' labels, turned faces).
NOSE_BASE_PROTRUSION = 0.05
BROW_LENGTH = 1.2  # Each brow about its centre.
BROW_SPACING = 0.95  # Brow centres' distance from the midline.
BROW_ARCH = 0.03  # How much lower the brow ends sit than its middle, inter-ocular units.
# (outward, down) shifts of the jaw, nose and mouth points, in inter-ocular distances,
# for the image-left and midline points (each mirror partner takes the mirrored
# shift). Measured: near-frontal photo renders, similarity-aligned to a published
# mean of dlib-labelled photographed faces, sat with the jaw's top too low, its sides
# bulging at the cheeks, the chin, nose base and upper lip too high.
OUTLINE_SHIFT = {
    # Jaw.
    0: (0.009, -0.048), 1: (0.042, -0.038), 2: (0.048, -0.020), 3: (0.031, -0.006),
    4: (-0.010, -0.006), 5: (-0.031, 0.003), 6: (-0.034, 0.022), 7: (-0.030, 0.055),
    8: (0.000, 0.048),
    # Nose.
    30: (0.000, 0.025), 31: (-0.018, -0.011), 32: (-0.012, 0.005), 33: (0.000, 0.030),
    # Outer lips.
    48: (0.015, -0.020), 49: (0.013, 0.018), 50: (-0.014, 0.038), 51: (0.000, 0.032),
    57: (0.000, 0.026), 58: (-0.004, 0.020), 59: (0.010, -0.001),
    # Inner lips.
    60: (0.016, -0.002), 61: (-0.008, 0.022), 62: (0.000, 0.029), 66: (0.000, 0.026),
    67: (-0.006, 0.013),
}


def _resized_and_moved_in(points: np.ndarray, size: float, spacing: float) -> np.ndarray:
  """`points` (k, 2) scaled by `size` about their centre, whose x (distance from the
  midline x = 0) is scaled by `spacing`."""
  c = points.mean(axis=0)
  return c * [spacing, 1.0] + (points - c) * size


def real_proportions_displacement(mean: np.ndarray) -> np.ndarray:
  """Displacements (68, 3) that give the landmarks `mean` (68, 3) the eye, nose and
  brow proportions of photographed faces and, last, the `OUTLINE_SHIFT` of their
  labels (the module constants above), in mean-face units; the depth changes only
  along the nose (`NOSE_PROTRUSION`, `NOSE_BASE_PROTRUSION`)."""
  target = mean.copy()
  for eye in EYES:
    target[eye, :2] = _resized_and_moved_in(mean[eye, :2], EYE_SIZE, EYE_SPACING)
  eye_line = float(mean[np.concatenate(EYES), 1].mean())
  target[:, 1] += (LOWER_FACE_STRETCH - 1.0) * np.maximum(target[:, 1] - eye_line, 0.0)
  # The base moves and narrows whole; the ridge points spread from the root (27)
  # so that the tip sits near the base, as in frontal photographs.
  target[NOSE_BASE, 1] += NOSE_DROP
  along = (mean[NOSE_RIDGE, 1] - mean[27, 1]) / (mean[33, 1] - mean[27, 1])
  along *= NOSE_TIP_AT / along[-1]
  target[NOSE_RIDGE, 1] = target[27, 1] + along * (target[33, 1] - target[27, 1])
  target[NOSE_BASE, 0] = mean[33, 0] + (mean[NOSE_BASE, 0] - mean[33, 0]) * NOSE_WIDTH
  # The ridge comes forward in proportion to its distance from the root.
  target[NOSE_RIDGE, 2] -= NOSE_PROTRUSION * along / along[-1]
  target[NOSE_BASE, 2] -= NOSE_BASE_PROTRUSION * np.array([0.5, 1.0, 1.0, 1.0, 0.5])
  inter_ocular = float(np.linalg.norm(target[45, :2] - target[36, :2]))
  arch = BROW_ARCH * inter_ocular * np.linspace(-1.0, 1.0, 5) ** 2
  for brow in BROWS:
    target[brow, :2] = _resized_and_moved_in(mean[brow, :2], BROW_LENGTH, BROW_SPACING)
    target[brow, 1] += arch
  mirror = mirror_lib.builtin_permutation(NUM_LANDMARKS)
  outward = np.sign(target[:, 0] - target[27, 0])
  for point, (out, down) in OUTLINE_SHIFT.items():
    for k in {point, int(mirror[point])}:
      target[k, 0] += outward[k] * out * inter_ocular
      target[k, 1] += down * inter_ocular
  return target - mean


def sample_deformation(rng: np.random.Generator, cfg: RenderConfig,
                       mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
  """Draws an identity and an expression for the landmarks `mean` (68, 3).

  Returns (landmark displacements (68, 3), per-axis scale of the whole head (3,),
  expression amounts {mouth_open, smile, closing (per eye), grin (bool)}). All zero / ones when
  `cfg.identity_scale` and `cfg.expression_scale` are 0, except that with
  `cfg.real_proportions` the displacements include `real_proportions_displacement`.
  """
  k, e = cfg.identity_scale, cfg.expression_scale
  offset = (real_proportions_displacement(mean) if cfg.real_proportions
            else np.zeros_like(mean))
  mean = mean + offset  # Identity and expression vary the calibrated face.
  d = np.zeros_like(mean)
  x, y = mean[:, 0], mean[:, 1]
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
  cheek_raise = 0.0
  if cfg.grin_prob > 0 and rng.random() < cfg.grin_prob:
    smile, mouth_open = e * rng.uniform(0.6, 1.0), e * rng.uniform(0.25, 0.7)
    cheek_raise = smile
  apply_expression(d, mean, mouth_open, smile, closing, brow_raise)
  if cheek_raise:
    # The cheeks push the lower lids up by up to a quarter of the eye's opening.
    for eye in EYES:
      p = mean[eye] + d[eye]
      for up, lo in ((1, 5), (2, 4)):
        d[eye[lo]] += 0.25 * cheek_raise * (p[up] - p[lo])
  info.update(mouth_open=mouth_open, smile=smile, closing=closing, grin=bool(cheek_raise))
  return d + offset, axis_scale, info


def apply_expression(d: np.ndarray, mean: np.ndarray, mouth_open: float, smile: float,
                     closing: tuple[float, float] | list[float], brow_raise: float) -> np.ndarray:
  """Adds an expression to the landmark displacements `d` (68, 3) in place; returns d.

  mean: (68, 3) the undeformed landmarks. Amounts (0: none): mouth_open and smile in
  [0, 1], closing (per eye, 0 open to 1 shut) and brow_raise in [-0.6, 1] (< 0: frown).
  The eye closing acts on the eyes as already displaced by `d` (identity).
  """
  x, y = mean[:, 0], mean[:, 1]
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
  return d


# Lip surfaces between the outer and inner lip chains (the face mesh leaves the outer
# lip polygon open): upper lip 48-54 over 60-64, lower lip 54-48 over 64-60.
UPPER_LIP_TRIANGLES = np.array([
    [48, 49, 60], [49, 61, 60], [49, 50, 61], [50, 62, 61], [50, 51, 62], [51, 52, 62],
    [52, 63, 62], [52, 53, 63], [53, 64, 63], [53, 54, 64]])
LOWER_LIP_TRIANGLES = np.array([
    [54, 55, 64], [55, 65, 64], [55, 56, 65], [56, 66, 65], [56, 57, 66], [57, 58, 66],
    [58, 67, 66], [58, 59, 67], [59, 60, 67], [59, 48, 60]])


@functools.cache
def lip_surface_triangles() -> np.ndarray:
  """`UPPER_LIP_TRIANGLES` and `LOWER_LIP_TRIANGLES`, wound like the face mesh (-z)."""
  v = template().vertices.copy()
  # The inner chain is flat at rest; a little opening makes the winding well defined.
  v[[61, 62, 63], 1] -= 0.01
  v[[65, 66, 67], 1] += 0.01
  tri = np.concatenate([UPPER_LIP_TRIANGLES, LOWER_LIP_TRIANGLES])
  n = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
  tri = np.where((n[:, 2] > 0)[:, None], tri[:, ::-1], tri)
  tri.setflags(write=False)
  return tri


def face_normals(vertices: np.ndarray) -> np.ndarray:
  """Unit vertex normals (V, 3) of the deformed face mesh and lips (area-weighted);
  zero for vertices on neither (the photo style's smooth surface uses these)."""
  tri = np.concatenate([template().triangles, lip_surface_triangles()])
  n = np.cross(vertices[tri[:, 1]] - vertices[tri[:, 0]], vertices[tri[:, 2]] - vertices[tri[:, 0]])
  vn = np.zeros_like(vertices)
  for k in range(3):
    np.add.at(vn, tri[:, k], n)
  return vn / np.maximum(np.linalg.norm(vn, axis=-1, keepdims=True), 1e-12)


def curved_midpoint(pa: np.ndarray, pb: np.ndarray, na: np.ndarray, nb: np.ndarray) -> np.ndarray:
  """The midpoint (..., 3) of edge a-b on the surface its end normals imply: the middle
  of the cubic whose end tangents lie in the tangent planes (a PN-triangle edge)."""
  d = pb - pa
  wa = np.sum(d * na, axis=-1, keepdims=True)
  wb = -np.sum(d * nb, axis=-1, keepdims=True)
  return 0.5 * (pa + pb) - (wa * na + wb * nb) / 8.0


def curved_surface_points(vertices: np.ndarray, normals: np.ndarray, idx: np.ndarray,
                          w: np.ndarray) -> np.ndarray:
  """Points (..., 3) of the once-subdivided curved surface at barycentrics `w` (..., 3)
  of the triangles `idx` (..., 3): each triangle is split in four at its
  `curved_midpoint`s and the point is interpolated linearly in its quarter."""
  a, b, c = (vertices[idx[..., k]] for k in range(3))
  na, nb, nc = (normals[idx[..., k]] for k in range(3))
  mab, mbc, mca = (curved_midpoint(a, b, na, nb), curved_midpoint(b, c, nb, nc),
                   curved_midpoint(c, a, nc, na))
  l0, l1, l2 = (w[..., k:k + 1] for k in range(3))
  c0, c1, c2 = l0 >= 0.5, l1 >= 0.5, l2 >= 0.5
  centre = ~(c0 | c1 | c2)
  z = np.zeros_like(l0)
  wa = np.where(c0, 2 * l0 - 1, z)
  wb = np.where(c1, 2 * l1 - 1, z)
  wc = np.where(c2, 2 * l2 - 1, z)
  wab = np.where(c0, 2 * l1, np.where(c1, 2 * l0, np.where(centre, 1 - 2 * l2, z)))
  wbc = np.where(c1, 2 * l2, np.where(c2, 2 * l1, np.where(centre, 1 - 2 * l0, z)))
  wca = np.where(c0, 2 * l2, np.where(c2, 2 * l0, np.where(centre, 1 - 2 * l1, z)))
  return wa * a + wb * b + wc * c + wab * mab + wbc * mbc + wca * mca


@functools.cache
def jaw_rows(samples: int = 14, reach: float = 0.65) -> tuple[np.ndarray, np.ndarray]:
  """Surface points on each jaw point's horizontal row, as template barycentrics.

  Row j runs in the frontal (x, y) plane of the template from jaw point j toward the
  midline x = 0 at the same height, over the fraction `reach` of the way (so that it
  stays on the cheek and never reaches the nose). Each sample is a point of the
  triangulated face surface, so it follows any deformation of the vertices.

  Returns:
    (vertex indices int (17, samples, 3), weights float (17, samples, 3)): the row
    points of a deformed head are `sum_k weights[..., k] * vertices[indices[..., k]]`.
    Sample 0 is the jaw point itself; samples off the surface repeat the previous one.
  """
  import matplotlib.tri  # pylint: disable=g-import-not-at-top

  v = template().vertices
  used = np.array([i for i in range(len(v)) if not 60 <= i < 68])
  triang = matplotlib.tri.Triangulation(v[used, 0], v[used, 1])
  finder = triang.get_trifinder()
  idx = np.zeros((len(JAW), samples, 3), np.int64)
  w = np.zeros((len(JAW), samples, 3))
  t = np.linspace(0.0, reach, samples)
  for j in JAW:
    idx[j, 0], w[j, 0] = j, [1.0, 0.0, 0.0]
    for s in range(1, samples):
      x, y = v[j, 0] * (1.0 - t[s]), v[j, 1]
      k = int(finder(x, y))
      if k < 0:
        idx[j, s], w[j, s] = idx[j, s - 1], w[j, s - 1]
        continue
      corners = used[triang.triangles[k]]
      a, b, c = v[corners, :2]
      m = np.array([[b[0] - a[0], c[0] - a[0]], [b[1] - a[1], c[1] - a[1]]])
      l1, l2 = np.linalg.solve(m, [x - a[0], y - a[1]])
      idx[j, s], w[j, s] = corners, [1.0 - l1 - l2, l1, l2]
  idx.setflags(write=False)
  w.setflags(write=False)
  return idx, w
