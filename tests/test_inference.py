"""The predictor: image inputs, crop and back-mapping geometry (with an oracle in
place of the network), face detection, batching, and predict.py end to end."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from asmnet_jax import cli
from asmnet_jax import testing
from asmnet_jax.core import geometry
from asmnet_jax.data import augment
from asmnet_jax.data import images
from asmnet_jax.inference import detection as face_detection
from asmnet_jax.inference import predictor as inference
from asmnet_jax.synthetic import faces as synthetic_faces
from asmnet_jax.train import checkpoints
from configs import synthetic

IMAGE_SIZE = 64  # of the oracle tests' crops.
NETWORK_SIZE = 32  # of the real (untrained) network: the smallest, to compile fast.
needs_opencv = pytest.mark.skipif(importlib.util.find_spec("cv2") is None,
                                  reason="face detection needs opencv-python-headless")


def make_workdir(path, image_size: int = NETWORK_SIZE, seed: int = 0) -> str:
  """A train.py-style work directory with an untrained network (no training, no
  compile: `testing.save_untrained_workdir`)."""
  config = synthetic.get_config()
  config.image_size = image_size
  return testing.save_untrained_workdir(str(path), config, seed=seed, step=7)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return make_workdir(tmp_path_factory.mktemp("workdir"))


def _background(h: int, w: int) -> np.ndarray:
  """A smooth grey gradient: no texture for a detector to fire on."""
  yy, xx = np.mgrid[0:h, 0:w]
  base = 90 + 60 * xx / w + 30 * yy / h
  return np.repeat(base[..., None], 3, axis=-1).astype(np.uint8)


def _two_face_canvas(seeds=(3, 103)):
  """(uint8 (260, 400, 3), [landmarks (68, 2)] * 2, [pose (3,)] * 2) of two faces."""
  canvas = _background(260, 400)
  faces, poses = [], []
  for seed, size, (top, left) in zip(seeds, (128, 112), ((60, 30), (20, 250))):
    face = synthetic_faces.render_face(seed, size, synthetic_faces.CLEAN_FRONTAL_CONFIG)
    canvas[top:top + size, left:left + size] = face["image"]
    faces.append(face["landmarks"].astype(np.float64) + [left, top])
    poses.append(face["pose"])
  return canvas, faces, poses


@functools.cache
def _detected_seeds() -> tuple[int, int]:
  """Seeds whose two faces the Haar cascade finds in `_two_face_canvas`.

  It misses some of these small synthetic faces (about 1 in 3), so look for a pair
  rather than hard-wire one that a change to the renderer could break.
  """
  detector = face_detection.HaarFaceDetector()
  for seed in range(3, 40):
    seeds = (seed, seed + 100)
    if len(detector(_two_face_canvas(seeds)[0]).boxes) == 2:
      return seeds
  raise AssertionError("the Haar cascade found no pair of synthetic faces")


def _stub_model(num_landmarks: int = 68, image_size: int = IMAGE_SIZE) -> inference.InferenceModel:
  """A model record whose network is never run (an oracle replaces it)."""
  return inference.InferenceModel(module=None, variables={}, image_size=image_size,
                                  num_landmarks=num_landmarks)


def _box(points: np.ndarray) -> np.ndarray:
  return geometry.landmark_box(points)


class LandmarkOracle:
  """Stands in for the network: for each crop, the true normalised landmarks of the
  known face nearest to the crop's centre, and a pose that identifies that face.

  Where each crop came from is read off a spy on `augment.warp_image`, the call that
  resampled the crop's pixels: its crop -> image transform, per crop in order.
  """

  def __init__(self, faces, image_size: int):
    self.faces = [np.asarray(f, np.float64) for f in faces]
    self.image_size = image_size
    self.calls = 0
    self._warp = augment.warp_image
    self._transforms = []  # of the crops warped since the last call.

  def pose(self, k: int) -> np.ndarray:
    return np.array([10.0 * k + 1, -5.0 * k, 2.5 * k], np.float32)

  def warp_image(self, image, crop_to_image, image_size):
    self._transforms.append(np.asarray(crop_to_image, np.float64))
    return self._warp(image, crop_to_image, image_size)

  def __call__(self, crops):
    s = self.image_size
    assert crops.shape[1:] == (s, s, 3) and crops.dtype == np.float32
    transforms, self._transforms = self._transforms, []
    assert len(transforms) == len(crops)
    self.calls += 1
    landmarks, poses = [], []
    for transform in transforms:
      centre = geometry.apply_affine(transform, np.array([[(s - 1) / 2, (s - 1) / 2]]))[0]
      k = int(np.argmin([np.linalg.norm(_box(f).reshape(2, 2).mean(0) - centre)
                         for f in self.faces]))
      in_crop = geometry.apply_affine(geometry.invert_affine(transform), self.faces[k])
      landmarks.append(geometry.normalize_landmarks(in_crop, s).astype(np.float32))
      poses.append(self.pose(k))
    return np.stack(landmarks), np.stack(poses)


def _oracle_predictor(monkeypatch, faces, **kwargs):
  predictor = inference.Predictor(_stub_model(len(faces[0])), **kwargs)
  oracle = LandmarkOracle(faces, predictor.image_size)
  monkeypatch.setattr(augment, "warp_image", oracle.warp_image)
  monkeypatch.setattr(predictor, "_predict_crops", oracle)
  return predictor, oracle


def _match(found, faces, oracle, atol=0.01):
  """Each found face equals one known face (landmarks within atol px, its pose)."""
  assert len(found) == len(faces)
  seen = set()
  for face in found:
    assert face.landmarks.shape == faces[0].shape and face.landmarks.dtype == np.float32
    k = int(np.argmin([np.abs(face.landmarks - f).max() for f in faces]))
    np.testing.assert_allclose(face.landmarks, faces[k], atol=atol)
    np.testing.assert_allclose(face.pose, oracle.pose(k), atol=1e-6)
    assert face.box.shape == (4,) and np.isfinite(face.score)
    seen.add(k)
  assert seen == set(range(len(faces)))


# ----------------------------------------------------------------------------------
# Images.


def test_load_image_array_and_pil_forms():
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
  grey = rgb[..., 0]
  cases = [
      (rgb, rgb),
      (rgb.astype(np.float32) / 255.0, rgb),  # floats in [0, 1]
      (rgb.astype(np.float64), rgb),  # floats in [0, 255]
      (np.concatenate([rgb, np.full((20, 30, 1), 7, np.uint8)], -1), rgb),  # alpha dropped
      (grey, np.repeat(grey[..., None], 3, -1)),
      (grey[..., None], np.repeat(grey[..., None], 3, -1)),
      (grey.astype(np.uint16) * 257, np.repeat(grey[..., None], 3, -1)),
      (Image.fromarray(rgb), rgb),
      (Image.fromarray(grey), np.repeat(grey[..., None], 3, -1)),
      (Image.fromarray(rgb).convert("RGBA"), rgb),
      (Image.fromarray(grey).convert("LA"), np.repeat(grey[..., None], 3, -1)),
  ]
  for given, expected in cases:
    image = images.load_image(given)
    assert image.dtype == np.uint8 and image.shape == (20, 30, 3)
    np.testing.assert_allclose(image.astype(int), expected.astype(int), atol=1)


def test_load_image_errors(tmp_path):
  with pytest.raises(images.ImageLoadError, match="not found"):
    images.load_image(tmp_path / "missing.png")
  (tmp_path / "bad.png").write_bytes(b"not an image")
  with pytest.raises(images.ImageLoadError, match="cannot read"):
    images.load_image(tmp_path / "bad.png")
  with pytest.raises(ValueError, match="image array"):
    images.load_image(np.zeros((4, 4, 5), np.uint8))


def _save_exif_rotated(upright: np.ndarray, path) -> None:
  """Stores `upright` turned 90 degrees counter-clockwise with EXIF orientation 6
  ("rotate 90 clockwise to display"), as phone cameras do."""
  stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))
  exif = Image.Exif()
  exif[0x0112] = 6
  stored.save(path, quality=95, exif=exif)


def test_load_image_applies_exif_orientation(tmp_path):
  upright = _two_face_canvas()[0]
  _save_exif_rotated(upright, tmp_path / "rotated.jpg")
  assert np.asarray(Image.open(tmp_path / "rotated.jpg")).shape == (400, 260, 3)
  image = images.load_image(tmp_path / "rotated.jpg")
  assert image.shape == upright.shape
  assert np.abs(image.astype(int) - upright).mean() < 3  # JPEG loss only.
  pil = images.load_image(Image.open(tmp_path / "rotated.jpg"))
  np.testing.assert_array_equal(pil, image)


# ----------------------------------------------------------------------------------
# Geometry, with an oracle for the network.


@needs_opencv
def test_two_detected_faces_map_back_to_image_coordinates(monkeypatch):
  canvas, faces, _ = _two_face_canvas(_detected_seeds())
  predictor, oracle = _oracle_predictor(monkeypatch, faces)
  result = predictor(canvas)
  assert len(result) == 1
  _match(result[0], faces, oracle)
  assert oracle.calls == 2  # detector-box pass, then the landmark re-crop.
  for face in result[0]:  # the reported box is the detector's, around the face.
    centre = _box(face.landmarks).reshape(2, 2).mean(0)
    assert face.box[0] < centre[0] < face.box[2] and face.box[1] < centre[1] < face.box[3]


@needs_opencv
def test_exif_rotated_jpeg_path(monkeypatch, tmp_path):
  canvas, faces, _ = _two_face_canvas(_detected_seeds())
  _save_exif_rotated(canvas, tmp_path / "rotated.jpg")
  predictor, oracle = _oracle_predictor(monkeypatch, faces)
  # Detection only finds the faces once the image is turned upright.
  result = predictor(str(tmp_path / "rotated.jpg"))
  _match(result[0], faces, oracle)


@pytest.mark.parametrize("form", ["grey", "grey_pil", "rgba", "float", "palette"])
def test_other_image_forms_with_given_boxes(monkeypatch, form):
  canvas, faces, _ = _two_face_canvas()
  image = {
      "grey": canvas[..., 0],
      "grey_pil": Image.fromarray(canvas).convert("L"),
      "rgba": np.concatenate([canvas, np.zeros(canvas.shape[:2] + (1,), np.uint8)], -1),
      "float": canvas.astype(np.float32) / 255.0,
      "palette": Image.fromarray(canvas).convert("P"),
  }[form]
  # Rough face boxes: the landmark boxes grown and shifted like a detector's.
  boxes = [_box(f) + [-9, -25, 11, 6] for f in faces]
  predictor, oracle = _oracle_predictor(monkeypatch, faces)
  result = predictor(image, boxes=boxes)
  _match(result[0], faces, oracle)
  np.testing.assert_allclose(np.stack([f.box for f in result[0]]), np.stack(boxes), atol=1e-4)
  assert all(f.score == 1.0 for f in result[0])


def test_several_images_boxes_per_image(monkeypatch):
  canvas, faces, _ = _two_face_canvas()
  # Image 1: the left face only, cut out (its own coordinates); image 2: the canvas
  # with given landmark boxes; image 3: blank.
  crop = canvas[40:220, 10:190]
  left = faces[0] - [10, 40]
  known = [faces[0], faces[1], left]
  predictor, oracle = _oracle_predictor(monkeypatch, known, batch_sizes=(2, 4))
  blank = np.full((50, 70, 3), 128, np.uint8)
  result = predictor([crop, canvas, blank],
                     boxes=[[_box(left)], [_box(f) for f in faces], None],
                     landmark_boxes=True)
  assert [len(r) for r in result] == [1, 2, 0]
  np.testing.assert_allclose(result[0][0].landmarks, left, atol=0.01)
  for face in result[1]:
    assert min(np.abs(face.landmarks - f).max() for f in faces) < 0.01
  assert predictor(blank, boxes=[]) == [[]]


def test_no_refinement_keeps_the_first_pass(monkeypatch):
  canvas, faces, _ = _two_face_canvas()
  predictor, oracle = _oracle_predictor(monkeypatch, faces, refine_passes=0)
  result = predictor(canvas, boxes=[_box(faces[0])], landmark_boxes=True)
  assert oracle.calls == 1
  np.testing.assert_allclose(result[0][0].landmarks, faces[0], atol=0.01)


class LaggingOracle(LandmarkOracle):
  """The oracle with a network's lag: the shape found halfway between the face and
  the crop's centre (its landmark box centre), so that each re-crop halves the
  distance. Records batch sizes."""

  def __init__(self, faces, image_size: int):
    super().__init__(faces, image_size)
    self.batches = []

  def __call__(self, crops):
    landmarks, poses = super().__call__(crops)
    self.batches.append(len(crops))
    box_centre = 0.5 * (landmarks.min(axis=1, keepdims=True) + landmarks.max(axis=1, keepdims=True))
    return landmarks - 0.5 * box_centre, poses


@pytest.mark.parametrize("converged, expected_batches", [
    (None, [2, 2, 2, 2]),  # every pass for both faces.
    (0.01, [2, 1, 1, 1]),  # the centred face settles at once, the other keeps moving.
    (0.1, [2, 1]),  # the other stops once a re-crop would move it less than 10 %.
])
def test_recrops_stop_per_face_once_the_crop_settles(monkeypatch, converged,
                                                      expected_batches):
  canvas, faces, _ = _two_face_canvas()
  predictor = inference.Predictor(_stub_model(68), refine_passes=3)
  oracle = LaggingOracle(faces, predictor.image_size)
  monkeypatch.setattr(augment, "warp_image", oracle.warp_image)
  monkeypatch.setattr(predictor, "_predict_crops", oracle)
  size = np.sqrt(np.prod(np.diff(_box(faces[1]).reshape(2, 2), axis=0)))
  shifted = _box(faces[1]) + 0.3 * size * np.array([1.0, 0.0, 1.0, 0.0])
  landmarks, _, crops = predictor.predict_landmark_boxes(
      canvas, np.stack([_box(faces[0]), shifted]), converged=converged)
  assert oracle.batches == expected_batches
  np.testing.assert_allclose(landmarks[0], faces[0], atol=0.01)
  np.testing.assert_allclose(crops[0], _box(faces[0]), atol=0.01)
  # Each pass halves the face's offset from its crop: 0.15, 0.075, ... of its size.
  passes = len(expected_batches)
  offset = (landmarks[1] - faces[1]).mean(0) / size
  np.testing.assert_allclose(offset, [0.3 * 0.5 ** passes, 0.0], atol=2e-3)
  assert inference.box_change(crops[1:], _box(landmarks[1])[None])[0] == pytest.approx(
      0.3 * 0.5 ** passes, abs=2e-3)


class ShrinkingOracle(LandmarkOracle):
  """The oracle of a network that draws faces smaller than labelled: the true shape
  shrunk by `factor` about its box centre (in the crop), wherever the crop is."""

  def __init__(self, faces, image_size: int, factor: float):
    super().__init__(faces, image_size)
    self.factor = factor

  def __call__(self, crops):
    landmarks, poses = super().__call__(crops)
    box_centre = 0.5 * (landmarks.min(axis=1, keepdims=True) + landmarks.max(axis=1, keepdims=True))
    return box_centre + self.factor * (landmarks - box_centre), poses


def test_recrop_box_scales_the_landmark_box_about_its_centre():
  landmarks = np.array([[10.0, 20.0], [30.0, 60.0], [25.0, 30.0]])
  # Centre (20, 40), half-size (10, 20) -> (15, 10).
  np.testing.assert_allclose(inference.recrop_box(landmarks, (1.5, 0.5)), [5, 30, 35, 50])
  np.testing.assert_allclose(inference.recrop_box(landmarks), _box(landmarks))
  batch = np.stack([landmarks, landmarks + 5.0])
  np.testing.assert_allclose(inference.recrop_box(batch, (1.5, 0.5)),
                             [[5, 30, 35, 50], [10, 35, 40, 55]])


@pytest.mark.parametrize("scale, crop_factor", [
    ((1.0, 1.0), 0.9),  # the landmarks' own box: the crop shrinks with the shape.
    ((1 / 0.9, 1 / 0.9), 1.0),  # the model's correction: the crop is the face's.
])
def test_recrop_scale_undoes_a_model_that_draws_faces_small(monkeypatch, scale, crop_factor):
  canvas, faces, _ = _two_face_canvas()
  model = dataclasses.replace(_stub_model(68), recrop_scale=scale)
  predictor = inference.Predictor(model, refine_passes=2)
  assert predictor.recrop_scale == pytest.approx(scale)
  oracle = ShrinkingOracle(faces, predictor.image_size, factor=0.9)
  monkeypatch.setattr(augment, "warp_image", oracle.warp_image)
  monkeypatch.setattr(predictor, "_predict_crops", oracle)
  true_box = _box(faces[0])
  _, _, crops = predictor.predict_landmark_boxes(canvas, true_box[None])
  centre, half = true_box.reshape(2, 2).mean(0), 0.5 * np.diff(true_box.reshape(2, 2), axis=0)[0]
  np.testing.assert_allclose(crops[0], np.concatenate([centre - crop_factor * half,
                                                       centre + crop_factor * half]), atol=0.01)


def test_recrop_scale_default_override_and_errors():
  model = dataclasses.replace(_stub_model(68), recrop_scale=(1.1, 1.2))
  assert inference.Predictor(model).recrop_scale == (1.1, 1.2)
  assert inference.Predictor(model, recrop_scale=(1, 1)).recrop_scale == (1.0, 1.0)
  for bad in [(0.3, 1.0), (1.0, float("nan")), (1.0, 1.0, 1.0), (2.5, 1.0)]:
    with pytest.raises(ValueError, match="recrop_scale"):
      inference.Predictor(model, recrop_scale=bad)


class RollingOracle(LandmarkOracle):
  """The oracle of a network that also reads the roll: each face's pose, its roll grown
  by the crop's content rotation, measured as the turn of the face's eye line (points
  36 -> 45) from the image to the crop (positive clockwise as displayed, the roll's
  sense). Needs square landmark boxes, so that the crop does not shear angles."""

  def __call__(self, crops):
    self.crop_counts = getattr(self, "crop_counts", []) + [len(crops)]
    landmarks, poses = super().__call__(crops)
    for crop_points, pose in zip(landmarks.astype(np.float64), poses):
      k = int(round((pose[0] - 1.0) / 10.0))  # `pose` identifies the face.
      turn = _eye_line_angle(crop_points) - _eye_line_angle(self.faces[k])
      pose[2] += (turn + 180.0) % 360.0 - 180.0
    return landmarks, poses


def _eye_line_angle(points: np.ndarray) -> float:
  """The direction of the line from point 36 to point 45, degrees (y down)."""
  v = points[45] - points[36]
  return float(np.degrees(np.arctan2(v[1], v[0])))


def _square_boxed(points: np.ndarray) -> np.ndarray:
  """`points` (n, 2) stretched vertically about their box centre to a square box."""
  lo, hi = points.min(0), points.max(0)
  centre = 0.5 * (lo + hi)
  return centre + (points - centre) * [1.0, (hi - lo)[0] / (hi - lo)[1]]


def test_test_time_views_map_back_to_the_faces_and_their_roll(monkeypatch):
  """Every (scale, rotation) view of every face is cropped and mapped back: a network
  exact in each view gives each face's landmarks and pose, its roll unrotated."""
  canvas, faces, _ = _two_face_canvas()
  faces = [_square_boxed(f) for f in faces]
  predictor = inference.Predictor(_stub_model(68), refine_passes=0,
                                  tta_scales=(0.9, 1.0, 1.15), tta_rotations=(-12.0, 0.0, 7.0))
  oracle = RollingOracle(faces, predictor.image_size)
  monkeypatch.setattr(augment, "warp_image", oracle.warp_image)
  monkeypatch.setattr(predictor, "_predict_crops", oracle)
  found, = predictor(canvas, [_box(f) for f in faces], landmark_boxes=True)
  assert oracle.crop_counts == [2 * 9]
  for face, truth, k in zip(found, faces, range(2)):
    np.testing.assert_allclose(face.landmarks, truth, atol=0.01)
    np.testing.assert_allclose(face.pose, oracle.pose(k), atol=0.01)


