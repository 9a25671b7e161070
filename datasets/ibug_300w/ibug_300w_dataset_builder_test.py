"""Builds ibug_300w from its dummy_data fixture (no TensorFlow) and reads it back."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from asmnet_jax import testing
from asmnet_jax.data import builders
from asmnet_jax.data import crops as face_crop
from asmnet_jax_datasets.ibug_300w import ibug_300w_dataset_builder as ibug

DUMMY = os.path.join(os.path.dirname(__file__), "dummy_data")
# The 7 well-formed training faces: 1 image (lfpw/trainset/l1.png) held out.
SPLIT_SIZES = {"train": 6, "validation": 1, "common": 4, "challenging": 2, "full": 6}
SKIPPED = {
    "train": ["helen/trainset/h3_1.pts", "lfpw/trainset/l3.pts"],
    "common": ["helen/testset/t3_1.pts", "lfpw/testset/u3.pts"],
    "challenging": ["ibug/image_003_1.pts"],
    "full": ["helen/testset/t3_1.pts", "lfpw/testset/u3.pts", "ibug/image_003_1.pts"],
}



POSES = testing.dummy_data_module(__file__).POSES


def _build(data_dir, config=None, manual_dir=DUMMY):
  builder = ibug.Builder(data_dir=str(data_dir), config=config)
  return builder, builders.prepare_reporting_skips(builder, manual_dir)


_records = builders.read_split


def _faces_of(filename: str) -> list[str]:
  """The fixture's face stems drawn in image `filename`."""
  return [stem for stem, spec in POSES.items() if spec[0] == filename]


def _original_points(stem: str) -> np.ndarray:
  return builders.parse_pts(os.path.join(DUMMY, stem + ".pts")) - 1.0


def _match_face(record, points_original) -> str:
  """The fixture face whose .pts equals these original-image points."""
  filename = record["filename"].decode()
  for stem in _faces_of(filename):
    if np.allclose(_original_points(stem), points_original, atol=2e-3):
      return stem
  raise AssertionError(f"no face of {filename} matches the record's landmarks")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("tfds"))


def test_split_sizes_shapes_and_dtypes(built):
  builder, _ = built
  assert builder.info.file_format.value == "array_record"
  assert {s: builder.info.splits[s].num_examples for s in SPLIT_SIZES} == SPLIT_SIZES
  for split, size in SPLIT_SIZES.items():
    records = _records(builder, split)
    assert len(records) == size
    for r in records:
      assert r["image"].dtype == np.uint8 and r["image"].ndim == 3 and r["image"].shape[2] == 3
      assert r["image"].shape[0] == r["image"].shape[1]  # square crops.
      assert r["landmarks"].shape == (68, 2) and r["landmarks"].dtype == np.float32
      assert r["crop_box"].shape == (4,) and r["crop_box"].dtype == np.float32
      assert r["pose"].shape == (3,) and r["pose"].dtype == np.float32


def test_landmarks_map_back_to_the_original_and_lie_in_the_crop(built):
  builder, _ = built
  seen = set()
  for split in SPLIT_SIZES:
    for r in _records(builder, split):
      size = r["image"].shape[0]
      box = r["crop_box"]
      assert box[2] - box[0] == box[3] - box[1] == size  # no resize at this size.
      seen.add(_match_face(r, r["landmarks"] + box[:2]))
      assert (r["landmarks"] >= 0).all() and (r["landmarks"] <= size - 1).all()
  assert seen == {s for s, spec in POSES.items()
                  if not any(s + ".pts" in names for names in SKIPPED.values())}


def test_validation_holds_out_whole_training_images(built):
  builder, _ = built
  train = [r["filename"].decode() for r in _records(builder, "train")]
  validation = [r["filename"].decode() for r in _records(builder, "validation")]
  assert validation == ["lfpw/trainset/l1.png"]
  assert not set(train) & set(validation)
  assert set(train) | set(validation) == set(builders.validation_images(
      set(train) | set(validation), 0.99))
  assert ibug.Builder.VERSION.major == 2


def test_pose_is_the_fixture_pose(built):
  builder, _ = built
  for r in _records(builder, "full") + _records(builder, "train"):
    stem = _match_face(r, r["landmarks"] + r["crop_box"][:2])
    np.testing.assert_allclose(r["pose"], POSES[stem][3:6], atol=0.2)


def test_skip_report_names_the_malformed_files(built):
  _, reports = built
  assert len(reports) == len(SKIPPED)
  for split, names in SKIPPED.items():
    (report,) = [t for t in reports if t.startswith(f"ibug_300w/{split}:")]
    assert f"skipped {len(names)} malformed" in report
    for name in names:
      assert name in report
  text = "\n".join(reports)
  assert "expected 68 points, got 67" in text
  assert "non-finite" in text
  assert "no image" in text and "cannot read image" in text
  assert "line 24" in text


