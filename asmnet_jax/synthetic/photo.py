"""The "photo" style: a per-pixel shaded 3D head that looks like a photograph.

Same scene as the cartoon style (`render.sample_scene`: shape, pose, camera, labels),
drawn differently:

  geometry   the face mesh, lips, eyes and mouth interior, skull (with hair), ears,
             neck, torso and long hair, all as triangles in the camera frame.
  raster     `raster.rasterize`: a z-buffer over the supersampled canvas, with the
             cartoon's layers (face over skull over neck over torso) as priorities.
  shading    per pixel: interpolated smooth normals, a key light from a random
             direction (flash, soft or hard side light) with wrapped Lambert diffuse,
             a fill light, hemispheric ambient, Blinn-Phong specular (stronger on the
             forehead and nose), vertex ambient occlusion and a screen-space crease
             darkening by depth difference (under brows, beside the nose, lips).
  materials  skin with a continuous tone and multi-scale texture (blotches, pores,
             redness), hair with strands, eyes (sclera, iris with gaze, pupil, lid
             shadow, catch light from the specular of the eyeball), lips, mouth
             interior and teeth, facial hair, masks.
  decals     brows as hair strokes, lash lines, nostrils, the line between the lips,
             drawn with PIL into coverage masks and lit by the shading underneath;
             occluders (glasses, hands, objects) from the cartoon style on top.
  output     composited at output resolution over `backgrounds.natural_background`,
             then `camera.apply_camera_effects` (exposure, white balance, blur, noise,
             low resolution, JPEG).

Randomness: every draw comes from `scene.rng` after the scene's own draws, so the
labels are sampled by the same code as in the cartoon style.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from asmnet_jax.synthetic import draw as dr
from asmnet_jax.synthetic import raster
from asmnet_jax.synthetic import render as rd
from asmnet_jax.synthetic import shape as sh

N = sh.NUM_LANDMARKS

# Materials of triangles.
FACE, SCALP, EYE, LIP, MOUTH, NECK, EAR, SHIRT, SHEET, UNDER, HAT = range(11)
# Layers (higher hides lower whatever the depth; z-buffer within a layer). The shirt
# covers the base of the neck (a collar) and hides where the neck cylinder ends.
_L_BODY, _L_NECK, _L_SHIRT, _L_SKULL, _L_EAR, _L_FACE, _L_HAT = range(7)

_SCLERA = np.array([0.9, 0.86, 0.82])
_MOUTH = np.array([0.3, 0.08, 0.08])
_TEETH = np.array([0.88, 0.84, 0.74])
_MASKS = np.array([[0.72, 0.82, 0.92], [0.93, 0.93, 0.93], [0.1, 0.1, 0.12],
                   [0.4, 0.58, 0.78], [0.85, 0.75, 0.7]])
# Skin tone anchors along one "melanin" axis, light to dark (linear RGB albedo-ish).
_TONE_T = np.array([0.0, 0.3, 0.6, 0.8, 1.0])
_TONE = np.array([[0.96, 0.80, 0.70], [0.88, 0.66, 0.52], [0.70, 0.48, 0.34],
                  [0.50, 0.32, 0.22], [0.30, 0.19, 0.13]])


@functools.cache
def _noise_tiles() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Fixed periodic (256, 256) float32 unit-variance noise: white, fine, coarse."""
  g = np.random.default_rng(20261202)
  f = np.fft.fftfreq(256)
  f2 = f[:, None] ** 2 + f[None, :] ** 2

  def smooth(sigma):
    white = g.standard_normal((256, 256))
    r = np.real(np.fft.ifft2(np.fft.fft2(white) * np.exp(-2.0 * (math.pi * sigma) ** 2 * f2)))
    return ((r - r.mean()) / r.std()).astype(np.float32)

  return g.standard_normal((256, 256)).astype(np.float32), smooth(1.2), smooth(5.0)


def _lookup(tile: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Nearest-neighbour lookup of a periodic 256 x 256 tile at real coordinates."""
  return tile[np.floor(v).astype(np.int64) & 255, np.floor(u).astype(np.int64) & 255]


def _gauss(p: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
  d2 = (p[:, 0] - centre[0]) ** 2 + (p[:, 1] - centre[1]) ** 2
  return np.exp(d2 * (-0.5 / sigma ** 2))


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
  """Mean over a (2r + 1)^2 window with edge padding, via cumulative sums."""
  p = np.pad(a, r, mode="edge")
  c = np.cumsum(np.cumsum(p, axis=0), axis=1)
  c = np.pad(c, ((1, 0), (1, 0)))
  k = 2 * r + 1
  s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
  return s / (k * k)


def _blur121(a: np.ndarray) -> np.ndarray:
  """[1, 2, 1] x [1, 2, 1] / 16 filter of (H, W, C), edges replicated."""
  p = np.pad(a, ((1, 1), (1, 1), (0, 0)), mode="edge")
  p = 0.25 * (p[:-2] + p[2:]) + 0.5 * p[1:-1]
  return 0.25 * (p[:, :-2] + p[:, 2:]) + 0.5 * p[:, 1:-1]


def _smooth_edges(fg: np.ndarray, alpha: np.ndarray, depth: np.ndarray,
                  layer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Cheap anti-aliasing of a 1x render: the premultiplied colour (H, W, 3) and
  coverage (H, W, 1) are softened by a 3 x 3 filter only where the coverage, the
  layer or the depth jumps (silhouettes, the nose against the cheek), so edges stop
  being staircases while the shading and textures inside keep their detail."""
  d = np.nan_to_num(depth, nan=1e6)
  edge = np.zeros(layer.shape, bool)
  for axis in (0, 1):
    a0 = [slice(None)] * 2
    a1 = [slice(None)] * 2
    a0[axis], a1[axis] = slice(None, -1), slice(1, None)
    a0, a1 = tuple(a0), tuple(a1)
    jump = ((np.abs(alpha[..., 0][a0] - alpha[..., 0][a1]) > 0.1) | (layer[a0] != layer[a1])
            | (np.abs(d[a0] - d[a1]) > 0.08))
    edge[a0] |= jump
    edge[a1] |= jump
  both = np.concatenate([fg, alpha], axis=-1)
  soft = np.where(edge[..., None], _blur121(both), both)
  return soft[..., :3], soft[..., 3:]


def _subdivide(p: np.ndarray, n: np.ndarray, ao: np.ndarray, tris: list[np.ndarray]):
  """Splits every triangle in four at its edge midpoints, moved onto the curved
  surface that the vertex normals imply (the midpoint of a PN-triangle edge).

  Args:
    p, n, ao: (V, 3) positions, (V, 3) unit normals, (V,) occlusion.
    tris: lists of (T_i, 3) triangles sharing the vertices (a shared edge gets one
      midpoint, so parts meet without cracks).

  Returns:
    (positions (V + E, 3), normals, occlusion (V + E,), [(4 T_i, 3) triangles]); the
    original vertices keep their indices and positions.
  """
  sizes = [len(t) for t in tris]
  allt = np.concatenate(tris).astype(np.int64)
  edges = np.concatenate([allt[:, [0, 1]], allt[:, [1, 2]], allt[:, [2, 0]]])
  edges.sort(axis=1)
  big = len(p) + 1
  uniq, inv = np.unique(edges[:, 0] * big + edges[:, 1], return_inverse=True)
  a, b = uniq // big, uniq % big
  mid = sh.curved_midpoint(p[a], p[b], n[a], n[b])
  nm = n[a] + n[b]
  nm /= np.maximum(np.linalg.norm(nm, axis=-1, keepdims=True), 1e-12)
  t = len(allt)
  m01, m12, m20 = (len(p) + inv.reshape(-1)[k * t:(k + 1) * t] for k in range(3))
  i0, i1, i2 = allt.T
  out = np.concatenate([np.stack([i0, m01, m20], 1), np.stack([m01, i1, m12], 1),
                        np.stack([m20, m12, i2], 1), np.stack([m01, m12, m20], 1)])
  # Back into the parts: row j of part k is at offsets[k] + j in each quarter.
  offsets = np.cumsum([0] + sizes)
  parts = [out[np.concatenate([q * t + np.arange(offsets[k], offsets[k + 1]) for q in range(4)])]
           for k in range(len(tris))]
  return (np.concatenate([p, mid]), np.concatenate([n, nm]),
          np.concatenate([ao, 0.5 * (ao[a] + ao[b])]), parts)


def _wrapped_grid_triangles(rows: int, cols: int) -> np.ndarray:
  """(2 (rows - 1) cols, 3) vertex indices of a rows x cols grid (row-major) whose
  columns wrap around, as a sphere's latitude-longitude grid does."""
  idx = np.arange(rows * cols).reshape(rows, cols)
  jn = np.roll(np.arange(cols), -1)
  a, b, c, d = idx[:-1], idx[:-1, jn], idx[1:, jn], idx[1:]
  return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                         np.stack([a, c, d], -1).reshape(-1, 3)])