def test_a_test_time_view_turns_the_content_as_the_training_crop_does():
  """`view_crop_to_image` at a rotation puts points where training's `crop_matrix` at
  that rotation does, up to each axis's scale and offset (their boxes differ)."""
  points = np.random.default_rng(3).uniform([40, 60], [140, 200], (30, 2))
  for rotation in (-10.0, 8.0):
    view = inference.view_crop_to_image(_box(points), 64, 0.05, 1.0, rotation)
    in_view = geometry.apply_affine(geometry.invert_affine(view), points)
    in_training_crop = geometry.apply_affine(
        geometry.crop_matrix(points, rotation_deg=rotation)[0], points)
    standard = lambda q: (q - q.mean(0)) / q.std(0)  # pylint: disable=unnecessary-lambda-assignment
    np.testing.assert_allclose(standard(in_view), standard(in_training_crop), atol=1e-9)
    unturned = geometry.apply_affine(geometry.crop_matrix(points)[0], points)
    assert np.abs(standard(in_view) - standard(unturned)).max() > 0.1


def test_test_time_scales_average_the_predictions_at_scaled_boxes():
  """A real network: the views' mean equals the mean of plain predictions at each
  scaled landmark box (the same faces, predicted one scale at a time)."""
  canvas, faces, _ = _two_face_canvas()
  model = testing.random_model(num_landmarks=68, image_size=NETWORK_SIZE)
  boxes = np.stack([_box(f) for f in faces])
  averaged = inference.Predictor(model, refine_passes=0, flip_test=True,
                                 tta_scales=(0.9, 1.1))
  plain = inference.Predictor(model, refine_passes=0, flip_test=True)
  centre, half = 0.5 * (boxes[:, :2] + boxes[:, 2:]), 0.5 * (boxes[:, 2:] - boxes[:, :2])
  each = [plain.predict_landmark_boxes(canvas, np.concatenate([centre - s * half,
                                                               centre + s * half], axis=1))
          for s in (0.9, 1.1)]
  landmarks, pose, _ = averaged.predict_landmark_boxes(canvas, boxes)
  np.testing.assert_allclose(landmarks, 0.5 * (each[0][0] + each[1][0]), atol=1e-4)
  np.testing.assert_allclose(pose, 0.5 * (each[0][1] + each[1][1]), atol=1e-3)
  assert np.abs(each[0][0] - each[1][0]).max() > 0.1  # the views do differ.
  one_view, _, _ = averaged.predict_landmark_boxes(canvas, boxes, tta=False)
  np.testing.assert_allclose(one_view, plain.predict_landmark_boxes(canvas, boxes)[0],
                             atol=1e-6)


