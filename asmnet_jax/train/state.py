"""The training state: the model a config names, Adam with its learning-rate schedule,
and Flax's TrainState with the BatchNorm statistics.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from asmnet_jax.nn import models
from asmnet_jax.train.config import DTYPES


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the BatchNorm running statistics."""

  batch_stats: Any


def learning_rate_schedule(config: ml_collections.ConfigDict,
                           num_steps: int | None = None) -> optax.Schedule:
  """The learning rate by step, after an optional linear warm-up.

  `lr_schedule` "keras_decay" is the authors' lr / (1 + lr_decay · step);
  "cosine" decays to 0 over `num_steps` (short CPU runs converge much better).
  A warm-up of W = `warmup_steps` multiplies either by min(1, (step + 1) / W), so
  the decay runs from step 0 and the first step already has rate lr / W.
  """
  if config.lr_schedule == "cosine":
    decay = optax.cosine_decay_schedule(config.learning_rate, max(num_steps or 1, 1))
  else:
    # optax has no inverse-time decay; Keras' is one line.
    decay = lambda step: config.learning_rate / (1.0 + config.lr_decay * step)  # noqa: E731
  if config.warmup_steps <= 1:
    return decay
  # (step + 1) / W for steps 0 .. W - 1, then 1.
  warmup = optax.linear_schedule(1.0 / config.warmup_steps, 1.0, config.warmup_steps - 1)
  return lambda step: warmup(step) * decay(step)


def create_model(config: ml_collections.ConfigDict, num_landmarks: int) -> nn.Module:
  return models.create_model(config.model, num_landmarks, dtype=DTYPES[config.compute_dtype],
                             bn_momentum=config.bn_momentum, dropout_rate=config.dropout_rate)


def create_train_state(config: ml_collections.ConfigDict, model: nn.Module,
                       rng: jax.Array, num_steps: int | None = None) -> TrainState:
  """A freshly initialised state (Adam with β1 0.9, β2 0.999, Keras' ε 1e-7).

  `num_steps`, the length of training, sets the cosine schedule's horizon.
  """
  images = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
  variables = model.init(rng, images, train=False)
  tx = optax.adam(learning_rate_schedule(config, num_steps), b1=0.9, b2=0.999, eps=1e-7)
  state = TrainState.create(apply_fn=model.apply, params=variables["params"],
                            batch_stats=variables["batch_stats"], tx=tx)
  # A restored step is not weak-typed; a strong one here spares resumed runs a recompile.
  return state.replace(step=jnp.zeros((), jnp.int32))
