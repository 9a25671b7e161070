"""Scoring a predictor on annotated photos (`asmnet_jax.evaluate.photos`): the 300-W
and JSON readers, detection matching, the scores against NumPy, bad input, the CLI."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest
from PIL import Image

from asmnet_jax import testing
from asmnet_jax.core import geometry
from asmnet_jax.evaluate import photos
from asmnet_jax.inference import predictor as inference
from asmnet_jax.synthetic import faces as synthetic_faces
from configs import synthetic

SIZE = 64  # rendered faces: tiny, so the folder is quick to write and score.
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def renders():
  return {seed: synthetic_faces.render_face(seed, SIZE) for seed in SEEDS}


def _write_pts(path, points_0based: np.ndarray) -> None:
  """A 300-W .pts (1-based) of 0-based points, written with every digit (repr)."""
  lines = [f"{float(x) + 1.0!r} {float(y) + 1.0!r}" for x, y in np.asarray(points_0based)]
  path.write_text(f"version: 1\nn_points: {len(lines)}\n{{\n" + "\n".join(lines) + "\n}\n")


def _write_300w(root, renders) -> dict[str, np.ndarray]:
  """face<seed>.png + .pts, the last one in a subfolder; {relative image path: gt}."""
  truth = {}
  for i, (seed, face) in enumerate(renders.items()):
    folder = root / "sub" if i == len(renders) - 1 else root
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(face["image"]).save(folder / f"face{seed}.png")
    _write_pts(folder / f"face{seed}.pts", face["landmarks"])
    truth[os.path.relpath(folder / f"face{seed}.png", root)] = face["landmarks"].astype(
        np.float64)
  return truth


class TruthStub:
  """A predictor returning the true landmarks: of the face whose landmark box is the
  given box, or, when detecting, of the faces listed in `detections` per call."""

  def __init__(self, faces, detections=None):
    self.faces = [np.asarray(f, np.float64) for f in faces]
    self.detections = detections  # per call: [(box, landmarks), ...]
    self.calls = 0

  def __call__(self, image, boxes=None, landmark_boxes=False):
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
    if boxes is None:
      found = self.detections[self.calls]
      self.calls += 1
      return [[types.SimpleNamespace(box=np.asarray(b, np.float32), score=0.5, landmarks=p)
               for b, p in found]]
    assert landmark_boxes
    out = []
    for box in np.asarray(boxes):
      k = int(np.argmin([np.abs(geometry.landmark_box(f) - box).max() for f in self.faces]))
      out.append(types.SimpleNamespace(box=box, score=1.0, landmarks=self.faces[k]))
    return [out]


def _numpy_nme(pred: np.ndarray, gt: np.ndarray) -> float:
  """Mean point error over the outer-eye-corner (36, 45) distance, by hand."""
  return float(np.mean(np.sqrt(((pred - gt) ** 2).sum(-1))) / np.hypot(*(gt[36] - gt[45])))


# ----------------------------------------------------------------------------------
# Reading the annotations.


def test_pts_round_trips_the_one_based_convention(tmp_path, renders):
  truth = _write_300w(tmp_path, renders)
  (tmp_path / "unlabelled.jpg").write_bytes(b"")  # an image without a .pts: counted.
  annotations = photos.read_annotations(str(tmp_path))
  assert annotations.format == "300w" and annotations.skipped == []
  assert annotations.unannotated_images == 1
  assert sorted(p.name for p in annotations.photos) == sorted(truth)
  for photo in annotations.photos:
    assert len(photo.landmarks) == 1
    np.testing.assert_array_equal(photo.landmarks[0], truth[photo.name])  # exactly.
  # By hand: 300-W's (1, 1) is the top-left pixel's centre, our (0, 0).
  points = np.zeros((68, 2))
  points[:, 0] = np.arange(68) + 1.0
  points[0] = [1.0, 1.0]
  lines = "\n".join(f"{x:g} {y:g}" for x, y in points)
  (tmp_path / "hand.pts").write_text(f"version: 1\nn_points: 68\n{{\n{lines}\n}}\n")
  Image.fromarray(renders[0]["image"]).save(tmp_path / "hand.jpg")
  # AFW style: <id>_1.pts and <id>_2.pts are two faces of <id>.jpg.
  _write_pts(tmp_path / "hand_1.pts", truth["face0.png"])
  annotations = photos.read_annotations(str(tmp_path))
  hand, = [p for p in annotations.photos if p.name == "hand.jpg"]
  assert len(hand.landmarks) == 2
  np.testing.assert_array_equal(hand.landmarks[0], points - 1.0)
  np.testing.assert_array_equal(hand.landmarks[0][0], [0.0, 0.0])
  np.testing.assert_array_equal(hand.landmarks[1], truth["face0.png"])


def test_neither_format_is_one_clear_error(tmp_path):
  (tmp_path / "a.jpg").write_bytes(b"x")
  with pytest.raises(photos.PhotoScoringError, match=f"{tmp_path}: unknown annotation format. Expected a 300-W"):
    photos.read_annotations(str(tmp_path))
  with pytest.raises(photos.PhotoScoringError, match="dataset not found: .*missing"):
    photos.read_annotations(str(tmp_path / "missing"))
  (tmp_path / "bad.json").write_text("{")
  with pytest.raises(photos.PhotoScoringError, match="bad.json is not valid JSON"):
    photos.read_annotations(str(tmp_path / "bad.json"))
  (tmp_path / "list.json").write_text("[]")
  with pytest.raises(photos.PhotoScoringError, match='list.json: expected {"faces"'):
    photos.read_annotations(str(tmp_path / "list.json"))


# ----------------------------------------------------------------------------------
# Scoring.


def test_detection_matching_rule():
  faces = np.array([[10, 10, 30, 30], [50, 10, 70, 30]], np.float64)  # size 20, centres
  detections = np.array([
      [0, 0, 41, 41],     # holds face 0's centre (20, 20), but size 41 > 2 x 20.
      [12, 12, 32, 32],   # face 0's, centre 2.8 px away.
      [8, 8, 28, 28],     # as close, on the other side: one-to-one, so one is left over.
      [61, 11, 81, 31],   # size 20 beside face 1, but its centre (60, 20) is outside.
  ], np.float64)
  matches = photos.match_detections(faces, detections)
  assert matches[1] == -1 and matches[0] in (1, 2)
  # Closest first: a box 1 px off wins over one 4 px off, whatever their order.
  far, near = [13, 13, 33, 33], [11, 10, 31, 30]  # centres (23, 23) and (21, 20).
  assert photos.match_detections(faces[:1], np.array([far, near]))[0] == 1
  assert photos.match_detections(faces[:1], np.array([near, far]))[0] == 0
  # One box holding two faces' centres goes to the closer face; the other is missed.
  pair = np.array([[10, 10, 30, 30], [14, 10, 34, 30]], np.float64)  # centres x 20, 24.
  assert photos.match_detections(pair, np.array([[12, 8, 36, 32]])).tolist() == [-1, 0]
  # The size limit is a factor 2 either way, inclusive.
  box = lambda s: [20 - s / 2, 20 - s / 2, 20 + s / 2, 20 + s / 2]  # noqa: E731
  assert photos.match_detections(faces[:1], np.array([box(40.0)]))[0] == 0
  assert photos.match_detections(faces[:1], np.array([box(10.0)]))[0] == 0
  assert photos.match_detections(faces[:1], np.array([box(40.5)]))[0] == -1
  assert photos.match_detections(faces[:1], np.array([box(9.5)]))[0] == -1
  assert photos.match_detections(faces, np.zeros((0, 4))).tolist() == [-1, -1]


def test_ground_truth_predictor_scores_zero(tmp_path, renders):
  truth = _write_300w(tmp_path / "data", renders)
  scores = photos.score_photos(TruthStub(truth.values()), str(tmp_path / "data"),
                               str(tmp_path / "out"), progress=False)
  s = scores["summary"]
  assert (s["faces"], s["found"], s["skipped"], s["format"]) == (3, 3, 0, "300w")
  assert s["nme_mean"] == 0.0 and s["nme_median"] == 0.0
  assert s["failure_rate@0.10"] == 0.0 and s["failure_rate@0.08"] == 0.0
  assert s["auc@0.10"] == 1.0 and s["auc@0.08"] == 1.0
  assert [f["nme"] for f in scores["faces"]] == [0.0] * 3
  on_disk = json.loads((tmp_path / "out" / "scores.json").read_text())
  assert on_disk["summary"] == s
  drawings = sorted(os.listdir(tmp_path / "out" / "drawings"))
  assert drawings == ["face0.png", "face1.png", "sub__face2.png"]
  assert (tmp_path / "out" / "ced.png").stat().st_size > 0


def test_detector_mode_counts_found_missed_and_false_positives(tmp_path, renders):
  # One photo of two faces side by side, and one photo where nothing is detected.
  left, right = renders[0], renders[1]
  canvas = np.concatenate([left["image"], right["image"]], axis=1)
  gt_left = left["landmarks"].astype(np.float64)
  gt_right = right["landmarks"].astype(np.float64) + [SIZE, 0]
  Image.fromarray(canvas).save(tmp_path / "two.png")
  Image.fromarray(renders[2]["image"]).save(tmp_path / "none.png")
  (tmp_path / "faces.json").write_text(json.dumps({"faces": [
      {"file": "two.png", "landmarks": gt_left.tolist()},
      {"file": "two.png", "landmarks": gt_right.tolist()},
      {"file": "none.png", "landmarks": renders[2]["landmarks"].tolist()}]}))
  box = geometry.landmark_box(gt_left)
  size = box[2:] - box[:2]
  detected = np.concatenate([box[:2] - 0.2 * size, box[2:] + 0.2 * size])  # found
  off = gt_left + [1.0, 0.0]  # 1 px off: a known, non-zero NME.
  away = [SIZE + 1, 1, SIZE + 9, 9]  # no face's centre inside: a false positive.
  stub = TruthStub([], detections=[[(away, gt_right), (detected, off)], []])
  scores = photos.score_photos(stub, str(tmp_path / "faces.json"), str(tmp_path / "out"),
                               "detector", progress=False)
  s = scores["summary"]
  assert (s["faces"], s["found"], s["false_positives"], s["detector"]) == (3, 1, 1, None)
  assert s["search"] is None  # not a Predictor.
  expected = _numpy_nme(off, gt_left)
  assert s["nme_mean"] == pytest.approx(expected, rel=1e-6)
  assert s["failure_rate@0.10"] == 0.0
  assert s["with_missed_failure_rate@0.10"] == pytest.approx(2 / 3)
  assert s["with_missed_auc@0.10"] == pytest.approx((1 - expected / 0.1) / 3, rel=1e-5)
  assert [f["found"] for f in scores["faces"]] == [True, False, False]
  assert scores["faces"][0]["detection_box"] == pytest.approx(detected.tolist())
  assert scores["false_positives"] == [{"file": "two.png", "box": away, "score": 0.5}]
  assert s["no_face_detected_images"] == 1 and s["skipped"] == 1
  assert "no face detected in " + str(tmp_path / "none.png") in scores["skipped"][0]["reason"]
  text = photos.summary_text(scores)
  assert "found 1 of 3 faces (2 missed) and 1 false positive(s)" in text
  assert "Counting missed faces as failures: failure rate 66.67 %" in text


def test_json_format(tmp_path, renders):
  entries = [{"file": f"face{seed}.jpg", "box_xywh": [0, 0, SIZE, SIZE],
              "landmarks": face["landmarks"].tolist()} for seed, face in renders.items()]
  entries.append({"file": "face0.jpg", "landmarks": [[1.0, 2.0]] * 5})  # 5 in one spot.
  for seed, face in renders.items():
    Image.fromarray(face["image"]).save(tmp_path / f"face{seed}.jpg")
  (tmp_path / photos.JSON_NAME).write_text(json.dumps({"faces": entries}))
  annotations = photos.read_annotations(str(tmp_path))  # the folder holding it.
  assert annotations.format == "json" and len(annotations.photos) == 3
  np.testing.assert_array_equal(annotations.photos[1].landmarks[0],  # 0-based, as given.
                                renders[1]["landmarks"].astype(np.float64))
  skipped, = annotations.skipped
  assert skipped["file"] == "face0.jpg"
  assert skipped["reason"].endswith("faces[3] (face0.jpg): degenerate landmarks (all "
                                    "points coincide)")
  truth = [face["landmarks"] for face in renders.values()]
  scores = photos.score_photos(TruthStub(truth), str(tmp_path / photos.JSON_NAME),
                               str(tmp_path / "out"), draw=False, progress=False)
  assert (scores["summary"]["found"], scores["summary"]["nme_mean"]) == (3, 0.0)
  assert scores["summary"]["skipped"] == 1 and not (tmp_path / "out" / "drawings").exists()


def test_bad_files_are_skipped_and_counted(tmp_path, renders, monkeypatch, capsys):
  truth = _write_300w(tmp_path, renders)
  gt = renders[0]["landmarks"]
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
  Image.fromarray(np.zeros((81, 80, 3), np.uint8)).save(tmp_path / "huge.png")
  for name in ("empty", "corrupt", "huge", "orphan"):
    _write_pts(tmp_path / f"{name}.pts", gt)
  Image.fromarray(renders[0]["image"]).save(tmp_path / "short.png")
  _write_pts(tmp_path / "short.pts", gt[:60])
  monkeypatch.setattr(photos, "MAX_PIXELS", 80 * 80)  # "huge" is 81 x 80.
  scores = photos.score_photos(TruthStub(truth.values()), str(tmp_path), str(tmp_path / "out"),
                               progress=False)
  s = scores["summary"]
  assert (s["faces"], s["found"], s["nme_mean"]) == (3, 3, 0.0)  # the good ones, scored.
  assert (s["skipped"], s["skipped_faces"]) == (5, 5)
  reasons = {e["file"]: e["reason"] for e in scores["skipped"]}
  assert set(reasons) == {"empty.png", "corrupt.jpg", "huge.png", "orphan.pts", "short.pts"}
  assert reasons["empty.png"] == f"empty file: {tmp_path / 'empty.png'}"
  assert reasons["corrupt.jpg"].startswith(f"cannot read image {tmp_path / 'corrupt.jpg'}")
  assert reasons["huge.png"].startswith(f"image too large: {tmp_path / 'huge.png'} is 80 x 81")
  assert reasons["orphan.pts"] == (f"no image orphan.{{jpg,png,...}} beside "
                                   f"{tmp_path / 'orphan.pts'}")
  assert reasons["short.pts"] == f"short.pts: 60 points, most faces of {tmp_path} have 68"
  err = capsys.readouterr().err
  assert all(f"skipping: {reason}" in err for reason in reasons.values())
  assert "Skipped 5 image(s) or annotation(s) (" in photos.summary_text(scores)


# ----------------------------------------------------------------------------------
# The command, with an untrained network.


def test_command_nme_equals_numpy_on_its_predictions(tmp_path, renders, capsys):
  truth = _write_300w(tmp_path / "data", renders)
  (tmp_path / "data" / "broken.png").write_bytes(b"\x89PNG broken")
  _write_pts(tmp_path / "data" / "broken.pts", renders[0]["landmarks"])
  config = synthetic.get_config()
  config.image_size = 32  # the smallest network: compiles fastest.
  workdir = testing.save_untrained_workdir(str(tmp_path / "workdir"), config)
  out = tmp_path / "out"
  status = photos.main([str(tmp_path / "data"), "--workdir", workdir, "--out", str(out)])
  captured = capsys.readouterr()
  assert status == 1  # one unreadable image; the other three are scored.
  assert f"cannot read image {tmp_path / 'data' / 'broken.png'}" in captured.err
  scores = json.loads((out / "scores.json").read_text())
  s = scores["summary"]
  assert (s["faces"], s["found"], s["skipped"], s["boxes"]) == (3, 3, 1, "landmarks")
  # Landmark boxes: no re-crop; a 68-point model flip-tests; a checkpoint's scale is 1.
  assert s["search"] == {"refine_passes": 0, "flip_test": True, "recrop_scale": [1.0, 1.0],
                         "tta_scales": [1.0], "tta_rotations": [0.0]}
  nmes = []
  for face in scores["faces"]:
    pred = np.asarray(face["landmarks"], np.float64)
    assert pred.shape == (68, 2) and np.all(np.isfinite(pred))
    nmes.append(_numpy_nme(pred, truth[face["file"]]))
    assert face["nme"] == pytest.approx(nmes[-1], rel=1e-5)
  nmes = np.array(nmes)
  assert s["nme_mean"] == pytest.approx(nmes.mean(), rel=1e-5)
  assert s["nme_median"] == pytest.approx(np.median(nmes), rel=1e-5)
  assert s["failure_rate@0.10"] == pytest.approx(np.mean(nmes > 0.1))
  assert s["auc@0.10"] == pytest.approx(np.mean(np.maximum(0, 1 - nmes / 0.1)), abs=1e-6)
  assert f"mean {100 * nmes.mean():.2f} %" in captured.out
  assert "Skipped 1 image(s) or annotation(s) (broken.png: cannot read image" in captured.out
  assert sorted(os.listdir(out / "drawings")) == ["face0.png", "face1.png", "sub__face2.png"]


def test_command_errors(tmp_path, monkeypatch, capsys):
  (tmp_path / "nothing").mkdir()
  assert photos.main([str(tmp_path / "nothing"), "--workdir", str(tmp_path)]) == 2
  assert capsys.readouterr().err.strip() == (
      f"error: {tmp_path / 'nothing'}: unknown annotation format. Expected a 300-W folder "
      "(images with a .pts file of the same stem beside them), a landmarks JSON "
      '({"faces": [...]}, or a folder holding landmarks.json) or a CSV (file,x0,y0,x1,y1,'
      "..., or a folder holding landmarks.csv)")
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "landmarks.json").write_text('{"faces": []}')
  assert photos.main([str(tmp_path / "data"), "--workdir", str(tmp_path)]) == 2
  assert "error: no usable annotated face in " in capsys.readouterr().err
  points = np.stack([np.arange(68.0), np.arange(68.0) % 7], axis=1).tolist()
  (tmp_path / "data" / "landmarks.json").write_text(
      json.dumps({"faces": [{"file": "a.jpg", "landmarks": points}]}))
  monkeypatch.delattr(inference.Predictor, "pretrained", raising=False)
  assert photos.main([str(tmp_path / "data")]) == 2
  assert "error: no model given and this version bundles no pretrained one: pass --workdir" \
      in capsys.readouterr().err
  assert photos.main([str(tmp_path / "data"), "--workdir", str(tmp_path / "nowhere")]) == 2
  assert "nowhere" in capsys.readouterr().err
  assert photos.main([str(tmp_path / "data"), "--workdir", str(tmp_path), "--checkpoint",
                      str(tmp_path / "checkpoints" / "5")]) == 2
  assert "error: --checkpoint must be 'best' or 'latest' with --workdir" in \
      capsys.readouterr().err
  assert photos.main([str(tmp_path / "data"), "--checkpoint", str(tmp_path / "7")]) == 2
  assert f"error: --checkpoint {tmp_path / '7'}: no such checkpoint step directory" in \
      capsys.readouterr().err
  assert photos.main([]) == 2
  assert "error: give one DATASET" in capsys.readouterr().err
