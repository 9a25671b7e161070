"""Precise BatchNorm statistics against direct computations."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from asmnet_jax import testing
from asmnet_jax.nn import kernels
from asmnet_jax.nn import models
from asmnet_jax.train import precise_bn


@pytest.fixture(scope="module")
def model_and_variables():
  model = models.create_model("asmnet", 5, dropout_rate=0.0)
  variables = testing.random_variables(model, 64)  # No compile of model.init.
  return model, variables, precise_bn.make_batch_moments_fn(model)  # Compiled once.


def _images(seed, n=8, size=64):
  return jax.random.uniform(jax.random.key(seed), (n, size, size, 3))


def test_one_batch_makes_eval_mode_equal_train_mode(model_and_variables):
  # With the statistics of exactly this batch, every BN layer normalises as in
  # training, so the eval-mode network reproduces the train-mode outputs.
  model, variables, moments_fn = model_and_variables
  images = _images(1)
  stats = precise_bn.precise_batch_stats(model, variables, [images], moments_fn=moments_fn)
  # Jitted: op by op, the network's few hundred operations each compile on their own.
  apply_train = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
  apply_eval = jax.jit(functools.partial(model.apply, train=False))
  (train_lm, train_pose), _ = apply_train(variables, images)
  eval_lm, eval_pose = apply_eval({"params": variables["params"], "batch_stats": stats}, images)
  # Round-off only (a 1e-6 change of the pixels moves these outputs by ~3e-4); the
  # drawn running averages are off by O(1).
  np.testing.assert_allclose(eval_lm, train_lm, atol=2e-4)
  np.testing.assert_allclose(eval_pose, train_pose, atol=2e-4)
  stale_lm, _ = apply_eval(variables, images)
  assert np.max(np.abs(stale_lm - train_lm)) > 0.1
  # The structure and dtypes of the running averages are kept.
  assert jax.tree.structure(stats) == jax.tree.structure(variables["batch_stats"])


def test_stem_statistics_are_the_population_moments(model_and_variables):
  # The stem's BN input is the conv of the images alone (no earlier BN), so its
  # precise statistics over K batches are the mean and variance over all K batches.
  model, variables, moments_fn = model_and_variables
  batches = [_images(seed) for seed in (2, 3, 4)]
  stats = precise_bn.precise_batch_stats(model, variables, batches, moments_fn=moments_fn)
  kernel = variables["params"]["backbone"]["stem"]["kernel"]
  pad = kernels.same_padding(64, 3, 2)
  conv = lax.conv_general_dilated(jnp.concatenate(batches), kernel, (2, 2), (pad, pad),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
  conv = np.asarray(conv, np.float64).reshape(-1, kernel.shape[-1])
  stem = stats["backbone"]["stem"]["bn"]
  np.testing.assert_allclose(stem["mean"], conv.mean(0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stem["var"], conv.var(0), rtol=1e-3, atol=1e-6)


def test_no_batches_is_an_error(model_and_variables):
  model, variables, moments_fn = model_and_variables
  with pytest.raises(ValueError, match="at least one batch"):
    precise_bn.precise_batch_stats(model, variables, [], moments_fn=moments_fn)
