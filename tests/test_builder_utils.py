"""Builder plumbing: .pts parsing, landmark checks, skip report, pose labelling."""

from __future__ import annotations

import hashlib
import logging
import warnings

import numpy as np
import pytest

from asmnet_jax.core import pose
from asmnet_jax.core import rotation
from asmnet_jax.data import builders
from asmnet_jax.data import crops


def _pts_text(points, n_header=None):
  lines = ["version: 1", f"n_points:  {len(points) if n_header is None else n_header}", "{"]
  lines += [f"{x:.3f} {y:.3f}" for x, y in points]
  return "\n".join(lines + ["}"]) + "\n"


def test_parse_pts(tmp_path):
  points = np.random.default_rng(0).uniform(1, 500, (68, 2)).round(3)
  path = tmp_path / "a.pts"
  path.write_text(_pts_text(points).replace("\n", "\r\n"))  # Windows line ends too.
  parsed = builders.parse_pts(path)
  assert parsed.shape == (68, 2) and parsed.dtype == np.float64
  np.testing.assert_array_equal(parsed, points)


@pytest.mark.parametrize("text, message", [
    ("version: 1\n{\n1 2\n}\n", "n_points"),
    ("version: 1\nn_points: 1\n1 2\n}\n", "line 3: expected 'key: value'"),
    ("version: 1\nn_points: 1\n", "no '{'"),
    ("version: 1\nn_points: 2\n{\n1 2\n3 4\n", "no '}'"),
    ("version: 1\nn_points: 2\n{\n1 2\n3;4\n}\n", "line 5: expected 'x y'"),
    ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "header says 3 points, the list has 2"),
])
def test_parse_pts_errors(tmp_path, text, message):
  path = tmp_path / "bad.pts"
  path.write_text(text)
  with pytest.raises(builders.MalformedSample, match=message) as info:
    builders.parse_pts(path)
  assert "bad.pts" in str(info.value)


def test_parse_pts_missing_file(tmp_path):
  with pytest.raises(builders.MalformedSample, match="cannot read .*nope.pts"):
    builders.parse_pts(tmp_path / "nope.pts")


def test_check_landmarks():
  good = np.random.default_rng(0).uniform(0, 100, (68, 2))
  np.testing.assert_array_equal(builders.check_landmarks(good, 68), good)
  with pytest.raises(builders.MalformedSample, match="expected 68 points, got 67"):
    builders.check_landmarks(good[:67], 68)
  bad = good.copy()
  bad[3, 1] = np.inf
  with pytest.raises(builders.MalformedSample, match="non-finite"):
    builders.check_landmarks(bad, 68)
  with pytest.raises(builders.MalformedSample, match="degenerate"):
    builders.check_landmarks(np.ones((68, 2)), 68)


def test_skip_report_warns_and_logs(caplog):
  report = builders.SkipReport("ds", "train")
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert report.finish() == ""  # nothing to say: no warning.
  report.skip("a/b.pts", "expected 68 points, got 67")
  report.skip("c.jpg", "image not found")
  report.note("2 face(s) got fitted poses")
  with caplog.at_level(logging.WARNING), pytest.warns(builders.SkippedSamplesWarning) as w:
    text = report.finish()
  assert "ds/train: skipped 2 malformed sample(s)" in text
  assert "a/b.pts: expected 68 points, got 67" in text and "c.jpg: image not found" in text
  assert "ds/train: 2 face(s) got fitted poses" in text
  assert str(w[0].message) == text and text in caplog.text


def test_pose_labeler_fit_and_overrides():
  angles = np.array([20.0, -10.0, 5.0])
  face = rotation.load_mean_face() @ rotation.euler_to_rotation(*angles).T
  points = 50 * face[:, :2] + 100
  fit = builders.PoseLabeler()
  assert fit(["x.jpg"], points).dtype == np.float32
  np.testing.assert_allclose(fit(["x.jpg"], points), angles, atol=1e-4)
  labeler = builders.PoseLabeler({"dir/x.jpg": (1.0, 2.0, 3.0)}, source="p.csv")
  np.testing.assert_array_equal(labeler(["dir/x.pts", "dir\\x.jpg"], points), [1, 2, 3])
  np.testing.assert_allclose(labeler(["dir/y.pts", "dir/y.jpg"], points), angles, atol=1e-4)
  report = builders.SkipReport("ds", "s")
  labeler.report_into(report)
  assert report.notes == ["1 face(s) missing from p.csv got fitted poses: dir/y.pts"]
  with pytest.raises(builders.MalformedSample, match="pose fit failed"):
    fit(["z"], np.ones((68, 2)))  # all points coincide.


