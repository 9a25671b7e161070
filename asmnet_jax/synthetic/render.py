"""Renders one synthetic face: scene sampling, appearance, drawing, degradations.

Drawing uses the painter's algorithm: every part is a primitive with a layer and a
camera depth; back-facing ones are culled; the rest are painted far to near. Layers:
1 torso and long hair, 2 neck, 3 skull/hair/ears, 4 face mesh with its features
(depth-sorted together, so the nose hides the far eye at large yaw), 5 occluders.
"""

from __future__ import annotations

import dataclasses
import io
import math
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from asmnet_jax.core import rotation
from asmnet_jax.synthetic import draw as dr
from asmnet_jax.synthetic import shape as sh
from asmnet_jax.synthetic.config import RenderConfig

N = sh.NUM_LANDMARKS
HAIR_SHADE = 0.85  # Hair albedo multiplier (hair reflects less than skin).

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
_SCLERA = np.array([0.93, 0.91, 0.88])
_MOUTH = np.array([0.25, 0.06, 0.07])
_TEETH = np.array([0.92, 0.9, 0.84])
_MASKS = np.array([[0.75, 0.85, 0.95], [0.95, 0.95, 0.95], [0.1, 0.1, 0.12], [0.4, 0.6, 0.8]])


# ----------------------------------------------------------------------------------
# Scene: shape, pose and framing (everything the labels depend on).


@dataclasses.dataclass
class Scene:
  rng: np.random.Generator  # Continues into the appearance draws.
  cfg: RenderConfig
  size: int  # Output side in pixels.
  vertices: np.ndarray  # (V, 3) deformed template, head frame.
  pose: np.ndarray  # (3,) yaw, pitch, roll in degrees.
  camera: dr.Camera  # Head frame -> output pixels.
  axis_scale: np.ndarray  # (3,) head-size scale per axis.
  expression: dict
  points: np.ndarray  # (68, 3) head-frame points whose projections are the labels.


def label_points(vertices: np.ndarray, rot: np.ndarray, distance: float,
                 cfg: RenderConfig) -> np.ndarray:
  """The head-frame points (68, 3) that the landmark labels are projections of.

  The deformed landmarks `vertices[:68]`, except with `cfg.jaw_silhouette`: each jaw
  point becomes the outermost point on screen of its row of the face surface
  (`shape.jaw_rows`, from the jaw point toward the midline, on the curved surface
  `shape.curved_surface_points` that the photo style renders), i.e. it stays where it
  is while it is on the visible outline and slides onto the silhouette of the cheek
  once the turned face hides it, as 300-W annotators place it. The rule depends only
  on the rotation and the camera distance (not on the image scale or shift). With
  `cfg.jaw_even_spacing` the jaw points are then spaced evenly along that outline on
  each side of the chin (`evenly_spaced_jaw`).

  Args:
    vertices: (V, 3) the deformed template, head frame.
    rot: (3, 3) head-to-camera rotation.
    distance: camera distance in face units.
    cfg: the render config (`jaw_silhouette`, `jaw_even_spacing`).
  """
  points = vertices[:N]
  if not cfg.jaw_silhouette:
    return points
  idx, w = sh.jaw_rows()
  # On the curved surface the photo style draws (so the label sits on its outline).
  rows = sh.curved_surface_points(vertices, sh.face_normals(vertices), idx, w)  # (17, S, 3)
  rc = rows @ rot.T + [0.0, 0.0, distance]
  p2 = rc[..., :2] / rc[..., 2:3]
  outward = rot[:2, 0] / max(float(np.linalg.norm(rot[:2, 0])), 1e-9)  # Head +x on screen.
  side = np.sign(sh.template().vertices[sh.JAW, 0]) * (np.abs(sh.JAW - 8) > 0)
  best = np.argmax(side[:, None] * (p2 @ outward), axis=1)
  points = points.copy()
  points[sh.JAW] = rows[sh.JAW, best]
  if cfg.jaw_even_spacing:
    points[sh.JAW] = evenly_spaced_jaw(points[sh.JAW], rot, distance)
  return points


