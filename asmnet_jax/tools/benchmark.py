"""Speed and size benchmark of the networks: `python -m asmnet_jax.tools.benchmark`.

    python -m asmnet_jax.tools.benchmark [--models asmnet,mnv2] [--batch_size 50]
        [--image_size 224] [--steps 5] [--dtype float32] [--depthwise_impl auto]

Prints one JSON line per model with:
  model, num_landmarks, image_size, batch_size, dtype, depthwise_impl;
  params_trainable, params_bn_stats: `models.count_parameters`;
  flops_b1: XLA's cost analysis of the compiled eval forward pass at batch 1 and
    image_size (a multiply-add counts as 2 FLOPs, so it compares with the paper's
    516,345,794 for ASMNet-68 at 224x224; elementwise BN/ReLU6 work is included);
  train_img_per_s: images/s of the training step train.py runs
    (`asmnet_jax.train.step.make_train_step`: forward, the ASM-assisted loss of
    Eq. 12, backward, Adam with the config's schedule, the finiteness check), at
    batch_size on every device of a 1-D mesh, median over `steps` timed steps after
    the compiling one; train_img_per_s_best from the fastest step;
    train_cpu_s_per_step: median process CPU seconds per step (all threads,
    thread-pool spinning included);
  train_step, train_loss, train_config: what was timed: the function's name, the
    loss ("asm") and the config fields that change the step's work
    (`TRAIN_CONFIG_FIELDS`); asm_components: the shape model's t, fitted on
    `plausible_shapes`; train_alpha, train_loss_first_step: α and the loss the
    compiling step returned (the state is `testing.random_variables`, seed 0);
  infer_ms_b1: median ms of one eval forward pass at batch 1 (BN folded, compiled
    with `compile_options.inference_options()`), over max(10 * steps, 50) calls;
    infer_ms_b1_best: the fastest call; infer_ms_b1_default_options: the same graph
    compiled with XLA's default options, timed in alternating rounds with the other
    so that both see the same machine load;
  infer_img_per_s_b64: images/s of the eval forward pass at batch infer_batch (BN
    folded, inference options);
  cpu, cpu_count, load_avg_1min, device, jax: the machine (`machine.machine_record`);
  glibc_tunables: the allocator settings the process ran with (below).

Allocator: the command re-executes itself with `allocator.RECOMMENDED_GLIBC_TUNABLES`
(unless --malloc=default or GLIBC_TUNABLES is set); see asmnet_jax/runtime/allocator.py.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import statistics
import sys
import time
import typing
from typing import Any, Callable, Sequence

import flax.linen
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags
from jax.sharding import NamedSharding, PartitionSpec

from asmnet_jax import cli
from asmnet_jax import testing
from asmnet_jax.core import asm
from asmnet_jax.nn import kernels
from asmnet_jax.nn import models
from asmnet_jax.runtime import compile_options
from asmnet_jax.runtime import machine
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib
from asmnet_jax.train import step as step_lib

# Sets only α's stage (Eq. 10): the few timed steps all fall in the first third, α = 2.
STEPS_PER_EPOCH = 100
# The config fields that change what the timed training step computes, as reported.
TRAIN_CONFIG_FIELDS = ("loss", "variance_kept", "pose_weight", "pose_scale_deg",
                       "compute_dtype", "dropout_rate", "bn_momentum", "lr_schedule",
                       "learning_rate", "num_epochs")
# Shapes the benchmark's ASM is fitted on (a few hundred, like a small training set).
ASM_TRAINING_SHAPES = 200
DEPTHWISE_IMPLS = typing.get_args(kernels.DepthwiseImpl)


def _alternating_latencies(fns: Sequence[Callable[[], Any]], calls: int,
                           rounds: int = 10) -> list[tuple[float, float]]:
  """(median, min) wall seconds of each blocking `fn()`, timed in `rounds` alternating
  rounds of about calls / rounds calls each, after one warm-up call apiece."""
  times: list[list[float]] = [[] for _ in fns]
  for fn in fns:
    fn()
  for _ in range(rounds):
    for fn, out in zip(fns, times):
      for _ in range(max(calls // rounds, 1)):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
  return [(statistics.median(t), min(t)) for t in times]


def _timings(fn: Callable[[], Any], steps: int,
             warm_up: bool = True) -> tuple[float, float, float]:
  """(median, min) wall seconds and median process CPU seconds of `fn()` (which
  must block) over `steps` calls, after one warm-up call unless `warm_up` is False."""
  if warm_up:
    fn()
  wall, cpu = [], []
  for _ in range(max(steps, 1)):
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    wall.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
  return statistics.median(wall), min(wall), statistics.median(cpu)


def compiled_flops(compiled: jax.stages.Compiled) -> float | None:
  """XLA's FLOP estimate of a compiled function, or None if the backend has none."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except  # backend without cost analysis
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost["flops"]) if cost and "flops" in cost else None


