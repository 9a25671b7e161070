"""Builds landmark_folder from its dummy_data fixture and from folders written here, in
each annotation format, and checks the refusals of bad folders (no TensorFlow)."""

from __future__ import annotations

import hashlib
import math
import json
import os
import shutil

import numpy as np
import pytest

from asmnet_jax import testing
from asmnet_jax.data import annotations, builders, scheme
from asmnet_jax_datasets.landmark_folder import landmark_folder_dataset_builder as folder_lib

DUMMY = os.path.join(os.path.dirname(__file__), "dummy_data")



FIXTURE = testing.dummy_data_module(__file__)


def _build(data_dir, manual_dir):
  builder = folder_lib.Builder(data_dir=str(data_dir),
                               config=folder_lib.Builder.config_for_manual_dir(str(manual_dir)))
  return builder, builders.prepare_reporting_skips(builder, str(manual_dir))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("tfds"), DUMMY)


def test_fixture_splits_points_and_metadata(built):
  builder, _ = built
  assert {s: builder.info.splits[s].num_examples for s in ("train", "test")} == {
      "train": 3, "test": 2}
  expected = {
      "train": {"train/t1.png": ["train/t1"], "train/t2.png": ["train/t2a", "train/t2b"]},
      "test": {"test/u1.jpg": ["test/u1"], "test/u2.jpg": ["test/u2"]},
  }
  for split, images in expected.items():
    records = builders.read_split(builder, split)
    found: dict[str, list[np.ndarray]] = {}
    for r in records:
      assert r["landmarks"].shape == (5, 2) and r["landmarks"].dtype == np.float32
      np.testing.assert_array_equal(r["pose"], np.zeros(3))  # 5 points: pose absent.
      found.setdefault(r["filename"].decode(), []).append(r["landmarks"] + r["crop_box"][:2])
    assert sorted(found) == sorted(images)
    for image, faces in images.items():
      got = sorted(found[image], key=lambda p: p[0, 0])
      want = sorted((FIXTURE.points_of(f) for f in faces), key=lambda p: p[0, 0])
      for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=2e-3)  # .pts and CSV, both to 0-based.
  declared = scheme.scheme_of(builder)
  assert declared == scheme.LandmarkScheme(5, "inter_ocular", (0, 1), (1, 0, 2, 4, 3),
                                           "absent")
  assert builder.info.metadata["landmark_scheme"]["mirror_map"] == [1, 0, 2, 4, 3]


def test_skip_report_names_and_counts_bad_samples(built):
  _, reports = built
  (train,) = [t for t in reports if t.startswith("landmark_folder/train:")]
  (test,) = [t for t in reports if t.startswith("landmark_folder/test:")]
  assert "skipped 4 malformed sample(s)" in train
  assert "landmarks.csv, line 5, column 4: 'x12' is not a number" in train
  assert "landmarks.csv, line 6 (t1.png): duplicate of line 2" in train
  assert "train/landmarks.csv:7: 1 of 5 points outside the 48 x 48 image (first: point 4)" in train
  assert "1 face(s) skipped for points outside their image" in train
  assert "image not found" in train and "t9.png" in train
  assert "skipped 1 malformed sample(s)" in test
  assert "test/u3.pts: 4 points, the dataset has 5" in test


def test_hash_splits_json_several_faces_and_names(tmp_path):
  # One folder, no train/: splits drawn from a hash of the image path.
  root = tmp_path / "my faces"
  root.mkdir()
  faces, entries = {}, []
  for i in range(12):
    points = [testing.drawn_face_points(19, 5.0 * k, 0.0, 0.0, 6.0, (12 + 24 * k, 24))
              for k in range(2)]
    name = f"img{i:02d}.png"
    from PIL import Image  # pylint: disable=g-import-not-at-top
    Image.fromarray(testing.draw_face_image((48, 48), points, seed=i)).save(root / name)
    faces[name] = points
    entries += [{"file": name, "landmarks": p.tolist()} for p in points]
  (root / "landmarks.json").write_text(json.dumps({"faces": entries}))
  builder, reports = _build(tmp_path / "tfds", root)
  assert reports == []
  assert builder.builder_config.name.startswith("my_faces_19pts_")
  draws = {name: int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64
           for name in faces}
  expected_test = sorted(n for n, d in draws.items() if d < 0.2)
  assert 0 < len(expected_test) < 12  # the fixture exercises both splits.
  rest = [n for n in faces if n not in expected_test]
  ranked = sorted(rest, key=lambda n: hashlib.sha256(n.encode()).digest())
  expected_validation = sorted(ranked[:math.ceil(0.1 * len(rest))])
  got = {split: builders.read_split(builder, split) for split in ("train", "test", "validation")}
  assert sorted({r["filename"].decode() for r in got["test"]}) == expected_test
  assert sorted({r["filename"].decode() for r in got["validation"]}) == expected_validation
  assert sum(len(records) for records in got.values()) == 24  # two faces an image, all kept.
  declared = scheme.scheme_of(builder)
  assert (declared.normalizer, declared.eye_corners, declared.mirror_map) == (
      "box_diagonal", None, None)
  # Editing the folder makes a new config (a new built copy), never a stale one.
  (root / "dataset.json").write_text(json.dumps(testing.FOLDER_SCHEMES[19]))
  config = folder_lib.Builder.config_for_manual_dir(str(root))
  assert config.name != builder.builder_config.name
  assert config.scheme.mirror_map[:2] == (5, 4)


