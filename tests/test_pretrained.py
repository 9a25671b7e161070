"""The pretrained bundle: writing and reading it, the shipped file, damaged files."""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile

import jax
import numpy as np
import pytest
from PIL import Image

from asmnet_jax import cli
from asmnet_jax.core import metrics
from asmnet_jax.inference import pretrained
from asmnet_jax.inference.model import load_workdir
from asmnet_jax.inference.predictor import ONE_VIEW, Predictor
from asmnet_jax.synthetic import faces
from asmnet_jax.testing import random_model


def _outputs(model, images):
  landmarks, pose = jax.jit(model.forward)(model.variables, images)
  return np.asarray(landmarks), np.asarray(pose)


def test_bundle_of_a_trained_run_predicts_as_its_checkpoint(trained_run, tmp_path):
  path = str(tmp_path / "bundle.npz")
  assert pretrained.main(["--workdir", trained_run.workdir, "--out", path,
                          "--command", "python train.py ...", "--recrop_scale", "1.05,1.1",
                          "--tta_scales", "0.9,1,1.1"]) == 0
  original = load_workdir(trained_run.workdir)
  loaded = pretrained.load_bundle(path)
  assert (loaded.image_size, loaded.num_landmarks, loaded.step) == (
      original.image_size, original.num_landmarks, original.step)
  assert loaded.eval_margin == original.eval_margin
  assert loaded.pose_scale_deg == original.pose_scale_deg
  assert (original.recrop_scale, loaded.recrop_scale) == ((1.0, 1.0), (1.05, 1.1))
  assert (loaded.tta_scales, loaded.tta_rotations) == ((0.9, 1.0, 1.1), (0.0,))
  images = np.random.default_rng(0).uniform(
      0, 1, (4, original.image_size, original.image_size, 3)).astype(np.float32)
  # The bundle holds the checkpoint's folded weights rounded to float16: the same
  # network with those weights rounded here gives the same outputs.
  rounded = dataclasses.replace(original, variables=jax.tree.map(
      lambda x: np.asarray(x).astype(np.float16).astype(np.float32), original.variables))
  (lm_a, pose_a), (lm_b, pose_b) = _outputs(rounded, images), _outputs(loaded, images)
  np.testing.assert_allclose(lm_b, lm_a, atol=1e-5)
  np.testing.assert_allclose(pose_b, pose_a, atol=1e-3)
  # And the rounding moves points by well under a crop pixel (this tiny 32 px run
  # amplifies it more than the default model, which stays within a tenth).
  lm_full, _ = _outputs(original, images)
  assert np.abs(lm_b - lm_full).max() * original.image_size < 0.5
  meta = pretrained.read_metadata(path)
  assert meta["provenance"]["command"] == "python train.py ..."
  assert meta["provenance"]["config"]["image_size"] == original.image_size
  assert meta["dtype"] == "float16"


def test_shipped_bundle_finds_landmarks_on_synthetic_faces():
  model = pretrained.load_bundle()
  assert model.num_landmarks == 68
  predictor = Predictor.pretrained()
  errors = []
  for seed in range(4):
    face = faces.render_face(seed + 123456, 160)
    box = np.concatenate([face["landmarks"].min(0), face["landmarks"].max(0)])
    (found,) = predictor(face["image"], [box], landmark_boxes=True)
    errors.append(float(metrics.nme(found[0].landmarks[None], face["landmarks"][None])[0]))
  # A random network scores about 50 %; the shipped model several times better.
  assert np.mean(errors) < 0.12, errors


