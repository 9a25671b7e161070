"""Models: exact sizes, shapes, BatchNorm/dropout modes, BN folding, dtype, jit.

Cheap by design: sizes and shapes come from `jax.eval_shape` (no compile), test
variables are filled from NumPy instead of `model.init` (whose RNG graph takes XLA
10-20 s to compile on CPU; one slow test runs it), images are 32x32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax.nn import layers, models
from asmnet_jax.train import config as config_lib

SIZE = 32  # smallest size with a 1x1 map after the last stride-2 block.


def _images(batch: int, seed: int = 0, size: int = SIZE) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(batch, size, size, 3)),
                     jnp.float32)


def _shapes(model, size: int = SIZE):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), _images(1, size=size)))


def _random_variables(model, seed: int = 0):
  """Variables with model.init's structure and non-trivial values (incl. BN)."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    names = [getattr(p, "key", str(p)) for p in path]
    shape = leaf.shape
    if names[0] == "batch_stats":
      if names[-1] == "var":
        return jnp.asarray(rng.uniform(0.5, 2.0, shape), jnp.float32)
      return jnp.asarray(rng.normal(0, 0.2, shape), jnp.float32)
    if names[-1] == "scale":
      return jnp.asarray(rng.uniform(0.5, 1.5, shape), jnp.float32)
    if names[-1] == "bias":
      return jnp.asarray(rng.normal(0, 0.1, shape), jnp.float32)
    fan_in = 9 if "depthwise" in names else int(np.prod(shape[:-1]))
    return jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in), shape), jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, _shapes(model))


@pytest.fixture(scope="module")
def asmnet():
  model = models.create_model("asmnet", 68)
  return model, _random_variables(model)


@pytest.mark.parametrize("name, n, trainable, bn_stats, total", [
    ("asmnet", 68, 1_412_435, 27_072, 1_439_507),
    ("asmnet", 98, None, None, 1_471_727),
    ("mnv2", 68, 2_401_931, 34_112, 2_436_043),
    ("mnv2", 98, None, None, 2_512_903),
])
def test_parameter_counts_match_keras(name, n, trainable, bn_stats, total):
  got_trainable, got_bn = models.count_parameters(_shapes(models.create_model(name, n), 224))
  assert got_trainable + got_bn == total
  if trainable is not None:
    assert (got_trainable, got_bn) == (trainable, bn_stats)


@pytest.mark.parametrize("name, n, size", [
    ("asmnet", 68, SIZE), ("asmnet", 98, SIZE), ("mnv2", 68, SIZE), ("mnv2", 98, SIZE),
    ("asmnet", 68, 45), ("mnv2", 98, 224),
])
def test_output_shapes(name, n, size):
  model = models.create_model(name, n)
  variables = _shapes(model, size)
  assert set(variables) == {"params", "batch_stats"}
  images = jax.ShapeDtypeStruct((3, size, size, 3), jnp.float32)
  landmarks, pose = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, images)
  assert (landmarks.shape, landmarks.dtype) == ((3, n, 2), jnp.float32)
  assert (pose.shape, pose.dtype) == ((3, 3), jnp.float32)
  (landmarks, pose), updates = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, rngs={"dropout": jax.random.key(0)},
                               mutable=["batch_stats"]), variables, images)
  assert landmarks.shape == (3, n, 2) and pose.shape == (3, 3)
  assert jax.tree.structure(updates["batch_stats"]) == jax.tree.structure(
      variables["batch_stats"])


def test_asmnet_taps_give_536_features():
  variables = _shapes(models.create_model("asmnet", 68))
  assert variables["params"]["heads"]["landmarks"]["kernel"].shape == (536, 136)
  assert variables["params"]["heads"]["pose"]["kernel"].shape == (536, 3)
  assert "block_16" not in variables["params"]["backbone"]


def test_training_config_defaults_are_the_model_defaults():
  config = config_lib.base_config()
  assert config.bn_momentum == layers.BN_MOMENTUM
  assert config.dropout_rate == models.DROPOUT_RATE
  for name, cls in models.MODELS.items():
    model = models.create_model(name, 68)
    assert isinstance(model, cls)
    assert (model.bn_momentum, model.dropout_rate) == (layers.BN_MOMENTUM, models.DROPOUT_RATE)


def test_create_model_rejects_unknown_names():
  with pytest.raises(ValueError, match="unknown model 'resnet'"):
    models.create_model("resnet", 68)
  with pytest.raises(ValueError, match="num_landmarks"):
    models.create_model("asmnet", 0)


