"""The training loop: data, the ASM fit, the step (`asmnet_jax.train.step`),
validation, checkpoints and resumption, metrics and curves in the work directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import tqdm
from jax.sharding import NamedSharding, PartitionSpec

from asmnet_jax.core import asm
from asmnet_jax.data import crop_cache
from asmnet_jax.data import device_augment
from asmnet_jax.data import pipeline
from asmnet_jax.data import registry
from asmnet_jax.data import scheme as scheme_lib
from asmnet_jax.evaluate import evaluator as evaluator_lib
from asmnet_jax.evaluate import plots
from asmnet_jax.train import checkpoints
from asmnet_jax.train import precise_bn
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib
from asmnet_jax.train import workdir_lock
from asmnet_jax.train.step import global_batch, make_mesh, make_train_step

SHAPE_MODEL_FILE = "shape_model.npz"
SHAPE_MODEL_RECORD_FILE = "shape_model.json"  # what it was fitted to.
METRICS_FILE = "metrics.jsonl"


class NonFiniteLossError(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


def shape_model_fit(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What the ASM of a run is fitted to: the fields that change it."""
  return {"dataset": config.dataset, "train_split": config.train_split,
          "variance_kept": float(config.variance_kept),
          "eval_margin": float(config.input.eval_margin),
          "max_train_examples": config.max_train_examples}


def fit_or_load_shape_model(config, workdir: str, train_source,
                            num_records: int | None = None) -> asm.ShapeModel:
  """The ASM of the first `num_records` training shapes (None: all; normalised eval
  crops), cached in the workdir with what it was fitted to (`shape_model_fit`); a
  resumed run whose dataset, split, variance or margin changed (e.g. fine-tuning on
  another dataset with `allow_changed=dataset`) gets it refitted. `train_source`
  should be the full TFDS source, whose landmarks are then read without decoding the
  images."""
  path = os.path.join(workdir, SHAPE_MODEL_FILE)
  record_path = os.path.join(workdir, SHAPE_MODEL_RECORD_FILE)
  wanted = shape_model_fit(config)
  if os.path.exists(path):
    stored = None
    if os.path.exists(record_path):
      with open(record_path, encoding="utf-8") as f:
        stored = json.load(f)
    # A run from before the record existed keeps its ASM.
    if stored is None or stored == wanted:
      return asm.ShapeModel.load(path)
    logging.warning("Refitting the ASM: %s", ", ".join(
        f"{k} {stored.get(k)!r} -> {wanted[k]!r}" for k in wanted if stored.get(k) != wanted[k]))
  shapes = pipeline.eval_normalized_landmarks(train_source, config.input.eval_margin,
                                              num_records)
  shape_model = asm.fit_shape_model(shapes, config.variance_kept)
  logging.info("ASM: %d components keep %g%% of the variance of %d shapes",
               shape_model.num_components, 100 * config.variance_kept, len(shapes))
  if jax.process_index() == 0:
    shape_model.save(path)
    with open(record_path, "w", encoding="utf-8") as f:
      json.dump(wanted, f, indent=2)
  return shape_model


def _first_records(source, count: int) -> grain.MapDataset:
  """A lazy view of the first `count` records of `source` (all if it has fewer).

  grain's slice, which pickles for a worker process (config.input.worker_count).
  """
  return grain.MapDataset.source(source)[:count]