def test_rgb_conversion_and_resize(tmp_path):
  # PNG crops (lossless) capped at 48 px: exact pixels and the resized mapping.
  config = builders.FaceBuilderConfig(name="png48", image_format="png", max_size=48)
  builder, _ = _build(tmp_path, config)
  by_name = {}
  for split in SPLIT_SIZES:
    for r in _records(builder, split):
      by_name.setdefault(r["filename"].decode(), r)
      size = r["image"].shape[0]
      assert size <= 48
      original = face_crop.crop_to_original(r["landmarks"], r["crop_box"], size)
      _match_face(r, original)
      assert (r["landmarks"] >= -0.5).all() and (r["landmarks"] <= size - 0.5).all()
  for name, mode in [("afw/101_1.jpg", "L"), ("helen/trainset/h2_1.png", "RGBA"),
                     ("helen/testset/t2_1.png", "P")]:
    r = by_name[name]
    source = Image.open(os.path.join(DUMMY, name))
    assert source.mode == mode
    expected = np.asarray(source.convert("RGB"))
    expected = face_crop.cut_padded(expected, r["crop_box"])
    if expected.shape[0] > 48:
      expected = np.asarray(Image.fromarray(expected).resize((48, 48), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(r["image"], expected)
    if mode == "L":
      assert (r["image"][..., 0] == r["image"][..., 2]).all()


def test_missing_manual_dir(tmp_path):
  with pytest.raises(AssertionError, match="does not exist or is empty") as info:
    _build(tmp_path / "data", manual_dir=str(tmp_path / "nowhere"))
  message = str(info.value)
  assert "ibug.doc.ic.ac.uk" in message and "helen/trainset" in message


def test_wrong_layout_names_missing_folders(tmp_path):
  manual = tmp_path / "manual"
  (manual / "afw").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match="lacks: helen/trainset") as info:
    _build(tmp_path / "data", manual_dir=str(manual))
  assert "ibug/" in str(info.value)


def test_pose_overrides(tmp_path):
  csv_path = tmp_path / "hopenet.csv"
  csv_path.write_text(
      "filename,yaw,pitch,roll\n"
      "afw/100_2.pts,1,2,3\n"  # the .pts path wins over the shared image name.
      "afw/100.jpg,4,5,6\n"
      "lfpw/testset/u1.png,-7.5,8,9\n")
  config = builders.FaceBuilderConfig(
      name="override_test", pose_source="override", pose_overrides_csv=str(csv_path))
  builder, reports = _build(tmp_path / "data", config)
  poses = {}
  for split in ("train", "common"):
    for r in _records(builder, split):
      poses[_match_face(r, r["landmarks"] + r["crop_box"][:2])] = r["pose"].tolist()
  assert poses["afw/100_2"] == [1, 2, 3]
  assert poses["afw/100_1"] == [4, 5, 6]
  assert poses["lfpw/testset/u1"] == [-7.5, 8, 9]
  np.testing.assert_allclose(poses["lfpw/testset/u2"], POSES["lfpw/testset/u2"][3:6], atol=0.2)
  (train,) = [t for t in reports if t.startswith("ibug_300w/train:")]
  assert "4 face(s) missing from" in train and "fitted poses" in train
  (validation,) = [t for t in reports if t.startswith("ibug_300w/validation:")]
  assert "1 face(s) missing from" in validation and "lfpw/trainset/l1.pts" in validation


def test_override_config_without_csv(tmp_path):
  with pytest.raises(FileNotFoundError, match="pose_overrides.csv"):
    _build(tmp_path, builders.DEFAULT_CONFIGS[1])


def test_malformed_override_csv(tmp_path):
  csv_path = tmp_path / "bad.csv"
  csv_path.write_text("afw/100.jpg,1,2\n")
  config = builders.FaceBuilderConfig(
      name="override_test", pose_source="override", pose_overrides_csv=str(csv_path))
  with pytest.raises(ValueError, match=f"{csv_path}, line 1"):
    _build(tmp_path / "data", config)


def test_bad_samples_are_skipped_counted_and_named(tmp_path):
  """Added to a copy of the fixture: a landmark at x = 1e5 (once an 80 GiB crop), a
  1x1 image and an image without a .pts. The build goes on, and metadata.json counts
  them."""
  manual = shutil.copytree(DUMMY, tmp_path / "manual")
  afw = manual / "afw"
  pts = (afw / "101_1.pts").read_text().splitlines()
  x, y = pts[3].split()
  (afw / "102_1.pts").write_text("\n".join(pts[:3] + [f"1e5 {y}"] + pts[4:]) + "\n")
  shutil.copy(afw / "101_1.jpg", afw / "102_1.jpg")
  (afw / "103_1.pts").write_text((afw / "101_1.pts").read_text())
  Image.new("RGB", (1, 1)).save(afw / "103_1.jpg")
  shutil.copy(afw / "101_1.jpg", afw / "104.jpg")
  builder, reports = _build(tmp_path / "data", manual_dir=str(manual))
  assert builder.info.splits["train"].num_examples == SPLIT_SIZES["train"]
  (train,) = [t for t in reports if t.startswith("ibug_300w/train:")]
  assert f"skipped {len(SKIPPED['train']) + 3} malformed" in train
  assert "afw/102_1.pts: landmark 0 at (99999, " in train and "px outside the" in train
  assert "afw/103_1.pts: image of 1x1 px, smaller than the smallest face" in train
  assert "afw/104.jpg: no .pts annotation beside it" in train
  reloaded = ibug.Builder(data_dir=str(tmp_path / "data"))
  skipped = reloaded.info.metadata["skipped"]
  assert skipped["train"]["count"] == len(SKIPPED["train"]) + 3
  assert skipped["challenging"]["count"] == len(SKIPPED["challenging"])
  assert "afw/104.jpg: no .pts annotation beside it" in skipped["train"]["samples"]
