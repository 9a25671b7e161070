"""Metrics against NumPy loops and numerical integration of the CED."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax.core import metrics
from asmnet_jax.core import numerics


def loop_nme(pred, gt, left, right):
  out = []
  for p, g in zip(np.asarray(pred, np.float64), np.asarray(gt, np.float64)):
    d = np.sqrt(((g[left] - g[right]) ** 2).sum())
    out.append(np.mean([np.sqrt(((p[i] - g[i]) ** 2).sum()) for i in range(len(g))]) / d)
  return np.array(out)


@pytest.mark.parametrize("num_points, eyes", [(68, (36, 45)), (98, (60, 72))])
def test_nme_matches_loop(num_points, eyes):
  rng = np.random.default_rng(0)
  gt = rng.uniform(0, 100, size=(5, num_points, 2))
  pred = gt + rng.normal(size=gt.shape)
  got = metrics.nme(jnp.asarray(pred), jnp.asarray(gt))
  np.testing.assert_allclose(got, loop_nme(pred, gt, *eyes), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(metrics.nme)(pred, gt), got, rtol=1e-6)


def test_nme_needs_eye_indices_for_other_counts():
  rng = np.random.default_rng(1)
  gt = rng.uniform(size=(2, 10, 2))
  with pytest.raises(ValueError, match="eye_indices"):
    metrics.nme(gt, gt)
  pred = gt + 0.01
  np.testing.assert_allclose(metrics.nme(pred, gt, eye_indices=(0, 9)),
                             loop_nme(pred, gt, 0, 9), rtol=1e-5)


def test_nme_is_scale_invariant_and_bfloat16_works():
  rng = np.random.default_rng(2)
  gt = rng.uniform(size=(3, 68, 2)).astype(np.float32)
  pred = gt + 0.02 * rng.normal(size=gt.shape).astype(np.float32)
  base = metrics.nme(pred, gt)
  np.testing.assert_allclose(metrics.nme(pred * 250, gt * 250), base, rtol=1e-5)
  half = metrics.nme(jnp.asarray(pred, jnp.bfloat16), jnp.asarray(gt, jnp.bfloat16))
  assert half.dtype == jnp.float32
  np.testing.assert_allclose(half, base, rtol=0.1)


def test_failure_rate_and_auc_against_numerical_integration():
  rng = np.random.default_rng(3)
  nmes = np.concatenate([rng.uniform(0, 0.2, size=300), [0.1, 0.0]])
  assert float(metrics.failure_rate(nmes)) == pytest.approx(np.mean(nmes > 0.1))
  grid = np.linspace(0, 0.1, 200_001)
  ced_values = np.array([np.mean(nmes <= x) for x in grid[::100]])
  numeric = np.trapezoid(ced_values, grid[::100]) / 0.1
  assert float(metrics.auc(nmes)) == pytest.approx(numeric, abs=1e-3)
  assert float(metrics.auc(np.zeros(4))) == pytest.approx(1.0)
  assert float(metrics.auc(np.full(4, 0.5))) == 0.0
  assert float(metrics.auc(nmes, threshold=0.08)) == pytest.approx(
      np.mean(np.clip(0.08 - nmes, 0, None)) / 0.08, rel=1e-5)


def test_ced_curve():
  nmes = jnp.asarray([0.01, 0.02, 0.05, 0.3])
  x, y = metrics.ced(nmes, num_points=11)
  np.testing.assert_allclose(x, np.linspace(0, 0.1, 11), atol=1e-7)
  np.testing.assert_allclose(y, [0, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75])


def test_pose_mae_per_angle_with_wrap():
  pred = jnp.asarray([[10.0, -5.0, 179.0], [0.0, 5.0, 0.0]])
  gt = jnp.asarray([[0.0, 0.0, -179.0], [4.0, 5.0, 1.0]])
  np.testing.assert_allclose(metrics.pose_mae(pred, gt), [7.0, 2.5, 1.5], rtol=1e-6)
  with pytest.raises(ValueError, match=r"\(batch, 3\)"):
    metrics.pose_mae(pred[:, :2], gt[:, :2])


def test_integer_and_bfloat16_inputs_are_computed_in_float32():
  assert numerics.at_least_float32(np.array([0, 1])).dtype == jnp.float32
  assert numerics.at_least_float32(jnp.ones(2, jnp.bfloat16)).dtype == jnp.float32
  # bfloat16(0.1) is 0.10009766: above the threshold in float32, equal to it (not a
  # failure) if the threshold were rounded to bfloat16 too.
  nmes = jnp.asarray([0.1, 0.05], jnp.bfloat16)
  assert float(metrics.failure_rate(nmes)) == 0.5
  assert float(jnp.mean(nmes > jnp.bfloat16(0.1))) == 0.0
  np.testing.assert_allclose(metrics.pose_mae(jnp.asarray([[1, 2, 3]]), jnp.asarray([[0, 0, 0]])),
                             [1.0, 2.0, 3.0])


def loop_box_nme(pred, gt, normalizer, mask=None):
  """NumPy loops: box-normalised NME, over the masked points only when given."""
  out = []
  for k, (p, g) in enumerate(zip(np.asarray(pred, np.float64), np.asarray(gt, np.float64))):
    w = g[:, 0].max() - g[:, 0].min()
    h = g[:, 1].max() - g[:, 1].min()
    d = np.hypot(w, h) if normalizer == "box_diagonal" else np.sqrt(w * h)
    keep = range(len(g)) if mask is None else [i for i in range(len(g)) if mask[k][i]]
    out.append(np.mean([np.hypot(*(p[i] - g[i])) for i in keep]) / d)
  return np.array(out)


@pytest.mark.parametrize("normalizer", ["box_diagonal", "box_area"])
def test_box_normalised_nme_matches_loop_and_jits(normalizer):
  rng = np.random.default_rng(4)
  gt = rng.uniform(0, 100, size=(4, 5, 2))
  pred = gt + rng.normal(size=gt.shape)
  got = metrics.nme(pred, gt, normalizer=normalizer)
  np.testing.assert_allclose(got, loop_box_nme(pred, gt, normalizer), rtol=1e-5)
  jitted = jax.jit(metrics.nme, static_argnames=("normalizer",))
  np.testing.assert_allclose(jitted(pred, gt, normalizer=normalizer), got, rtol=1e-6)
  # 68 points: the box normaliser replaces the inter-ocular one when asked.
  gt68 = rng.uniform(0, 100, size=(2, 68, 2))
  np.testing.assert_allclose(metrics.nme(gt68 + 1.0, gt68, normalizer=normalizer),
                             loop_box_nme(gt68 + 1.0, gt68, normalizer), rtol=1e-5)


def test_masked_nme_averages_the_visible_points_only():
  rng = np.random.default_rng(5)
  gt = rng.uniform(0, 50, size=(3, 29, 2))
  pred = gt + rng.normal(size=gt.shape)
  mask = rng.random((3, 29)) < 0.7
  got = metrics.nme(pred, gt, eye_indices=(8, 9), point_mask=jnp.asarray(mask))
  eyes = np.linalg.norm(gt[:, 8] - gt[:, 9], axis=-1)
  expected = np.array([np.linalg.norm(p - g, axis=-1)[m].mean()
                       for p, g, m in zip(pred, gt, mask)]) / eyes
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  np.testing.assert_allclose(
      metrics.nme(pred, gt, normalizer="box_area", point_mask=mask),
      loop_box_nme(pred, gt, "box_area", mask), rtol=1e-5)
  with pytest.raises(ValueError, match="point_mask"):
    metrics.nme(pred, gt, eye_indices=(8, 9), point_mask=mask[:, :5])


def test_normalizer_choice_and_words():
  assert metrics.default_normalizer(68) == metrics.default_normalizer(5, (0, 1)) == "inter_ocular"
  assert metrics.default_normalizer(19) == "box_diagonal"
  assert metrics.describe_normalizer("inter_ocular", num_points=98) == (
      "inter-ocular distance (outer eye corners 60, 72)")
  assert "diagonal" in metrics.describe_normalizer("box_diagonal")
  with pytest.raises(ValueError, match="unknown normalizer 'pupils'"):
    metrics.nme(np.zeros((1, 5, 2)), np.ones((1, 5, 2)), normalizer="pupils")
