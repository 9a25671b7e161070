"""`RenderConfig`: the distributions a synthetic face is drawn from."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RenderConfig:
  """What `render_face` samples. Ranges are (low, high), drawn uniformly.

  Attributes:
    yaw, pitch, roll: head-pose ranges in degrees (`asmnet_jax.core.rotation` signs).
    pose_sd: None: the pose is uniform over those ranges. Else the standard
      deviations in degrees (yaw, pitch, roll) of normals centred on each range's
      midpoint and cut to it (`render.sample_pose`), since faces in photographs are
      mostly near-frontal and a uniform pose spends most faces on rare views.
    identity_scale: multiplies every identity deformation (0: the mean shape).
    expression_scale: multiplies every expression deformation (0: neutral).
    face_size: jaw width (mean-face 1.25 units) as a fraction of the image side.
    shift: position jitter, as a fraction of the slack that keeps landmarks inside.
    margin: the least distance in pixels from any landmark to the image border.
    camera_distance: pinhole camera distance in face units (smaller: stronger
      perspective). The head centre is on the optical axis (the image is shifted
      afterwards), so the appearance of a face matches its pose label.
    occluder_prob: chance of one occluder (glasses, hand, mask or object).
    clutter: draw random shapes in the background.
    blur, noise: upper bounds of the box-blur radius (px) and noise sigma (0-255).
    jpeg_quality: range of the JPEG quality the image is round-tripped through.
    supersample: drawing resolution factor (anti-aliasing).
    style: "cartoon" (flat-shaded painter's-algorithm polygons, the default data set)
      or "photo" (`asmnet_jax.synthetic.photo`: per-pixel shaded z-buffered head, skin
      texture, natural background, camera effects; `clutter`, `blur`, `noise` and
      `jpeg_quality` do not apply, the camera effects replace them).
    jaw_silhouette: label the jaw (points 0-16) on the visible face outline, as 300-W
      annotators do: a jaw point hidden behind the turned face moves along its mesh
      row to the silhouette (`render.label_points`). Off: the projected 3D jaw.
    jaw_even_spacing: then move the jaw points along that outline until they are
      evenly spaced on screen on each side of the chin, as 300-W annotators space them
      (`render.evenly_spaced_jaw`); the mean face's jaw points bunch toward the
      cheeks and leave wide gaps beside the chin. Off: where the outline put them.
    brows_below_labels: draw each brow hanging below its landmarks, so that they run
      along its visible upper edge as 300-W annotators place them. Off: the landmarks
      run a fifth of the way down into the brow.
    real_proportions: give the mean face the eye, nose and brow proportions of
      photographed faces (`shape.real_proportions_displacement`: smaller eyes set
      closer, a longer and narrower nose, longer and more arched brows, and the jaw
      outline, nose base and lips where 300-W annotators put them) before identity
      and expression vary it. Off: the mean face as stored, whose eyes are too large
      for real faces.
    grin_prob: chance of a broad smile over parted lips, as photographed people often
      wear: smile U(0.6, 1), the mouth open U(0.25, 0.7) so that the teeth show, and
      the lower lids raised by the cheeks (`shape.sample_deformation`). Drawn only
      when above 0, so that other presets keep their random streams.
    face_metering: photo style: scale the frame, before the camera effects, so that
      the visible face's mean luma is N(0.6, 0.06) of white (gain 0.5-3), as a
      camera's face-priority auto-exposure meters it; the camera's own exposure
      error then varies it. Off: the scene's lighting alone sets the face's level,
      which leaves renders darker and more varied than photographs.
  """
  yaw: tuple[float, float] = (-60.0, 60.0)
  pitch: tuple[float, float] = (-30.0, 30.0)
  roll: tuple[float, float] = (-30.0, 30.0)
  pose_sd: tuple[float, float, float] | None = None
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
  style: str = "cartoon"
  jaw_silhouette: bool = False
  jaw_even_spacing: bool = False
  brows_below_labels: bool = False
  real_proportions: bool = False
  grin_prob: float = 0.0
  face_metering: bool = False

  def __post_init__(self):
    if self.pose_sd is not None and (len(self.pose_sd) != 3 or min(self.pose_sd) <= 0):
      raise ValueError("RenderConfig.pose_sd must be three positive degrees (yaw, pitch, "
                       f"roll) or None, got {self.pose_sd!r}")


DEFAULT_CONFIG = RenderConfig()
# Frontal, mean shape, neutral, centred, clean: for tests and for seeing the geometry.
CLEAN_FRONTAL_CONFIG = RenderConfig(
    yaw=(0.0, 0.0), pitch=(0.0, 0.0), roll=(0.0, 0.0), identity_scale=0.0,
    expression_scale=0.0, shift=0.0, occluder_prob=0.0, clutter=False, blur=0.0,
    noise=0.0, jpeg_quality=(95, 95))
# Yaw, pitch and roll spreads (degrees) for faces as photographs show them: wider than
# the real-photo development set's (16, 11, 9, as the bundle estimates them) so that
# turned faces stay well covered, narrower than uniform ranges' (35, 17, 17).
PHOTOGRAPH_POSE_SD = (25.0, 12.0, 12.0)
# Photograph-like faces (`asmnet_jax.synthetic.photo`) with 300-W jaw labelling; the
# face fills a wider range of the frame, as detector crops of real photos do. Drawn
# at 1x: per-pixel shading needs no supersampling, and at 2x a face costs 2.2x the
# time; the camera effects' blur and resampling soften the edges.
PHOTO_CONFIG = RenderConfig(style="photo", jaw_silhouette=True, jaw_even_spacing=True,
                            brows_below_labels=True, face_size=(0.45, 0.7),
                            occluder_prob=0.2, supersample=1, real_proportions=True,
                            pose_sd=PHOTOGRAPH_POSE_SD, grin_prob=0.3, face_metering=True)
# The cartoon style in the photo style's proportions and labelling, to mix with it.
CARTOON_REAL_CONFIG = dataclasses.replace(DEFAULT_CONFIG, real_proportions=True,
                                          jaw_silhouette=True, jaw_even_spacing=True,
                                          brows_below_labels=True,
                                          pose_sd=PHOTOGRAPH_POSE_SD, grin_prob=0.3)
# The presets by style name (`faces.py --style`, the dataset builder's `render`).
PRESETS = {"cartoon": DEFAULT_CONFIG, "photo": PHOTO_CONFIG,
           "cartoon_real": CARTOON_REAL_CONFIG}
