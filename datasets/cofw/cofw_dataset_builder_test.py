"""Builds cofw from its format-exact dummy_data fixture (MATLAB v7.3) and reads it back;
scores occluded and visible points."""

from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("h5py")  # the optional extra `cofw` (in `test` too).

from asmnet_jax import testing  # noqa: E402
from asmnet_jax.core import mirror  # noqa: E402
from asmnet_jax.data import builders, scheme  # noqa: E402
from asmnet_jax.evaluate import evaluator as evaluator_lib  # noqa: E402
from asmnet_jax_datasets.cofw import cofw_dataset_builder as cofw  # noqa: E402

DUMMY = os.path.join(os.path.dirname(__file__), "dummy_data")



FIXTURE = testing.dummy_data_module(__file__)


def _records(builder, split):
  """A split's records in file order (TFDS shuffles them by key)."""
  return sorted(builders.read_split(builder, split),
                key=lambda r: int(r["filename"].decode().split("#")[1]))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  builder = cofw.Builder(data_dir=str(tmp_path_factory.mktemp("tfds")))
  return builder, builders.prepare_reporting_skips(builder, DUMMY)


def test_faces_flags_and_scheme(built):
  builder, _ = built
  # Validation: the ceil(5 %) of the training faces with the smallest SHA-256 of their key.
  names = [f"{cofw.FILES['train'][0]}#{k + 1}" for k in range(len(FIXTURE.FACES["train"]))]
  held = names.index(min(names, key=lambda name: hashlib.sha256(name.encode()).digest()))
  well_formed = (0, 1, 2)  # the fixture's last training face is malformed (skipped).
  kept_by_split = {"train": tuple(k for k in well_formed if k != held),
                   "validation": (held,), "test": (0, 1)}
  assert {s: builder.info.splits[s].num_examples for s in kept_by_split} == {
      s: len(kept) for s, kept in kept_by_split.items()}
  for split, kept in kept_by_split.items():
    records = _records(builder, split)
    source = "train" if split == "validation" else split
    assert [r["filename"].decode() for r in records] == [
        f"{cofw.FILES[source][0]}#{k + 1}" for k in kept]
    for r, k in zip(records, kept):
      points, occluded = FIXTURE.face(source, k)
      np.testing.assert_allclose(r["landmarks"] + r["crop_box"][:2], points, atol=2e-3)
      np.testing.assert_array_equal(r["occluded"], occluded)
      assert r["image"].shape[2] == 3 and r["landmarks"].shape == (29, 2)
      np.testing.assert_array_equal(r["pose"], np.zeros(3))
  grey, = [r["image"] for s in ("train", "validation") for r in _records(builder, s)
           if r["filename"].decode().endswith("#2")]  # the fixture's grey image.
  assert (grey[..., 0] == grey[..., 2]).all()
  declared = scheme.scheme_of(builder)
  assert (declared.eye_corners, declared.pose_source) == ((8, 9), "absent")
  # The mirror map renumbers a flipped face like the 68-point map does (an
  # independent, tested map): flip 68 points, then take the 29.
  face68 = testing.drawn_face_points(68, 10.0, 0.0, 5.0, 14.0, (30, 28))
  flipped68 = mirror.flip_pixel_landmarks(face68, mirror.builtin_permutation(68), 60)
  flipped29 = mirror.flip_pixel_landmarks(testing.subset_of_68(face68, 29),
                                          np.array(declared.mirror_map), 60)
  np.testing.assert_allclose(flipped29, testing.subset_of_68(flipped68, 29), atol=1e-9)


def test_skip_report(built):
  _, reports = built
  text = "\n".join(reports)
  assert "cofw/train: skipped 1" in text and "COFW_train_color.mat#4: occlusion flags" in text
  assert "cofw/test: skipped 1" in text and "COFW_test_color.mat#3: non-finite" in text


