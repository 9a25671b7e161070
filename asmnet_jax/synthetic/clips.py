"""Synthetic video clips with exact landmarks and head pose on every frame.

A clip animates the cartoon renderer (`asmnet_jax.synthetic.render`), or with
`ClipConfig.style="photo"` the photo-style one (`asmnet_jax.synthetic.photo`: shaded,
textured skin that optical flow can follow, as it can on real faces): each face keeps
one identity and look for the whole clip, while its pose, expression, size and place
follow smooth random paths: key values about every `key_seconds`, each a random
step from the one before (or the same value: a still moment, `hold_prob`), joined by
smoothstep; as a person in front of a webcam or in an interview moves. On top:
  * a few fast turns: the yaw swings by 30-60 degrees within `fast_turn_seconds`;
  * exits: the face slides out past a frame edge and comes back;
  * two faces side by side in some clips (`two_face_prob`).
The background is still (a `backgrounds.natural_background` drawn once per clip);
every frame gets fresh sensor noise and a JPEG round trip, so a still face still
gives slightly different pixels on every frame, as a camera does.

    clip = SyntheticClip(seed=3)
    for index in range(clip.num_frames):
      frame = clip.frame(index)         # uint8 (480, 640, 3) RGB
      clip.landmarks[index]             # float32 (faces, 68, 2) exact, pixel centres
      clip.pose[index]                  # float32 (faces, 3) yaw, pitch, roll degrees

Everything is deterministic given the seed. Landmarks of a face that has left the
frame lie outside it (`clip.inside` says which frames show all 68 points).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

from asmnet_jax.core import geometry
from asmnet_jax.core import rotation
from asmnet_jax.synthetic import backgrounds
from asmnet_jax.synthetic import camera as camera_lib
from asmnet_jax.synthetic import draw as dr
from asmnet_jax.synthetic import photo
from asmnet_jax.synthetic import render
from asmnet_jax.synthetic import shape as sh
from asmnet_jax.synthetic.config import CARTOON_REAL_CONFIG, PHOTO_CONFIG

# The renderer's settings for clip faces: the cartoon style in the bundled model's
# proportions and jaw convention, without occluders (a hand or glasses would have to
# move with the head) or clutter shapes (the clip draws its own still background).
CLIP_RENDER_CONFIG = dataclasses.replace(CARTOON_REAL_CONFIG, occluder_prob=0.0, clutter=False)
# The photo style's, labelled alike; its faces are drawn at 1x, as in the datasets.
PHOTO_CLIP_RENDER_CONFIG = dataclasses.replace(PHOTO_CONFIG, occluder_prob=0.0)
# A photo-style head is rendered in a square this many landmark-box sides wide around
# its landmark box, its coverage faded out over the square's outer `_PHOTO_FADE`, so
# that the shoulders cut off at the square's edge leave no visible line.
_PHOTO_SQUARE = 2.0
_PHOTO_FADE = 0.12


@dataclasses.dataclass(frozen=True)
class ClipConfig:
  """What a clip is drawn from. Ranges are (low, high).

  Attributes:
    seconds, fps, width, height: the clip's length and frames.
    yaw, pitch, roll: pose ranges in degrees.
    face_size: jaw width as a fraction of the frame height.
    camera_distance: pinhole distance in face units.
    key_seconds: mean time between key values of the smooth paths.
    hold_prob: chance that a key repeats the one before (the face holds still).
    pose_step: standard deviation of a key's pose step, degrees.
    move_step: standard deviation of a key's place step, fraction of the frame width.
    size_step: standard deviation of a key's relative size step.
    expression_step: standard deviation of a key's expression step (amounts 0-1).
    fast_turns: number of fast yaw swings per face.
    fast_turn_seconds: how long a fast swing takes.
    exits: times a face leaves the frame and comes back (one-face clips; in two-face
      clips the first face exits).
    exit_seconds: how long an exit lasts, out and back.
    two_face_prob: chance of a second face.
    noise: sensor noise standard deviation (0-255) per frame.
    jpeg_quality: JPEG quality each frame is round-tripped through.
    supersample: drawing resolution factor (the cartoon style; photo-style heads are
      drawn at 1x).
    style: "cartoon" or "photo" (module doc).
  """
  seconds: float = 4.0
  fps: float = 30.0
  width: int = 640
  height: int = 480
  yaw: tuple[float, float] = (-45.0, 45.0)
  pitch: tuple[float, float] = (-20.0, 20.0)
  roll: tuple[float, float] = (-20.0, 20.0)
  face_size: tuple[float, float] = (0.30, 0.42)
  camera_distance: tuple[float, float] = (6.0, 12.0)
  key_seconds: float = 1.0
  hold_prob: float = 0.35
  pose_step: float = 10.0
  move_step: float = 0.05
  size_step: float = 0.05
  expression_step: float = 0.3
  fast_turns: int = 1
  fast_turn_seconds: float = 0.25
  exits: int = 1
  exit_seconds: float = 2.0
  two_face_prob: float = 0.3
  noise: float = 3.0
  jpeg_quality: int = 85
  supersample: int = 2
  style: str = "cartoon"

  def __post_init__(self):
    if self.style not in ("cartoon", "photo"):
      raise ValueError(f"ClipConfig.style must be 'cartoon' or 'photo', got {self.style!r}")


def smooth_path(times: np.ndarray, key_times: np.ndarray, key_values: np.ndarray) -> np.ndarray:
  """Values at `times` (T,) of a path through (key_times (K,), key_values (K, ...)),
  smoothstep between keys (zero speed at each key, continuous speed); held constant
  before the first and after the last key."""
  key_times = np.asarray(key_times, np.float64)
  key_values = np.asarray(key_values, np.float64)
  i = np.clip(np.searchsorted(key_times, times, side="right") - 1, 0, len(key_times) - 2)
  span = key_times[i + 1] - key_times[i]
  u = np.clip((times - key_times[i]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
  s = (u * u * (3.0 - 2.0 * u)).reshape((-1,) + (1,) * (key_values.ndim - 1))
  return key_values[i] * (1.0 - s) + key_values[i + 1] * s


@dataclasses.dataclass
class _FacePlan:
  """One face's fixed identity and its per-frame paths."""
  appearance_seed: int
  displacement: np.ndarray  # (68, 3) identity.
  axis_scale: np.ndarray  # (3,)
  distance: float
  pose: np.ndarray  # (T, 3) degrees.
  centre: np.ndarray  # (T, 2) landmark-box centre, pixels.
  size: np.ndarray  # (T,) jaw width, pixels.
  expression: np.ndarray  # (T, 5) mouth_open, smile, closing left, right, brow_raise.