@dataclasses.dataclass
class PhotoLook:
  """Materials and lights of one photo-style face (colours RGB in [0, 1])."""
  skin: np.ndarray
  hair: np.ndarray
  brow: np.ndarray
  iris: np.ndarray
  lip: np.ndarray
  shirt: np.ndarray
  key: np.ndarray  # (3,) unit, from the surface toward the key light, camera frame.
  key_i: float
  fill: np.ndarray
  fill_i: float
  ambient: float
  wrap: float  # Wrapped-Lambert softness (skin scatters light past the terminator).
  spec: float
  shininess: float
  tint: np.ndarray  # (3,) key-light colour.
  hair_style: str
  hairline: float
  hair_volume: float
  blotch: float
  pore: float
  redness: float
  beard: str  # none | stubble | moustache | beard
  beard_density: float
  offsets: np.ndarray  # (8,) texture offsets.
  crease: float  # Strength of the screen-space crease darkening.

  hair_y = rd.Look.hair_y

  @classmethod
  def sample(cls, rng: np.random.Generator) -> PhotoLook:
    t = rng.uniform(0.0, 1.0)
    skin = np.array([np.interp(t, _TONE_T, _TONE[:, c]) for c in range(3)])
    skin = np.clip(skin * rng.uniform(0.93, 1.05) * (1.0 + rng.normal(0.0, 0.025, 3)), 0, 1)
    hair = rd._HAIR[rng.integers(len(rd._HAIR))] * rng.uniform(0.7, 1.1)  # pylint: disable=protected-access
    if rng.random() < 0.15:  # Grey / white.
      hair = np.full(3, rng.uniform(0.35, 0.8))
    brow = hair if dr.luma(hair) < 0.6 * dr.luma(skin) else skin * rng.uniform(0.2, 0.4)
    iris = rd._IRIS[rng.integers(len(rd._IRIS))] * rng.uniform(0.8, 1.2)  # pylint: disable=protected-access
    lip = np.clip(skin * np.array([0.92, 0.6, 0.62]) * rng.uniform(0.7, 0.95), 0, 1)
    if rng.random() < 0.15:  # Lipstick.
      lip = np.array([rng.uniform(0.45, 0.8), rng.uniform(0.05, 0.25), rng.uniform(0.1, 0.3)])
    shirt = rng.uniform(0.05, 0.9, 3) * rng.uniform(0.3, 1.0)
    mode = rng.random()
    if mode < 0.2:  # On-camera flash: frontal, flat.
      key = np.array([rng.normal(0, 0.12), rng.normal(-0.1, 0.12), -1.0])
      ambient, wrap = rng.uniform(0.15, 0.35), rng.uniform(0.0, 0.2)
    elif mode < 0.6:  # Soft, from the front-above.
      key = np.array([rng.uniform(-0.9, 0.9), rng.uniform(-1.0, 0.2), -1.0])
      ambient, wrap = rng.uniform(0.3, 0.55), rng.uniform(0.2, 0.5)
    else:  # Hard side light.
      key = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 2.5), rng.uniform(-1.2, 0.4),
                      -rng.uniform(0.1, 1.0)])
      ambient, wrap = rng.uniform(0.12, 0.35), rng.uniform(0.0, 0.3)
    key /= np.linalg.norm(key)
    fill = np.array([-key[0] + rng.normal(0, 0.3), rng.uniform(-0.5, 0.3), -1.0])
    fill /= np.linalg.norm(fill)
    key_i = rng.uniform(0.85, 1.15) * (1.15 - ambient)
    warm = rng.uniform(0.0, 1.0)
    tint = (np.array([1.0, 1.0 - 0.06 * warm, 1.0 - 0.15 * warm]) if rng.random() < 0.7
            else np.array([1.0 - 0.1 * warm, 1.0 - 0.03 * warm, 1.0]))
    style = str(rng.choice(["short", "long", "bald", "short", "long", "short"]))
    beard_kind = str(rng.choice(["none", "none", "none", "none", "stubble", "stubble",
                                 "moustache", "beard"]))
    return cls(
        skin=skin, hair=hair, brow=brow, iris=iris, lip=lip, shirt=shirt, key=key,
        key_i=key_i, fill=fill, fill_i=rng.uniform(0.0, 0.3), ambient=ambient, wrap=wrap,
        spec=rng.uniform(0.03, 0.3), shininess=rng.uniform(8.0, 40.0), tint=tint,
        hair_style=style, hairline=rng.uniform(-0.12, 0.12),
        hair_volume=rng.uniform(1.02, 1.1), blotch=rng.uniform(0.02, 0.07),
        pore=rng.uniform(0.005, 0.03), redness=rng.uniform(0.0, 1.0), beard=beard_kind,
        beard_density=rng.uniform(0.3, 0.9), offsets=rng.uniform(0, 256, 8),
        crease=rng.uniform(2.0, 5.0))