def evenly_spaced_jaw(jaw: np.ndarray, rot: np.ndarray, distance: float,
                      samples_per_segment: int = 32) -> np.ndarray:
  """The jaw points moved along their outline until they are evenly spaced on screen.

  The outline is the Catmull-Rom curve through the 17 points in the head frame. The
  ends (0, 16) and the chin (8) stay, and the points between them are spaced evenly
  by projected length along each side, which is how 300-W annotators space the jaw
  (spacing the whole outline at once would slide the chin point off the chin of a
  turned face).

  Args:
    jaw: (17, 3) jaw points in the head frame (face units), in order.
    rot: (3, 3) head-to-camera rotation.
    distance: camera distance in face units (the perspective the spacing is seen in).
    samples_per_segment: curve samples between two neighbouring points.

  Returns:
    (17, 3) points on the curve, head frame.
  """
  knots = np.concatenate([2 * jaw[:1] - jaw[1:2], jaw, 2 * jaw[-1:] - jaw[-2:-1]])
  t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None, None]
  p0, p1, p2, p3 = knots[:-3], knots[1:-2], knots[2:-1], knots[3:]
  # Uniform Catmull-Rom: passes through every point with a continuous tangent.
  curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                 + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)  # (samples, 16, 3)
  curve = np.concatenate([curve.transpose(1, 0, 2).reshape(-1, 3), jaw[-1:]])
  cam = curve @ rot.T + [0.0, 0.0, distance]
  screen = cam[:, :2] / cam[:, 2:3]
  length = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(screen, axis=0), axis=1))]
  chin = len(jaw) // 2
  at_chin = length[chin * samples_per_segment]
  targets = np.r_[np.linspace(0.0, at_chin, chin + 1)[:-1],
                  np.linspace(at_chin, length[-1], len(jaw) - chin)]
  return np.stack([np.interp(targets, length, curve[:, k]) for k in range(3)], axis=1)


def deformed_vertices(d: np.ndarray, axis_scale: np.ndarray) -> np.ndarray:
  """The head mesh (V, 3) with landmark displacements `d` (68, 3) (the extra skin
  points follow them, `Template.aux_weights`), scaled per axis by `axis_scale` (3,)."""
  tpl = sh.template()
  vertices = tpl.vertices.copy()
  vertices[:N] += d
  vertices[N:] += tpl.aux_weights @ d
  return vertices * axis_scale


def sample_pose(rng: np.random.Generator, cfg: RenderConfig) -> np.ndarray:
  """(3,) yaw, pitch, roll in degrees: uniform over `cfg`'s ranges, or, with
  `cfg.pose_sd`, normal about each range's midpoint and redrawn until inside it."""
  ranges = (cfg.yaw, cfg.pitch, cfg.roll)
  if cfg.pose_sd is None:
    return np.array([rng.uniform(*r) for r in ranges])
  pose = []
  for (lo, hi), sd in zip(ranges, cfg.pose_sd):
    angle = rng.normal((lo + hi) / 2, sd)
    # A cut normal by redrawing; 100 tries, then uniform, keeps the loop bounded.
    for _ in range(100):
      if lo <= angle <= hi:
        break
      angle = rng.normal((lo + hi) / 2, sd)
    else:
      angle = rng.uniform(lo, hi)
    pose.append(angle)
  return np.array(pose)


def sample_scene(seed: int, size: int, cfg: RenderConfig) -> Scene:
  """Shape, pose and a camera that keeps all landmarks `cfg.margin` px inside."""
  rng = np.random.default_rng(seed)
  tpl = sh.template()
  d, axis_scale, expression = sh.sample_deformation(rng, cfg, tpl.vertices[:N])
  vertices = deformed_vertices(d, axis_scale)
  pose = sample_pose(rng, cfg)
  cam = dr.Camera(rotation.euler_to_rotation(*pose), rng.uniform(*cfg.camera_distance),
                  rng.uniform(*cfg.face_size) * size / 1.25, np.zeros(2))
  points = label_points(vertices, cam.rot, cam.distance, cfg)
  # Shrink until the landmark box fits, then jitter it within the slack.
  lo_px, hi_px = cfg.margin, size - 1 - cfg.margin
  for _ in range(20):
    lm = cam.project(points)
    extent = lm.max(axis=0) - lm.min(axis=0)
    if np.all(extent <= hi_px - lo_px):
      break
    cam.scale *= 0.97 * (hi_px - lo_px) / extent.max()
  lm = cam.project(points)
  extent = lm.max(axis=0) - lm.min(axis=0)
  slack = np.maximum(0.5 * ((hi_px - lo_px) - extent), 0.0)
  jitter = rng.uniform(-1.0, 1.0, 2) * slack * cfg.shift
  cam.offset = 0.5 * (lo_px + hi_px) + jitter - 0.5 * (lm.max(axis=0) + lm.min(axis=0))
  return Scene(rng, cfg, size, vertices, pose, cam, axis_scale, expression, points)


# ----------------------------------------------------------------------------------
# Appearance.


