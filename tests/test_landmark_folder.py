"""Training and evaluating on labelled folders of 5 and 19 points (landmark_folder)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

import predict

from asmnet_jax import testing
from asmnet_jax.core import asm
from asmnet_jax.data import registry, scheme
from asmnet_jax.evaluate import report
from asmnet_jax.inference.predictor import Predictor
from asmnet_jax.train import loop
from tests.conftest import trained_run_config


def _folder_config(tmp_path, num_points: int, declare: bool):
  testing.write_landmark_folder(str(tmp_path / "faces"), num_points,
                                {"train": 16, "test": 8}, declare=declare)
  config = trained_run_config(str(tmp_path / "tfds"))
  config.dataset = "landmark_folder"
  config.manual_dir = str(tmp_path / "faces")
  config.validation_split = "test"
  config.num_epochs = 1  # 2 steps of 8.
  config.precise_bn_batches = 0
  config.eval_batch_size = 8
  return config


def test_five_points_train_flipped_and_evaluate(tmp_path):
  # The real loop, pipeline, ASM, losses and evaluation around a network that compiles
  # in about a second (ASMNet's init and step take ~20 s CPU each at a new point count).
  config = _folder_config(tmp_path, 5, declare=True)
  config.model = "tiny"
  config.input.flip_probability = 0.5  # the folder declares its mirror pairs.
  workdir = str(tmp_path / "run")
  results = loop.train_and_evaluate(config, workdir)
  assert results["count"] == 8 and np.isfinite(results["nme"]) and results["pose_mae"] is None
  assert asm.ShapeModel.load(os.path.join(workdir, loop.SHAPE_MODEL_FILE)).num_points == 5

  splits = report.evaluate_workdir(workdir, checkpoint="latest")
  assert list(splits) == ["test"]  # every split but train.
  # The latest checkpoint's evaluation goes to DIR/eval/latest/.
  latest_dir = report.eval_dir(workdir, checkpoint="latest")
  with open(os.path.join(latest_dir, "results.json")) as f:
    stored = json.load(f)
  assert stored["normalizer_description"] == "inter-ocular distance (eye points 0, 1)"
  with np.load(report.prediction_file(workdir, "test", checkpoint="latest")) as p:
    pred, gt, nme = p["landmarks"], p["gt_landmarks"], p["nme"]
  assert pred.shape == gt.shape == (8, 5, 2)
  # The eye centres (points 0 and 1) normalise: NumPy on the stored predictions.
  expected = (np.linalg.norm(pred - gt, axis=-1).mean(-1)
              / np.linalg.norm(gt[:, 0] - gt[:, 1], axis=-1))
  np.testing.assert_allclose(nme, expected, rtol=1e-5)
  assert splits["test"]["nme"] == pytest.approx(expected.mean(), rel=1e-5)
  table = open(os.path.join(latest_dir, "results.md")).read()
  assert "NME normalised by the inter-ocular distance (eye points 0, 1)." in table
  assert "| n/a | n/a | n/a |" in table

  # The run records the folder's mirror map, and the flip test uses it: the average of
  # the crop's prediction and the mirrored prediction of the mirrored crop.
  with open(os.path.join(config.manual_dir, scheme.DATASET_FILE)) as f:
    declared = json.load(f)
  perm = np.arange(5)
  for a, b in declared["mirror_pairs"]:
    perm[a], perm[b] = b, a
  assert scheme.load_from_workdir(workdir).mirror_map == tuple(perm)
  predictor = Predictor.from_workdir(workdir, "latest", flip_test="auto", refine_passes=0)
  assert predictor.flip_test
  crops = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype(np.float32)
  landmarks, pose = predictor._predict_crops(crops)  # pylint: disable=protected-access
  model = predictor.model
  plain = [np.asarray(x) for x in model.forward(model.variables, crops)]
  flipped = [np.asarray(x) for x in model.forward(model.variables, crops[:, :, ::-1])]
  expected = 0.5 * (plain[0] + flipped[0][:, perm] * np.array([-1.0, 1.0]))
  np.testing.assert_allclose(landmarks, expected, atol=1e-5)
  np.testing.assert_allclose(pose, 0.5 * (plain[1] + flipped[1] * np.array([-1.0, 1.0, -1.0])),
                             atol=1e-3)


def test_nineteen_points_without_declarations(tmp_path, capsys):
  config = _folder_config(tmp_path, 19, declare=False)
  config.model = "tiny"
  builder = registry.prepare(config.dataset, config.data_dir, config.manual_dir)
  data_scheme = scheme.scheme_of(builder)
  assert (data_scheme.num_points, data_scheme.normalizer, data_scheme.mirror_map) == (
      19, "box_diagonal", None)
  config.input.flip_probability = 0.5
  with pytest.raises(ValueError, match="landmark_folder declares no left-right mirror map "
                     "for its 19 points.*declare mirror_pairs and midline_points"):
    loop.train_and_evaluate(config, str(tmp_path / "refused"))
  config.input.flip_probability = 0.0
  assert loop.loss_config(config, data_scheme).pose_weight == 0.0  # no pose labels.

  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(config, workdir)
  splits = report.evaluate_workdir(workdir)
  with np.load(report.prediction_file(workdir, "test")) as p:
    pred, gt, nme = p["landmarks"], p["gt_landmarks"], p["nme"]
  assert pred.shape == gt.shape == (8, 19, 2)
  diagonal = np.linalg.norm(gt.max(1) - gt.min(1), axis=-1)
  expected = np.linalg.norm(pred - gt, axis=-1).mean(-1) / diagonal
  np.testing.assert_allclose(nme, expected, rtol=1e-5)
  assert splits["test"]["nme"] == pytest.approx(expected.mean(), rel=1e-5)
  table = open(os.path.join(workdir, "eval", "results.md")).read()
  assert "NME normalised by the diagonal of the ground-truth landmark box." in table
  # No mirror map: "auto" runs one pass, an explicit flip test is refused.
  assert not Predictor.from_workdir(workdir, flip_test="auto").flip_test
  with pytest.raises(ValueError, match="19 points have no mirror map"):
    Predictor.from_workdir(workdir, flip_test=True)
  # predict.py's default flip test falls back to one pass and says so.
  image = next(os.path.join(root, name) for root, _, names in os.walk(config.manual_dir)
               for name in sorted(names) if name.endswith(".png"))
  h, w = np.asarray(Image.open(image)).shape[:2]
  boxes = str(tmp_path / "boxes.json")
  with open(boxes, "w") as f:
    json.dump({image: [[w * 0.25, h * 0.25, w * 0.75, h * 0.75]]}, f)
  out = str(tmp_path / "predictions")
  assert predict.main([image, "--workdir", workdir, "--out", out,
                       "--landmark_boxes_json", boxes]) == 0
  assert "19 points have no mirror map, so no flip test" in capsys.readouterr().err
  with open(os.path.join(out, "predictions.json")) as f:
    (record,) = json.load(f)
  assert np.asarray(record["faces"][0]["landmarks"]).shape == (19, 2)