def flops_of(fn: Callable, *args) -> float | None:
  """XLA's FLOP estimate of the compiled `fn(*args)`, or None if unavailable."""
  try:
    compiled = jax.jit(fn).lower(*args).compile()
  except Exception:  # pylint: disable=broad-except  # backend without cost analysis
    return None
  return compiled_flops(compiled)


def train_config(model: str, *, batch_size: int = 50, image_size: int = 224,
                 dtype: str = "float32") -> ml_collections.ConfigDict:
  """The training config timed: `base_config()` (the paper's loss, dropout, BN
  momentum and optimiser) with the ASM-assisted loss and the given sizes."""
  config = config_lib.base_config()
  config.model = model
  config.loss = "asm"
  config.batch_size = batch_size
  config.image_size = image_size
  config.compute_dtype = dtype
  return config


def plausible_shapes(num_landmarks: int, count: int, seed: int = 0,
                     num_modes: int = 8) -> np.ndarray:
  """Random face-like shape sets, float32 (count, n, 2), normalised crop coordinates.

  A random mean shape in [-0.35, 0.35]² deformed along `num_modes` random directions
  whose scales halve from one to the next, plus 0.002 of isotropic noise: like real
  landmark sets, a few modes carry most of the variance, so the ASM keeps a few
  components and its projection moves the targets.
  """
  rng = np.random.default_rng(seed)
  mean = rng.uniform(-0.35, 0.35, (num_landmarks, 2))
  modes = rng.normal(0.0, 0.03, (num_modes, num_landmarks, 2))
  coefficients = rng.normal(size=(count, num_modes)) * 0.5 ** np.arange(num_modes)
  shapes = (mean + np.einsum("km,mnd->knd", coefficients, modes)
            + rng.normal(0.0, 0.002, (count, num_landmarks, 2)))
  return shapes.astype(np.float32)


@dataclasses.dataclass
class TrainSetup:
  """The training step train.py runs, and one batch to time it on.

  Attributes:
    config: the training config (`train_config`).
    model: the network, `state_lib.create_model(config, n)` with `depthwise_impl`.
    step: `asmnet_jax.train.step.make_train_step(config, STEPS_PER_EPOCH, mesh)`,
      (state, batch, shape_model, rng) -> (state, metrics); donates the state.
    state: the `TrainState` (untrained `testing.random_variables`, Adam's zero
      moments), replicated on the mesh.
    batch: `image` (B, S, S, 3) in [0, 1], `landmarks` (B, n, 2) normalised, `pose`
      (B, 3) degrees, sharded over the mesh's `data` axis.
    shape_model: the ASM fitted on `ASM_TRAINING_SHAPES` `plausible_shapes` with
      `config.variance_kept`.
    rng: the dropout key, as train.py's loop passes it.
  """

  config: ml_collections.ConfigDict
  model: flax.linen.Module
  step: Callable
  state: state_lib.TrainState
  batch: dict[str, jax.Array]
  shape_model: asm.ShapeModel
  rng: jax.Array