@dataclasses.dataclass
class Look:
  """Colours (RGB in [0, 1]), light and hair of one face."""
  skin: np.ndarray
  hair: np.ndarray
  brow: np.ndarray
  iris: np.ndarray
  lip: np.ndarray
  shirt: np.ndarray
  light: np.ndarray  # (3,) unit, from the surface toward the light, camera frame.
  ambient: float
  diffuse: float
  tint: np.ndarray  # (3,) light colour.
  hair_style: str  # short | long | bald
  hairline: float  # Front hairline offset (head-frame y).
  hair_volume: float  # Hair puffs out this far beyond the skull.

  @classmethod
  def sample(cls, rng: np.random.Generator) -> Look:
    skin = np.clip(_SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.08, 3), 0.0, 1.0)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.15)
    # Brows stay clearly darker than the skin, so their landmarks can be found.
    brow = hair if dr.luma(hair) < 0.6 * dr.luma(skin) else skin * rng.uniform(0.25, 0.45)
    iris = _IRIS[rng.integers(len(_IRIS))]
    lip = np.clip(skin * np.array([0.95, 0.58, 0.62]) * rng.uniform(0.62, 0.82), 0, 1)
    if rng.random() < 0.25:  # Lipstick.
      lip = np.array([rng.uniform(0.45, 0.8), rng.uniform(0.05, 0.25), rng.uniform(0.1, 0.3)])
    shirt = rng.uniform(0.05, 0.95, 3)
    light = np.array([rng.uniform(-1.2, 1.2), rng.uniform(-1.2, 0.6), -1.0])
    ambient, diffuse = rng.uniform(0.5, 0.75), rng.uniform(0.35, 0.6)
    # Light colour: warm (less blue) or cool (less red), never green-shifted skin.
    warm = rng.uniform(0.0, 1.0)
    tint = (np.array([1.0, 1.0 - 0.06 * warm, 1.0 - 0.14 * warm]) if rng.random() < 0.7
            else np.array([1.0 - 0.1 * warm, 1.0 - 0.04 * warm, 1.0]))
    style = str(rng.choice(["short", "long", "bald", "short", "long"]))
    return cls(skin, hair, brow, iris, lip, shirt, light / np.linalg.norm(light), ambient,
               diffuse, tint, style, rng.uniform(-0.12, 0.12), rng.uniform(1.02, 1.1))

  def shade(self, normals: np.ndarray) -> np.ndarray:
    """Lambert shading (...,) of outward unit normals (..., 3) in the camera frame."""
    return self.ambient + self.diffuse * np.clip(normals @ -self.light, 0.0, 1.0)

  def colour(self, albedo: np.ndarray, s: float) -> tuple[int, int, int]:
    return dr.rgb(albedo * s * self.tint)

  def colours(self, albedo: np.ndarray, s: np.ndarray) -> list[tuple[int, int, int]]:
    """albedo (3,) or (N, 3) under shading s (N, 1) -> N PIL colours."""
    return dr.rgb_many(albedo * s * self.tint)

  def hair_y(self, azimuth: np.ndarray) -> np.ndarray:
    """Hairline height (head-frame y) by azimuth around the vertical axis (0: front)."""
    a = np.abs(azimuth)
    if self.hair_style == "bald":
      return np.full_like(a, -10.0)
    back = 0.55 if self.hair_style == "long" else 0.35
    return np.interp(a, [0.0, 0.6, 1.1, 1.6, 2.2, math.pi],
                     [-0.92 + self.hairline, -0.86 + self.hairline, -0.45, -0.25, back, back])


def _azimuth(p: np.ndarray) -> np.ndarray:
  return np.arctan2(p[..., 0], -(p[..., 2] - sh.SKULL_CENTRE[2]))


# ----------------------------------------------------------------------------------
# Drawing.


