"""What training and evaluation share: config checks, the state, the mesh, the input config."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh

from asmnet_jax import input_pipeline, models

MODELS = ("asmnet", "mnv2")
LOSSES = ("asm", "mse")
LR_SCHEDULES = ("keras_decay", "cosine")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# ASMNet and MobileNetV2 halve the resolution five times.
MIN_IMAGE_SIZE = 32
# The mesh axis the batch is sharded over.
DATA_AXIS = "data"


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the BatchNorm running statistics."""

  batch_stats: Any


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first bad field of a training config."""

  def fail(field, message):
    raise ValueError(f"config.{field}={config.get(field)!r}: {message}")

  if config.model not in MODELS:
    fail("model", f"must be one of {MODELS}")
  if config.loss not in LOSSES:
    fail("loss", f"must be one of {LOSSES}")
  if not 0.0 < config.variance_kept <= 1.0:
    fail("variance_kept", "must be in (0, 1]")
  if config.compute_dtype not in DTYPES:
    fail("compute_dtype", f"must be one of {tuple(DTYPES)}")
  for field in ("num_epochs", "batch_size", "eval_batch_size", "checkpoint_every_steps",
                "eval_every_steps", "log_every_steps", "keep_checkpoints"):
    value = config.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      fail(field, "must be a positive integer")
  if config.image_size < MIN_IMAGE_SIZE or config.image_size % 2:
    fail("image_size", f"must be an even number of pixels >= {MIN_IMAGE_SIZE}")
  if not config.learning_rate > 0.0:
    fail("learning_rate", "must be positive")
  if config.lr_schedule not in LR_SCHEDULES:
    fail("lr_schedule", f"must be one of {LR_SCHEDULES}")
  if config.lr_decay < 0.0 or config.warmup_steps < 0:
    fail("lr_decay", "lr_decay and warmup_steps must not be negative")
  if config.max_train_examples is not None and config.max_train_examples < 1:
    fail("max_train_examples", "must be None (all) or a positive integer")
  if not 0.0 <= config.bn_momentum < 1.0:
    fail("bn_momentum", "must be in [0, 1)")
  if config.precise_bn_batches < 0:
    fail("precise_bn_batches", "must be 0 (keep the running averages) or positive")
  if not 0.0 <= config.dropout_rate < 1.0:
    fail("dropout_rate", "must be in [0, 1)")
  if not config.pose_scale_deg > 0.0:
    fail("pose_scale_deg", "must be positive")
  workers = config.input.worker_count
  if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
    raise ValueError(f"config.input.worker_count={workers!r}: must be 0 (in-process) "
                     "or a positive number of worker processes")
  for field in ("batch_size", "eval_batch_size"):
    if config.get(field) % jax.device_count():
      fail(field, f"must be divisible by the {jax.device_count()} devices")


def learning_rate_schedule(config: ml_collections.ConfigDict,
                           num_steps: int | None = None) -> optax.Schedule:
  """The learning rate by step, after an optional linear warm-up.

  `lr_schedule` "keras_decay" is the authors' lr / (1 + lr_decay · step);
  "cosine" decays to 0 over `num_steps` (short CPU runs converge much better).
  """

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    if config.lr_schedule == "cosine":
      progress = jnp.clip(step / max(num_steps or 1, 1), 0.0, 1.0)
      rate = config.learning_rate * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    else:
      rate = config.learning_rate / (1.0 + config.lr_decay * step)
    if config.warmup_steps:
      rate *= jnp.minimum(1.0, (step + 1.0) / config.warmup_steps)
    return rate

  return schedule


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
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           batch_stats=variables["batch_stats"], tx=tx)


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (or the given) devices, axis `data`."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def input_config(config: ml_collections.ConfigDict) -> input_pipeline.InputConfig:
  return input_pipeline.InputConfig(
      image_size=config.image_size,
      margin_range=tuple(config.input.margin_range),
      eval_margin=config.input.eval_margin,
      rotation_deg=config.input.rotation_deg,
      scale_range=tuple(config.input.scale_range),
      worker_count=config.input.worker_count,
      seed=config.seed)