def test_test_time_views_default_override_and_errors():
  model = dataclasses.replace(_stub_model(68), tta_scales=(0.9, 1.1), tta_rotations=(5.0,))
  assert (inference.Predictor(model).tta_scales, inference.Predictor(model).tta_rotations) == (
      (0.9, 1.1), (5.0,))
  # One view sits at the median of the model's box factors, unrotated.
  one = inference.Predictor(model, **inference.ONE_VIEW)
  assert (one.tta_scales, one.tta_rotations) == ((1.0,), (0.0,))
  three = dataclasses.replace(model, tta_scales=(1.225, 0.925, 1.075))
  assert inference.Predictor(three, one_view=True).tta_scales == (1.075,)
  with pytest.raises(ValueError, match="one_view"):
    inference.Predictor(three, one_view=True, tta_scales=(1.0,))
  for bad in [{"tta_scales": ()}, {"tta_scales": (3.0,)}, {"tta_rotations": (90.0,)},
              {"tta_rotations": (float("nan"),)}]:
    with pytest.raises(ValueError, match=next(iter(bad))):
      inference.Predictor(model, **bad)


def _blob_image(h, w, centres, sigma):
  """Black image with a Gaussian spot per centre, in red, green and blue."""
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  image = np.zeros((h, w, 3))
  for channel, (cx, cy) in enumerate(centres):
    image[..., channel] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
  return np.round(255 * image).astype(np.uint8)


