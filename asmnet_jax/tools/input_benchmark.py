"""Input-pipeline throughput: `python -m asmnet_jax.tools.input_benchmark [flags]`.

Prints one JSON line per pipeline with images/s: `train_on_device` (the host slices
cached uint8 crops, `crop_cache`; its line also gives the augmentation's own rate
on the default JAX device, `device_augment`, inside one jitted function), `train`
(the host path: crop, warp and augment each image) and `eval`. The default source
is in memory: random smooth 256 x 256 "face-like" images (a bright ellipse on a
textured background) with a 68-point ring of landmarks, already decoded, so the
figure measures cropping, warping, augmentation and batching only. With
`--builder_dir` (a prepared TFDS dataset version folder) or `--dataset` and
`--data_dir` it reads a TFDS `as_data_source` split instead, which adds the
per-record PNG/JPEG decode.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any, Iterator, Sequence

import grain
import jax
import numpy as np
from absl import flags
from PIL import Image

from asmnet_jax import cli
from asmnet_jax.data import crop_cache
from asmnet_jax.data import crops
from asmnet_jax.data import device_augment
from asmnet_jax.data import pipeline as input_pipeline
from asmnet_jax.runtime import machine


def synthetic_source(count: int = 64, size: int = 256, num_points: int = 68,
                     seed: int = 0) -> list[dict[str, Any]]:
  """`count` in-memory records, uint8 (size, size, 3) images, (num_points, 2) landmarks."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  t = np.linspace(0.0, 2.0 * np.pi, num_points, endpoint=False)
  records = []
  for i in range(count):
    coarse = rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)
    background = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC),
                            np.float64)
    centre = rng.uniform(0.4, 0.6, size=2)
    radius = rng.uniform(0.2, 0.3, size=2)
    face = (((xx - centre[0]) / radius[0]) ** 2 + ((yy - centre[1]) / radius[1]) ** 2) < 1.0
    image = np.where(face[..., None], np.array([220.0, 170.0, 140.0]), background)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    points = size * (centre + 0.9 * radius * np.stack([np.cos(t), np.sin(t)], axis=1))
    records.append({
        "image": image,
        "landmarks": points.astype(np.float32),
        "crop_box": np.array([0, 0, size, size], np.float32),
        "pose": rng.uniform(-20, 20, size=3).astype(np.float32),
        "filename": f"synthetic_{i}.png",
    })
  return records


def _tfds_source(args: flags.FlagValues):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if args.builder_dir:
    builder = tfds.builder_from_directory(args.builder_dir)
  else:
    builder = tfds.builder(args.dataset, data_dir=args.data_dir)
  return builder.as_data_source(args.split)


# The on-device path first: the host paths' read-ahead threads would still be busy
# while it is timed.
PIPELINES = ("train_on_device", "train", "eval")
# Records cached for `train_on_device` (building the cache is not what is timed).
CACHED_RECORDS = 512


