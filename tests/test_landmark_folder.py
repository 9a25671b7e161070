"""Training and evaluating on labelled folders of 5 and 19 points (landmark_folder)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from asmnet_jax import testing
from asmnet_jax.core import asm
from asmnet_jax.data import registry, scheme
from asmnet_jax.evaluate import report
from asmnet_jax.nn import models
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


def test_five_points_train_flipped_and_evaluate(tmp_path, monkeypatch):
  # The real loop, pipeline, ASM, losses and evaluation around a network that compiles
  # in about a second (ASMNet's init and step take ~20 s CPU each at a new point count).
  monkeypatch.setitem(models.MODELS, "tiny", testing.TinyNetwork)
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


def test_nineteen_points_without_declarations(tmp_path, monkeypatch):
  monkeypatch.setitem(models.MODELS, "tiny", testing.TinyNetwork)
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
