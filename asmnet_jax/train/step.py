"""The jitted, data-parallel training step over a 1-D device mesh.

The batch is sharded over the mesh axis `data` spanning every device of every host
and the state is replicated, so the same code runs on one CPU, one GPU, N GPUs or
several hosts. XLA inserts the gradient all-reduce (and the cross-device BatchNorm
statistics), so N devices compute the same update as one device on the same
global batch.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from asmnet_jax.core import losses
from asmnet_jax.train import state as state_lib

# The mesh axis the batch is sharded over.
DATA_AXIS = "data"
# Folded into the step's key for the on-device augmentation (dropout uses the key).
AUGMENT_STREAM = 1 << 20


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (or the given) devices, axis `data`."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def make_train_step(config: ml_collections.ConfigDict, steps_per_epoch: int,
                    mesh: Mesh, augment: Callable | None = None) -> Callable:
  """The jitted step (state, batch, shape_model, rng) -> (state, metrics).

  `batch` holds `image` (B, S, S, 3), `landmarks` (B, n, 2) normalised and `pose`
  (B, 3) degrees, sharded on the mesh's `data` axis; everything else is replicated.
  With `augment` (`device_augment.make_augment`), `batch` holds cached uint8 crops
  instead, augmented first with the key fold_in(fold_in(rng, step), AUGMENT_STREAM):
  a resumed run draws the same augmentation.
  α follows Eq. 10 by the epoch of the state's step.
  """
  alpha_fn = losses.alpha_schedule(steps_per_epoch, config.num_epochs)
  learning_rate = state_lib.learning_rate_schedule(
      config, steps_per_epoch * config.num_epochs)
  use_asm = config.loss == "asm"

  def step(state, batch, shape_model, rng):
    alpha = alpha_fn(state.step)
    dropout_rng = jax.random.fold_in(rng, state.step)
    if augment is not None:
      batch = augment(jax.random.fold_in(dropout_rng, AUGMENT_STREAM), batch)
    target_pose = batch["pose"] / config.pose_scale_deg

    def loss_fn(params):
      (landmarks, pose), updates = state.apply_fn(
          {"params": params, "batch_stats": state.batch_stats}, batch["image"],
          train=True, rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
      loss, terms = losses.total_loss(
          landmarks, pose, batch["landmarks"], target_pose,
          shape_model if use_asm else None, alpha, config.pose_weight,
          config.landmark_distance)
      return loss, (terms, updates["batch_stats"])

    grads, (terms, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    # Checked on the host before every save, so no NaN or exploding state is kept.
    finite = jnp.isfinite(terms["loss"]) & jnp.isfinite(optax.tree.norm(new_state.params))
    metrics = dict(terms, alpha=alpha, finite=finite,
                   learning_rate=learning_rate(state.step))
    return new_state, metrics

  replicated = NamedSharding(mesh, PartitionSpec())
  sharded = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  return jax.jit(step, in_shardings=(replicated, sharded, replicated, replicated),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh,
                 keys=("image", "landmarks", "pose")) -> dict[str, jax.Array]:
  """Assembles each host's part of the batch into arrays sharded over `data`."""
  sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  return {k: jax.make_array_from_process_local_data(sharding, local_batch[k]) for k in keys}