def define_flags(fv: flags.FlagValues) -> None:
  """The input benchmark's flags."""
  flags.DEFINE_integer("image_size", 224, "Crop side S in pixels.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("batch_size", 50, "Images per batch.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("num_batches", 10, "Batches to time per pipeline.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("worker_count", 0, "grain worker processes (0: in-process).",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_integer("num_threads", 2, "grain read threads.", lower_bound=1, flag_values=fv)
  flags.DEFINE_float("rotation_deg", 0.0, "Training rotation drawn from U(-r, r) degrees.",
                     flag_values=fv)
  flags.DEFINE_float("scale_min", 1.0, "Training zoom drawn from U(scale_min, 1).",
                     flag_values=fv)
  flags.DEFINE_float("noise", 0.0, "Training noise (augment.Photometric).", flag_values=fv)
  flags.DEFINE_float("salt_pepper", 0.0, "Training salt and pepper (augment.Photometric).",
                     flag_values=fv)
  flags.DEFINE_string("pipelines", ",".join(PIPELINES),
                      f"Comma-separated, of: {', '.join(PIPELINES)}.", flag_values=fv)
  flags.register_validator(
      "pipelines", lambda names: bool(names) and set(names.split(",")) <= set(PIPELINES),
      f"--pipelines takes {', '.join(PIPELINES)}, comma-separated", flag_values=fv)
  flags.DEFINE_string("dataset", None, "TFDS name (with --data_dir).", flag_values=fv)
  flags.DEFINE_string("data_dir", None, "TFDS data directory.", flag_values=fv)
  flags.DEFINE_string("builder_dir", None, "A prepared TFDS version folder.", flag_values=fv)
  flags.DEFINE_string("split", "train", "The TFDS split to read.", flag_values=fv)


def _run(args: flags.FlagValues) -> None:
  if args.dataset or args.builder_dir:
    source, source_name = _tfds_source(args), args.builder_dir or args.dataset
    distinct = source
  else:
    # 64 records repeated (not copied) to 100,000: enough for any --num_batches.
    distinct = synthetic_source()
    source = grain.MapDataset.source(distinct).repeat()[:100_000]
    source_name = "synthetic-256"
  config = input_pipeline.InputConfig(
      image_size=args.image_size, rotation_deg=args.rotation_deg,
      scale_range=(args.scale_min, 1.0), noise=args.noise, salt_pepper=args.salt_pepper,
      worker_count=args.worker_count, num_threads=args.num_threads)
  common = {"source": source_name, "image_size": args.image_size,
            "batch_size": args.batch_size, "worker_count": args.worker_count,
            "num_threads": args.num_threads, **machine.machine_record()}
  for record in measure_pipelines(source, distinct, config, args.pipelines.split(","),
                                  batch_size=args.batch_size, num_batches=args.num_batches):
    print(json.dumps({"pipeline": record.pop("pipeline"), **common, **record}), flush=True)


def measure_pipelines(source, distinct, config: input_pipeline.InputConfig,
                      pipelines: Sequence[str], *, batch_size: int,
                      num_batches: int) -> list[dict[str, Any]]:
  """One record per pipeline of `PIPELINES`: its images/s and settings.

  source: the records read (may repeat); distinct: its distinct records, for the
  crop cache of `train_on_device`.
  """
  settings = {k: v for k, v in dataclasses.asdict(config).items()
              if k in ("rotation_deg", "scale_range", "noise", "salt_pepper")}
  records = []
  for name in pipelines:
    if name == "train":
      iterator = input_pipeline.create_train_iterator(
          source, batch_size=batch_size, config=config, seed=0, shard_index=0,
          shard_count=1)
      extra = settings
    elif name == "eval":
      iterator = input_pipeline.create_eval_iterator(
          source, batch_size=batch_size, config=config, shard_index=0, shard_count=1)
      extra = {}
    elif name == "train_on_device":
      iterator, extra = _on_device(distinct, config, batch_size, num_batches)
      extra = {**settings, **extra}
    else:
      raise ValueError(f"unknown pipeline {name!r}")
    # Evaluation is one pass: do not ask for more batches than it has.
    available = len(source) // batch_size - 1 if name == "eval" else num_batches
    result = input_pipeline.measure(iterator, min(num_batches, max(available, 1)))
    if hasattr(iterator, "close"):
      iterator.close()
    records.append({"pipeline": name, **extra,
                    "images_per_s": round(result["images_per_s"], 1),
                    "images": result["images"], "seconds": round(result["seconds"], 3)})
  return records


def _on_device(source, config: input_pipeline.InputConfig, batch_size: int,
               num_batches: int) -> tuple[Iterator[dict[str, np.ndarray]], dict]:
  """The cached-crop batches of the first `CACHED_RECORDS` records (the host's part),
  and the jitted augmentation's own rate on the default device."""
  count = min(len(source), CACHED_RECORDS)
  # As for the face builders' records, which are crops with this margin.
  margin = crop_cache.cache_margin(config, crops.DEFAULT_MARGIN)
  cache = crop_cache.build([source[i] for i in range(count)],
                           crop_cache.cache_size(config, margin), margin)
  batches = crop_cache.train_batches(cache, batch_size=min(batch_size, count), seed=0,
                                     shard_index=0, shard_count=1)
  augment = jax.jit(device_augment.make_augment(config, cache.landmarks.shape[1]))
  batch = jax.device_put(next(batches))
  key = jax.random.key(0)
  jax.block_until_ready(augment(key, batch))  # compile.
  start = time.perf_counter()
  for step in range(num_batches):
    out = augment(jax.random.fold_in(key, step), batch)
  jax.block_until_ready(out)
  device_rate = num_batches * len(batch["image"]) / (time.perf_counter() - start)
  return batches, {"cache_size": int(cache.images.shape[1]),
                   "augment_device": str(jax.devices()[0].platform),
                   "device_augment_images_per_s": round(device_rate, 1)}


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the benchmark per `argv` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, _run, argv)


if __name__ == "__main__":
  sys.exit(main())