def _blob_oracle(crops):
  """Landmark c = the intensity centroid of colour channel c in the crop (pixels
  only: checks that the resampled pixels and the returned coordinates agree)."""
  s = crops.shape[1]
  yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
  out = []
  for crop in crops:
    weights = [np.where(crop[..., c] > 0.02, crop[..., c], 0.0) for c in range(3)]
    points = [[(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()] for w in weights]
    out.append(geometry.normalize_landmarks(np.asarray(points), s))
  return np.stack(out).astype(np.float32), np.zeros((len(crops), 3), np.float32)


@pytest.mark.parametrize("centres, sigma, atol", [
    # Crop side ~ landmark box + 10 %: 95 px -> 64 (plain bilinear).
    (((101.3, 80.7), (180.6, 95.2), (140.1, 170.4)), 1.2, 0.15),
    # 440 px -> 64: box-filtered by 6 first, then bilinear.
    (((40.2, 30.9), (440.8, 70.3), (250.5, 330.6)), 7.0, 0.6),
])
def test_pixels_and_coordinates_agree(monkeypatch, centres, sigma, atol):
  image = _blob_image(360, 480, centres, sigma)
  predictor = inference.Predictor(_stub_model(3), refine_passes=2)
  monkeypatch.setattr(predictor, "_predict_crops", _blob_oracle)
  # A first box off the blobs' (all still inside): the re-crops converge on them.
  start = _box(np.asarray(centres)) + [-6, -4, 9, 7]
  result = predictor(image, boxes=[start], landmark_boxes=True)
  np.testing.assert_allclose(result[0][0].landmarks, centres, atol=atol)


# ----------------------------------------------------------------------------------
# Detection.


@needs_opencv
def test_haar_detections_are_the_rendered_faces():
  """Each detection in a one-face render is that face: never two boxes, and the
  box's landmark-box estimate overlaps the true landmark box (IoU > 0.7).

  How many of these synthetic faces the cascade finds depends on the OpenCV build
  (16 of the 20 with 4.14), so that count is only required to be positive.
  """
  detector = face_detection.HaarFaceDetector()
  hits = 0
  for seed in range(20):
    face = synthetic_faces.render_face(seed, 192, synthetic_faces.CLEAN_FRONTAL_CONFIG)
    found = detector(face["image"])
    assert len(found.boxes) <= 1, (seed, found.boxes)
    for estimate in face_detection.DetectorBoxMapping()(found.boxes):
      hits += 1
      truth = _box(face["landmarks"].astype(np.float64))
      lo, hi = np.maximum(estimate[:2], truth[:2]), np.minimum(estimate[2:], truth[2:])
      inter = np.prod(np.maximum(hi - lo, 0))
      union = np.prod(estimate[2:] - estimate[:2]) + np.prod(truth[2:] - truth[:2]) - inter
      assert inter / union > 0.7, (seed, estimate, truth)
  assert hits > 0


@needs_opencv
def test_detector_boxes_in_original_coordinates_when_downscaled():
  canvas = _two_face_canvas(_detected_seeds())[0]
  big = np.asarray(Image.fromarray(canvas).resize((800, 520), Image.Resampling.BILINEAR))
  full = face_detection.HaarFaceDetector(max_side=2000)(big)
  small = face_detection.HaarFaceDetector(max_side=400)(big)
  assert len(full.boxes) and len(small.boxes)
  # Each box found at half resolution lies where a full-resolution one is.
  for box in small.boxes:
    assert np.abs(full.boxes - box).max(axis=1).min() < 0.12 * (box[2] - box[0])


@needs_opencv
@pytest.mark.parametrize("image", [
    np.full((240, 320, 3), 128, np.uint8), _background(240, 320), np.zeros((30, 20), np.uint8)])
def test_no_face_gives_an_empty_list(image):
  predictor = inference.Predictor(_stub_model())  # the network is never reached.
  assert predictor(image) == [[]]
  assert predictor([image, image]) == [[], []]


# ----------------------------------------------------------------------------------
# The real network.


def test_batches_are_padded_and_split_without_mixing_faces(workdir):
  predictor = inference.Predictor.from_workdir(workdir, batch_sizes=(4,))
  model = predictor.model
  assert (model.image_size, model.num_landmarks, model.step) == (NETWORK_SIZE, 68, 7)
  canvas, faces, _ = _two_face_canvas()
  boxes = [_box(f) + offset for f in faces for offset in ([0, 0, 0, 0], [-5, 3, 8, 2])]
  boxes.append(_box(faces[0]) + [4, 4, -4, -4])
  together = predictor(canvas, boxes=boxes)[0]  # 5 faces: a batch of 4, then 1 padded.
  assert len(together) == 5
  for box, face in zip(boxes, together):
    alone = predictor(canvas, boxes=[box])[0][0]
    np.testing.assert_allclose(face.landmarks, alone.landmarks, atol=1e-3)
    np.testing.assert_allclose(face.pose, alone.pose, atol=1e-3)
    assert np.all(np.isfinite(face.landmarks)) and face.pose.shape == (3,)
  from_checkpoint = inference.load_checkpoint(os.path.join(workdir, "checkpoints", "7"))
  for a, b in zip(jax.tree.leaves(model.variables), jax.tree.leaves(from_checkpoint.variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_workdir_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    inference.load_workdir(str(tmp_path))
  with pytest.raises(ValueError, match="best.*latest"):
    checkpoints.step_dir(str(tmp_path), "newest")


@needs_opencv
@pytest.mark.slow
def test_predict_script_writes_png_and_json(workdir, tmp_path):
  import predict  # pylint: disable=g-import-not-at-top
  canvas, _, _ = _two_face_canvas(_detected_seeds())
  Image.fromarray(canvas).save(tmp_path / "two.png")
  Image.fromarray(_background(60, 80)).save(tmp_path / "none.jpg")
  (tmp_path / "broken.png").write_bytes(b"\x89PNG truncated")
  out = tmp_path / "out"
  paths = [str(tmp_path / name) for name in ("two.png", "broken.png", "none.jpg")]
  # Exit status 1: an image could not be read (the others are still predicted).
  assert predict.main(["--workdir", workdir, "--out", str(out), *paths]) == cli.EXIT_FAILURE
  with open(out / "predictions.json") as f:
    written = json.load(f)
  assert [entry["image"] for entry in written] == paths
  assert [len(entry["faces"]) for entry in written] == [2, 0, 0]
  assert "cannot read" in written[1]["error"]
  del written[1]
  face = written[0]["faces"][0]
  assert np.asarray(face["landmarks"]).shape == (68, 2)
  assert set(face["pose_deg"]) == {"yaw", "pitch", "roll"} and len(face["box"]) == 4
  for entry in written:
    drawing = Image.open(out / entry["drawing"])
    assert drawing.format == "PNG" and drawing.size == (entry["width"], entry["height"])


def test_flip_test_averages_with_the_mirrored_crop_and_is_equivariant():
  """flip_test = the mean of the network on a crop and, mirrored back, on its mirror
  image (mirroring written out pair by pair here); so a mirrored crop gets exactly the
  mirrored prediction."""
  model = testing.random_model(num_landmarks=68, image_size=NETWORK_SIZE)
  plain = inference.Predictor(model)
  flipping = inference.Predictor(model, flip_test=True)
  crops = np.random.default_rng(0).uniform(0, 1, (2, NETWORK_SIZE, NETWORK_SIZE, 3))
  crops = crops.astype(np.float32)
  mirrored_crops = np.ascontiguousarray(crops[:, :, ::-1])
  lm, pose = plain._predict_crops(crops)
  lm_m, pose_m = plain._predict_crops(mirrored_crops)
  back = np.empty_like(lm_m)
  partner = {8: 8, 27: 27, 28: 28, 29: 29, 30: 30, 33: 33, 51: 51, 57: 57, 62: 62, 66: 66}
  for a, b in [(0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9),
               (17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34),
               (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54),
               (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]:
    partner[a], partner[b] = b, a
  for i, j in partner.items():
    back[:, i] = lm_m[:, j] * [-1.0, 1.0]
  expected_lm = 0.5 * (lm + back)
  expected_pose = 0.5 * (pose + pose_m * [-1.0, 1.0, -1.0])
  got_lm, got_pose = flipping._predict_crops(crops)
  np.testing.assert_allclose(got_lm, expected_lm, atol=1e-5)
  np.testing.assert_allclose(got_pose, expected_pose, atol=1e-3)
  assert np.abs(got_lm - lm).max() > 1e-3  # the averaging did change something.
  got_lm_m, got_pose_m = flipping._predict_crops(mirrored_crops)
  np.testing.assert_allclose(got_lm_m, np.stack([got_lm[:, partner[i]] for i in range(68)],
                                                axis=1) * [-1.0, 1.0], atol=1e-5)
  np.testing.assert_allclose(got_pose_m, got_pose * [-1.0, 1.0, -1.0], atol=1e-3)
  with pytest.raises(ValueError, match="5 points have no mirror map"):
    inference.Predictor(testing.random_model(num_landmarks=5, image_size=NETWORK_SIZE),
                        flip_test=True)
