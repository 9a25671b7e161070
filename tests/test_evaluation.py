"""Evaluation maps predictions back to the record's pixels and scores them correctly."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax.core import geometry, metrics
from asmnet_jax.data import pipeline
from asmnet_jax.data import registry
from asmnet_jax.evaluate import evaluator as evaluation
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import step as step_lib
from configs import synthetic


@pytest.fixture(scope="module")
def test_source(tiny_data_dir):
  return registry.get_builder("synthetic_faces/tiny", tiny_data_dir).as_data_source("test")


def oracle_evaluator(source, outputs):
  """An Evaluator whose network function returns `outputs(batch)` for each eval
  batch in turn (read in step with the evaluator's own pass)."""
  config = synthetic.get_config()
  config.image_size, config.eval_batch_size = 32, 8
  batches = iter(list(pipeline.create_eval_iterator(
      source, batch_size=8, config=config_lib.input_config(config))))

  def apply_fn(variables, images):
    batch = next(batches)
    assert images.shape == batch["image"].shape
    np.testing.assert_array_equal(np.asarray(images), batch["image"])
    return outputs(batch)

  return evaluation.Evaluator(None, config, step_lib.make_mesh(), apply_fn=apply_fn)


def test_perfect_predictions_score_perfectly(test_source):
  def truth(batch):
    return jnp.asarray(batch["landmarks"]), jnp.asarray(batch["pose"]) / 90.0
  predictions = oracle_evaluator(test_source, truth).predict({}, test_source)
  assert sorted(predictions.index.tolist()) == list(range(len(test_source)))
  records = np.stack([test_source[int(i)]["landmarks"] for i in predictions.index])
  np.testing.assert_allclose(predictions.gt_landmarks, records, atol=1e-3)
  np.testing.assert_allclose(predictions.landmarks, records, atol=1e-3)
  results = evaluation.compute_metrics(predictions)
  assert results["count"] == len(test_source)
  assert results["nme"] < 1e-4 and results["failure_rate"] == 0 and results["auc"] > 0.999
  assert results["pose_mae"]["mean"] < 1e-3


def test_mean_shape_baseline_matches_direct_nme(test_source):
  records = np.stack([test_source[i]["landmarks"] for i in range(len(test_source))])
  mean_norm = geometry.eval_normalized(records, 0.05).mean(0)

  def mean_shape(batch):
    size = batch["landmarks"].shape[0]
    return jnp.broadcast_to(mean_norm, (size, 68, 2)), jnp.zeros((size, 3))
  predictions = oracle_evaluator(test_source, mean_shape).predict({}, test_source)
  results = evaluation.compute_metrics(predictions)
  # Independently: the mean normalised shape placed in each record's evaluation crop.
  lo, hi = records.min(1, keepdims=True), records.max(1, keepdims=True)
  margin = 0.05 * (hi - lo)
  expected_px = (lo - margin) + (mean_norm + 0.5) * (hi - lo + 2 * margin)
  order = np.argsort(predictions.index)
  expected = float(np.mean(metrics.nme(expected_px, records)))
  assert results["nme"] == pytest.approx(expected, rel=1e-3)
  assert 0.1 < results["nme"] < 1.0
  np.testing.assert_allclose(predictions.landmarks[order], expected_px, atol=0.05)


def test_config_of_an_older_run_gets_the_values_it_trained_with(tmp_path):
  # A run from before `dropout_rate`/`precise_bn_batches` existed still evaluates.
  stored = {"model": "asmnet", "image_size": 64, "bn_momentum": 0.99}
  (tmp_path / "config.json").write_text(json.dumps(stored))
  config = config_lib.load_config(str(tmp_path))
  assert config.bn_momentum == 0.99  # Stored values win.
  assert config.dropout_rate == 0.3 and config.precise_bn_batches == 0


def test_evaluator_needs_a_network():
  with pytest.raises(ValueError, match="needs a model or an apply_fn"):
    evaluation.Evaluator(None, synthetic.get_config(), step_lib.make_mesh())


def test_flatten_joins_nested_keys():
  results = {"nme": 0.25, "count": 16, "pose_mae": {"yaw": 1.5, "mean": 2.0}}
  assert evaluation.flatten(results) == {"nme": 0.25, "count": 16, "pose_mae_yaw": 1.5,
                                         "pose_mae_mean": 2.0}