def test_nme_on_all_and_visible_points(built):
  builder, _ = built
  source = builder.as_data_source("test")
  records = [source[i] for i in range(len(source))]
  gt = np.stack([r["landmarks"] for r in records]).astype(np.float64)
  occluded_5_to_8 = [int(r["occluded"][5]) for r in records].index(1)  # test face 2 (#2).
  pred = gt.copy()
  pred[:, 5:9] += 3.0  # errors on points 5-8: occluded on test face #2 only.
  predictions = evaluator_lib.Predictions(pred, gt, np.zeros((2, 3)), np.zeros((2, 3)),
                                          np.arange(2))
  visible = evaluator_lib.visible_points(source, predictions.index)
  results = evaluator_lib.compute_metrics(predictions, scheme.scheme_of(builder), visible)
  eyes = np.linalg.norm(gt[:, 8] - gt[:, 9], axis=-1)
  all_points = (4 * np.hypot(3, 3) / 29) / eyes
  other = 1 - occluded_5_to_8  # test face #1: only point 28 occluded.
  visible_errors = np.zeros(2)
  visible_errors[other] = (4 * np.hypot(3, 3) / 28) / eyes[other]
  assert results["nme"] == pytest.approx(all_points.mean(), rel=1e-5)
  assert results["nme_visible"] == pytest.approx(visible_errors.mean(), rel=1e-5)
  assert results["pose_mae"] is None


def test_bad_files(tmp_path):
  (tmp_path / "COFW_train_color.mat").write_bytes(b"MATLAB 5.0 MAT-file")
  (tmp_path / "COFW_test_color.mat").write_bytes(b"")
  with pytest.raises(cofw.CofwFileError, match="COFW_train_color.mat is not a MATLAB v7.3"):
    builders.prepare_reporting_skips(cofw.Builder(data_dir=str(tmp_path / "d")), str(tmp_path))
  with pytest.raises(FileNotFoundError, match="lacks: COFW_test_color.mat"):
    only = tmp_path / "only"
    only.mkdir()
    (only / "COFW_train_color.mat").write_bytes(b"x")
    builders.prepare_reporting_skips(cofw.Builder(data_dir=str(tmp_path / "e")), str(only))


def write_cofw68(manual_dir, faces=(0, 1)) -> dict[int, np.ndarray]:
  """COFW68/<k>.pts (1-based k, 1-based coordinates) for test faces `faces`: the 68
  points of the mean face at each face's fixture pose. Returns {k: points 0-based}."""
  os.makedirs(os.path.join(manual_dir, cofw.COFW68_DIR), exist_ok=True)
  written = {}
  for k in faces:
    yaw, pitch, roll, scale, centre = FIXTURE.FACES["test"][k][:5]
    points = testing.drawn_face_points(68, yaw, pitch, roll, scale, centre)
    lines = ["version: 1", "n_points: 68", "{"] + [f"{float(x) + 1!r} {float(y) + 1!r}" for x, y in points]
    with open(os.path.join(manual_dir, cofw.COFW68_DIR, f"{k + 1}.pts"), "w") as f:
      f.write("\n".join(lines + ["}"]) + "\n")
    written[k + 1] = points
  return written


def test_cofw68_config(tmp_path):
  manual = tmp_path / "COFW"
  shutil.copytree(DUMMY, manual)
  written = write_cofw68(str(manual))
  builder = cofw.Builder(data_dir=str(tmp_path / "tfds"), config=cofw.COFW68)
  reports = builders.prepare_reporting_skips(builder, str(manual))
  records = _records(builder, "test")
  assert [r["filename"].decode() for r in records] == [
      "COFW_test_color.mat#1", "COFW_test_color.mat#2"]
  for r in records:
    k = int(r["filename"].decode().split("#")[1])
    np.testing.assert_allclose(r["landmarks"] + r["crop_box"][:2], written[k], atol=2e-3)
    np.testing.assert_allclose(r["pose"], FIXTURE.FACES["test"][k - 1][:3], atol=0.2)
  assert scheme.scheme_of(builder) == scheme.default_scheme(68)
  (report,) = reports
  assert "COFW_test_color.mat#3: no COFW68/3.pts" in report