class SyntheticClip:
  """One clip: its frames (rendered on demand) and exact labels (module doc).

  Attributes:
    landmarks: float32 (T, F, 68, 2) pixel-centre x, y of each face on each frame.
    pose: float32 (T, F, 3) yaw, pitch, roll in degrees.
    timestamps: float64 (T,) seconds.
    inside: bool (T, F), all 68 landmarks of the face inside the frame.
  """

  def __init__(self, seed: int, config: ClipConfig = ClipConfig()):
    self.seed, self.config = int(seed), config
    rng = np.random.default_rng([self.seed, 7001])
    self.num_frames = max(1, int(round(config.seconds * config.fps)))
    self.timestamps = np.arange(self.num_frames) / config.fps
    count = 2 if rng.random() < config.two_face_prob else 1
    self._plans = [self._plan(rng, k, count) for k in range(count)]
    self._background = backgrounds.natural_background(
        rng, config.height * config.supersample, config.width * config.supersample)
    if config.style == "photo":
      backdrop = Image.fromarray(np.clip(self._background, 0, 255).astype(np.uint8))
      self._backdrop = np.asarray(backdrop.reduce(config.supersample), np.float32)
      self._ambient = photo.ambient_colour(self._backdrop)
    labels = [[self._scene(plan, t) for plan in self._plans] for t in range(self.num_frames)]
    self.landmarks = np.stack([[s.camera.project(s.points) for s in row] for row in labels]
                              ).astype(np.float32)
    self.pose = np.stack([[s.pose for s in row] for row in labels]).astype(np.float32)
    w, h = config.width, config.height
    x, y = self.landmarks[..., 0], self.landmarks[..., 1]
    self.inside = np.all((x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5), axis=-1)

  @property
  def num_faces(self) -> int:
    return len(self._plans)

  def frame(self, index: int) -> np.ndarray:
    """Frame `index` as uint8 (height, width, 3) RGB."""
    cfg = self.config
    # The smaller (farther) face first, so a nearer one covers it.
    scenes = sorted((self._scene(plan, index) for plan in self._plans),
                    key=lambda s: s.camera.scale)
    if cfg.style == "photo":
      pixels = self._backdrop.copy()
      for scene in scenes:
        self._composite_photo_head(pixels, scene)
    else:
      canvas = Image.fromarray(np.clip(self._background, 0, 255).astype(np.uint8))
      draw = ImageDraw.Draw(canvas, "RGBA")
      for scene in scenes:
        render.scene_painter(scene).paint(draw)
      if cfg.supersample > 1:
        canvas = canvas.reduce(cfg.supersample)
      pixels = np.asarray(canvas, np.float32)
    rng = np.random.default_rng([self.seed, 7002, index])
    pixels = pixels + rng.normal(0.0, cfg.noise, (cfg.height, cfg.width, 1))
    pixels = np.clip(pixels + 0.5, 0, 255).astype(np.uint8)
    return camera_lib.encode_jpeg(pixels, cfg.jpeg_quality)[0]

  def frames(self) -> Iterator[np.ndarray]:
    for index in range(self.num_frames):
      yield self.frame(index)

  def write(self, path: str, fourcc: str = "mp4v") -> None:
    """Writes the clip as a video file (OpenCV, `fourcc` codec, the clip's fps)."""
    import cv2  # pylint: disable=g-import-not-at-top
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), self.config.fps,
                             (self.config.width, self.config.height))
    if not writer.isOpened():
      raise OSError(f"{path}: OpenCV cannot write a {fourcc} video")
    try:
      for frame in self.frames():
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
      writer.release()

  def _composite_photo_head(self, pixels: np.ndarray, scene: render.Scene) -> None:
    """Renders `scene`'s head in the photo style in a square around its landmark box
    and blends it over `pixels` (float32 (H, W, 3), 0-255) in place."""
    box = geometry.landmark_box(scene.camera.project(scene.points))
    lo, hi = box[:2], box[2:]
    side = int(math.ceil(_PHOTO_SQUARE * float(np.max(hi - lo))))
    # Centred a little above the landmark box: the hair rises above the brows further
    # than the neck shows below the chin.
    x0, y0 = np.floor(0.5 * (lo + hi) - [0.5 * side, 0.6 * side]).astype(int)
    height, width = pixels.shape[:2]
    ya, yb, xa, xb = max(y0, 0), min(y0 + side, height), max(x0, 0), min(x0 + side, width)
    if ya >= yb or xa >= xb:
      return  # out of the frame.
    cam = scene.camera
    local = dataclasses.replace(
        scene, size=side, cfg=PHOTO_CLIP_RENDER_CONFIG,
        camera=dr.Camera(cam.rot, cam.distance, cam.scale, cam.offset - [x0, y0]))
    colour, coverage = photo.render_foreground(local, self._ambient)
    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / (_PHOTO_FADE * side),
                   0.0, 1.0).astype(np.float32)
    fade = (ramp[:, None] * ramp[None, :])[..., None]
    colour, coverage = colour * fade, coverage * fade
    c = colour[ya - y0:yb - y0, xa - x0:xb - x0]
    a = coverage[ya - y0:yb - y0, xa - x0:xb - x0]
    pixels[ya:yb, xa:xb] = c * np.float32(255.0) + (1.0 - a) * pixels[ya:yb, xa:xb]

  # ---------------------------------------------------------------------------------

  def _plan(self, rng: np.random.Generator, k: int, count: int) -> _FacePlan:
    cfg = self.config
    t = self.timestamps
    duration = max(t[-1], 1e-6)
    identity_cfg = dataclasses.replace(CLIP_RENDER_CONFIG, expression_scale=0.0)
    d, axis_scale, _ = sh.sample_deformation(rng, identity_cfg, sh.template().vertices[:68])

    def keys(lo, hi, step):
      """Key times and a bounded random walk with holds through [lo, hi] (dims,)."""
      lo, hi = np.atleast_1d(np.asarray(lo, np.float64)), np.atleast_1d(np.asarray(hi, np.float64))
      n = max(2, int(round(duration / cfg.key_seconds)) + 1)
      key_t = np.sort(np.concatenate([[0.0, duration], rng.uniform(0, duration, n - 2)]))
      values = [rng.uniform(lo, hi)]
      for _ in range(n - 1):
        hold = rng.random() < cfg.hold_prob
        values.append(values[-1] if hold else np.clip(values[-1] + rng.normal(0, step), lo, hi))
      return key_t, np.stack(values)

    ranges = np.array([cfg.yaw, cfg.pitch, cfg.roll])
    key_t, key_pose = keys(ranges[:, 0], ranges[:, 1], cfg.pose_step)
    for _ in range(cfg.fast_turns):  # a swing of 30-60 degrees of yaw, quickly.
      start = rng.uniform(0.1, 0.8) * duration
      before = smooth_path(np.array([start]), key_t, key_pose)[0]
      swing = rng.uniform(30.0, 60.0) * (-1.0 if before[0] > 0 else 1.0)
      after = before + [swing, 0.0, 0.0]
      end = start + cfg.fast_turn_seconds
      keep = (key_t < start) | (key_t > end)
      key_t = np.concatenate([key_t[keep], [start, end]])
      key_pose = np.concatenate([key_pose[keep], [before, after]])
      order = np.argsort(key_t)
      key_t, key_pose = key_t[order], key_pose[order]
    pose = smooth_path(t, key_t, key_pose)

    # Place: each face in its share of the frame's width.
    lane_w = cfg.width / count
    size_t, size_k = keys(cfg.face_size[0] * cfg.height, cfg.face_size[1] * cfg.height,
                          cfg.size_step * np.mean(cfg.face_size) * cfg.height)
    size = smooth_path(t, size_t, size_k)[:, 0]
    half = 0.5 * cfg.face_size[1] * cfg.height * 1.1  # landmark box half-size, roughly.
    lo = np.array([k * lane_w + half, half])
    hi = np.array([(k + 1) * lane_w - half, cfg.height - half])
    centre_t, centre_k = keys(lo, np.maximum(hi, lo), cfg.move_step * cfg.width)
    if k == 0:
      for _ in range(cfg.exits):  # out past the nearer side edge and back.
        start = rng.uniform(0.1, 0.9) * max(duration - cfg.exit_seconds, 0.0)
        end = start + cfg.exit_seconds
        mid = 0.5 * (start + end)
        here = smooth_path(np.array([start, end]), centre_t, centre_k)
        out_x = -1.2 * half if here[0, 0] < 0.5 * cfg.width else cfg.width + 1.2 * half
        keep = (centre_t < start) | (centre_t > end)
        centre_t = np.concatenate([centre_t[keep], [start, mid, end]])
        centre_k = np.concatenate([centre_k[keep], [here[0], [out_x, here[0, 1]], here[1]]])
        order = np.argsort(centre_t)
        centre_t, centre_k = centre_t[order], centre_k[order]
    centre = smooth_path(t, centre_t, centre_k)

    # Expressions: mostly neutral, sometimes a smile or an open mouth; blinks.
    expr_t, expr_k = keys([-1.0, -1.0, -0.8], [1.0, 1.0, 1.0], cfg.expression_step)
    mouth, smile, brow = np.clip(smooth_path(t, expr_t, expr_k), [0, 0, -0.6], 1.0).T
    closing = np.zeros_like(t)
    for blink in rng.uniform(0, duration, max(1, int(duration / 2.5))):
      closing = np.maximum(closing, np.clip(1.0 - np.abs(t - blink) / 0.1, 0.0, 1.0))
    expression = np.stack([mouth, smile, closing, closing, brow], axis=1)
    return _FacePlan(int(rng.integers(2**31)), d, axis_scale,
                     float(rng.uniform(*cfg.camera_distance)), pose, centre, size, expression)

  def _scene(self, plan: _FacePlan, index: int) -> render.Scene:
    """The renderer's scene of one face on frame `index` (labels and drawing)."""
    cfg = self.config
    mouth, smile, close_l, close_r, brow = plan.expression[index]
    d = sh.apply_expression(plan.displacement.copy(), sh.template().vertices[:68],
                            mouth, smile, (close_l, close_r), brow)
    vertices = render.deformed_vertices(d, plan.axis_scale)
    pose = plan.pose[index]
    cam = dr.Camera(rotation.euler_to_rotation(*pose), plan.distance,
                    plan.size[index] / 1.25, np.zeros(2))
    points = render.label_points(vertices, cam.rot, cam.distance, CLIP_RENDER_CONFIG)
    projected = cam.project(points)
    cam.offset = plan.centre[index] - 0.5 * (projected.min(axis=0) + projected.max(axis=0))
    render_cfg = dataclasses.replace(CLIP_RENDER_CONFIG, supersample=cfg.supersample)
    # The same appearance draws on every frame: one generator state per face.
    return render.Scene(np.random.default_rng(plan.appearance_seed), render_cfg, cfg.height,
                        vertices, pose, cam, plan.axis_scale,
                        {"mouth_open": mouth, "smile": smile, "closing": [close_l, close_r]},
                        points)
