"""Untrained networks and work directories, for tests, benchmarks and trying the tools.

`model.init` compiles the whole network (10-30 s on two busy cores); these draw
variables of the same shapes with NumPy after `jax.eval_shape`, which only traces.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asmnet_jax.inference.model import InferenceModel, fold
from asmnet_jax.nn import models
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib


def random_variables(model: nn.Module, image_size: int = 64, seed: int = 0) -> dict[str, Any]:
  """Untrained variables shaped like `model.init`'s, drawn with NumPy.

  For benchmarks and tests: `model.init` compiles the whole network (10-30 s on two
  busy cores), `jax.eval_shape` only traces it. He-normal kernels (0.2 / sqrt(fan-in)
  for the heads, so outputs are O(1)), BN scale
  U(0.8, 1.2), small biases, running mean N(0, 0.1), variance U(0.5, 1.5).
  """
  abstract = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0),
      jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    names = [str(getattr(k, "key", k)) for k in path]
    shape, name = leaf.shape, names[-1]
    if names[0] == "batch_stats":
      value = (rng.normal(0.0, 0.1, shape) if name == "mean"
               else rng.uniform(0.5, 1.5, shape))
    elif name == "kernel":
      # Depthwise kernels (3, 3, C) have 9 inputs per output channel. Smaller heads
      # keep the untrained outputs O(1), like a trained network's.
      fan_in = shape[0] * shape[1] if len(shape) == 3 else int(np.prod(shape[:-1]))
      gain = 0.2 if names[1] == "heads" else np.sqrt(2.0)
      value = rng.normal(0.0, gain / np.sqrt(fan_in), shape)
    elif name == "scale":
      value = rng.uniform(0.8, 1.2, shape)
    else:
      value = rng.normal(0.0, 0.05, shape)
    return np.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, abstract)


def random_model(model_name: str = "asmnet", num_landmarks: int = 68, image_size: int = 224,
                 seed: int = 0, **fields) -> InferenceModel:
  """An untrained folded network (`random_variables`), for benchmarks and tests."""
  model = models.create_model(model_name, num_landmarks)
  variables = random_variables(model, image_size, seed)
  return fold(model_name, variables["params"], variables["batch_stats"],
               image_size=image_size, source=f"random (seed {seed})", **fields)


def save_untrained_workdir(workdir: str, config: ml_collections.ConfigDict,
                           num_landmarks: int = 68, seed: int = 0, step: int = 1) -> str:
  """Writes a work directory holding an untrained network, as train.py lays it out.

  config.json plus a checkpoint (saved as both latest and best) whose weights are
  `random_variables`: for trying predict.py and the exports without training, and
  for tests. Returns `workdir`.
  """
  os.makedirs(workdir, exist_ok=True)
  config_lib.save_config(config, workdir)
  model = state_lib.create_model(config, num_landmarks)
  abstract = jax.eval_shape(functools.partial(state_lib.create_train_state, config, model),
                            jax.random.key(0))
  variables = random_variables(model, config.image_size, seed)
  zeros = lambda tree: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), tree)  # noqa: E731
  state = abstract.replace(step=np.zeros((), abstract.step.dtype), params=variables["params"],
                           batch_stats=variables["batch_stats"],
                           opt_state=zeros(abstract.opt_state))
  manager = checkpoints.CheckpointManager(workdir)
  try:
    manager.save(step, state, nme=1.0)
    manager.wait()
  finally:
    manager.close()
  return workdir




class TinyNet(nn.Module):
  """A network with ASMNet's interface and almost none of its compile time (a strided
  convolution, BatchNorm, pooling, the two heads): for tests of training plumbing
  (sharding, several processes, the loop) where the network itself is not the point.

  images (N, H, W, 3) in [0, 1] -> landmarks (N, n, 2), pose (N, 3).
  """
  num_landmarks: int
  channels: int = 8
  bn_momentum: float = 0.9  # as ASMNet's, which `precise_bn` sets.

  @nn.compact
  def __call__(self, images, train: bool = False):
    x = nn.Conv(self.channels, (3, 3), strides=(4, 4), use_bias=False)(images)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum)(x)
    x = jnp.mean(nn.relu(x), axis=(1, 2))
    landmarks = nn.Dense(2 * self.num_landmarks, name="landmarks")(x)
    pose = nn.Dense(3, name="pose")(x)
    return landmarks.reshape(x.shape[0], self.num_landmarks, 2), pose
