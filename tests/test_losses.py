"""Losses against explicit NumPy loops, gradients against the analytic ones; the α
and learning-rate schedules against NumPy formulas."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax.core import asm
from asmnet_jax.core import losses
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib


def shape_model_and_batch(batch=4, n=10, seed=0):
  rng = np.random.default_rng(seed)
  train = rng.normal(size=(n, 2)) + 0.3 * rng.normal(size=(300, 1, 1)) * rng.normal(size=(n, 2))
  train += 0.05 * rng.normal(size=train.shape)
  model = asm.fit_shape_model(train, 0.9)
  gt = train[:batch] * 1.8
  # Image 0 six standard deviations further along the first axis: outside the ±3√λ box.
  gt[0] += 6.0 * np.sqrt(model.eigenvalues[0]) * np.asarray(model.components[:, 0]).reshape(n, 2)
  gt = jnp.asarray(gt, jnp.float32)
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


def loop_distance_loss(pred, target, distance, width=10 / 64, curvature=2 / 64):
  """The mean over images and points of `distance` between (b, n, 2) point sets."""
  pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
  total = 0.0
  for j in range(pred.shape[0]):
    for i in range(pred.shape[1]):
      dx, dy = pred[j, i] - target[j, i]
      if distance == "euclidean":
        total += math.sqrt(dx * dx + dy * dy)
      else:  # wing, Feng et al. (2018), Eq. 5, on each coordinate.
        for d in (abs(dx), abs(dy)):
          if d < width:
            total += width * math.log(1 + d / curvature)
          else:
            total += d - (width - width * math.log(1 + width / curvature))
  return total / (pred.shape[0] * pred.shape[1])


@pytest.mark.parametrize("distance", ["euclidean", "wing"])
def test_other_landmark_distances_match_loops(distance):
  model, pred, gt = shape_model_and_batch()
  # Errors of a few hundredths of a crop width and a few above the wing's width.
  pred = gt + (pred - gt) * jnp.where(jnp.arange(gt.shape[1]) % 3 == 0, 1.0, 0.1)[:, None]
  errors = np.abs(np.asarray(pred - gt))
  assert (errors < losses.WING_WIDTH).any() and (errors > losses.WING_WIDTH).any()
  np.testing.assert_allclose(losses.landmark_loss(pred, gt, distance),
                             loop_distance_loss(pred, gt, distance), rtol=1e-5)
  smoothed = np.asarray(asm.project(model, gt))
  np.testing.assert_allclose(
      losses.facial_loss(pred, gt, model, 0.5, distance),
      loop_distance_loss(pred, gt, distance) + 0.5 * loop_distance_loss(pred, smoothed, distance),
      rtol=1e-5)
  loss, terms = losses.total_loss(pred, jnp.zeros((4, 3)), gt, jnp.zeros((4, 3)), model, 0.5,
                                  distance=distance)
  np.testing.assert_allclose(terms["asm_loss"], loop_distance_loss(pred, smoothed, distance),
                             rtol=1e-5)
  np.testing.assert_allclose(loss, losses.facial_loss(pred, gt, model, 0.5, distance), rtol=1e-6)


def test_wing_is_continuous_and_its_slope_is_width_over_curvature_at_zero():
  w, e = losses.WING_WIDTH, losses.WING_CURVATURE
  below, above = losses.wing(jnp.float32(w * (1 - 1e-6))), losses.wing(jnp.float32(w * (1 + 1e-6)))
  np.testing.assert_allclose(below, above, atol=1e-6)
  np.testing.assert_allclose(jax.grad(losses.wing)(jnp.float32(1e-7)), w / e, rtol=1e-4)
  np.testing.assert_allclose(jax.grad(losses.wing)(jnp.float32(-2 * w)), -1.0)


def test_euclidean_distance_gradient_is_the_unit_direction_and_zero_at_an_exact_point():
  pred = jnp.array([[[3.0, 4.0], [1.0, 1.0]]])
  target = jnp.array([[[0.0, 0.0], [1.0, 1.0]]])
  grad = jax.grad(losses.landmark_loss)(pred, target, "euclidean")
  # d/dp of mean(|p - t|) over 2 points: (p - t) / |p - t| / 2, and 0 where p = t.
  np.testing.assert_allclose(grad, [[[0.3, 0.4], [0.0, 0.0]]], atol=1e-7)
  assert np.isfinite(np.asarray(grad)).all()


def test_unknown_landmark_distance_is_named():
  _, pred, gt = shape_model_and_batch()
  with pytest.raises(ValueError, match="'manhattan'"):
    losses.landmark_loss(pred, gt, "manhattan")


def test_pose_loss_matches_loop():
  rng = np.random.default_rng(1)
  pred, target = rng.normal(size=(5, 3)) * 20, rng.normal(size=(5, 3)) * 20
  expected = sum(sum((pred[j, k] - target[j, k]) ** 2 for k in range(3)) / 3
                 for j in range(5)) / 5
  np.testing.assert_allclose(losses.pose_loss(jnp.asarray(pred), jnp.asarray(target)),
                             expected, rtol=1e-5)


def numpy_project(model, shapes):
  """The ASM operator in float64 NumPy: s̄ + P clip(Pᵀ(s − s̄), ±3√λ)."""
  mean, components, eigenvalues = (np.asarray(a, np.float64) for a in (
      model.mean, model.components, model.eigenvalues))
  flat = np.asarray(shapes, np.float64).reshape(shapes.shape[0], -1)
  limit = 3.0 * np.sqrt(eigenvalues)
  b = np.clip((flat - mean) @ components, -limit, limit)
  return (mean + b @ components.T).reshape(shapes.shape)


def numpy_total_loss(pred, pose_p, gt, pose_t, model, alpha, pose_weight):
  """Eqs. 7-12 in NumPy: the loss and its terms (asm 0 without a model)."""
  pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
  mse = np.mean(np.sum((pred - gt) ** 2, axis=-1))
  assistant = 0.0
  if model is not None:
    assistant = np.mean(np.sum((pred - numpy_project(model, gt)) ** 2, axis=-1))
  pose = np.mean((np.asarray(pose_p, np.float64) - np.asarray(pose_t, np.float64)) ** 2)
  loss = 1.0 * (mse + alpha * assistant) + pose_weight * pose
  return loss, {"loss": loss, "landmark_loss": mse, "asm_loss": assistant, "pose_loss": pose}


@pytest.mark.parametrize("alpha, pose_weight", [(1.0, 0.5), (2.0, 0.25), (0.5, 0.5)])
def test_total_loss_matches_numpy(alpha, pose_weight):
  model, pred, gt = shape_model_and_batch()
  # The ±3√λ clip engages for some coefficients, so the test covers it.
  b = np.asarray(asm.coefficients(model, gt))
  assert np.any(np.abs(b) > 3.0 * np.sqrt(np.asarray(model.eigenvalues)))
  rng = np.random.default_rng(5)
  pose_p, pose_t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
  loss, terms = losses.total_loss(pred, jnp.asarray(pose_p, jnp.float32), gt,
                                  jnp.asarray(pose_t, jnp.float32), model, alpha=alpha,
                                  pose_weight=pose_weight)
  want_loss, want_terms = numpy_total_loss(pred, pose_p, gt, pose_t, model, alpha,
                                           pose_weight)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  assert set(terms) == set(want_terms)
  for name, value in want_terms.items():
    np.testing.assert_allclose(terms[name], value, rtol=1e-5, err_msg=name)


def test_total_loss_without_shape_model_is_the_nr_variant():
  model, pred, gt = shape_model_and_batch()
  pose_p, pose_t = jnp.ones((4, 3)), jnp.zeros((4, 3))
  loss, terms = losses.total_loss(pred, pose_p, gt, pose_t, None, alpha=2.0)
  want_loss, _ = numpy_total_loss(pred, pose_p, gt, pose_t, None, 2.0, 0.5)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  assert float(terms["asm_loss"]) == 0.0
  # With a model the same inputs give a larger loss: the ASM term is on.
  loss_asm, _ = losses.total_loss(pred, pose_p, gt, pose_t, model, alpha=2.0)
  assert float(loss_asm) > float(loss) + 1e-3


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
  # Every step at once, eagerly, against the epoch rule in NumPy.
  steps = np.arange((num_epochs + 2) * steps_per_epoch)
  epochs = steps // steps_per_epoch
  want = np.where(3 * epochs < num_epochs, 2.0, np.where(3 * epochs < 2 * num_epochs, 1.0, 0.5))
  got = losses.alpha_schedule(steps_per_epoch, num_epochs)(jnp.asarray(steps, jnp.int32))
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("num_epochs, steps_and_alphas", [
    # Stage boundaries at epochs ceil(l/3) and ceil(2l/3): the first step of an epoch
    # already has that epoch's α.
    (3, [(6, 2.0), (7, 1.0), (13, 1.0), (14, 0.5)]),
    (4, [(13, 2.0), (14, 1.0), (20, 1.0), (21, 0.5)]),
    (1, [(0, 2.0), (6, 2.0), (7, 0.5), (10_000, 0.5)]),
])
def test_alpha_schedule_boundaries(num_epochs, steps_and_alphas):
  schedule = losses.alpha_schedule(7, num_epochs)
  for step, alpha in steps_and_alphas:
    assert float(schedule(step)) == alpha, step


def test_alpha_schedule_rejects_bad_arguments():
  with pytest.raises(ValueError, match="steps_per_epoch"):
    losses.alpha_schedule(0, 10)
  with pytest.raises(ValueError, match="num_epochs must be >= 1"):
    losses.alpha_schedule(5, 0)


def numpy_learning_rate(kind, lr, decay, warmup_steps, num_steps, steps):
  """The learning-rate rule in float64 NumPy: the decay times the linear warm-up."""
  steps = np.asarray(steps, np.float64)
  if kind == "cosine":
    rate = lr * 0.5 * (1.0 + np.cos(np.pi * np.clip(steps / max(num_steps, 1), 0.0, 1.0)))
  else:
    rate = lr / (1.0 + decay * steps)
  if warmup_steps:
    rate = rate * np.minimum(1.0, (steps + 1.0) / warmup_steps)
  return rate


@pytest.mark.parametrize("kind", ["cosine", "keras_decay"])
@pytest.mark.parametrize("warmup_steps", [0, 1, 2, 50])
def test_learning_rate_schedule_matches_numpy(kind, warmup_steps):
  config = config_lib.base_config()
  config.lr_schedule, config.warmup_steps = kind, warmup_steps
  config.learning_rate, config.lr_decay = 4e-2, 1e-3
  num_steps = 300
  steps = np.arange(num_steps + 20)
  schedule = state_lib.learning_rate_schedule(config, num_steps)
  got = jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32))
  want = numpy_learning_rate(kind, 4e-2, 1e-3, warmup_steps, num_steps, steps)
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=4e-2 * 1e-6)
  # The scalar form the train step uses agrees with the vectorised one.
  assert float(schedule(jnp.int32(0))) == pytest.approx(float(got[0]), rel=1e-6)
  if warmup_steps:
    assert float(got[0]) == pytest.approx(4e-2 / warmup_steps, rel=1e-5)
  if kind == "cosine":
    assert float(got[num_steps]) == pytest.approx(0.0, abs=1e-9)