@dataclasses.dataclass
class _Mesh:
  """Triangles in the camera frame, with per-vertex attributes, being assembled."""
  pos: list = dataclasses.field(default_factory=list)  # (V, 3) camera frame.
  nrm: list = dataclasses.field(default_factory=list)  # (V, 3) unit, camera frame.
  tex: list = dataclasses.field(default_factory=list)  # (V, 3) texture coordinates.
  ao: list = dataclasses.field(default_factory=list)  # (V,)
  tri: list = dataclasses.field(default_factory=list)
  mat: list = dataclasses.field(default_factory=list)
  layer: list = dataclasses.field(default_factory=list)
  count: int = 0

  def add(self, pos, nrm, tex, ao, tri, mat: int, layer: int, cull: bool = True) -> None:
    """Adds a part; with `cull`, drops triangles whose mean vertex normal faces away."""
    tri = np.asarray(tri, np.int64)
    if cull:
      n = nrm[tri].sum(axis=1)
      keep = np.einsum("ij,ij->i", n, pos[tri].mean(axis=1)) < 0
      tri = tri[keep]
    self.pos.append(pos)
    self.nrm.append(nrm)
    self.tex.append(tex)
    self.ao.append(np.broadcast_to(np.asarray(ao, np.float64), (len(pos),)))
    self.tri.append(tri + self.count)
    self.mat.append(np.full(len(tri), mat))
    self.layer.append(np.full(len(tri), layer))
    self.count += len(pos)

  def arrays(self):
    return (np.concatenate(self.pos), np.concatenate(self.nrm), np.concatenate(self.tex),
            np.concatenate(self.ao), np.concatenate(self.tri), np.concatenate(self.mat),
            np.concatenate(self.layer))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  # Imported here: they need cv2, which the cartoon style (the default) does not.
  from asmnet_jax.synthetic import backgrounds  # pylint: disable=g-import-not-at-top
  return backgrounds.natural_background(rng, height, width)


def _camera(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, bytes]:
  from asmnet_jax.synthetic import camera  # pylint: disable=g-import-not-at-top
  return camera.apply_camera_effects(rng, image)


