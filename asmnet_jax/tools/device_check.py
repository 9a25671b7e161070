"""A first look at an accelerator in under 5 minutes: `python -m asmnet_jax.tools.device_check`.

    python -m asmnet_jax.tools.device_check [--out check.json]     # (or tools/device_check.sh)
    python -m asmnet_jax.tools.device_check --tiny                 # CPU smoke test, seconds

Prints one JSON object (and writes it to --out) with:
  machine: `machine.machine_record()` and the JAX devices;
  benchmark: per (dtype, batch): ASMNet-68's training step (train.py's, the paper's
    ASM-assisted loss) at --image_size, images/s over --steps steps after the
    compiling one, and the compile time (`benchmark.train_setup`);
  augment_cost: train.py's step on a batch of --run_batch_size images alone, and
    with the on-device augmentation in it (the paper's: rotation ±31.5°, zoom
    0.8-1, photometric terms) on cached uint8 crops, per-step times alternated
    over --steps rounds; `augment_overhead` = with / without - 1;
  input: the input pipelines alone at --image_size (`input_benchmark`): the host
    path, and the on-device path's host part (slicing cached crops) with the
    augmentation's own rate on the device;
  run: a 300W-shaped training run: --train_images synthetic face-like images
    (`input_benchmark.synthetic_source`, 256 px, 64 distinct ones repeated), the
    paper's recipe (batch 50, bfloat16, rotation ±31.5°, zoom 0.8-1, the ASM loss) at
    --image_size for --epochs epochs with on-device augmentation: images/s of the
    whole loop, of the step alone on one fixed batch, the host's seconds spent
    fetching and placing batches, and `input_wait_share` = 1 - loop rate / step-alone
    rate (0 when the device never waits for input).
Sizes --tiny: 32 px, batch 4, dtype float32, 16 images, 2 steps: for CPU tests.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import statistics
import sys
import time
from typing import Any, Sequence

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from jax.sharding import NamedSharding, PartitionSpec

from asmnet_jax import cli
from asmnet_jax.core import asm
from asmnet_jax.data import crop_cache
from asmnet_jax.data import crops
from asmnet_jax.data import device_augment
from asmnet_jax.data import pipeline
from asmnet_jax.runtime import machine
from asmnet_jax.tools import benchmark
from asmnet_jax.tools import input_benchmark
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib
from asmnet_jax.train import step as step_lib

SECTIONS = ("benchmark", "augment_cost", "input", "run")
DISTINCT_IMAGES = 64
NUM_LANDMARKS = 68
TINY = {"image_size": 32, "batch_sizes": [4], "dtypes": ["float32"], "steps": 2,
        "train_images": 16, "run_batch_size": 4, "input_batches": 2}


def define_flags(fv: flags.FlagValues) -> None:
  """The command's flags."""
  flags.DEFINE_bool("tiny", False, "CPU smoke-test sizes (see the module doc).",
                    flag_values=fv)
  flags.DEFINE_list("sections", list(SECTIONS), f"Of {', '.join(SECTIONS)}.", flag_values=fv)
  flags.DEFINE_integer("image_size", 224, "Input side in pixels.", flag_values=fv)
  flags.DEFINE_list("batch_sizes", ["64", "256"], "Benchmark batches.", flag_values=fv)
  flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Benchmark compute dtypes.",
                    flag_values=fv)
  flags.DEFINE_integer("steps", 10, "Timed benchmark steps.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("train_images", 3000, "Training images of the run.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("epochs", 2, "Epochs of the run.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("run_batch_size", 50, "The run's batch (the paper's 50).",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("input_batches", 20, "Batches timed per input pipeline.",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_string("out", None, "Also write the JSON here.", flag_values=fv)


def _sizes(fv: flags.FlagValues) -> dict[str, Any]:
  sizes = {"image_size": fv.image_size, "batch_sizes": [int(b) for b in fv.batch_sizes],
           "dtypes": list(fv.dtypes), "steps": fv.steps, "train_images": fv.train_images,
           "run_batch_size": fv.run_batch_size, "input_batches": fv.input_batches}
  if fv.tiny:
    sizes.update(TINY)
  return sizes


def benchmark_section(image_size: int, batch_sizes: Sequence[int], dtypes: Sequence[str],
                      steps: int) -> list[dict[str, Any]]:
  """Training-step images/s of ASMNet-68 per (dtype, batch)."""
  records = []
  for dtype in dtypes:
    for batch_size in batch_sizes:
      setup = benchmark.train_setup("asmnet", NUM_LANDMARKS, batch_size=batch_size,
                                    image_size=image_size, dtype=dtype)
      holder = [setup.state]

      def run_step(setup=setup, holder=holder):
        holder[0], metrics = setup.step(holder[0], setup.batch, setup.shape_model, setup.rng)
        return jax.block_until_ready(metrics)

      start = time.perf_counter()
      first = jax.device_get(run_step())
      compile_s = time.perf_counter() - start
      start = time.perf_counter()
      for _ in range(steps):
        run_step()
      seconds = time.perf_counter() - start
      records.append({"dtype": dtype, "batch_size": batch_size, "image_size": image_size,
                      "train_img_per_s": round(steps * batch_size / seconds, 1),
                      "compile_s": round(compile_s, 1),
                      "finite": bool(np.isfinite(first["loss"]))})
  return records


def augment_cost_section(image_size: int, batch_size: int, dtype: str,
                         steps: int) -> dict[str, Any]:
  """train.py's step alone and with the on-device augmentation (see the module doc)."""
  setup = benchmark.train_setup("asmnet", NUM_LANDMARKS, batch_size=batch_size,
                                image_size=image_size, dtype=dtype)
  in_config = dataclasses.replace(config_lib.input_config(setup.config), rotation_deg=31.5,
                                  scale_range=(0.8, 1.0))
  distinct = input_benchmark.synthetic_source(min(DISTINCT_IMAGES, batch_size))
  margin = crop_cache.cache_margin(in_config, crops.DEFAULT_MARGIN)
  cache = crop_cache.build(distinct, crop_cache.cache_size(in_config, margin), margin)
  mesh = step_lib.make_mesh()
  local = next(crop_cache.train_batches(cache.head(None), batch_size=len(distinct), seed=0,
                                        shard_index=0, shard_count=1))
  tiled = {k: np.resize(v, (batch_size, *v.shape[1:])) for k, v in local.items()}
  cached_batch = step_lib.global_batch(tiled, mesh)
  augment = device_augment.make_augment(in_config, NUM_LANDMARKS)
  augment_step = step_lib.make_train_step(setup.config, benchmark.STEPS_PER_EPOCH, mesh,
                                          augment)
  states = {"alone": setup.state, "augmented": jax.tree.map(jnp.copy, setup.state)}
  runs = {"alone": (setup.step, setup.batch), "augmented": (augment_step, cached_batch)}
  times: dict[str, list[float]] = {"alone": [], "augmented": []}
  for round_ in range(steps + 1):  # round 0 compiles.
    for name, (fn, batch) in runs.items():
      start = time.perf_counter()
      states[name], metrics = fn(states[name], batch, setup.shape_model, setup.rng)
      jax.block_until_ready(metrics)
      if round_:
        times[name].append(time.perf_counter() - start)
  alone, augmented = (statistics.median(times[k]) for k in ("alone", "augmented"))
  return {"image_size": image_size, "batch_size": batch_size, "dtype": dtype,
          "cache_size": int(cache.images.shape[1]), "steps": steps,
          "step_alone_img_per_s": round(batch_size / alone, 1),
          "step_with_augment_img_per_s": round(batch_size / augmented, 1),
          "augment_overhead": round(augmented / alone - 1.0, 3)}


def input_section(image_size: int, num_batches: int) -> list[dict[str, Any]]:
  """The input pipelines alone, the paper's augmentation, batch 50."""
  distinct = input_benchmark.synthetic_source(DISTINCT_IMAGES)
  source = [distinct[i % DISTINCT_IMAGES] for i in range(50 * (num_batches + 2))]
  config = pipeline.InputConfig(image_size=image_size, rotation_deg=31.5, scale_range=(0.8, 1.0))
  return input_benchmark.measure_pipelines(
      source, distinct, config, ("train_on_device", "train"),
      batch_size=min(50, len(source) // 2), num_batches=num_batches)


def run_section(image_size: int, train_images: int, epochs: int, batch_size: int,
                model: flax.linen.Module | None = None) -> dict[str, Any]:
  """A 300W-shaped run with on-device augmentation (see the module doc); `model`
  replaces ASMNet-68 (tests use `models.TinyNetwork`)."""
  config = config_lib.paper_recipe("ibug_300w", variance_kept=0.9)
  config.image_size, config.batch_size, config.num_epochs = image_size, batch_size, epochs
  if jax.devices()[0].platform == "cpu":
    config.compute_dtype = "float32"  # bfloat16 convolutions are emulated on CPUs.
  config.input.augment_on_device = True
  in_config = config_lib.input_config(config)
  distinct = input_benchmark.synthetic_source(min(DISTINCT_IMAGES, train_images))
  margin = crop_cache.cache_margin(in_config, crops.DEFAULT_MARGIN)
  small = crop_cache.build(distinct, crop_cache.cache_size(in_config, margin), margin)
  tiled = np.arange(train_images) % len(distinct)
  cache = crop_cache.CropCache(small.images[tiled], small.landmarks[tiled], small.pose[tiled])
  shapes = pipeline.eval_normalized_landmarks(distinct, in_config.eval_margin)
  shape_model = asm.fit_shape_model(shapes, config.variance_kept)

  mesh = step_lib.make_mesh()
  replicated = NamedSharding(mesh, PartitionSpec())
  steps_per_epoch = pipeline.steps_per_epoch(train_images, batch_size)
  num_steps = steps_per_epoch * epochs
  model = model or state_lib.create_model(config, NUM_LANDMARKS)
  state = jax.jit(functools.partial(state_lib.create_train_state, config, model,
                                    num_steps=num_steps), out_shardings=replicated)(
                                        jax.random.key(0))
  augment = device_augment.make_augment(in_config, NUM_LANDMARKS)
  train_step = step_lib.make_train_step(config, steps_per_epoch, mesh, augment)
  shape_model = jax.device_put(shape_model, replicated)
  rng = jax.device_put(jax.random.key(1), replicated)
  batches = crop_cache.train_batches(cache, batch_size=batch_size, seed=0)

  start = time.perf_counter()
  first = step_lib.global_batch(next(batches), mesh)
  state, metrics = train_step(state, first, shape_model, rng)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  # The loop: as train.py's, without validation and checkpoints.
  input_s, start = 0.0, time.perf_counter()
  for _ in range(num_steps - 1):
    fetch = time.perf_counter()
    batch = step_lib.global_batch(next(batches), mesh)
    input_s += time.perf_counter() - fetch
    state, metrics = train_step(state, batch, shape_model, rng)
  jax.block_until_ready(metrics)
  loop_s = time.perf_counter() - start
  # The step alone on one batch already on the device.
  start = time.perf_counter()
  for _ in range(num_steps - 1):
    state, metrics = train_step(state, first, shape_model, rng)
  jax.block_until_ready(metrics)
  step_s = time.perf_counter() - start
  loop_rate = (num_steps - 1) * batch_size / loop_s
  step_rate = (num_steps - 1) * batch_size / step_s
  return {"train_images": train_images, "distinct_images": len(distinct), "epochs": epochs,
          "steps": num_steps, "batch_size": batch_size, "image_size": image_size,
          "compute_dtype": config.compute_dtype, "cache_size": int(cache.images.shape[1]),
          "compile_s": round(compile_s, 1), "loop_s": round(loop_s, 2),
          "images_per_s": round(loop_rate, 1), "step_only_images_per_s": round(step_rate, 1),
          "host_input_s": round(input_s, 2),
          "input_wait_share": round(max(0.0, 1.0 - loop_rate / step_rate), 3),
          "final_loss": float(metrics["loss"]), "finite": bool(metrics["finite"])}


def _run(fv: flags.FlagValues) -> None:
  unknown = set(fv.sections) - set(SECTIONS)
  if unknown:
    raise cli.UsageError(f"--sections: unknown {', '.join(sorted(unknown))} "
                         f"(of {', '.join(SECTIONS)})")
  sizes = _sizes(fv)
  start = time.perf_counter()
  report: dict[str, Any] = {"machine": {**machine.machine_record(),
                                        "devices": [str(d) for d in jax.devices()]},
                            "tiny": fv.tiny}
  if "benchmark" in fv.sections:
    report["benchmark"] = benchmark_section(sizes["image_size"], sizes["batch_sizes"],
                                            sizes["dtypes"], sizes["steps"])
  if "augment_cost" in fv.sections:
    dtype = "float32" if jax.devices()[0].platform == "cpu" else "bfloat16"
    report["augment_cost"] = augment_cost_section(sizes["image_size"],
                                                  sizes["run_batch_size"], dtype,
                                                  sizes["steps"])
  if "input" in fv.sections:
    report["input"] = input_section(sizes["image_size"], sizes["input_batches"])
  if "run" in fv.sections:
    report["run"] = run_section(sizes["image_size"], sizes["train_images"], fv.epochs,
                                sizes["run_batch_size"])
  report["seconds"] = round(time.perf_counter() - start, 1)
  text = json.dumps(report, indent=2)
  if fv.out:
    with open(fv.out, "w") as f:
      f.write(text + "\n")
  print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the check per `argv` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, _run, argv)


if __name__ == "__main__":
  sys.exit(main())
