"""Layers: TF SAME padding, the fast convolutions against XLA's, BatchNorm modes."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from asmnet_jax.nn import kernels, layers


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (224, 3, 2, (0, 1)), (112, 3, 2, (0, 1)), (7, 3, 2, (1, 1)), (9, 3, 2, (1, 1)),
    (56, 3, 1, (1, 1)), (5, 3, 1, (1, 1)), (1, 3, 2, (1, 1)),
])
def test_same_padding_is_tensorflow_rule(size, kernel, stride, expected):
  assert kernels.same_padding(size, kernel, stride) == expected
  # The output has ceil(size / stride) positions.
  before, after = kernels.same_padding(size, kernel, stride)
  assert (size + before + after - kernel) // stride + 1 == -(-size // stride)


def _reference_depthwise(x, kernel, stride):
  """lax.conv_general_dilated, grouped, with TF SAME padding from lax itself."""
  return lax.conv_general_dilated(
      x, kernel[:, :, None, :], (stride, stride), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1])


# Odd and even sizes, stride 1 and 2, non-square.
# Batch 8 and 10 take the batch-group path of the kernel gradient, the others not.
DEPTHWISE_CASES = [(2, 8, 8, 5, 1), (2, 9, 7, 4, 1), (2, 8, 10, 6, 2), (1, 9, 9, 3, 2),
                   (3, 7, 6, 5, 2), (1, 2, 2, 3, 2), (8, 6, 5, 3, 1), (10, 7, 7, 2, 2)]


def _normal(seed, shape):
  """Test data from NumPy: jax.random compiles slowly on CPU (seconds per shape)."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _value_and_vjp(fn, *args):
  """Jitted (fn(*args), vjp(g)...) as a function of (args, g): one compile per case."""
  def run(args, g):
    y, vjp = jax.vjp(fn, *args)
    return (y, *vjp(g))
  shape = jax.eval_shape(fn, *args).shape
  g = _normal(7, shape)
  return jax.jit(run)(args, g)


def _assert_all_close(got, want, atol=1e-4):
  assert len(got) == len(want)
  for a, b in zip(got, want):
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("impl", ["shift_vjp", "shift", "lax", "auto"])
@pytest.mark.parametrize("n, h, w, c, stride", DEPTHWISE_CASES)
def test_depthwise_matches_grouped_conv(impl, n, h, w, c, stride):
  """Values and both gradients, against XLA's grouped convolution."""
  x = _normal(h * 100 + w * 10 + stride, (n, h, w, c))
  kernel = _normal(1, (3, 3, c))
  got = _value_and_vjp(lambda x, k: kernels.depthwise_conv(x, k, stride, impl), x, kernel)
  want = _value_and_vjp(lambda x, k: _reference_depthwise(x, k, stride), x, kernel)
  assert got[0].shape == (n, -(-h // stride), -(-w // stride), c)
  _assert_all_close(got, want)


def test_depthwise_jits_and_rejects_unknown_impl():
  x = jnp.ones((1, 6, 6, 2))
  k = jnp.ones((3, 3, 2))
  y = jax.jit(kernels.depthwise_conv, static_argnums=(2, 3))(x, k, 2, "shift_vjp")
  assert y.shape == (1, 3, 3, 2)
  with pytest.raises(ValueError, match="unknown depthwise impl"):
    kernels.depthwise_conv(x, k, 1, "winograd")


@pytest.mark.parametrize("cin, cout", [(4, 12), (12, 4)])
@pytest.mark.parametrize("custom_grad", [True, False])
def test_pointwise_matches_conv_and_gradient(cin, cout, custom_grad):
  x = _normal(cin, (2, 5, 6, cin))
  kernel = _normal(1, (cin, cout))
  got = _value_and_vjp(lambda x, k: kernels.pointwise_conv(x, k, custom_grad), x, kernel)
  want = _value_and_vjp(
      lambda x, k: lax.conv_general_dilated(x, k[None, None], (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")),
      x, kernel)
  _assert_all_close(got, want)


@pytest.mark.parametrize("custom_grad", [True, False])
@pytest.mark.parametrize("h, w", [(8, 8), (9, 7)])
def test_stem_conv3x3_matches_conv(h, w, custom_grad):
  x = jnp.abs(_normal(h, (2, h, w, 3)))
  kernel = _normal(1, (3, 3, 3, 8))
  got = _value_and_vjp(lambda x, k: kernels.conv3x3(x, k, 2, custom_grad), x, kernel)
  want = _value_and_vjp(
      lambda x, k: lax.conv_general_dilated(x, k, (2, 2), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")),
      x, kernel)
  assert got[0].shape == (2, -(-h // 2), -(-w // 2), 8)
  _assert_all_close(got, want)


def test_batch_norm_train_and_eval():
  bn = layers.BatchNorm()
  x = 3.0 + 2.0 * _normal(0, (4, 5, 5, 3))
  variables = bn.init(jax.random.key(1), x, train=False)
  assert variables["params"]["scale"].shape == (3,)
  # Initialising leaves the running statistics at (0, 1).
  np.testing.assert_array_equal(variables["batch_stats"]["mean"], np.zeros(3))
  np.testing.assert_array_equal(variables["batch_stats"]["var"], np.ones(3))

  y, updates = bn.apply(variables, x, train=True, mutable=["batch_stats"])
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.001 * mean, rtol=1e-5)
  np.testing.assert_allclose(updates["batch_stats"]["var"], 0.999 + 0.001 * var, rtol=1e-5)

  y_eval = bn.apply(variables, x, train=False)
  np.testing.assert_allclose(y_eval, x / np.sqrt(1 + 1e-3), rtol=1e-5)


def test_batch_norm_momentum_is_configurable():
  x = _normal(0, (4, 3, 3, 2))
  bn = layers.BatchNorm(momentum=0.9)
  variables = bn.init(jax.random.key(0), x, train=False)
  _, updates = bn.apply(variables, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.1 * x.mean((0, 1, 2)),
                             rtol=1e-5, atol=1e-7)


def test_batch_norm_matches_flax_batch_norm():
  """Same variables, outputs and running-statistics updates as flax.linen.BatchNorm
  with Keras' epsilon, so checkpoints would carry over either way."""
  x = 1.5 + 2.0 * _normal(2, (6, 4, 4, 5))
  ours = layers.BatchNorm(momentum=0.9)
  theirs = nn.BatchNorm(momentum=0.9, epsilon=layers.BN_EPSILON)
  variables = ours.init(jax.random.key(0), x, train=False)
  flax_variables = theirs.init(jax.random.key(0), x, use_running_average=True)
  assert jax.tree.structure(variables) == jax.tree.structure(flax_variables)
  rng = np.random.default_rng(3)
  variables = {
      "params": {"scale": jnp.asarray(rng.uniform(0.5, 1.5, 5), jnp.float32),
                 "bias": jnp.asarray(rng.normal(size=5), jnp.float32)},
      "batch_stats": {"mean": jnp.asarray(rng.normal(size=5), jnp.float32),
                      "var": jnp.asarray(rng.uniform(0.5, 2.0, 5), jnp.float32)}}
  np.testing.assert_allclose(ours.apply(variables, x, train=False),
                             theirs.apply(variables, x, use_running_average=True),
                             rtol=1e-5, atol=1e-5)
  y, updates = ours.apply(variables, x, train=True, mutable=["batch_stats"])
  y_flax, updates_flax = theirs.apply(variables, x, use_running_average=False,
                                      mutable=["batch_stats"])
  np.testing.assert_allclose(y, y_flax, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               updates, updates_flax)