def test_pose_labeler_from_config(tmp_path):
  fit_config, override_config = builders.DEFAULT_CONFIGS
  assert builders.PoseLabeler.from_config(fit_config, tmp_path).overrides is None
  with pytest.raises(FileNotFoundError, match="--config fit"):
    builders.PoseLabeler.from_config(override_config, tmp_path)
  (tmp_path / builders.POSE_OVERRIDES_FILENAME).write_text("a.jpg,1,2,3\n")
  labeler = builders.PoseLabeler.from_config(override_config, tmp_path)
  assert labeler.overrides == {"a.jpg": (1.0, 2.0, 3.0)}
  with pytest.raises(ValueError, match="pose_source"):
    builders.FaceBuilderConfig(name="x", pose_source="hopenet")


def test_require_layout(tmp_path):
  (tmp_path / "a").mkdir()
  builders.require_layout(tmp_path, ["a"], "how to")
  with pytest.raises(FileNotFoundError, match=r"lacks: b, c/d\.\nhow to"):
    builders.require_layout(tmp_path, ["a", "b", "c/d"], "how to")


def test_make_example():
  image = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
  points = np.random.default_rng(1).uniform(30, 70, (68, 2))
  config = builders.FaceBuilderConfig(name="t", image_format="png", max_size=None)
  example = builders.make_example(
      image, points, "a/b.jpg", np.zeros(3, np.float32), config, {"attributes": np.ones(6, bool)})
  assert set(example) == {"image", "landmarks", "crop_box", "pose", "filename", "attributes"}
  assert example["image"][:4] == b"\x89PNG"
  np.testing.assert_allclose(example["landmarks"] + example["crop_box"][:2], points, atol=1e-4)
  assert pose.normalize_key("./a\\b.jpg ") == "a/b.jpg"


def test_validation_images_are_a_fixed_hash_ranked_share():
  names = [f"helen/trainset/{i}.jpg" for i in range(200)]
  held = builders.validation_images(names + names[:5], 0.05)  # repeats: faces of one image.
  assert len(held) == 10  # ceil(5 % of the 200 distinct images).
  assert held == builders.validation_images(reversed(names), 0.05)  # order-free.
  digests = sorted(hashlib.sha256(n.encode()).digest() for n in names)
  assert max(hashlib.sha256(n.encode()).digest() for n in held) == digests[9]
  # Growing the share only adds images: the held-out set is nested.
  assert held < builders.validation_images(names, 0.2)
  assert len(builders.validation_images(names[:3], 0.05)) == 1  # at least one image.


@pytest.mark.parametrize("fraction", [0.0, 0.5, -0.1, 1.0])
def test_validation_fraction_outside_the_open_interval_is_refused(fraction):
  with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 0.5\)"):
    builders.FaceBuilderConfig(name="x", validation_fraction=fraction)


def test_check_sample_refuses_far_landmarks_and_tiny_images():
  face = np.array([[10.0, 12.0], [50.0, 60.0], [30.0, 35.0]])
  builders.check_sample((100, 80, 3), face)
  # Within the tolerance (a quarter of the longer side, 25 px): kept.
  builders.check_sample((100, 80, 3), np.vstack([face, [[-20.0, 40.0]]]))
  with pytest.raises(builders.MalformedSample,
                     match=r"landmark 3 at \(100000, 40\) lies 99920 px outside the 80x100 "
                           r"image \(tolerance 25 px\)"):
    builders.check_sample((100, 80, 3), np.vstack([face, [[1e5, 40.0]]]))
  with pytest.raises(builders.MalformedSample, match="image of 1x1 px, smaller than"):
    builders.check_sample((1, 1, 3), np.array([[0.0, 0.0], [0.2, 0.3]]))


def test_crop_face_refuses_a_crop_far_larger_than_the_image():
  image = np.zeros((40, 30, 3), np.uint8)
  points = np.array([[5.0, 5.0], [1e5, 20.0]])
  with pytest.raises(ValueError, match=r"crop of a 30x40 image \(over 4 times its size\)"):
    crops.crop_face(image, points)  # before allocating its ~10^11 bytes.


def test_read_text_lines_skips_and_names_undecodable_lines(tmp_path):
  path = tmp_path / "list.txt"
  path.write_bytes("1 2 a.jpg\n3 \xe9 b.jpg\n".encode("latin-1") + "5 6 ç.jpg\n".encode())
  report = builders.SkipReport("ds", "train", metadata={})
  assert builders.read_text_lines(str(path), report) == [(1, "1 2 a.jpg"), (3, "5 6 ç.jpg")]
  assert report.skipped == [("list.txt:2", "not UTF-8 text (byte 0xe9 at column 3)")]
  with pytest.warns(builders.SkippedSamplesWarning, match="skipped 1 malformed"):
    report.finish()
  assert report.metadata == {"skipped": {"train": {
      "count": 1, "samples": ["list.txt:2: not UTF-8 text (byte 0xe9 at column 3)"]}}}
