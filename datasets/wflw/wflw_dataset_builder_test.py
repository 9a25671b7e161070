"""Builds wflw from its dummy_data fixture (no TensorFlow) and reads it back."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from asmnet_jax import testing
from asmnet_jax.data import build
from asmnet_jax.data import builders
from asmnet_jax.data import crops
from asmnet_jax_datasets.wflw import wflw_dataset_builder as wflw

DUMMY = os.path.join(os.path.dirname(__file__), "dummy_data")
# The 3 well-formed training faces: 1 image (1--Handshaking/...) held out.
SPLIT_SIZES = {"train": 2, "validation": 1, "test": 3, "largepose": 1, "expression": 1,
               "illumination": 1, "makeup": 1, "occlusion": 2, "blur": 2}
TRAIN_LIST = "list_98pt_rect_attr_train.txt"
TEST_LIST = "list_98pt_rect_attr_test.txt"
SKIPPED = {
    "train": [f"{TRAIN_LIST}:4", f"{TRAIN_LIST}:5 (WFLW_images/9--Missing/9_Missing_1.jpg)"],
    "test": [f"{TEST_LIST}:4"],
    "largepose": [f"{TEST_LIST}:4"],
}



FIXTURE = testing.dummy_data_module(__file__)


def _annotations(split: str) -> list[tuple[np.ndarray, np.ndarray, str]]:
  """(landmarks (98, 2), flags (6,), image) of each well-formed line of a list file."""
  path = os.path.join(DUMMY, wflw.LIST_FILES[split])
  rows = []
  with open(path) as f:
    lines = f.read().splitlines()
  for line in lines:
    tokens = line.split()
    if len(tokens) != 207:
      continue
    numbers = np.array([float(t) for t in tokens[:206]])
    rows.append((numbers[:196].reshape(98, 2), numbers[200:206].astype(bool), tokens[206]))
  return rows


def _build(data_dir, config=None, manual_dir=DUMMY):
  builder = wflw.Builder(data_dir=str(data_dir), config=config)
  return builder, builders.prepare_reporting_skips(builder, manual_dir)


_records = builders.read_split


def _match(record, split_list="test"):
  """Index of the face (FIXTURE.FACES order within its list) matching the record."""
  original = crops.crop_to_original(
      record["landmarks"], record["crop_box"], record["image"].shape[0])
  for k, (points, flags, image) in enumerate(_annotations(split_list)):
    if np.isfinite(points).all() and np.allclose(points, original, atol=1e-3):
      assert record["filename"].decode() == f"WFLW_images/{image}"
      np.testing.assert_array_equal(record["attributes"], flags)
      return k
  raise AssertionError("no annotation matches the record")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("tfds"))


def test_splits_shapes_dtypes(built):
  builder, _ = built
  assert builder.info.file_format.value == "array_record"
  assert {s: builder.info.splits[s].num_examples for s in SPLIT_SIZES} == SPLIT_SIZES
  for split, size in SPLIT_SIZES.items():
    records = _records(builder, split)
    assert len(records) == size
    for r in records:
      assert r["image"].dtype == np.uint8 and r["image"].shape[2] == 3
      assert r["landmarks"].shape == (98, 2) and r["landmarks"].dtype == np.float32
      assert r["crop_box"].shape == (4,) and r["crop_box"].dtype == np.float32
      assert r["pose"].shape == (3,) and r["pose"].dtype == np.float32
      assert r["attributes"].shape == (6,) and r["attributes"].dtype == np.bool_


def _list_records(builder, list_split: str) -> list[dict]:
  """The records of a list file's faces: the training list's are train + validation."""
  if list_split == "train":
    return _records(builder, "train") + _records(builder, "validation")
  return _records(builder, list_split)


def test_validation_holds_out_whole_training_images(built):
  builder, _ = built
  train = {r["filename"].decode() for r in _records(builder, "train")}
  validation = {r["filename"].decode() for r in _records(builder, "validation")}
  assert validation == {"WFLW_images/1--Handshaking/1_Handshaking_Handshaking_1_94.jpg"}
  assert not train & validation


def test_landmarks_attributes_and_subsets(built):
  builder, _ = built
  for split in ("train", "test"):
    matched = sorted(_match(r, split) for r in _list_records(builder, split))
    assert matched == [0, 1, 2]  # the malformed lines come last in both lists.
    for r in _list_records(builder, split):
      size = r["image"].shape[0]
      np.testing.assert_array_equal(r["crop_box"][2:] - r["crop_box"][:2], [size, size])
      assert (r["landmarks"] >= 0).all() and (r["landmarks"] <= size - 1).all()
  for name, index in wflw.SUBSETS.items():
    records = _records(builder, name)
    assert all(r["attributes"][index] for r in records)
    expected = [k for k, (_, flags, _) in enumerate(_annotations("test")[:3]) if flags[index]]
    assert sorted(_match(r) for r in records) == expected
  assert wflw.ATTRIBUTES == ("pose", "expression", "illumination", "makeup", "occlusion", "blur")


def test_pose_is_the_fixture_pose(built):
  builder, _ = built
  faces = {split: [f for f in FIXTURE.FACES if f[0] == split] for split in ("train", "test")}
  for split in ("train", "test"):
    for r in _list_records(builder, split):
      face = faces[split][_match(r, split)]
      np.testing.assert_allclose(r["pose"], face[2:5], atol=0.2)


def test_rgb_conversion(tmp_path):
  config = builders.FaceBuilderConfig(name="png", image_format="png")
  builder, _ = _build(tmp_path, config)
  records = _list_records(builder, "train") + _records(builder, "test")
  for name, mode in [("1--Handshaking/1_Handshaking_Handshaking_1_94.jpg", "L"),
                     ("3--Riot/3_Riot_Riot_3_123.png", "RGBA")]:
    (r,) = [r for r in records if r["filename"].decode() == f"WFLW_images/{name}"]
    source = Image.open(os.path.join(DUMMY, "WFLW_images", name))
    assert source.mode == mode
    expected = crops.cut_padded(np.asarray(source.convert("RGB")), r["crop_box"])
    np.testing.assert_array_equal(r["image"], expected)


def test_skip_report(built):
  _, reports = built
  assert len(reports) == len(SKIPPED)
  for split, names in SKIPPED.items():
    (report,) = [t for t in reports if t.startswith(f"wflw/{split}:")]
    assert f"skipped {len(names)} malformed" in report
    for name in names:
      assert name in report
  text = "\n".join(reports)
  assert "expected 206 numbers and a path, got 205 fields" in text
  assert "image not found" in text and "non-finite" in text


def test_parse_line_errors():
  good = " ".join(["1.5"] * 196 + ["0", "0", "9", "9"] + ["0", "1", "0", "0", "0", "1"]
                  + ["0--Parade/a.jpg"])
  ann = wflw.parse_line(good, 7)
  assert ann.line == 7 and ann.image == "0--Parade/a.jpg" and ann.landmarks.shape == (98, 2)
  np.testing.assert_array_equal(ann.attributes, [0, 1, 0, 0, 0, 1])
  with pytest.raises(builders.MalformedSample, match="non-number"):
    wflw.parse_line(good.replace("1.5", "x", 1), 1)
  with pytest.raises(builders.MalformedSample, match="more than 206"):
    wflw.parse_line("2.0 " + good, 1)
  with pytest.raises(builders.MalformedSample, match="0 or 1"):
    wflw.parse_line(good.replace(" 0 1 0 0 0 1 ", " 0 2 0 0 0 1 "), 1)


def test_missing_manual_dir(tmp_path):
  with pytest.raises(AssertionError, match="does not exist or is empty") as info:
    _build(tmp_path / "data", manual_dir=str(tmp_path / "nowhere"))
  assert "wywu.github.io/projects/LAB/WFLW.html" in str(info.value)
  assert "WFLW_annotations/list_98pt_rect_attr_train_test" in str(info.value)


def test_wrong_layout(tmp_path):
  (tmp_path / "manual" / "WFLW_images").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match="lacks: WFLW_annotations/"):
    _build(tmp_path / "data", manual_dir=str(tmp_path / "manual"))


def test_cli_with_pose_overrides(tmp_path, capsys):
  # Override keys: "<filename>#<line>" first, then "<filename>".
  name = "WFLW_images/0--Parade/0_Parade_marchingband_1_116.jpg"
  csv_path = tmp_path / "hopenet labels.csv"
  csv_path.write_text(f"{name}#2,1,2,3\n{name},4,5,6\n")
  with pytest.warns(builders.SkippedSamplesWarning):
    rc = build.main(["wflw", "--manual_dir", DUMMY, "--data_dir", str(tmp_path / "d"),
                             "--config", "override", "--pose_overrides", str(csv_path)])
  assert rc == 0
  out = capsys.readouterr().out
  assert "wflw/override_hopenet_labels train: 2 examples" in out
  # A custom config is read back from its directory (no builder code needed).
  builder = tfds.builder_from_directory(str(tmp_path / "d/wflw/override_hopenet_labels/2.0.0"))
  poses = {_match(r, "train"): r["pose"].tolist() for r in _list_records(builder, "train")}
  assert poses[0] == [4, 5, 6] and poses[1] == [1, 2, 3]
  np.testing.assert_allclose(poses[2], FIXTURE.FACES[2][2:5], atol=0.2)


def test_cli_errors(tmp_path, capsys):
  assert build.main(["wflw", "--manual_dir", str(tmp_path / "none"),
                             "--data_dir", str(tmp_path / "d")]) == 2
  assert "wywu.github.io" in capsys.readouterr().err


def test_undecodable_line_is_skipped_naming_file_and_line(tmp_path):
  manual = shutil.copytree(DUMMY, tmp_path / "manual")
  path = manual / wflw.LIST_FILES["train"]
  with open(path, "ab") as f:
    f.write(b"12.5 \xff 40.0\n")  # line 6: one Latin-1 byte.
  builder, reports = _build(tmp_path / "data", manual_dir=str(manual))
  assert builder.info.splits["train"].num_examples == SPLIT_SIZES["train"]
  (train,) = [t for t in reports if t.startswith("wflw/train:")]
  assert f"skipped {len(SKIPPED['train']) + 1} malformed" in train
  assert f"{TRAIN_LIST}:6: not UTF-8 text (byte 0xff at column 6)" in train
  assert wflw.Builder(data_dir=str(tmp_path / "data")).info.metadata["skipped"]["train"][
      "count"] == len(SKIPPED["train"]) + 1