def test_eval_uses_running_stats_and_is_deterministic(asmnet):
  model, variables = asmnet
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  images = _images(4)
  landmarks, pose = apply(variables, images)
  again = apply(variables, images)
  np.testing.assert_array_equal(landmarks, again[0])
  # Each face alone gives the same result: no batch statistics in eval.
  alone = apply(variables, images[:1])
  np.testing.assert_allclose(alone[0], landmarks[:1], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(alone[1], pose[:1], rtol=1e-4, atol=1e-5)
  assert np.all(np.isfinite(landmarks)) and np.all(np.isfinite(pose))


def test_train_uses_batch_stats_updates_running_stats_and_drops_out(asmnet):
  model, variables = asmnet
  apply = jax.jit(lambda v, x, key: model.apply(
      v, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]))
  images = _images(4)
  key = jax.random.key(1)
  (landmarks, _), updates = apply(variables, images, key)

  # Batch statistics: changing the other faces changes face 0's output.
  other = images.at[1:].set(_images(3, seed=5))
  (landmarks_other, _), _ = apply(variables, other, key)
  assert not np.allclose(landmarks[0], landmarks_other[0], atol=1e-4)

  # Running statistics move by (1 - 0.999) towards the batch statistics.
  old = variables["batch_stats"]["backbone"]["stem"]["bn"]
  new = updates["batch_stats"]["backbone"]["stem"]["bn"]
  assert not np.allclose(old["mean"], new["mean"])
  # Recover the batch mean and check it is that of the stem's pre-BN output.
  batch_mean = (new["mean"] - 0.999 * old["mean"]) / 0.001
  assert np.all(np.abs(batch_mean) < 50)
  stem_kernel = variables["params"]["backbone"]["stem"]["kernel"]
  pre_bn = jax.lax.conv_general_dilated(images, stem_kernel, (2, 2), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(batch_mean, pre_bn.mean((0, 1, 2)), rtol=2e-2, atol=2e-3)

  # Dropout: another key gives other outputs, the same key the same ones.
  (landmarks_key2, _), _ = apply(variables, images, jax.random.key(2))
  assert not np.allclose(landmarks, landmarks_key2, atol=1e-5)
  (landmarks_same, _), _ = apply(variables, images, key)
  np.testing.assert_array_equal(landmarks, landmarks_same)


def test_train_requires_dropout_rng(asmnet):
  model, variables = asmnet
  with pytest.raises(Exception, match="dropout"):
    jax.eval_shape(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]),
                   variables, _images(2))


@pytest.mark.parametrize("name, n", [("asmnet", 68), ("mnv2", 98)])
def test_fold_batch_norm_equals_eval(name, n):
  model = models.create_model(name, n)
  variables = _random_variables(model, seed=3)
  images = _images(2, seed=4)
  want = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images)

  infer_model, infer_vars = models.fold_batch_norm(model, variables)
  assert set(infer_vars) == {"params"}
  assert infer_model.folded
  trainable, bn_stats = models.count_parameters(infer_vars)
  assert bn_stats == 0
  got = jax.jit(infer_model.apply)(infer_vars, images)
  for g, w in zip(got, want):
    scale = float(np.max(np.abs(w)))
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * scale)

  # The same from the model's name (num_landmarks read off the variables).
  by_name, by_name_vars = models.fold_batch_norm(name, variables)
  assert by_name == infer_model
  jax.tree.map(np.testing.assert_array_equal, by_name_vars, infer_vars)


def test_fold_batch_norm_structure(asmnet):
  model, variables = asmnet
  _, folded = models.fold_batch_norm(model, variables)
  stem = folded["params"]["backbone"]["stem"]
  assert set(stem) == {"kernel", "bias"} and stem["bias"].shape == (32,)
  block = folded["params"]["backbone"]["block_1"]
  assert set(block) == {"expand", "depthwise", "project"}
  assert folded["params"]["heads"]["landmarks"]["kernel"].shape == (536, 136)
  with pytest.raises(ValueError, match="already BN-folded"):
    models.fold_batch_norm(model.clone(folded=True), folded)


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = models.create_model("asmnet", 68, dtype=jnp.bfloat16)
  variables = _random_variables(models.create_model("asmnet", 68))
  shapes = _shapes(model)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(shapes))
  images = _images(2)
  landmarks, pose = jax.jit(lambda v, x: model.apply(v, x))(variables, images)
  assert landmarks.dtype == jnp.float32 and pose.dtype == jnp.float32
  ref_landmarks, _ = jax.jit(
      lambda v, x: models.create_model("asmnet", 68).apply(v, x))(variables, images)
  scale = float(np.max(np.abs(ref_landmarks)))
  np.testing.assert_allclose(landmarks, ref_landmarks, atol=0.1 * scale)


@pytest.mark.slow
def test_init_runs_and_sets_keras_initial_values():
  model = models.create_model("asmnet", 68)
  variables = jax.jit(lambda k, x: model.init(k, x, train=False))(
      jax.random.key(0), _images(1))
  stats = variables["batch_stats"]["backbone"]["block_3"]["depthwise"]["bn"]
  np.testing.assert_array_equal(stats["mean"], 0.0)
  np.testing.assert_array_equal(stats["var"], 1.0)
  bn = variables["params"]["backbone"]["block_3"]["depthwise"]["bn"]
  np.testing.assert_array_equal(bn["scale"], 1.0)
  np.testing.assert_array_equal(bn["bias"], 0.0)
  np.testing.assert_array_equal(variables["params"]["heads"]["pose"]["bias"], 0.0)
  # glorot_uniform on the Keras (3, 3, C, 1) depthwise shape: limit sqrt(6 / (9C + 9)).
  kernel = variables["params"]["backbone"]["block_3"]["depthwise"]["kernel"]
  limit = np.sqrt(6 / (9 * kernel.shape[-1] + 9))
  assert np.max(np.abs(kernel)) <= limit and np.max(np.abs(kernel)) > 0.5 * limit


@pytest.mark.slow
def test_depthwise_impls_agree_in_the_model_incl_gradients(asmnet):
  """Eval-mode gradients (well conditioned; in train mode, BN makes many exactly 0)."""
  _, variables = asmnet
  images = _images(2)

  def loss(impl):
    model = models.create_model("asmnet", 68, depthwise_impl=impl)

    def fn(params):
      landmarks, pose = model.apply(
          {"params": params, "batch_stats": variables["batch_stats"]}, images)
      return jnp.sum(landmarks ** 2) + jnp.sum(pose ** 2)
    return jax.jit(jax.value_and_grad(fn))(variables["params"])

  value, grads = loss("shift_vjp")
  value_ref, grads_ref = loss("lax")
  np.testing.assert_allclose(value, value_ref, rtol=1e-4)
  for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
    np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4 * float(np.max(np.abs(w))) + 1e-7)