def body_frame(scene: Scene, cam: dr.Camera
               ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
  """(torso rotation (3, 3), neck rotation (3, 3), body_to_camera(points (..., 3) head
  frame, rotation) -> camera frame): the body turns less than the head, and the neck
  bends between them, about a pivot under the skull."""
  pose = scene.pose
  body_rot = rotation.euler_to_rotation(0.25 * pose[0], 0.0, 0.3 * pose[2])
  neck_rot = rotation.euler_to_rotation(0.4 * pose[0], 0.2 * pose[1], 0.4 * pose[2])
  pivot = np.array([0.0, 0.35, 0.40]) * scene.axis_scale
  pivot_c = cam.to_camera(pivot[None])[0]

  def body_to_camera(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (p - pivot) @ r.T + pivot_c

  return body_rot, neck_rot, body_to_camera


def torso_outline(rng: np.random.Generator) -> np.ndarray:
  """(8, 2) head-frame x, y of the shoulders' outline, of a random width."""
  outline = np.array([[-0.40, 0.92], [-0.95, 1.08], [-1.55, 1.3], [-1.9, 2.6], [1.9, 2.6],
                      [1.55, 1.3], [0.95, 1.08], [0.40, 0.92]])
  return outline * [rng.uniform(0.9, 1.2), 1.0]


class _Face:
  """One face being drawn: the scene, its canvas camera, its look, the painter."""

  def __init__(self, scene: Scene):
    self.scene, self.rng, self.cfg = scene, scene.rng, scene.cfg
    self.ss = scene.cfg.supersample
    self.cam = dr.canvas_camera(scene.camera, self.ss)
    self.rot = self.cam.rot
    self.v = scene.vertices  # Head frame.
    self.vc = self.cam.to_camera(self.v)  # Camera frame.
    self.v2 = self.cam.project_camera(self.vc)  # Canvas pixels.
    self.lm2 = self.v2[:N]
    self.px = self.cam.scale / 100.0  # Canvas pixels per 0.01 face units (line widths).
    self.look = Look.sample(self.rng)
    self.painter = dr.Painter()
    tpl = sh.template()
    self.vshade = self.look.shade(tpl.vertex_normals @ self.rot.T) * tpl.vertex_ao
    self.occluder = None
    if self.rng.random() < self.cfg.occluder_prob:
      self.occluder = str(self.rng.choice(["glasses", "hand", "mask", "object", "glasses"]))
    self.masked = self.occluder == "mask"

  def facing(self, normal_head, at_camera: np.ndarray) -> bool:
    """Whether a surface with this head-frame normal at this camera point faces us."""
    return float((self.rot @ np.asarray(normal_head, np.float64)) @ at_camera) < 0

  def feature(self, points_idx, normal_head, fn: dr.DrawFn, bias: float) -> None:
    """A face feature in layer 4, drawn just after the skin under it (depth - bias)."""
    c = self.vc[points_idx].mean(axis=0)
    if self.facing(normal_head, c):
      self.painter.add(4, float(c[2]) - bias, fn)

  def head_to_camera(self, p: np.ndarray) -> np.ndarray:
    return self.cam.to_camera(p * self.scene.axis_scale)

  # Layers 1-3: body, neck, skull, hair, ears.

  def body(self) -> None:
    look, cam = self.look, self.cam
    body_rot, neck_rot, body_to_camera = body_frame(self.scene, cam)
    outline = torso_outline(self.rng)
    torso = np.concatenate([outline, np.full((len(outline), 1), 0.5)], axis=1)
    self.painter.add(1, 10.0, dr.polygon(cam.project_camera(body_to_camera(torso, body_rot)),
                                         look.colour(look.shirt, 0.5 + 0.5 * look.ambient)))
    if look.hair_style == "long":
      # A flat sheet behind the head: rounded lower edge, closed over the crown.
      length = self.rng.uniform(0.6, 1.4)
      a = np.linspace(0, math.pi, 12)
      sheet = np.stack([0.78 * np.cos(a) * look.hair_volume, -0.5 + length * np.sin(a) ** 0.3,
                        np.full_like(a, 0.55)], axis=1)
      sheet = np.concatenate([sheet, [[-0.6, -0.9, 0.6], [0.6, -0.9, 0.6]]])
      self.painter.add(1, 5.0, dr.polygon(cam.project_camera(self.head_to_camera(sheet)),
                                          look.colour(look.hair, 0.5 * (1 + look.ambient))))
    # Neck: from a ring inside the head (moving with it) to a ring in the neck frame.
    a = np.linspace(-math.pi, math.pi, 14, endpoint=False)
    ring_n = np.stack([np.sin(a), np.zeros_like(a), -np.cos(a)], axis=1)
    ring = ring_n * [0.33, 0.0, 0.36] + [0.0, 0.0, 0.42]
    top_c = self.head_to_camera(ring + [0.0, 0.2, 0.0])
    bot_c = body_to_camera((ring * [1.1, 1.0, 1.05] + [0.0, 1.6, 0.0]) * self.scene.axis_scale,
                           neck_rot)
    nn = ring_n @ self.rot.T + ring_n @ neck_rot.T
    j = np.roll(np.arange(len(a)), -1)
    quads_c = np.stack([top_c, top_c[j], bot_c[j], bot_c], axis=1)  # (Q, 4, 3)
    quad_n = nn + nn[j]
    quad_n /= np.linalg.norm(quad_n, axis=-1, keepdims=True)
    visible = np.einsum("ij,ij->i", quad_n, quads_c.mean(axis=1)) < 0
    cols = look.colours(look.skin, (0.8 * look.shade(quad_n))[:, None])
    q2 = cam.project_camera(quads_c).reshape(len(a), -1).tolist()
    depth = quads_c[:, :, 2].mean(axis=1).tolist()
    for i in np.flatnonzero(visible):
      self.painter.add(2, depth[i], dr.polygon_flat(q2[i], cols[i]))

  def skull(self) -> None:
    """Lat-long quads on the skull ellipsoid; hair above the hairline (each quad cut
    exactly along it), puffed out away from the hairline."""
    look, cam = self.look, self.cam
    dirs = sh.skull_grid()
    axes = sh.SKULL_AXES * self.scene.axis_scale
    centre = sh.SKULL_CENTRE * self.scene.axis_scale
    pts = centre + dirs * axes
    f_hair = pts[..., 1] - look.hair_y(_azimuth(pts))
    puff = 1.0 + (look.hair_volume - 1.0) * np.clip(-f_hair / 0.15, 0.0, 1.0)
    pts = centre + (pts - centre) * puff[..., None]
    normals = dirs / axes
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    pc = cam.to_camera(pts.reshape(-1, 3)).reshape(pts.shape)
    jn = np.roll(np.arange(dirs.shape[1]), -1)

    def corners(g):  # (T, P, ...) grid -> (T - 1, P, 4, ...) quads.
      return np.stack([g[:-1], g[:-1, jn], g[1:, jn], g[1:]], axis=2)

    qc = corners(pc).reshape(-1, 4, 3)
    qn = corners(normals @ self.rot.T).sum(axis=2).reshape(-1, 3)
    qn /= np.linalg.norm(qn, axis=-1, keepdims=True)
    visible = np.einsum("ij,ij->i", qn, qc.mean(axis=1)) < 0
    s = look.shade(qn)[:, None]
    dr.add_split(self.painter, 3, visible, corners(cam.project_camera(pc)).reshape(-1, 4, 2),
                 corners(f_hair).reshape(-1, 4), qc[:, :, 2].mean(axis=1).tolist(),
                 look.colours(look.hair, HAIR_SHADE * s), look.colours(look.skin, 0.95 * s))

  def ears(self) -> None:
    """Ears: an outward normal tilted forward; shown only when it faces the camera."""
    look = self.look
    t = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    for side in (-1.0, 1.0):
      ear = np.stack([side * (0.66 + 0.05 * np.cos(t)), -0.15 - 0.17 * np.sin(t),
                      0.43 + 0.09 * np.cos(t) + 0.02 * np.sin(t)], axis=1)
      ec = self.head_to_camera(ear)
      normal = np.array([side, 0.0, -0.6]) / math.hypot(1.0, 0.6)
      if not self.facing(normal, ec.mean(axis=0)):
        continue
      sv = float(look.shade(self.rot @ normal))
      e2 = self.cam.project_camera(ec)
      inner = e2.mean(axis=0) + 0.55 * (e2 - e2.mean(axis=0))

      def draw_ear(draw, e2=e2, inner=inner, sv=sv):
        draw.polygon(dr.flat(e2), fill=look.colour(look.skin, 0.9 * sv),
                     outline=look.colour(look.skin, 0.6 * sv))
        draw.polygon(dr.flat(inner), fill=look.colour(look.skin, 0.65 * sv))

      self.painter.add(3, -1e3, draw_ear)  # After the skull: it sits on its surface.

  # Layer 4: the face.

  def face_mesh(self) -> None:
    """Skin triangles (cut along the hairline, or recoloured under a mask) and the
    shadowed strip under the jaw."""
    look, v, vc = self.look, self.v, self.vc
    tpl = sh.template()
    tri = tpl.triangles
    if self.masked:  # The mask also covers the lip hole.
      tri = np.concatenate([tri, tpl.lip_triangles])
    tri_c = vc[tri]
    tri_n = np.cross(tri_c[:, 1] - tri_c[:, 0], tri_c[:, 2] - tri_c[:, 0])
    visible = np.einsum("ij,ij->i", tri_n, tri_c.mean(axis=1)) < 0
    s = self.vshade[tri].mean(axis=1)[:, None]
    if self.masked:
      # Mask below a line from the nose bridge, sloping down toward the cheeks.
      f_v = v[29, 1] + 0.02 + 0.16 * np.abs(v[:, 0]) - v[:, 1]
      neg_cols = look.colours(_MASKS[self.rng.integers(len(_MASKS))], 0.6 + 0.4 * s)
    else:
      f_v = v[:, 1] - look.hair_y(_azimuth(v))
      neg_cols = look.colours(look.hair, HAIR_SHADE * s)
    dr.add_split(self.painter, 4, visible, self.v2[tri], f_v[tri],
                 tri_c[:, :, 2].mean(axis=1).tolist(), neg_cols, look.colours(look.skin, s))
    # Under the jaw, back to the throat: seen when the face tilts up or turns.
    jaw = np.arange(3, 14)
    under = v[jaw] * [0.62, 1.0, 1.0] + [0.0, 0.1, 0.0]
    under[:, 1] = np.maximum(under[:, 1], 0.45)
    under[:, 2] = np.maximum(v[jaw, 2], -0.1) + 0.32
    strip = np.stack([v[jaw[:-1]], v[jaw[1:]], under[1:], under[:-1]], axis=1)
    strip_c = self.cam.to_camera(strip.reshape(-1, 3)).reshape(strip.shape)
    sn = np.cross(strip[:, 1] - strip[:, 0], strip[:, 3] - strip[:, 0])
    sn *= np.sign(sn[:, 1:2] + 1e-9)  # Outward = down.
    sn_c = (sn / np.linalg.norm(sn, axis=-1, keepdims=True)) @ self.rot.T
    visible = np.einsum("ij,ij->i", sn_c, strip_c.mean(axis=1)) < 0
    cols = look.colours(look.skin, (0.7 * look.shade(sn_c))[:, None])
    s2 = self.cam.project_camera(strip_c)
    depth = strip_c[:, :, 2].mean(axis=1).tolist()
    for i in np.flatnonzero(visible):
      self.painter.add(4, depth[i] + 0.05, dr.polygon(s2[i], cols[i]))

  def brows(self) -> None:
    """Bands hanging below the landmark chains, thinner toward the tail; the labels run
    along the band's upper edge with `brows_below_labels`, a fifth of the way in without."""
    look, v = self.look, self.v
    thickness = self.rng.uniform(0.035, 0.06)
    below = 1.0 if self.cfg.brows_below_labels else 0.8  # Of the band, under the labels.
    for side, brow in enumerate(sh.BROWS):
      inner = np.linspace(0.0, 1.0, 5) if side == 0 else np.linspace(1.0, 0.0, 5)
      thick = thickness * (0.55 + 0.45 * inner)
      zeros = np.zeros(5)
      top = v[brow] + np.stack([zeros, (below - 1.0) * thick, zeros - 0.005], 1)
      bottom = v[brow] + np.stack([zeros, below * thick, zeros - 0.005], 1)
      band = self.cam.project(np.concatenate([top, bottom[::-1]]))
      colour = look.colour(look.brow, 0.6 + 0.4 * float(self.vshade[brow].mean()))
      self.feature(brow, [0.3 * (1 if side else -1), 0, -1], dr.polygon(band, colour), 0.08)

  def eyes(self) -> None:
    """Sclera, iris and pupil clipped to the lids, lid lines, a catch light."""
    look, v, cam, px = self.look, self.v, self.cam, self.px
    iris_r = self.rng.uniform(0.25, 0.3)  # Of the eye width.
    gaze = self.rng.uniform(-0.25, 0.25, 2) * [1.0, 0.5]
    lash = look.colour(np.minimum(look.hair, 0.25) * 0.5, 1.0)
    for side, eye in enumerate(sh.EYES):
      p, e2 = v[eye], self.lm2[eye]
      width = np.linalg.norm(p[3] - p[0])
      opening = 0.5 * (np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4]))
      c3 = p.mean(axis=0) + np.array([gaze[0] * width * 0.5, gaze[1] * opening, -0.012])
      r = iris_r * width
      iris = cam.project(dr.circle3d(c3, [r, 0, 0], [0, r, 0], 16))
      pupil = cam.project(dr.circle3d(c3 - [0, 0, 0.003], [0.42 * r, 0, 0], [0, 0.42 * r, 0], 12))
      spot = cam.project(c3[None] + [[-0.25 * r, -0.3 * r, -0.004]])[0]
      sv = float(self.vshade[eye].mean())
      lid_w = max(1, int(round(self.rng.uniform(1.2, 2.0) * px)))

      def draw_eye(draw, e2=e2, iris=iris, pupil=pupil, spot=spot, sv=sv, lid_w=lid_w,
                   open_ratio=opening / max(width, 1e-6)):
        if open_ratio > 0.08:  # Else closed: the lid line alone.
          draw.polygon(dr.flat(e2), fill=look.colour(_SCLERA, 0.55 + 0.45 * sv))
          for poly, col in ((iris, look.colour(look.iris, 0.7 + 0.3 * sv)), (pupil, (8, 6, 6))):
            clipped = dr.clip_convex(poly, e2)
            if len(clipped) >= 3:
              draw.polygon(dr.flat(clipped), fill=col)
          if sh.point_in_polygon(spot[None], e2)[0]:
            q = 0.6 * px
            draw.ellipse([spot[0] - q, spot[1] - q, spot[0] + q, spot[1] + q], fill=(245, 245, 245))
          draw.line(dr.flat(e2[[3, 4, 5, 0]]), fill=look.colour(look.skin, 0.45 * sv),
                    width=max(1, lid_w // 2), joint="curve")
        draw.line(dr.flat(e2[[0, 1, 2, 3]]), fill=lash, width=lid_w, joint="curve")

      self.feature(eye, [0.3 * (1 if side else -1), 0, -1], draw_eye, 0.08)

  def nose(self) -> None:
    """Base shadow line through 31-35, alae, nostrils, tip highlight."""
    if self.masked:  # The mask covers the nose base.
      return
    look, v, cam, px = self.look, self.v, self.cam, self.px
    width = max(1, int(round(1.0 * px)))
    sv = float(self.vshade[sh.NOSE_BASE].mean())
    for side, (outer, inner) in enumerate(((31, 32), (35, 34))):
      sgn = 1 if side else -1
      po, pi = v[outer], v[inner]
      ala = cam.project(np.stack([po, po + [sgn * 0.03, -0.04, 0.02], po + [sgn * 0.01, -0.085, 0.0],
                                  po + [-sgn * 0.03, -0.1, -0.02]]))
      c = 0.5 * (po + pi) + [0.0, -0.012, -0.005]
      nostril = cam.project(dr.circle3d(c, [0.033, 0, 0], [0, 0.011, 0.011], 10))

      def draw_ala(draw, ala=ala, nostril=nostril):
        draw.polygon(dr.flat(nostril), fill=look.colour(look.skin, 0.25 * sv))
        draw.line(dr.flat(ala), fill=look.colour(look.skin, 0.6 * sv), width=width, joint="curve")

      self.feature([outer, inner], [sgn * 0.6, 0.4, -0.7], draw_ala, 0.1)
    base = dr.flat(self.lm2[sh.NOSE_BASE])
    dark = look.colour(look.skin, 0.4 * sv)
    self.feature(sh.NOSE_BASE, [0, 0.6, -0.8],
                 lambda draw: draw.line(base, fill=dark, width=width, joint="curve"), 0.1)
    tip, r = self.lm2[30], 1.2 * px
    highlight = look.colour(np.minimum(look.skin * 1.25 + 0.05, 1.0), float(self.vshade[30]))
    self.feature([30], [0, 0, -1], lambda draw: draw.ellipse(
        [tip[0] - r, tip[1] - 0.7 * r, tip[0] + r, tip[1] + 0.7 * r], fill=highlight), 0.1)

  def lips(self) -> None:
    """Upper and lower lips with a darker border, the mouth opening, teeth."""
    if self.masked:
      return
    look, v, lm2, px = self.look, self.v, self.lm2, self.px
    sv = float(self.vshade[sh.LIPS_OUTER].mean())
    gap = np.linalg.norm(v[[61, 62, 63]] - v[[67, 66, 65]], axis=1).mean()
    teeth = None
    if gap > 0.035 and self.rng.random() < 0.8:
      top, bottom = v[[60, 61, 62, 63, 64]], v[[64, 65, 66, 67, 60]]
      down = 0.35 * (bottom - top[::-1]).clip(0) * [0, 1, 0]
      teeth = self.cam.project(np.concatenate([top, top[::-1] + down]))
    border_w, line_w = max(1, int(round(0.6 * px))), max(1, int(round(0.8 * px)))

    def draw_lips(draw):
      draw.polygon(dr.flat(lm2[sh.UPPER_LIP]), fill=look.colour(look.lip, 0.8 * sv))
      draw.polygon(dr.flat(lm2[sh.LOWER_LIP]), fill=look.colour(look.lip, 0.95 * sv + 0.05))
      # The vermilion border makes the outer chain visible even on dark skin.
      draw.line(dr.flat(lm2[np.r_[sh.LIPS_OUTER, 48]]), fill=look.colour(look.lip, 0.55 * sv),
                width=border_w, joint="curve")
      if gap > 0.01:
        draw.polygon(dr.flat(lm2[sh.LIPS_INNER]), fill=look.colour(_MOUTH, 0.6))
        if teeth is not None:
          draw.polygon(dr.flat(teeth), fill=look.colour(_TEETH, 0.6 + 0.4 * sv))
      draw.line(dr.flat(lm2[[60, 61, 62, 63, 64]]), fill=look.colour(look.lip, 0.35 * sv),
                width=line_w, joint="curve")

    self.feature(sh.LIPS_OUTER, [0, 0, -1], draw_lips, 0.1)

  # Layer 5: occluders in front of everything.

  def occluders(self) -> None:
    if self.occluder == "glasses":
      self._glasses()
    elif self.occluder == "hand":
      self._hand()
    elif self.occluder == "object":
      self._object()

  def _glasses(self) -> None:
    rng, v, cam = self.rng, self.v, self.cam
    frame = dr.rgb(np.array([[0.05, 0.05, 0.05], [0.35, 0.2, 0.1], [0.7, 0.7, 0.72],
                             [0.5, 0.1, 0.1]])[rng.integers(4)])
    sun = rng.random() < 0.3
    width = max(1, int(round(rng.uniform(0.8, 2.0) * self.px)))
    hw, hh = rng.uniform(0.13, 0.16), rng.uniform(0.08, 0.11)
    centres = [v[eye].mean(axis=0) + [0.0, 0.015, -0.1] for eye in sh.EYES]
    lenses = [cam.project(dr.circle3d(c, [hw, 0, 0], [0, hh, 0], 20)) for c in centres]
    bridge = cam.project(np.stack([centres[0] + [hw, -0.015, 0.0], v[28] + [0.0, 0.0, -0.05],
                                   centres[1] + [-hw, -0.015, 0.0]]))
    arms = []
    for c, sgn in zip(centres, (-1.0, 1.0)):
      if self.facing([sgn, 0.0, -0.3], self.cam.to_camera(c[None])[0]):  # Far arm hidden.
        arms.append(cam.project(np.stack([c + [sgn * hw, -0.015, 0.0], [sgn * 0.66, -0.2, 0.35]])))

    def draw_glasses(draw):
      for arm in arms:
        draw.line(dr.flat(arm), fill=frame, width=width)
      for lens in lenses:
        if sun:
          draw.polygon(dr.flat(lens), fill=(15, 15, 20, 215))  # Blended: RGBA draw.
        draw.line(dr.flat(np.concatenate([lens, lens[:1]])), fill=frame, width=width,
                  joint="curve")
      draw.line(dr.flat(bridge), fill=frame, width=width, joint="curve")

    self.painter.add(5, 0.0, draw_glasses)

  def _hand(self) -> None:
    """A palm with four fingers and a thumb over the mouth, a cheek or the chin."""
    rng, lm2 = self.rng, self.lm2
    region = [np.arange(48, 68), np.arange(2, 6), np.arange(11, 15),
              np.arange(5, 12)][rng.integers(4)]
    face_w = np.linalg.norm(lm2[16] - lm2[0])
    size = rng.uniform(0.35, 0.55) * face_w
    ang = rng.uniform(0, 2 * math.pi)
    c = lm2[region].mean(axis=0) + size * 0.6 * np.array([math.cos(ang), math.sin(ang)])
    up = -np.array([math.cos(ang), math.sin(ang)])  # Fingers point back over the face.
    across = np.array([-up[1], up[0]])
    col = dr.rgb(np.clip(self.look.skin * rng.uniform(0.85, 1.05), 0, 1))
    edge = dr.rgb(np.clip(self.look.skin * 0.6, 0, 1))
    t = np.linspace(0, 2 * math.pi, 16, endpoint=False)
    palm = c + np.cos(t)[:, None] * 0.42 * size * across + np.sin(t)[:, None] * 0.5 * size * up
    fingers = []
    for i, off in enumerate((-0.3, -0.1, 0.1, 0.3)):
      base = c + up * 0.35 * size + across * off * size
      length = size * (0.55 + 0.12 * (1.5 - abs(i - 1.5)))
      fingers.append((base, base + up * length + across * rng.normal(0, 0.05) * size))
    fingers.append((c - across * 0.35 * size, c - across * 0.75 * size + up * 0.35 * size))
    fw = max(2, int(round(0.17 * size)))

    def draw_hand(draw):
      draw.polygon(dr.flat(palm), fill=col, outline=edge)
      for a, b in fingers:
        draw.line([*a, *b], fill=edge, width=fw + 2)
        draw.line([*a, *b], fill=col, width=fw)
        draw.ellipse([b[0] - fw / 2, b[1] - fw / 2, b[0] + fw / 2, b[1] + fw / 2], fill=col)

    self.painter.add(5, 0.0, draw_hand)

  def _object(self) -> None:
    """A plain box (phone, card, microphone...) near a random landmark."""
    rng, lm2 = self.rng, self.lm2
    face_w = np.linalg.norm(lm2[16] - lm2[0])
    w, h = rng.uniform(0.15, 0.45, 2) * face_w
    ang = rng.uniform(0, math.pi)
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    c = lm2[rng.integers(N)] + rng.normal(0, 0.15 * face_w, 2)
    box = (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [w, h]) @ rot.T + c
    self.painter.add(5, 0.0, dr.polygon(box, dr.rgb(rng.uniform(0, 1, 3))))

  # Pixels.

  def paint(self) -> tuple[np.ndarray, bytes]:
    """Paints everything, downsamples, degrades; returns (image, its JPEG bytes)."""
    rng, cfg = self.rng, self.cfg
    img = dr.background(rng, self.scene.size * self.ss, cfg)
    self.painter.paint(ImageDraw.Draw(img, "RGBA"))
    if self.ss > 1:
      img = img.reduce(self.ss)
    if cfg.blur > 0 and rng.random() < 0.5:
      # A box blur with a fractional radius: much cheaper than PIL's GaussianBlur.
      img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.3, cfg.blur)))
    arr = np.asarray(img, dtype=np.float32)
    gain = (rng.uniform(0.8, 1.2) * rng.uniform(0.96, 1.04, 3)).astype(np.float32)
    arr = arr * gain + np.float32(rng.uniform(-20, 20) + 0.5)
    if cfg.noise > 0:
      arr += dr.noise_patch(rng, arr.shape[:2]) * np.float32(rng.uniform(0.0, cfg.noise))
    buf = io.BytesIO()
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format="JPEG",
                                                               quality=quality)
    jpeg = buf.getvalue()
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")), jpeg


