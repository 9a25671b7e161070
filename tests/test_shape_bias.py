"""The shape-bias measure: its alignment, yaw measure, leave-one-photo-out fit and command."""

import json

import numpy as np
import pytest

from asmnet_jax.core import mirror
from asmnet_jax.core import rotation
from asmnet_jax.evaluate import shape_bias


def _faces(rng, count, yaw_range=40.0):
  """`count` mean faces at random yaws, projected, each under a random similarity and
  with 0.01 IOD of label noise: (labels (F, 68, 2) px, yaws (F,) degrees)."""
  yaws = rng.uniform(-yaw_range, yaw_range, count)
  faces = []
  for yaw in yaws:
    shape = (rotation.load_mean_face() @ rotation.euler_to_rotation(yaw, 0.0, 0.0).T)[:, :2]
    shape = shape / np.linalg.norm(shape[45] - shape[36])
    angle, scale = rng.uniform(-0.3, 0.3), rng.uniform(40.0, 120.0)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    noisy = shape + 0.01 * rng.standard_normal(shape.shape)
    faces.append(noisy @ linear.T + rng.uniform(50.0, 300.0, 2))
  return np.asarray(faces), yaws


def test_similarity_fit_recovers_a_known_similarity():
  rng = np.random.default_rng(0)
  source = rng.uniform(-1.0, 1.0, (68, 2))
  a, b = 1.7 * np.cos(0.4), 1.7 * np.sin(0.4)
  expected = np.array([[a, -b, 12.0], [b, a, -3.0]])
  target = source @ expected[:, :2].T + expected[:, 2]
  np.testing.assert_allclose(shape_bias.similarity_fit(source, target), expected, atol=1e-12)


def test_yaw_measure_is_zero_frontal_odd_under_mirroring_and_grows_with_yaw():
  reference = shape_bias.reference_shape()
  perm = mirror.builtin_permutation(68)

  def measure(yaw):
    shape = (rotation.load_mean_face() @ rotation.euler_to_rotation(yaw, 0.0, 0.0).T)[:, :2]
    return shape_bias.yaw_measure(shape)

  assert abs(shape_bias.yaw_measure(reference)) < 0.01
  mirrored = reference[perm] * np.array([-1.0, 1.0])
  shape = (rotation.load_mean_face() @ rotation.euler_to_rotation(25.0, 0.0, 0.0).T)[:, :2]
  flipped = shape[perm] * np.array([-1.0, 1.0])
  assert shape_bias.yaw_measure(flipped) == pytest.approx(-shape_bias.yaw_measure(shape))
  assert abs(shape_bias.yaw_measure(mirrored)) < 0.01
  values = [measure(yaw) for yaw in (0.0, 15.0, 30.0, 45.0)]
  assert np.all(np.diff(np.abs(values)) > 0.02)


def test_a_planted_bias_is_found_in_other_photos_and_removed():
  rng = np.random.default_rng(1)
  labels, yaws = _faces(rng, 30)
  # The predictions: each face's jaw (0-16) pulled 8 % of the IOD toward the nose tip,
  # more on turned faces, a left-right symmetric bias the mirrored fit can represent.
  predictions = labels.copy()
  for k, yaw in enumerate(yaws):
    iod = np.linalg.norm(labels[k, 45] - labels[k, 36])
    towards = labels[k, 30] - labels[k, :17]
    towards /= np.linalg.norm(towards, axis=-1, keepdims=True)
    predictions[k, :17] += (0.08 + 0.002 * abs(yaw)) * iod * towards
  groups = [f"photo{k // 2}" for k in range(30)]  # two faces a photo.
  corrected = shape_bias.leave_one_group_out(predictions, labels, groups, shrink=1.0, ridge=0.0)
  before = shape_bias.inter_ocular_nme(predictions, labels)
  after = shape_bias.inter_ocular_nme(corrected, labels)
  assert before.mean() > 0.02  # 17 of 68 points off by 8-16 %.
  assert after.mean() < 0.3 * before.mean()
  # Unbiased predictions gain nothing (the fit finds no offset beyond the noise).
  same = shape_bias.leave_one_group_out(labels, labels, groups, shrink=1.0, ridge=0.0)
  assert shape_bias.inter_ocular_nme(same, labels).mean() < 0.005


def test_leave_one_out_never_scores_a_face_with_a_fit_that_saw_it():
  rng = np.random.default_rng(2)
  labels, _ = _faces(rng, 6)
  predictions = labels + rng.normal(0.0, 2.0, labels.shape)
  groups = ["a", "a", "b", "b", "c", "c"]
  out = shape_bias.leave_one_group_out(predictions, labels, groups)
  correction = shape_bias.fit_correction(predictions[2:], labels[2:])
  np.testing.assert_allclose(out[0], shape_bias.corrected(predictions[0], correction))
  with pytest.raises(ValueError, match="two photos"):
    shape_bias.leave_one_group_out(predictions, labels, ["a"] * 6)


def _write_dataset(tmp_path, labels, predictions):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  faces, scored = [], []
  for k, (label, pred) in enumerate(zip(labels, predictions)):
    name = f"photo{k}.png"
    Image.new("RGB", (400, 400)).save(tmp_path / name)
    faces.append({"file": name, "landmarks": label.tolist()})
    scored.append({"file": name, "face": 0, "found": True, "nme": 0.0,
                   "landmarks": pred.tolist()})
  (tmp_path / "landmarks.json").write_text(json.dumps({"faces": faces}))
  scores = tmp_path / "scores.json"
  scores.write_text(json.dumps({"faces": scored}))
  return scores


def test_command_prints_the_measure_and_names_a_mismatched_face(tmp_path, capsys):
  rng = np.random.default_rng(3)
  labels, _ = _faces(rng, 8)
  predictions = labels + rng.normal(0.0, 1.0, labels.shape)
  scores = _write_dataset(tmp_path, labels, predictions)
  assert shape_bias.main([str(tmp_path), str(scores)]) == 0
  line = capsys.readouterr().out
  expected = 100 * shape_bias.inter_ocular_nme(predictions, labels).mean()
  assert line.startswith(f"8 faces in 8 photos: NME {expected:.2f} %")
  assert shape_bias.main([str(tmp_path)]) == 2
  bad = json.loads(scores.read_text())
  bad["faces"][0]["face"] = 3
  scores.write_text(json.dumps(bad))
  assert shape_bias.main([str(tmp_path), str(scores)]) == 2
  assert "face 3 of photo0.png" in capsys.readouterr().err