def _append_metrics(path: str, record: dict[str, Any]) -> None:
  with open(path, "a") as f:
    f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: str, last_step: int) -> None:
  """Drops metrics logged after the checkpoint a resumed run restarts from."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    kept = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
  with open(path, "w") as f:
    f.writelines(kept)


def _to_float(tree) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(tree).items()}


def dataset_input_config(config: ml_collections.ConfigDict,
                         data_scheme: scheme_lib.LandmarkScheme) -> pipeline.InputConfig:
  """The input settings of `config` with the dataset's mirror map for flips.

  Raises:
    ValueError: flips asked for (config.input.flip_probability > 0) on a dataset
      that declares no mirror map.
  """
  in_config = config_lib.input_config(config)
  if in_config.flip_probability > 0 and data_scheme.mirror_map is None:
    raise ValueError(
        f"config.input.flip_probability={in_config.flip_probability}: {config.dataset} "
        f"declares no left-right mirror map for its {data_scheme.num_points} points, so "
        "its faces cannot be flipped; declare mirror_pairs and midline_points in its "
        f"{scheme_lib.DATASET_FILE}, or set config.input.flip_probability=0")
  return dataclasses.replace(in_config, mirror_map=data_scheme.mirror_map)


def check_splits(config: ml_collections.ConfigDict, builder) -> None:
  """ValueError naming the dataset's splits when the config's train or validation
  split is not one of them."""
  available = list(builder.info.splits)
  for field in ("train_split", "validation_split"):
    if config.get(field) not in available:
      raise ValueError(f"config.{field}={config.get(field)!r}: {config.dataset} has the "
                       f"splits {', '.join(sorted(available))}")


def loss_config(config: ml_collections.ConfigDict,
                data_scheme: scheme_lib.LandmarkScheme) -> ml_collections.ConfigDict:
  """`config` for the training step: pose_weight 0 on a dataset without pose labels."""
  if data_scheme.has_pose or not config.pose_weight:
    return config
  logging.info("%s has no pose labels: config.pose_weight %g -> 0 for this run",
               config.dataset, config.pose_weight)
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.pose_weight = 0.0
  return config


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (resuming from the latest checkpoint in `workdir`) and validates.

  Nothing in `workdir` changes until the config, the dataset and the config's fit
  with the run already there are checked; then the run holds `workdir`'s lock
  (`workdir_lock`) until it returns.

  Returns the final validation metrics.

  Raises:
    ValueError: a bad config (`config_lib.validate_config`), one that does not fit
      the stored run (`config_lib.IncompatibleRunError`), a bad stored config.json.
    workdir_lock.WorkdirBusyError: another process trains in `workdir`.
    checkpoints.CheckpointError: no checkpoint of the run can be read.
    checkpoints.CheckpointSaveError: a save failed (disk full, read-only).
    NonFiniteLossError: the loss became NaN or infinite.
  """
  config_lib.validate_config(config)
  builder = registry.prepare(config.dataset, config.data_dir, config.manual_dir)
  check_splits(config, builder)
  data_scheme = scheme_lib.scheme_of(builder)
  in_config = dataset_input_config(config, data_scheme)  # flips need a mirror map.
  config_lib.check_resume_compatible(config, workdir)
  is_main = jax.process_index() == 0
  # One writer: the other processes of a multi-host run write beside process 0.
  lock = workdir_lock.WorkdirLock(workdir) if is_main else contextlib.nullcontext()
  with lock:
    return _train_and_evaluate(config, workdir, builder, data_scheme, in_config, is_main)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, builder,
                        data_scheme: scheme_lib.LandmarkScheme,
                        in_config: pipeline.InputConfig, is_main: bool) -> dict[str, Any]:
  """`train_and_evaluate` once the checks passed and the lock is held."""
  os.makedirs(workdir, exist_ok=True)
  sources = registry.open_splits(builder, [config.train_split, config.validation_split])
  train_source = sources[config.train_split]
  num_landmarks = data_scheme.num_points
  shape_model = fit_or_load_shape_model(config, workdir, train_source,
                                        config.max_train_examples)
  if config.max_train_examples:
    train_source = _first_records(train_source, config.max_train_examples)

  mesh = make_mesh()
  replicated = NamedSharding(mesh, PartitionSpec())
  model = state_lib.create_model(config, num_landmarks)
  rng = jax.random.key(config.seed)
  init_rng, dropout_rng = jax.random.split(rng)
  steps_per_epoch = pipeline.steps_per_epoch(len(train_source), config.batch_size)
  num_steps = steps_per_epoch * config.num_epochs
  state = jax.jit(functools.partial(state_lib.create_train_state, config, model,
                                    num_steps=num_steps),
                  out_shardings=replicated)(init_rng)

  manager = checkpoints.CheckpointManager(workdir, keep=config.keep_checkpoints)
  state = manager.restore_latest(state)
  if is_main:  # Once the run's checkpoints are known to fit it.
    config_lib.save_config(config, workdir)
    scheme_lib.save_to_workdir(data_scheme, workdir)
  start_step = int(state.step)
  if start_step:
    logging.info("Resumed from step %d", start_step)
  metrics_path = os.path.join(workdir, METRICS_FILE)
  if is_main:
    _truncate_metrics(metrics_path, start_step)

  shape_model = jax.device_put(shape_model, replicated)
  dropout_rng = jax.device_put(dropout_rng, replicated)
  if in_config.augment_on_device:
    # uint8 crops sliced on the host, augmented inside the step.
    cache = crop_cache.for_split(builder, config.train_split, in_config,
                                 config.input.get("crop_cache_dir")).head(
                                     config.max_train_examples)
    augment = device_augment.make_augment(in_config, num_landmarks)
    batches = crop_cache.train_batches(cache, batch_size=config.batch_size,
                                       seed=config.seed, start_step=start_step)
  else:
    cache, augment = None, None
    batches = pipeline.create_train_iterator(
        train_source, batch_size=config.batch_size, config=in_config, seed=config.seed,
        start_step=start_step)
  train_step = make_train_step(loss_config(config, data_scheme), steps_per_epoch, mesh,
                               augment)
  evaluator = evaluator_lib.Evaluator(model, config, mesh, scheme=data_scheme)
  moments_fn = precise_bn.make_batch_moments_fn(model, mesh)
  augment_images = (jax.jit(lambda key, batch: augment(key, batch)["image"])
                    if augment is not None else None)

  def refresh_batch_stats(state):
    """Precise BN statistics of the current weights (see `precise_bn`)."""
    if not config.precise_bn_batches:
      return state
    # Its own stream (seed + 1), the same batches every time: the training stream and
    # so resumption are untouched. In-process: a worker would cost more to start.
    if augment is not None:
      stream = crop_cache.train_batches(cache, batch_size=config.batch_size,
                                        seed=config.seed + 1)
      key = jax.random.key(config.seed + 1)
      images = (augment_images(jax.random.fold_in(key, i), global_batch(next(stream), mesh))
                for i in range(config.precise_bn_batches))
    else:
      stream = pipeline.create_train_iterator(
          train_source, batch_size=config.batch_size,
          config=dataclasses.replace(in_config, worker_count=0), seed=config.seed + 1)
      images = (global_batch(next(stream), mesh, keys=("image",))["image"]
                for _ in range(config.precise_bn_batches))
    stats = precise_bn.precise_batch_stats(
        model, {"params": state.params, "batch_stats": state.batch_stats}, images,
        moments_fn=moments_fn)
    return state.replace(batch_stats=stats)

  def validate(step):
    results = evaluator.evaluate(state, sources[config.validation_split])
    record = {"step": step, **{f"val_{k}": v for k, v in evaluator_lib.flatten(results).items()}}
    if is_main:
      _append_metrics(metrics_path, record)
    return results

  progress = tqdm.tqdm(total=num_steps, initial=start_step, disable=not is_main,
                       desc=f"train {config.model}/{config.loss}", unit="step",
                       dynamic_ncols=True)
  try:
    all_finite = jnp.array(True)
    pending, window_start, window_steps = [], time.perf_counter(), 0
    results = None
    for step in range(start_step + 1, num_steps + 1):
      batch = global_batch(next(batches), mesh)
      state, step_metrics = train_step(state, batch, shape_model, dropout_rng)
      all_finite &= step_metrics.pop("finite")
      pending.append(step_metrics)
      window_steps += 1
      progress.update(1)

      checkpoint_now = step % config.checkpoint_every_steps == 0 or step == num_steps
      validate_now = step % config.eval_every_steps == 0 or step == num_steps
      if step % config.log_every_steps == 0 or checkpoint_now or validate_now:
        if not bool(all_finite):
          manager.wait()  # The last good save is asynchronous: on disk before we say so.
          raise NonFiniteLossError(
              "the loss or the parameters became NaN or infinite between steps "
              f"{step - window_steps} and {step}; the last good checkpoint in "
              f"{manager.directory} is kept (try a lower config.learning_rate)")
        mean = _to_float(jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *pending))
        elapsed = time.perf_counter() - window_start
        mean["images_per_s"] = window_steps * config.batch_size / elapsed
        mean["epoch"] = step / steps_per_epoch
        progress.set_postfix(loss=f"{mean['loss']:.4g}", alpha=mean["alpha"],
                             img_s=f"{mean['images_per_s']:.1f}")
        if is_main:
          _append_metrics(metrics_path, {"step": step, **mean})
        pending, window_start, window_steps = [], time.perf_counter(), 0

      if checkpoint_now or validate_now:
        state = refresh_batch_stats(state)
      if validate_now:
        results = validate(step)
        pose = results["pose_mae"]
        progress.write(f"step {step}: validation NME {100 * results['nme']:.2f}% "
                       f"({data_scheme.normalizer}), pose MAE "
                       + (f"{pose['mean']:.2f} deg" if pose else "n/a (no pose labels)"))
      if checkpoint_now or validate_now:
        manager.save(step, state, nme=results["nme"] if validate_now else None)
        if is_main:
          plots.training_curves(metrics_path, os.path.join(workdir, "training_curves.png"))
        window_start = time.perf_counter()  # Do not count the pause in images/s.
  finally:
    batches.close()  # Ends a grain worker process (config.input.worker_count) now.
    progress.close()
  manager.wait()
  if results is None:  # Resumed a finished run: validate the final state again.
    results = validate(num_steps)
  return results