def train_setup(name: str, num_landmarks: int, *, batch_size: int = 50,
                image_size: int = 224, dtype: str = "float32",
                depthwise_impl: str = "auto", seed: int = 0) -> TrainSetup:
  """Builds the state and inputs of train.py's step as `train/loop.py` does.

  Without `model.init`'s compile: the state's structure comes from
  `jax.eval_shape(create_train_state)` and its weights from
  `testing.random_variables`.

  Raises:
    ValueError: for a config `config_lib.validate_config` rejects (e.g. an odd
      image size or a batch the devices do not divide).
  """
  config = train_config(name, batch_size=batch_size, image_size=image_size, dtype=dtype)
  config_lib.validate_config(config)
  mesh = step_lib.make_mesh()
  replicated = NamedSharding(mesh, PartitionSpec())
  model = state_lib.create_model(config, num_landmarks).clone(depthwise_impl=depthwise_impl)
  abstract = jax.eval_shape(
      functools.partial(state_lib.create_train_state, config, model,
                        num_steps=STEPS_PER_EPOCH * config.num_epochs),
      jax.random.key(0))
  variables = testing.random_variables(model, image_size, seed)
  state = abstract.replace(
      step=np.zeros((), abstract.step.dtype), params=variables["params"],
      batch_stats=variables["batch_stats"], opt_state=abstract.tx.init(variables["params"]))

  rng = np.random.default_rng(seed)
  # The batch's landmarks are more shapes of the set the ASM is fitted on.
  shapes = plausible_shapes(num_landmarks, ASM_TRAINING_SHAPES + batch_size, seed)
  shape_model = asm.fit_shape_model(shapes[:ASM_TRAINING_SHAPES], config.variance_kept)
  local = {
      "image": rng.uniform(size=(batch_size, image_size, image_size, 3)).astype(np.float32),
      "landmarks": shapes[ASM_TRAINING_SHAPES:],
      "pose": rng.normal(0.0, 20.0, (batch_size, 3)).astype(np.float32),
  }
  return TrainSetup(
      config=config,
      model=model,
      step=step_lib.make_train_step(config, STEPS_PER_EPOCH, mesh),
      state=jax.device_put(state, replicated),
      batch=step_lib.global_batch(local, mesh),
      shape_model=jax.device_put(shape_model, replicated),
      rng=jax.device_put(jax.random.key(seed + 1), replicated))


def benchmark_model(
    name: str,
    num_landmarks: int,
    *,
    batch_size: int = 50,
    image_size: int = 224,
    steps: int = 5,
    infer_batch: int = 64,
    dtype: str = "float32",
    depthwise_impl: str = "auto",
) -> dict[str, Any]:
  """Measures one model; returns the JSON record described in the module doc.

  `dtype` is a `config_lib.DTYPES` name, the compute dtype of training and inference.
  """
  setup = train_setup(name, num_landmarks, batch_size=batch_size, image_size=image_size,
                      dtype=dtype, depthwise_impl=depthwise_impl)
  variables = {"params": setup.state.params, "batch_stats": setup.state.batch_stats}
  trainable, bn_stats = models.count_parameters(variables)

  # Inference: BN folded, as a deployed predictor would run it; folded before the
  # training steps donate (and so delete) the state's arrays, in one jit rather than
  # hundreds of eager ops.
  folded_model = []

  def fold(variables):
    module, folded = models.fold_batch_norm(setup.model, variables)
    folded_model.append(module)
    return folded

  infer_vars = jax.jit(fold)(variables)
  infer_model = folded_model[0]
  infer = compile_options.jit_inference(infer_model.apply)
  one = jnp.asarray(np.asarray(setup.batch["image"])[:1])
  # XLA's default options: timed against the inference options, and counted.
  infer_default_options = jax.jit(infer_model.apply).lower(infer_vars, one).compile()
  flops = compiled_flops(infer_default_options)
  (infer_s, infer_best_s), (infer_default_s, _) = _alternating_latencies(
      [lambda: jax.block_until_ready(infer(infer_vars, one)),
       lambda: jax.block_until_ready(infer_default_options(infer_vars, one))],
      max(steps * 10, 50))
  many = jnp.tile(one, (infer_batch, 1, 1, 1))
  many_s, _, _ = _timings(lambda: jax.block_until_ready(infer(infer_vars, many)), steps)

  # Training: train.py's step, its state donated as the loop does.
  holder = [setup.state]

  def run_step():
    holder[0], metrics = setup.step(holder[0], setup.batch, setup.shape_model, setup.rng)
    return jax.block_until_ready(metrics)

  first = jax.device_get(run_step())  # Compiles; its loss is reported.
  train_s, train_best_s, train_cpu_s = _timings(run_step, steps, warm_up=False)
  return {
      "model": name,
      "num_landmarks": num_landmarks,
      "image_size": image_size,
      "batch_size": batch_size,
      "dtype": dtype,
      "depthwise_impl": depthwise_impl,
      "params_trainable": trainable,
      "params_bn_stats": bn_stats,
      "flops_b1": flops,
      "train_step": f"{step_lib.__name__}.{step_lib.make_train_step.__name__}",
      "train_loss": setup.config.loss,
      "train_config": {k: setup.config[k] for k in TRAIN_CONFIG_FIELDS},
      "asm_components": setup.shape_model.num_components,
      "train_alpha": float(first["alpha"]),
      "train_loss_first_step": float(first["loss"]),
      "train_img_per_s": round(batch_size / train_s, 3),
      "train_img_per_s_best": round(batch_size / train_best_s, 3),
      "train_cpu_s_per_step": round(train_cpu_s, 3),
      "infer_ms_b1": round(1e3 * infer_s, 3),
      "infer_ms_b1_best": round(1e3 * infer_best_s, 3),
      "infer_ms_b1_default_options": round(1e3 * infer_default_s, 3),
      "inference_options": compile_options.inference_options(),
      "infer_img_per_s_b64": round(infer_batch / many_s, 3),
      **machine.machine_record(),
      "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
  }