def test_pose_csv_for_five_points(tmp_path):
  root = tmp_path / "folder"
  shutil.copytree(DUMMY, root)
  (root / "pose_overrides.csv").write_text(
      "filename,yaw,pitch,roll\ntrain/t1.png,1,2,3\ntrain/t2.png#1,4,5,6\n"
      "test/u1.jpg,0,0,0\ntest/u2.jpg,0,0,0\n")
  builder, reports = _build(tmp_path / "tfds", root)
  assert scheme.scheme_of(builder).pose_source == "csv"
  poses = {(r["filename"].decode(), float(r["landmarks"][0, 0] + r["crop_box"][0]) > 24):
           r["pose"].tolist() for r in builders.read_split(builder, "train")}
  assert poses == {("train/t1.png", False): [1, 2, 3], ("train/t2.png", True): [4, 5, 6]}
  (train,) = [t for t in reports if t.startswith("landmark_folder/train:")]
  assert "no row for train/t2.png (or train/t2.png#0)" in train


def test_sixty_eight_points_get_fitted_poses(tmp_path):
  root = tmp_path / "folder"
  root.mkdir()
  pose = (20.0, 5.0, -10.0)
  points = testing.drawn_face_points(68, *pose, 14.0, (24, 26))
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray(testing.draw_face_image((48, 48), [points], seed=1)).save(root / "a.png")
  (root / "landmarks.csv").write_text(
      "a.png," + ",".join(repr(float(v)) for v in points.ravel()) + "\n")
  (root / "dataset.json").write_text('{"test_fraction": 0.0}')
  builder, _ = _build(tmp_path / "tfds", root)
  (record,) = builders.read_split(builder, "train")
  np.testing.assert_allclose(record["pose"], pose, atol=0.2)
  assert scheme.scheme_of(builder) == scheme.default_scheme(68)


def _folder(tmp_path, rows: list[str], extra: dict[str, str] | None = None) -> str:
  root = tmp_path / "bad"
  root.mkdir(parents=True)
  (root / "landmarks.csv").write_text("\n".join(rows) + "\n")
  for name, text in (extra or {}).items():
    (root / name).write_text(text)
  return str(root)


def test_bad_folders_are_refused_with_the_reason(tmp_path):
  five = "a.png," + ",".join(["1", "2", "3", "4", "5", "6", "7", "8", "9", "9"])
  four = "b.png," + ",".join(["1", "2", "3", "4", "5", "6", "7", "8"])
  with pytest.raises(ValueError, match=r"unequal point counts \(5 points in landmarks.csv:1 "
                     r"and 1 other face\(s\); 4 points in landmarks.csv:3 and 0 other"):
    folder_lib.Builder.config_for_manual_dir(_folder(tmp_path / "1", [five, five + "1", four]))
  with pytest.raises(ValueError, match="does not account for point"):
    folder_lib.Builder.config_for_manual_dir(_folder(
        tmp_path / "2", [five], {"dataset.json": '{"mirror_pairs": [[0, 1]], '
                                                 '"midline_points": [2]}'}))
  with pytest.raises(ValueError, match=r"point 1 is already in another pair"):
    folder_lib.Builder.config_for_manual_dir(_folder(
        tmp_path / "3", [five], {"dataset.json": '{"mirror_pairs": [[0, 1], [1, 3]], '
                                                 '"midline_points": [2, 4]}'}))
  with pytest.raises(ValueError, match=r"unknown key\(s\) 'mirror_pair'"):
    folder_lib.Builder.config_for_manual_dir(_folder(
        tmp_path / "4", [five], {"dataset.json": '{"mirror_pair": []}'}))
  with pytest.raises(annotations.AnnotationError, match="2 formats .*keep one"):
    folder_lib.Builder.config_for_manual_dir(_folder(
        tmp_path / "5", [five], {"a.pts": "version: 1\nn_points: 1\n{\n1 1\n}\n"}))
  unknown = tmp_path / "6"
  unknown.mkdir()
  (unknown / "labels.xml").write_text("<faces/>")
  with pytest.raises(annotations.AnnotationError,
                     match="unknown annotation format; found labels.xml, in no format"):
    folder_lib.Builder.config_for_manual_dir(str(unknown))
  with pytest.raises(ValueError, match="give it as --config.manual_dir=DIR"):
    folder_lib.Builder.config_for_manual_dir(None)


def test_duplicate_image_names_are_skipped(tmp_path):
  root = tmp_path / "pts"
  root.mkdir()
  for name in ("a.jpg", "a.png", "b.png"):
    (root / name).write_bytes(b"")
  for stem in ("a", "b"):
    (root / f"{stem}.pts").write_text("version: 1\nn_points: 2\n{\n1 1\n5 5\n}\n")
  read = annotations.read_annotations(str(root))
  assert [p.name for p in read.photos] == ["b.png"]
  (skip,) = read.skipped
  assert skip["reason"].endswith("a.pts: duplicate image names a.jpg and a.png both match "
                                 "it; keep one")