@pytest.mark.parametrize("damage", ["truncated", "not_a_zip", "no_metadata", "wrong_shape"])
def test_damaged_bundle_is_named_in_the_error(tmp_path, damage):
  good = str(tmp_path / "good.npz")
  pretrained.save_bundle(random_model(image_size=32), good)
  bad = str(tmp_path / f"{damage}.npz")
  raw = open(good, "rb").read()
  if damage == "truncated":
    open(bad, "wb").write(raw[: len(raw) // 2])
  elif damage == "not_a_zip":
    open(bad, "wb").write(b"not weights at all")
  else:
    with np.load(good) as data:
      arrays = {k: data[k] for k in data.files}
    if damage == "no_metadata":
      del arrays[pretrained.METADATA_KEY]
    else:
      name = next(k for k in arrays if k.endswith("kernel"))
      arrays[name] = arrays[name][..., :1]
    np.savez(bad, **arrays)
  with pytest.raises(pretrained.BundleError, match=bad.replace(".", r"\.")):
    pretrained.load_bundle(bad)


def test_bundle_keeps_a_declared_mirror_map(tmp_path):
  model = random_model(image_size=32)
  assert model.mirror_map is None  # 68 points: the built-in map applies.
  declared = np.arange(model.num_landmarks)
  declared[[0, 1]] = [1, 0]  # any involution a dataset could declare.
  path = str(tmp_path / "declared.npz")
  pretrained.save_bundle(dataclasses.replace(model, mirror_map=tuple(declared)), path)
  loaded = pretrained.load_bundle(path)
  assert loaded.mirror_map == tuple(declared)
  np.testing.assert_array_equal(loaded.mirror_permutation, declared)
  assert pretrained.load_bundle(_rewritten(path, tmp_path, mirror_map=None)).mirror_map is None
  not_involution = declared.copy()
  not_involution[[0, 1, 2]] = [1, 2, 0]
  bad = _rewritten(path, tmp_path, mirror_map=not_involution.tolist())
  with pytest.raises(pretrained.BundleError, match=f"{bad}: bad mirror_map"):
    pretrained.load_bundle(bad)


def test_bundle_keeps_its_recrop_scale(tmp_path):
  model = random_model(image_size=32)
  plain = str(tmp_path / "plain.npz")
  pretrained.save_bundle(model, plain)
  assert pretrained.load_bundle(plain).recrop_scale == (1.0, 1.0)
  scaled = str(tmp_path / "scaled.npz")
  pretrained.save_bundle(dataclasses.replace(model, recrop_scale=(1.08, 1.1)), scaled)
  assert pretrained.load_bundle(scaled).recrop_scale == (1.08, 1.1)
  assert Predictor(pretrained.load_bundle(scaled)).recrop_scale == (1.08, 1.1)
  for bad_scale in ([1.08], [0.1, 1.0], "big"):
    bad = _rewritten(scaled, tmp_path, recrop_scale=bad_scale)
    with pytest.raises(pretrained.BundleError, match=f"{bad}: bad recrop_scale"):
      pretrained.load_bundle(bad)


def test_bundle_keeps_its_test_time_augmentation(tmp_path):
  model = random_model(image_size=32)
  plain = str(tmp_path / "plain.npz")
  pretrained.save_bundle(model, plain)
  assert (pretrained.load_bundle(plain).tta_scales,
          pretrained.load_bundle(plain).tta_rotations) == ((1.0,), (0.0,))
  views = str(tmp_path / "views.npz")
  pretrained.save_bundle(dataclasses.replace(model, tta_scales=(0.9, 1.1),
                                             tta_rotations=(-5.0, 5.0)), views)
  predictor = Predictor(pretrained.load_bundle(views))
  assert (predictor.tta_scales, predictor.tta_rotations) == ((0.9, 1.1), (-5.0, 5.0))
  for field, value in (("tta_scales", []), ("tta_rotations", [120.0]), ("tta_scales", "x")):
    bad = _rewritten(views, tmp_path, **{field: value})
    with pytest.raises(pretrained.BundleError, match=f"{bad}: bad test-time augmentation"):
      pretrained.load_bundle(bad)


def _rewritten(path, tmp_path, **meta_changes) -> str:
  """A copy of bundle `path` with metadata fields replaced."""
  with np.load(path) as data:
    arrays = {k: data[k] for k in data.files}
  meta = json.loads(bytes(arrays[pretrained.METADATA_KEY]).decode())
  meta.update(meta_changes)
  arrays[pretrained.METADATA_KEY] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
  out = str(tmp_path / f"rewritten{len(os.listdir(tmp_path))}.npz")
  np.savez(out, **arrays)
  return out


def test_missing_bundle_says_what_to_do(tmp_path):
  with pytest.raises(pretrained.BundleError, match="no pretrained bundle.*--workdir"):
    pretrained.load_bundle(str(tmp_path / "absent.npz"))


def test_bundle_is_package_data():
  """setup.cfg ships the bundle (else `pip install` gives a Predictor without weights)."""
  import configparser  # pylint: disable=g-import-not-at-top
  cfg = configparser.ConfigParser()
  cfg.read(os.path.join(os.path.dirname(os.path.dirname(__file__)), "setup.cfg"))
  patterns = cfg["options.package_data"]["asmnet_jax"].split(",")
  relative = os.path.relpath(pretrained.DEFAULT_BUNDLE,
                             os.path.dirname(os.path.dirname(pretrained.__file__)))
  import fnmatch  # pylint: disable=g-import-not-at-top
  assert any(fnmatch.fnmatch(relative, p.strip()) for p in patterns), (relative, patterns)
  with zipfile.ZipFile(pretrained.DEFAULT_BUNDLE) as z:
    assert z.testzip() is None
  assert json.loads(bytes(np.load(pretrained.DEFAULT_BUNDLE)[pretrained.METADATA_KEY]))


def test_predict_py_without_workdir_uses_the_shipped_model(tmp_path):
  import predict  # pylint: disable=g-import-not-at-top
  face = faces.render_face(7, 128)
  path = str(tmp_path / "face.png")
  Image.fromarray(face["image"]).save(path)
  box = np.concatenate([face["landmarks"].min(0), face["landmarks"].max(0)]).tolist()
  boxes = str(tmp_path / "boxes.json")
  with open(boxes, "w") as f:
    json.dump({path: [box]}, f)
  out = str(tmp_path / "out")
  assert predict.main([path, f"--out={out}", f"--landmark_boxes_json={boxes}"]) == 0
  with open(os.path.join(out, "predictions.json")) as f:
    (entry,) = json.load(f)
  predicted = np.asarray(entry["faces"][0]["landmarks"])[None]
  assert float(metrics.nme(predicted, face["landmarks"][None])[0]) < 0.15
  # The bundle's test-time views by default; --notta: one view.
  expected = {}
  for name, kwargs in (("tta", {}), ("notta", ONE_VIEW)):
    expected[name] = Predictor.pretrained(flip_test=True, **kwargs)(
        face["image"], [box], landmark_boxes=True)[0][0].landmarks
  np.testing.assert_allclose(predicted[0], expected["tta"], atol=1e-3)
  assert predict.main([path, f"--out={out}", f"--landmark_boxes_json={boxes}", "--notta"]) == 0
  with open(os.path.join(out, "predictions.json")) as f:
    (entry,) = json.load(f)
  np.testing.assert_allclose(entry["faces"][0]["landmarks"], expected["notta"], atol=1e-3)
  assert np.abs(expected["tta"] - expected["notta"]).max() > 0.05  # the flag mattered.
  assert predict.main([path, f"--out={out}", "--recrop_scale=3,1"]) == cli.EXIT_USAGE