def define_flags(fv: flags.FlagValues) -> None:
  """The command's flags (see `asmnet_jax.cli`)."""
  flags.DEFINE_list("models", ["asmnet", "mnv2"],
                    f"Comma-separated model names ({', '.join(models.MODELS)}).",
                    flag_values=fv)
  flags.DEFINE_integer("num_landmarks", 68, "Landmarks the heads predict.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("batch_size", 50, "Global training batch.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("image_size", 224, "Input side in pixels (even, >= 32).",
                       flag_values=fv)
  flags.DEFINE_integer("steps", 5, "Timed repetitions.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("infer_batch", 64, "Batch of the inference throughput figure.",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_enum("dtype", "float32", list(config_lib.DTYPES),
                    "Compute dtype (config.compute_dtype), e.g. bfloat16.", flag_values=fv)
  flags.DEFINE_enum("depthwise_impl", "auto", list(DEPTHWISE_IMPLS),
                    "Depthwise convolution (see kernels.depthwise_conv).", flag_values=fv)
  flags.DEFINE_enum("malloc", "tuned", ["tuned", "default"],
                    "tuned: re-execute with allocator.RECOMMENDED_GLIBC_TUNABLES unless "
                    "GLIBC_TUNABLES is already set (command line only).", flag_values=fv)


def _run(fv: flags.FlagValues) -> None:
  """Prints one JSON line per model in --models."""
  unknown = [name for name in fv.models if name not in models.MODELS]
  if unknown or not fv.models:
    raise cli.UsageError(f"--models={','.join(fv.models)}: each must be one of "
                         f"{', '.join(models.MODELS)}")
  for name in fv.models:
    with cli.reported(ValueError):  # The message names the config field.
      config_lib.validate_config(train_config(
          name, batch_size=fv.batch_size, image_size=fv.image_size, dtype=fv.dtype))
  for name in fv.models:
    record = benchmark_model(
        name, fv.num_landmarks, batch_size=fv.batch_size, image_size=fv.image_size,
        steps=fv.steps, infer_batch=fv.infer_batch, dtype=fv.dtype,
        depthwise_impl=fv.depthwise_impl)
    print(json.dumps(record), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the benchmark; returns the exit status."""
  return cli.run(define_flags, _run, argv, tuned_malloc=lambda fv: fv.malloc == "tuned")


if __name__ == "__main__":
  sys.exit(main())