def scene_result(scene: Scene, image: np.ndarray, jpeg: bytes) -> dict[str, Any]:
  """`faces.render_face`'s dict for a drawn scene: the pixels and their exact labels."""
  cam = scene.camera
  return {
      "image": image,
      "jpeg": jpeg,
      "landmarks": cam.project(scene.points).astype(np.float32),
      "pose": scene.pose.astype(np.float32),
      "points3d": scene.points.copy(),
      "camera": {"distance": cam.distance, "scale": cam.scale, "offset": cam.offset.copy()},
  }


def _drawn_face(scene: Scene) -> _Face:
  """The scene's head with every part added to its painter (nothing painted yet)."""
  face = _Face(scene)
  face.body()
  face.skull()
  face.ears()
  face.face_mesh()
  face.brows()
  face.eyes()
  face.nose()
  face.lips()
  face.occluders()
  return face


def scene_painter(scene: Scene) -> dr.Painter:
  """The head of a scene as painter primitives, without background or degradations:
  paint them on a canvas `scene.cfg.supersample` times the output resolution (the
  canvas may have any size; the scene's camera places the head on it)."""
  return _drawn_face(scene).painter


def render_scene(scene: Scene) -> dict[str, Any]:
  """Draws a sampled scene; see `asmnet_jax.synthetic.faces.render_face`."""
  image, jpeg = _drawn_face(scene).paint()
  return scene_result(scene, image, jpeg)
