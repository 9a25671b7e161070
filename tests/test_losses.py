"""Losses against explicit NumPy loops, gradients against the analytic ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax.core import asm
from asmnet_jax.core import losses


def shape_model_and_batch(batch=4, n=10, seed=0):
  rng = np.random.default_rng(seed)
  train = rng.normal(size=(n, 2)) + 0.3 * rng.normal(size=(300, 1, 1)) * rng.normal(size=(n, 2))
  train += 0.05 * rng.normal(size=train.shape)
  model = asm.fit_shape_model(train, 0.9)
  gt = jnp.asarray(train[:batch] * 1.8, jnp.float32)  # Partly outside the ±3√λ box.
  pred = jnp.asarray(gt + 0.2 * rng.normal(size=gt.shape), jnp.float32)
  return model, pred, gt


def loop_landmark_loss(pred, target):
  pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
  total = 0.0
  for j in range(pred.shape[0]):
    for i in range(pred.shape[1]):
      dx, dy = pred[j, i] - target[j, i]
      total += dx * dx + dy * dy
  return total / (pred.shape[0] * pred.shape[1])


def test_landmark_and_asm_losses_match_loops():
  model, pred, gt = shape_model_and_batch()
  np.testing.assert_allclose(losses.landmark_loss(pred, gt), loop_landmark_loss(pred, gt),
                             rtol=1e-5)
  smoothed = np.asarray(asm.project(model, gt))
  assert not np.allclose(smoothed, gt, atol=1e-3)  # The ASM term is not the MSE term.
  np.testing.assert_allclose(losses.asm_loss(pred, gt, model),
                             loop_landmark_loss(pred, smoothed), rtol=1e-5)
  np.testing.assert_allclose(
      losses.facial_loss(pred, gt, model, 2.0),
      loop_landmark_loss(pred, gt) + 2.0 * loop_landmark_loss(pred, smoothed), rtol=1e-5)


def test_pose_loss_matches_loop():
  rng = np.random.default_rng(1)
  pred, target = rng.normal(size=(5, 3)) * 20, rng.normal(size=(5, 3)) * 20
  expected = sum(sum((pred[j, k] - target[j, k]) ** 2 for k in range(3)) / 3
                 for j in range(5)) / 5
  np.testing.assert_allclose(losses.pose_loss(jnp.asarray(pred), jnp.asarray(target)),
                             expected, rtol=1e-5)


def test_total_loss_weights_and_nr_variant():
  model, pred, gt = shape_model_and_batch()
  pose_p, pose_t = jnp.ones((4, 3)), jnp.zeros((4, 3))
  loss, terms = losses.total_loss(pred, pose_p, gt, pose_t, model, alpha=1.0)
  expected = terms["landmark_loss"] + 1.0 * terms["asm_loss"] + 0.5 * 1.0
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(terms["pose_loss"], 1.0)
  loss_nr, terms_nr = losses.total_loss(pred, pose_p, gt, pose_t, None, alpha=2.0)
  np.testing.assert_allclose(loss_nr, terms["landmark_loss"] + 0.5, rtol=1e-6)
  assert terms_nr["asm_loss"] == 0


def test_gradients_are_analytic_and_stop_at_ground_truth():
  model, pred, gt = shape_model_and_batch()
  alpha = 0.5
  n_terms = pred.shape[0] * pred.shape[1]
  smoothed = asm.project(model, gt)
  grad_pred = jax.grad(losses.facial_loss)(pred, gt, model, alpha)
  expected = 2 * (pred - gt) / n_terms + alpha * 2 * (pred - smoothed) / n_terms
  np.testing.assert_allclose(grad_pred, expected, rtol=1e-4, atol=1e-7)
  # No gradient flows into the ground truth through the ASM target.
  grad_gt = jax.grad(losses.asm_loss, argnums=1)(pred, gt, model)
  np.testing.assert_array_equal(grad_gt, 0)


def test_jit_vmap_and_bfloat16():
  model, pred, gt = shape_model_and_batch()
  eager = losses.facial_loss(pred, gt, model, 1.0)
  np.testing.assert_allclose(jax.jit(losses.facial_loss)(pred, gt, model, 1.0), eager,
                             rtol=1e-6)
  per_image = jax.vmap(lambda p, g: losses.facial_loss(p[None], g[None], model, 1.0))(pred, gt)
  np.testing.assert_allclose(per_image.mean(), eager, rtol=1e-5)
  half = losses.facial_loss(pred.astype(jnp.bfloat16), gt.astype(jnp.bfloat16), model, 1.0)
  assert half.dtype == jnp.float32
  np.testing.assert_allclose(half, eager, rtol=0.05)


def test_shape_mismatch_is_an_error():
  with pytest.raises(ValueError, match="differ in shape"):
    losses.landmark_loss(jnp.zeros((2, 5, 2)), jnp.zeros((2, 6, 2)))
  with pytest.raises(ValueError, match=r"\(batch, 3\)"):
    losses.pose_loss(jnp.zeros((2, 2)), jnp.zeros((2, 2)))


@pytest.mark.parametrize("num_epochs", [1, 2, 3, 9, 10, 150])
def test_alpha_schedule_thirds(num_epochs):
  steps_per_epoch = 7
  schedule = jax.jit(losses.alpha_schedule(steps_per_epoch, num_epochs))
  for epoch in range(num_epochs + 2):
    if epoch < num_epochs / 3:
      expected = 2.0
    elif epoch < 2 * num_epochs / 3:
      expected = 1.0
    else:
      expected = 0.5
    for step in (epoch * steps_per_epoch, epoch * steps_per_epoch + steps_per_epoch - 1):
      assert float(schedule(step)) == expected, (epoch, step)


def test_alpha_schedule_rejects_bad_arguments():
  with pytest.raises(ValueError, match="steps_per_epoch"):
    losses.alpha_schedule(0, 10)