class _PhotoFace:
  """One photo-style face being rendered."""

  def __init__(self, scene: rd.Scene):
    self.scene, self.rng, self.cfg = scene, scene.rng, scene.cfg
    self.ss = scene.cfg.supersample
    self.cam = dr.canvas_camera(scene.camera, self.ss)
    self.rot = self.cam.rot
    self.v = scene.vertices
    self.vc = self.cam.to_camera(self.v)
    self.v2 = self.cam.project_camera(self.vc)
    self.px = self.cam.scale / 100.0  # Canvas pixels per 0.01 face units.
    self.look = PhotoLook.sample(self.rng)
    self.occluder = None
    if self.rng.random() < self.cfg.occluder_prob:
      self.occluder = str(self.rng.choice(["glasses", "hand", "mask", "object", "glasses",
                                           "hat"]))
    if self.occluder == "hat":
      self.hat_colour = self.rng.uniform(0.05, 0.9, 3) * self.rng.uniform(0.3, 1.0)
      self.hat_edge = self.rng.uniform(0.1, 0.35)  # Above the brows, face units.
    self.masked = self.occluder == "mask"
    self.side = self.scene.size * self.ss
    self.env = np.ones(3)  # Ambient colour (set from the backdrop by `render`).
    # Where the mouth is open enough to show its inside.
    self.gap = float(np.linalg.norm(self.v[[61, 62, 63]] - self.v[[67, 66, 65]], axis=1).mean())

  def head_to_camera(self, p: np.ndarray) -> np.ndarray:
    return self.cam.to_camera(p * self.scene.axis_scale)

  # Geometry.

  def geometry(self) -> _Mesh:
    mesh = _Mesh()
    self._face(mesh)
    self._skull(mesh)
    self._ears(mesh)
    self._body(mesh)
    if self.occluder == "hat":
      self._hat(mesh)
    return mesh

  def _hat(self, mesh: _Mesh) -> None:
    """A knitted cap: the top of an ellipsoid a little larger than the hair, down to
    a level edge above the brows, drawn over everything (it is outside the head)."""
    axes = sh.SKULL_AXES * self.scene.axis_scale * (self.look.hair_volume + 0.05)
    centre = sh.SKULL_CENTRE * self.scene.axis_scale
    edge_y = float(self.v[17:27, 1].min()) - self.hat_edge
    theta_max = math.acos(np.clip((centre[1] - edge_y) / axes[1], -1.0, 1.0))
    theta = np.linspace(0.0, theta_max, 9)
    phi = np.linspace(-math.pi, math.pi, 24, endpoint=False)
    t, f = np.meshgrid(theta, phi, indexing="ij")
    dirs = np.stack([np.sin(t) * np.sin(f), -np.cos(t), -np.sin(t) * np.cos(f)], axis=-1)
    pts = (centre + dirs * axes).reshape(-1, 3)
    normals = (dirs / axes).reshape(-1, 3)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    tri = _wrapped_grid_triangles(*dirs.shape[:2])
    mesh.add(self.cam.to_camera(pts), normals @ self.rot.T, pts, 1.0, tri, HAT, _L_HAT)

  def _face(self, mesh: _Mesh) -> None:
    """Face skin, lips, mouth inside, eye openings and the strip under the jaw: one
    vertex set (shared edges, so no cracks), subdivided once into a curved surface."""
    tpl, v = sh.template(), self.v
    lips = sh.lip_surface_triangles()
    skin_tri = np.concatenate([tpl.triangles, tpl.lip_triangles]) if self.masked else tpl.triangles
    vn = sh.face_normals(v)  # Smooth normals (face and lips; the eye holes stay open).
    pts, nrm, ao = [v], [vn], [tpl.vertex_ao]
    count = len(v)

    def extra(p, nn, a):
      nonlocal count
      pts.append(np.atleast_2d(p))
      nrm.append(np.broadcast_to(nn, pts[-1].shape))
      ao.append(np.broadcast_to(np.asarray(a, np.float64), pts[-1].shape[:1]))
      count += len(pts[-1])
      return count - len(pts[-1])

    parts = [(skin_tri, FACE)]
    if not self.masked:
      parts.append((lips, LIP))
      # The mouth's inside: a fan from the inner lip chain to a point behind it.
      ring = np.arange(60, 68)
      back = extra(v[ring].mean(axis=0) + [0.0, 0.0, 0.12], vn[ring].mean(axis=0), 0.4)
      parts.append((np.stack([ring, np.roll(ring, -1), np.full(8, back)], axis=1), MOUTH))
    # Eyes: a fan over each lid opening (shaded as an eyeball per pixel).
    for eye in sh.EYES:
      c = extra(v[eye].mean(axis=0), vn[eye].mean(axis=0), 1.0)
      parts.append((np.stack([eye, np.roll(eye, -1), np.full(6, c)], axis=1), EYE))
    # Under the jaw, back to the throat (the cartoon's strip, reaching up to below the
    # ears so that no notch opens between the jaw angle and the neck).
    jaw = np.arange(1, 16)
    under = v[jaw] * [0.62, 1.0, 1.0] + [0.0, 0.1, 0.0]
    under[:, 1] = np.maximum(under[:, 1], 0.45)
    under[:, 2] = np.maximum(v[jaw, 2], -0.1) + 0.32
    u0 = extra(under, np.array([0.0, 1.0, 0.3]) / math.hypot(1.0, 0.3), 0.6)  # Facing down.
    ui = u0 + np.arange(len(jaw))
    parts.append((np.concatenate([np.stack([jaw[:-1], jaw[1:], ui[1:]], 1),
                                  np.stack([jaw[:-1], ui[1:], ui[:-1]], 1)]), UNDER))
    p, nn, a = np.concatenate(pts), np.concatenate(nrm), np.concatenate(ao)
    p, nn, a, tris = _subdivide(p, nn, a, [t for t, _ in parts])
    pc, nc = self.cam.to_camera(p), nn @ self.rot.T
    for t, (_, mat) in zip(tris, parts):
      mesh.add(pc, nc, p, a, t, mat, _L_FACE, cull=mat not in (EYE, MOUTH))

  def _skull(self, mesh: _Mesh) -> None:
    look = self.look
    dirs = sh.skull_grid()
    axes = sh.SKULL_AXES * self.scene.axis_scale
    centre = sh.SKULL_CENTRE * self.scene.axis_scale
    pts = centre + dirs * axes
    f_hair = pts[..., 1] - look.hair_y(rd._azimuth(pts))  # pylint: disable=protected-access
    puff = 1.0 + (look.hair_volume - 1.0) * np.clip(-f_hair / 0.15, 0.0, 1.0)
    pts = centre + (pts - centre) * puff[..., None]
    normals = dirs / axes
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    tri = _wrapped_grid_triangles(*dirs.shape[:2])
    flat_pts = pts.reshape(-1, 3)
    mesh.add(self.cam.to_camera(flat_pts), normals.reshape(-1, 3) @ self.rot.T, flat_pts, 1.0,
             tri, SCALP, _L_SKULL)

  def _ears(self, mesh: _Mesh) -> None:
    t = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    for side in (-1.0, 1.0):
      ear = np.stack([side * (0.66 + 0.05 * np.cos(t)), -0.15 - 0.17 * np.sin(t),
                      0.43 + 0.09 * np.cos(t) + 0.02 * np.sin(t)], axis=1)
      ear = np.concatenate([ear, ear.mean(axis=0, keepdims=True)])
      normal = np.array([side, 0.0, -0.6]) / math.hypot(1.0, 0.6)
      ec = self.head_to_camera(ear)
      fan = np.stack([np.arange(12), np.roll(np.arange(12), -1), np.full(12, 12)], axis=1)
      mesh.add(ec, np.broadcast_to(self.rot @ normal, ec.shape), ear, np.r_[np.ones(12), 0.45],
               fan, EAR, _L_EAR)

  def _body(self, mesh: _Mesh) -> None:
    look, rng = self.look, self.rng
    body_rot, neck_rot, body_to_camera = rd.body_frame(self.scene, self.cam)
    outline = rd.torso_outline(rng)
    torso = np.concatenate([outline, np.full((len(outline), 1), 0.5)], axis=1)
    torso = np.concatenate([torso, [[0.0, 1.5, 0.4]]])
    tn = np.stack([0.5 * np.tanh(torso[:, 0]), np.full(len(torso), -0.4), -np.ones(len(torso))], 1)
    tn /= np.linalg.norm(tn, axis=-1, keepdims=True)
    m = len(outline)
    fan = np.stack([np.arange(m), np.roll(np.arange(m), -1), np.full(m, m)], axis=1)
    mesh.add(body_to_camera(torso, body_rot), tn @ body_rot.T, torso, 1.0, fan, SHIRT, _L_SHIRT,
             cull=False)
    if look.hair_style == "long":
      length = rng.uniform(0.6, 1.4)
      a = np.linspace(0, math.pi, 12)
      sheet = np.stack([0.78 * np.cos(a) * look.hair_volume, -0.5 + length * np.sin(a) ** 0.3,
                        np.full_like(a, 0.55)], axis=1)
      sheet = np.concatenate([sheet, [[-0.6, -0.9, 0.6], [0.6, -0.9, 0.6], [0.0, -0.2, 0.6]]])
      m = len(sheet) - 1
      fan = np.stack([np.arange(m), np.roll(np.arange(m), -1), np.full(m, m)], axis=1)
      sc = self.head_to_camera(sheet)
      mesh.add(sc, np.broadcast_to(self.rot @ [0.0, 0.0, -1.0], sc.shape), sheet, 0.7, fan,
               SHEET, _L_BODY, cull=False)
    # Neck: a ring inside the head (moving with it) to a ring in the neck frame.
    a = np.linspace(-math.pi, math.pi, 14, endpoint=False)
    ring_n = np.stack([np.sin(a), np.zeros_like(a), -np.cos(a)], axis=1)
    # Thicker than the cartoon's: a real neck is about 3/4 of the jaw's width.
    ring = ring_n * [rng.uniform(0.38, 0.46), 0.0, 0.38] + [0.0, 0.0, 0.40]
    top = ring + [0.0, 0.2, 0.0]
    bot = ring * [1.12, 1.0, 1.05] + [0.0, 1.6, 0.0]
    pos = np.concatenate([self.head_to_camera(top),
                          body_to_camera(bot * self.scene.axis_scale, neck_rot)])
    nrm = np.concatenate([ring_n @ self.rot.T, ring_n @ neck_rot.T])
    k = len(a)
    i, j = np.arange(k), np.roll(np.arange(k), -1)
    tri = np.concatenate([np.stack([i, j, k + j], 1), np.stack([i, k + j, k + i], 1)])
    mesh.add(pos, nrm, np.concatenate([top, bot]), np.r_[np.full(k, 0.55), np.full(k, 0.95)],
             tri, NECK, _L_NECK)

  # Shading.

  def shade(self, frag: raster.Fragments, mesh_arrays) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray, np.ndarray]:
    """Colours (M, 3) and light (M,) of the fragments; also the depth and layer images."""
    pos, nrm, tex, ao, tri, mat, layer = mesh_arrays
    look, v = self.look, self.v
    attrs = np.concatenate([pos, nrm, tex, ao[:, None]], axis=1)
    f = frag.interpolate(attrs, tri)
    p_cam, n, p, a_occ = f[:, 0:3], f[:, 3:6], f[:, 6:9], f[:, 9]
    m = mat[frag.triangle]
    side = self.side
    # Crease darkening: pixels deeper than their neighbourhood (same layer) are occluded.
    depth_img = np.full(side * side, np.nan, np.float32)
    depth_img[frag.pixel] = frag.depth
    layer_img = np.full(side * side, -1, np.int64)
    layer_img[frag.pixel] = layer[frag.triangle]
    d_img = depth_img.reshape(side, side)
    filled = np.where(np.isnan(d_img), np.float32(np.nanmax(d_img) + 0.3), d_img)
    r = max(1, int(round(4.0 * self.px)))
    blur = _box_blur(filled, r).reshape(-1)[frag.pixel]
    crease = 1.0 - np.clip(look.crease * (frag.depth - blur), 0.0, 0.5)
    # Normals: smooth interpolated; the eyes are spheres behind the lids.
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    eye = m == EYE
    if eye.any():
      right = p[eye, 0] < 0
      centres = np.stack([v[e].mean(axis=0) + [0.0, 0.0, 0.11] for e in sh.EYES])
      ball = np.where(right[:, None], centres[0], centres[1])
      en = (p[eye] - ball) @ self.rot.T
      n[eye] = en / np.maximum(np.linalg.norm(en, axis=-1, keepdims=True), 1e-9)
    view = -p_cam / np.linalg.norm(p_cam, axis=-1, keepdims=True)
    ndl = n @ look.key
    diffuse = np.clip((ndl + look.wrap) / (1.0 + look.wrap), 0.0, 1.0)
    fill = np.clip(n @ look.fill, 0.0, 1.0)
    sky = 0.8 + 0.2 * np.clip(-n[:, 1], -1.0, 1.0)  # Light from above, less from below.
    occl = a_occ * crease
    lit = self._key_shadow(mesh_arrays, p_cam, np.isin(layer[frag.triangle], (_L_NECK, _L_FACE)),
                           ndl)
    diffuse = diffuse * lit
    ambient = look.ambient * sky * occl
    light = ambient + look.key_i * diffuse * (0.4 + 0.6 * occl) + look.fill_i * fill * occl
    h = look.key + view
    h /= np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-9)
    nh = np.clip(np.einsum("ij,ij->i", n, h), 0.0, 1.0)
    albedo, spec_k, shin = self._albedo(m, p, frag)
    spec = look.key_i * spec_k * nh ** shin * (ndl > 0) * occl * lit
    # The ambient light is the surroundings': it takes a little of the backdrop's colour.
    colour = (albedo * ((light - ambient)[:, None] * look.tint + ambient[:, None] * self.env)
              + spec[:, None] * look.tint)
    return colour.astype(np.float32), light.astype(np.float32), d_img, layer_img.reshape(side, side)

  def _key_shadow(self, mesh_arrays, p_cam: np.ndarray, receives: np.ndarray,
                  ndl: np.ndarray) -> np.ndarray:
    """How much key light reaches each fragment (M,) in [0, 1]: a shadow map of the
    face seen from the light (orthographic), 3 x 3 percentage-closer filtered so that
    shadow edges are soft. Only the face casts (nose, brows, lips, chin); the face
    and the neck receive."""
    pos, _, _, _, tri, mat, layer = mesh_arrays
    w = -self.look.key  # The direction the light travels.
    u = np.cross(w, [0.0, 1.0, 0.0])
    if np.linalg.norm(u) < 1e-6:
      u = np.cross(w, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    vv = np.cross(w, u)
    casters = tri[(layer == _L_FACE) & np.isin(mat, (FACE, LIP, UNDER))]
    used = np.unique(casters)
    q = np.stack([pos @ u, pos @ vv], axis=1)
    lo = q[used].min(axis=0) - 0.05
    extent = float((q[used].max(axis=0) + 0.05 - lo).max())
    res = 112
    texel = extent / res
    grid = (q - lo) / texel
    frag = raster.rasterize(grid, pos @ w, casters, np.zeros(len(casters), np.int64), res, res)
    smap = np.full(res * res, np.inf, np.float32)
    smap[frag.pixel] = frag.depth
    smap = smap.reshape(res, res)
    lit = np.ones(len(p_cam), np.float32)
    idx = np.flatnonzero(receives & (ndl > -0.2))
    if len(idx) == 0:
      return lit
    pc = p_cam[idx]
    gx = (pc @ u - lo[0]) / texel - 0.5
    gy = (pc @ vv - lo[1]) / texel - 0.5
    d = pc @ w - (0.03 + 0.08 * (1.0 - np.clip(ndl[idx], 0.0, 1.0)))
    acc = np.zeros(len(idx), np.float32)
    ix0, iy0 = np.round(gx).astype(np.int64), np.round(gy).astype(np.int64)
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        ix, iy = np.clip(ix0 + dx, 0, res - 1), np.clip(iy0 + dy, 0, res - 1)
        acc += smap[iy, ix] >= d
    lit[idx] = acc / 9.0
    return lit

  def _albedo(self, m: np.ndarray, p: np.ndarray, frag) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Per-fragment albedo (M, 3), specular strength (M,) and exponent (M,)."""
    look, v = self.look, self.v
    white, fine, coarse = _noise_tiles()
    o = look.offsets
    albedo = np.empty((len(m), 3), np.float32)
    spec = np.full(len(m), look.spec, np.float32)
    shin = np.full(len(m), look.shininess, np.float32)
    skinlike = np.isin(m, (FACE, SCALP, NECK, EAR, UNDER))
    ps = p[skinlike]
    blotch = _lookup(coarse, ps[:, 0] * 45 + o[0], ps[:, 1] * 45 + o[1])
    mid = _lookup(fine, ps[:, 0] * 160 + o[2], ps[:, 1] * 160 + o[3])
    pore = _lookup(white, ps[:, 0] * 420 + o[4], ps[:, 1] * 420 + o[5])
    cheeks = (_gauss(ps, 0.5 * (v[2] + v[31]), 0.11) + _gauss(ps, 0.5 * (v[14] + v[35]), 0.11)
              + 0.8 * _gauss(ps, v[30], 0.06))
    sk = look.skin * (1.0 + look.blotch * blotch[:, None] * [1.0, 1.15, 1.3])
    sk = sk * (1.0 + 0.5 * look.pore * mid[:, None] + look.pore * pore[:, None])
    sk = sk * (1.0 + 0.35 * look.redness * cheeks[:, None] * [0.1, -0.25, -0.2])
    sk = sk * (1.0 - 0.1 * (_gauss(ps, v[36:42].mean(0), 0.07)
                            + _gauss(ps, v[42:48].mean(0), 0.07)))[:, None]
    tzone = np.clip(_gauss(ps, v[27:31].mean(0), 0.09) + (ps[:, 1] < v[19, 1] - 0.05), 0, 1)
    spec[skinlike] *= (0.5 + 0.7 * tzone) * (1.0 + 0.3 * mid)
    # Hair above the hairline (on the skull and the forehead), strands along y.
    az = rd._azimuth(ps)  # pylint: disable=protected-access
    edge = ps[:, 1] - look.hair_y(az) + 0.015 * pore
    hair_w = np.clip(0.5 - edge / 0.02, 0.0, 1.0)
    strand = _lookup(white, az * 160 + o[6], ps[:, 1] * 9 + o[7])
    strand2 = _lookup(fine, az * 50 + o[7], ps[:, 1] * 4 + o[6])
    hair = look.hair * (0.75 + 0.12 * strand + 0.15 * strand2)[:, None]
    mk = m[skinlike]
    sk = np.where((mk == NECK)[:, None], sk * 0.93, sk)
    sk = np.where((mk == UNDER)[:, None], sk * 0.9, sk)
    is_head = np.isin(mk, (FACE, SCALP))
    hw = np.where(is_head, hair_w, 0.0)
    # Facial hair: darker textured skin on the lower face.
    if look.beard != "none":
      below_nose = ps[:, 1] - (v[33, 1] + 0.02)
      if look.beard == "moustache":
        region = (below_nose > 0) & (ps[:, 1] < v[51, 1] + 0.01) & (np.abs(ps[:, 0]) < np.abs(
            v[48, 0]) + 0.04)
      else:
        cheek_line = v[33, 1] + 0.03 + 0.5 * np.clip(np.abs(ps[:, 0]) - 0.18, 0, None)
        region = (ps[:, 1] > cheek_line)
      density = look.beard_density * (0.35 if look.beard == "stubble" else 1.0)
      clumps = _lookup(fine, ps[:, 0] * 110 + o[5], ps[:, 1] * 110 + o[4])
      bw = region * (mk == FACE) * np.clip(density * (0.75 + 0.35 * clumps + 0.15 * pore),
                                           0.0, 1.0)
      hw = np.maximum(hw, bw)
      hair = np.where((bw > hw - 1e-6)[:, None] & region[:, None],
                      look.hair * (0.6 + 0.15 * clumps[:, None]), hair)
    out = sk * (1.0 - hw[:, None]) + hair * hw[:, None]
    spec[skinlike] = spec[skinlike] * (1.0 - hw) + 0.15 * hw
    if self.masked:
      # Cloth below a line from the nose bridge, sloping down toward the cheeks.
      under = (np.isin(mk, (FACE, UNDER))
               & (v[29, 1] + 0.02 + 0.16 * np.abs(ps[:, 0]) - ps[:, 1] < 0))
      cloth = _MASKS[self.rng.integers(len(_MASKS))] * (0.92 + 0.05 * mid[:, None])
      out = np.where(under[:, None], cloth, out)
      spec[np.flatnonzero(skinlike)[under]] = 0.02
    albedo[skinlike] = out
    # Eyes.
    eye = m == EYE
    if eye.any():
      albedo[eye], spec[eye], shin[eye] = self._eye_albedo(p[eye])
    lip = m == LIP
    if lip.any():
      pl = p[lip]
      lines = _lookup(white, pl[:, 0] * 260 + o[1], pl[:, 1] * 30 + o[2])
      lower = (pl[:, 1] > np.interp(pl[:, 0], v[60:65, 0], v[60:65, 1]))
      albedo[lip] = look.lip * (1.0 + 0.06 * lines[:, None]) * np.where(lower, 1.0, 0.88)[:, None]
      spec[lip] = np.where(lower, 0.35, 0.15) * (1.0 + 0.4 * lines)
      shin[lip] = 30.0
    mouth = m == MOUTH
    if mouth.any():
      pm = p[mouth]
      top = np.interp(pm[:, 0], v[60:65, 0], v[60:65, 1])
      bot = np.interp(pm[:, 0], v[[60, 67, 66, 65, 64], 0], v[[60, 67, 66, 65, 64], 1])
      teeth_h = 0.035 + 0.02 * look.offsets[0] / 256
      teeth = (pm[:, 1] < top + teeth_h) | (pm[:, 1] > bot - 0.4 * teeth_h)
      teeth &= np.abs(pm[:, 0] - v[[60, 64], 0].mean()) < 0.8 * 0.5 * abs(v[64, 0] - v[60, 0])
      albedo[mouth] = np.where(teeth[:, None], _TEETH, _MOUTH)
      spec[mouth] = np.where(teeth, 0.3, 0.1)
      shin[mouth] = 25.0
    for mat, col in ((SHIRT, look.shirt), (SHEET, look.hair),
                     (HAT, getattr(self, "hat_colour", None))):
      sel = m == mat
      if sel.any():
        q = p[sel]
        if mat == HAT:  # Knit: ribs along the meridians.
          tex = _lookup(white, rd._azimuth(q) * 40 + o[2], q[:, 1] * 25 + o[1])  # pylint: disable=protected-access
          albedo[sel] = col * (0.85 + 0.1 * tex)[:, None]
        elif mat == SHEET:
          tex = _lookup(white, q[:, 0] * 150 + o[3], q[:, 1] * 6 + o[4])
          albedo[sel] = col * (0.7 + 0.12 * tex)[:, None]
        else:
          tex = _lookup(fine, q[:, 0] * 60 + o[5], q[:, 1] * 60 + o[6])
          albedo[sel] = col * (1.0 + 0.06 * tex)[:, None]
        spec[sel] = 0.05
    return albedo, spec, shin

  def _eye_albedo(self, pe: np.ndarray):
    """Sclera, iris (gaze, radial streaks, dark limbus), pupil and lid shadow."""
    look, v = self.look, self.v
    white, fine, _ = _noise_tiles()
    out = np.empty((len(pe), 3), np.float32)
    right = pe[:, 0] < 0
    gaze = self.gaze
    for k, eye in enumerate(sh.EYES):
      sel = right if k == 0 else ~right
      if not sel.any():
        continue
      q = pe[sel]
      pts = v[eye]
      width = np.linalg.norm(pts[3] - pts[0])
      opening = 0.5 * (np.linalg.norm(pts[1] - pts[5]) + np.linalg.norm(pts[2] - pts[4]))
      c = pts.mean(axis=0) + np.array([gaze[0] * width * 0.5, gaze[1] * opening, 0.0])
      r = self.iris_r * width
      dx, dy = q[:, 0] - c[0], q[:, 1] - c[1]
      d = np.hypot(dx, dy) / r
      ang = np.arctan2(dy, dx)
      streak = _lookup(white, ang * 40 + 17 * k, d * 6 + 3)
      iris = look.iris * (0.75 + 0.35 * d.clip(0, 1) ** 0.5 + 0.12 * streak)[:, None]
      iris = iris * np.where(d > 0.85, 0.55, 1.0)[:, None]
      sclera = _SCLERA * (1.0 + 0.04 * _lookup(fine, q[:, 0] * 300, q[:, 1] * 300))[:, None]
      corner = np.clip(np.abs(q[:, 0] - pts[:, 0].mean()) / (0.5 * width), 0.0, 1.0) ** 3
      sclera = sclera * (1.0 - 0.25 * corner[:, None] * [0.6, 1.0, 1.0])
      col = np.where((d < 1.0)[:, None], iris, sclera)
      col = np.where((d < 0.4)[:, None], 0.03, col)
      xs = pts[[0, 1, 2, 3], 0]
      order = np.argsort(xs)
      lid = np.interp(q[:, 0], xs[order], pts[[0, 1, 2, 3], 1][order])
      below = np.clip((q[:, 1] - lid) / max(opening, 1e-3), 0.0, 1.0)
      col = col * (0.5 + 0.5 * np.clip(below / 0.3, 0.0, 1.0))[:, None]
      out[sel] = col
    return out, np.full(len(pe), 0.9, np.float32), np.full(len(pe), 120.0, np.float32)

  # Decals.

  def decals(self, colour: np.ndarray, light: np.ndarray, depth: np.ndarray,
             layer: np.ndarray) -> None:
    """Brow hairs, lashes, nostrils and the lip line, blended into `colour` (H, W, 3)."""
    look, v, cam, rng, px = self.look, self.v, self.cam, self.rng, self.px
    side = self.side

    def visible(points_head: np.ndarray, tol: float = 0.03) -> np.ndarray:
      pc = cam.to_camera(points_head)
      p2 = cam.project_camera(pc)
      ix = np.clip(np.floor(p2[:, 0]).astype(int), 0, side - 1)
      iy = np.clip(np.floor(p2[:, 1]).astype(int), 0, side - 1)
      d = depth[iy, ix]
      return (layer[iy, ix] == _L_FACE) & (pc[:, 2] <= d + tol)

    masks = []
    # Brows: many short strokes in the band under the landmarks, rising at the inner end.
    # With `brows_below_labels` the band starts a quarter of its thickness lower, about
    # the height the strokes rise, so the hairs' tips reach up to the landmarks.
    brow_top, brow_bottom = (0.25, 1.25) if self.cfg.brows_below_labels else (-0.2, 0.8)
    brow_mask = Image.new("L", (side, side))
    draw = ImageDraw.Draw(brow_mask)
    thickness = rng.uniform(0.035, 0.065)
    width = max(1, int(round(0.6 * px)))
    body = int(rng.integers(40, 130))  # The skin seen through the hairs is darker too.
    for k, brow in enumerate(sh.BROWS):
      pts = v[brow] if k == 0 else v[brow[::-1]]  # Outer (tail) to inner.
      thick = thickness * (0.55 + 0.45 * np.linspace(0.0, 1.0, 5))[:, None]
      band = np.concatenate([pts + thick * [0.0, brow_top, 0.0],
                             (pts + thick * [0.0, brow_bottom, 0.0])[::-1]])
      if visible(pts.mean(axis=0, keepdims=True))[0]:
        draw.polygon(dr.flat(cam.project(band - [0.0, 0.0, 0.004])), fill=body)
      count = int(rng.integers(90, 170))
      t = rng.uniform(0.0, 1.0, count)
      s = np.linspace(0.0, 1.0, 5)
      base = np.stack([np.interp(t, s, pts[:, c]) for c in range(3)], axis=1)
      thick = thickness * (0.55 + 0.45 * t)
      base[:, 1] += rng.uniform(brow_top, brow_bottom, count) * thick
      base[:, 2] -= 0.004
      along = pts[0, :2] - pts[-1, :2]  # Inner toward the tail.
      along /= np.linalg.norm(along)
      rise = np.radians(15 + 55 * t ** 2)  # Turned from `along` toward up (-y).
      dx, dy = np.cos(rise) * along[0], np.cos(rise) * along[1] - np.sin(rise)
      length = rng.uniform(0.02, 0.045, count)
      end = base + np.stack([dx * length, dy * length, np.zeros(count)], axis=1)
      ok = visible(0.5 * (base + end))
      a2, b2 = cam.project(base), cam.project(end)
      alpha = (rng.uniform(0.55, 1.0, count) * 255).astype(int)
      for i in np.flatnonzero(ok):
        draw.line([a2[i, 0], a2[i, 1], b2[i, 0], b2[i, 1]], fill=int(alpha[i]), width=width)
    masks.append((brow_mask, look.brow * 0.8))
    # Lashes along the upper lids, a faint line under the lower ones.
    dark = Image.new("L", (side, side))
    draw = ImageDraw.Draw(dark)
    lash_w = max(1, int(round(rng.uniform(0.9, 1.6) * px)))
    for eye in sh.EYES:
      if not visible(v[eye].mean(axis=0, keepdims=True))[0]:
        continue
      e2 = self.v2[eye]
      draw.line(dr.flat(e2[[0, 1, 2, 3]]), fill=220, width=lash_w, joint="curve")
      draw.line(dr.flat(e2[[3, 4, 5, 0]]), fill=70, width=max(1, lash_w // 2), joint="curve")
    masks.append((dark, np.minimum(look.hair, 0.2) * 0.4))
    # Nostrils and the line between the lips.
    shade = Image.new("L", (side, side))
    draw = ImageDraw.Draw(shade)
    if not self.masked:
      for outer, inner in ((31, 32), (35, 34)):
        c = 0.5 * (v[outer] + v[inner]) + [0.0, -0.012, -0.005]
        if not visible(c[None], 0.05)[0]:
          continue
        sgn = np.sign(v[outer, 0])
        normal = self.rot @ np.array([sgn * 0.5, 0.6, -0.6])
        if float(normal @ self.cam.to_camera(c[None])[0]) >= 0:
          continue
        ring = cam.project(dr.circle3d(c, [0.03, 0, 0], [0, 0.01, 0.012], 12))
        draw.polygon(dr.flat(ring), fill=200)
      if visible(v[[62, 66]].mean(axis=0, keepdims=True), 0.05)[0]:
        line_w = max(1, int(round(0.7 * px)))
        draw.line(dr.flat(self.v2[[60, 61, 62, 63, 64]]), fill=170, width=line_w, joint="curve")
    masks.append((shade, look.skin * 0.18))
    flat_light = light.reshape(side, side, 1)
    for mask, col in masks:
      a = np.asarray(mask, np.float32)[..., None] * np.float32(1.0 / 255.0)
      colour *= 1.0 - a
      colour += a * (np.asarray(col, np.float32) * look.tint * flat_light)

  def hair_strands(self, light: np.ndarray, depth: np.ndarray, layer: np.ndarray
                   ) -> Image.Image | None:
    """Strands over the hair (RGBA canvas): short lit strokes running down the skull
    from the crown, which also break up the hair's outline against the background."""
    look, rng, cam = self.look, self.rng, self.cam
    if look.hair_style == "bald":
      return None
    count = int(rng.integers(150, 300))
    theta = np.arccos(rng.uniform(np.cos(0.78 * math.pi), 1.0, count))
    phi = rng.uniform(-math.pi, math.pi, count)
    axes = sh.SKULL_AXES * self.scene.axis_scale
    centre = sh.SKULL_CENTRE * self.scene.axis_scale

    def surface(t, f):
      d = np.stack([np.sin(t) * np.sin(f), -np.cos(t), -np.sin(t) * np.cos(f)], axis=-1)
      return centre + d * axes * look.hair_volume, d

    start, d = surface(theta, phi)
    keep = start[:, 1] - look.hair_y(rd._azimuth(start)) < -0.02  # pylint: disable=protected-access
    length = rng.uniform(0.06, 0.16, count)
    end, _ = surface(theta + length / axes[1], phi + rng.normal(0.0, 0.05, count))
    sc = cam.to_camera(start)
    n = (d / axes) @ self.rot.T
    keep &= np.einsum("ij,ij->i", n, sc) < 0
    a2, b2 = cam.project_camera(sc), cam.project(end)
    side = self.side
    ix = np.clip(np.floor(a2[:, 0]).astype(int), 0, side - 1)
    iy = np.clip(np.floor(a2[:, 1]).astype(int), 0, side - 1)
    keep &= (layer[iy, ix] == _L_SKULL) | (layer[iy, ix] == _L_FACE)
    keep &= sc[:, 2] <= depth[iy, ix] + 0.06
    if not keep.any():
      return None
    lit = light.reshape(side, side)[iy, ix]
    shade = rng.uniform(0.55, 1.35, count)
    cols = np.clip(look.hair * look.tint * (lit * shade)[:, None], 0.0, 1.0)
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    width = max(1, int(round(0.5 * self.px)))
    alpha = rng.integers(90, 220, count)
    for i in np.flatnonzero(keep):
      c = cols[i]
      draw.line([a2[i, 0], a2[i, 1], b2[i, 0], b2[i, 1]],
                fill=(int(c[0] * 255), int(c[1] * 255), int(c[2] * 255), int(alpha[i])),
                width=width)
    return img

  def occluders(self) -> Image.Image | None:
    """The cartoon style's glasses, hands and objects on a transparent canvas."""
    if self.occluder not in ("glasses", "hand", "object"):
      return None
    shim = object.__new__(rd._Face)  # pylint: disable=protected-access
    shim.rng, shim.v, shim.cam, shim.rot, shim.px = self.rng, self.v, self.cam, self.rot, self.px
    shim.lm2 = self.v2[:N]
    shim.look = types.SimpleNamespace(skin=self.look.skin)
    shim.painter = dr.Painter()
    shim.occluder = self.occluder
    shim.occluders()
    img = Image.new("RGBA", (self.side, self.side), (0, 0, 0, 0))
    shim.painter.paint(ImageDraw.Draw(img, "RGBA"))
    if self.occluder == "glasses":
      return img
    # Hands and objects: lit from the key light's side, as a rounded shape would be.
    arr = np.asarray(img, np.float32)
    cover = arr[..., 3] > 0
    if not cover.any():
      return img
    ys, xs = np.nonzero(cover)
    cx, cy, r = xs.mean(), ys.mean(), max(float(xs.std() + ys.std()), 1.0)
    look = self.look
    k = look.key[:2] / max(float(np.linalg.norm(look.key[:2])), 1e-6)
    gy, gx = np.mgrid[:self.side, :self.side].astype(np.float32)
    t = ((gx - cx) * k[0] + (gy - cy) * k[1]) / r
    lit = look.ambient + look.key_i * np.clip(0.55 + 0.45 * t, 0.0, 1.0) * max(-look.key[2], 0.3)
    arr[..., :3] *= (lit[..., None] * look.tint).astype(np.float32)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGBA")

  # Everything.

  def render(self) -> tuple[np.ndarray, bytes]:
    rng = self.rng
    self.sample_eyes()
    size = self.scene.size
    bg = _background(rng, size, size)
    self.env = ambient_colour(bg)
    fg, alpha = self.foreground()
    image = fg * np.float32(255.0) + (1.0 - alpha) * bg
    if self.cfg.face_metering:
      image = self.metered(image)
    return _camera(rng, image.astype(np.float32))

  def metered(self, image: np.ndarray) -> np.ndarray:
    """`image` (S, S, 3) 0-255 scaled so that the face's mean luma (inside its jaw
    and brows) is N(0.6, 0.06) of white, the gain held to 0.5-3."""
    points = self.scene.camera.project(self.scene.points)
    # The jaw, then the brows back from the left one's outer end (points 26 to 17).
    outline = np.concatenate([points[sh.JAW], points[np.concatenate(sh.BROWS)[::-1]]])
    mask = Image.new("L", image.shape[1::-1], 0)
    ImageDraw.Draw(mask).polygon(dr.flat(outline), fill=1)
    inside = np.asarray(mask, bool)
    target = 255.0 * float(np.clip(self.rng.normal(0.6, 0.06), 0.4, 0.8))
    if not inside.any():
      return image
    level = dr.luma(image[inside].mean(axis=0))
    gain = float(np.clip(target / max(level, 1e-3), 0.5, 3.0))
    return np.minimum(image * np.float32(gain), np.float32(255.0))

  def sample_eyes(self) -> None:
    self.iris_r = self.rng.uniform(0.24, 0.3)
    self.gaze = self.rng.uniform(-0.3, 0.3, 2) * [1.0, 0.5]

  def foreground(self) -> tuple[np.ndarray, np.ndarray]:
    """The head alone at output size: colour premultiplied by coverage, float32
    (S, S, 3) in [0, 1], and its coverage (S, S, 1) in [0, 1]."""
    mesh = self.geometry()
    arrays = mesh.arrays()
    pos, tri, layer = arrays[0], arrays[4], arrays[6]
    side = self.side
    frag = raster.rasterize(self.cam.project_camera(pos), pos[:, 2], tri, layer, side, side)
    col, light, depth, layer_img = self.shade(frag, arrays)
    colour = np.zeros((side * side, 3), np.float32)
    colour[frag.pixel] = col
    full_light = np.zeros(side * side, np.float32)
    full_light[frag.pixel] = light
    alpha = np.zeros(side * side, np.float32)
    alpha[frag.pixel] = 1.0
    colour = colour.reshape(side, side, 3)
    self.decals(colour, full_light, depth, layer_img)
    strands = self.hair_strands(full_light, depth, layer_img)
    occ = self.occluders()
    size, ss = self.scene.size, self.ss
    alpha = alpha.reshape(side, side, 1)
    fg = np.clip(colour, 0.0, 1.0) * alpha
    for over in (strands, occ):
      if over is not None:
        o = np.asarray(over, np.float32) * np.float32(1.0 / 255.0)
        oa = o[..., 3:]
        fg = fg * (1.0 - oa) + o[..., :3] * oa
        alpha = alpha * (1.0 - oa) + oa
    if ss > 1:
      fg = fg.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
      alpha = alpha.reshape(size, ss, size, ss, 1).mean(axis=(1, 3))
    else:
      fg, alpha = _smooth_edges(fg, alpha, depth, layer_img)
    return fg, alpha


def ambient_colour(backdrop: np.ndarray) -> np.ndarray:
  """The ambient light's colour (3,), mean 1, from a backdrop (H, W, 3) 0-255: a face
  takes on a little of its surroundings' colour."""
  mean = backdrop.reshape(-1, 3).mean(axis=0) + 1.0
  return 0.65 + 0.35 * mean / mean.mean()


def render_foreground(scene: rd.Scene, env: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The scene's head in the photo style without backdrop or camera effects, lit with
  ambient colour `env` (`ambient_colour`), for compositing (the video clips).

  Returns (colour premultiplied by coverage, float32 (S, S, 3) in [0, 1]; coverage
  float32 (S, S, 1)), S = `scene.size`. The same scene generator state gives the same
  look (skin, hair, lighting) whatever the pose, so a face keeps it across frames.
  """
  face = _PhotoFace(scene)
  face.sample_eyes()
  face.env = np.asarray(env, np.float64)
  return face.foreground()


def render_scene(scene: rd.Scene) -> dict[str, Any]:
  """Draws a sampled scene in the photo style; see `faces.render_face`."""
  image, jpeg = _PhotoFace(scene).render()
  return rd.scene_result(scene, image, jpeg)
