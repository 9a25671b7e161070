"""Training crops stored ready: fixed-size uint8 squares, read by slicing arrays.

For on-device augmentation (`asmnet_jax.data.device_augment`) the host only has to
hand over a batch of crops. Each record becomes a C x C uint8 crop of a square
around its landmark box, wide enough that every crop the augmentation can draw lies
inside it (`cache_margin`), with its landmarks in that crop's pixels and its pose.
The arrays are `.npy` files, memory-mapped on reading.

A cache on disk is keyed by its `meta.json`: the dataset, builder config and
version, split, record count, crop size and margin. A cache whose key differs from
the one asked for (another build version of the dataset, other crop settings) is
rebuilt, never read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
from typing import Any, Iterator, Sequence

import jax
import numpy as np
import tqdm

from asmnet_jax.core import geometry
from asmnet_jax.data import augment
from asmnet_jax.data import crops
from asmnet_jax.data import pipeline

# Bump when the layout or the crop rule changes: older caches are then rebuilt.
FORMAT_VERSION = 1
META_FILE = "meta.json"
_ARRAYS = ("images", "landmarks", "pose")


@dataclasses.dataclass(frozen=True)
class CropCache:
  """images uint8 (N, C, C, 3); landmarks float32 (N, n, 2), pixel-centre coordinates
  in the crop; pose float32 (N, 3) yaw, pitch, roll in degrees."""

  images: np.ndarray
  landmarks: np.ndarray
  pose: np.ndarray

  def __len__(self) -> int:
    return len(self.images)

  def head(self, count: int | None) -> CropCache:
    """The first `count` records (all when None)."""
    if count is None:
      return self
    return CropCache(self.images[:count], self.landmarks[:count], self.pose[:count])


def cache_margin(config: pipeline.InputConfig, record_margin: float | None = None) -> float:
  """Per-side margin (fraction of the landmark box's longer side) of a cached crop
  wide enough for every training crop of `config`.

  The widest crop is that of a square box of side E turned by the largest rotation
  r: its rotated landmarks span E (cos r + sin r), the crop adds the largest margins
  and the smallest zoom, (1 + 2 hi) / lo, and its corner reaches (cos r + sin r)
  times its half-side along an axis. `record_margin`: the margin the records
  themselves were cut with (the face builders' 0.35): they are black beyond it, so
  a wider cache would only store black.
  """
  r = math.radians(min(abs(config.rotation_deg), 45.0))
  turn = math.cos(r) + math.sin(r)
  widen = (1 + 2 * config.margin_range[1]) / min(config.scale_range[0], 1.0)
  needed = 0.5 * turn * turn * widen - 0.5
  return needed if record_margin is None else min(needed, record_margin)


def cache_size(config: pipeline.InputConfig, margin: float) -> int:
  """Side C (even, pixels) of a cached crop with this `margin`: the landmark box gets
  as many pixels as in a training crop of S pixels with the mean margin at zoom 1."""
  mean_margin = 0.5 * (config.margin_range[0] + config.margin_range[1])
  side = config.image_size * (1 + 2 * margin) / (1 + 2 * mean_margin)
  return 2 * math.ceil(side / 2)


def crop_record(record: dict[str, Any], size: int,
                margin: float) -> tuple[np.ndarray, np.ndarray]:
  """One record -> (uint8 (size, size, 3) crop, float32 (n, 2) landmarks in it)."""
  landmarks = np.asarray(record["landmarks"], np.float64)
  box = crops.crop_box_for_landmarks(landmarks, margin)
  side = float(box[2] - box[0])
  # Crop pixel-centre p -> source (p + 0.5) * side / size - 0.5 + box corner.
  k = side / size
  crop_to_image = np.array([[k, 0.0, 0.5 * k - 0.5 + box[0]], [0.0, k, 0.5 * k - 0.5 + box[1]]])
  pixels = augment.warp_image(record["image"], crop_to_image, size)
  points = geometry.apply_affine(geometry.invert_affine(crop_to_image), landmarks)
  return pixels, points.astype(np.float32)


def build(source: Sequence[dict[str, Any]], size: int, margin: float,
          directory: str | None = None, progress: bool = False) -> CropCache:
  """The cache of every record of `source`: in memory, or written as .npy files into
  `directory` (which must not exist yet) and returned memory-mapped."""
  n = len(source)
  if n == 0:
    raise ValueError("empty data source: nothing to cache")
  first = source[0]
  num_points = len(first["landmarks"])
  shapes = {"images": ((n, size, size, 3), np.uint8), "landmarks": ((n, num_points, 2),
                                                                    np.float32),
            "pose": ((n, 3), np.float32)}
  if directory is None:
    arrays = {k: np.zeros(shape, dtype) for k, (shape, dtype) in shapes.items()}
  else:
    os.makedirs(directory)
    arrays = {k: np.lib.format.open_memmap(os.path.join(directory, f"{k}.npy"), "w+", dtype,
                                           shape) for k, (shape, dtype) in shapes.items()}
  for i in tqdm.trange(n, desc=f"caching {size} px crops", unit="face", disable=not progress):
    record = first if i == 0 else source[i]
    arrays["images"][i], arrays["landmarks"][i] = crop_record(record, size, margin)
    arrays["pose"][i] = np.asarray(record.get("pose", np.zeros(3)), np.float32)
  if directory is not None:
    for array in arrays.values():
      array.flush()
    return _open(directory)
  return CropCache(**arrays)


def _open(directory: str) -> CropCache:
  return CropCache(**{k: np.load(os.path.join(directory, f"{k}.npy"), mmap_mode="r")
                      for k in _ARRAYS})


def _read_meta(directory: str) -> dict[str, Any] | None:
  try:
    with open(os.path.join(directory, META_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def load_or_build(directory: str, key: dict[str, Any], source: Sequence[dict[str, Any]],
                  size: int, margin: float) -> CropCache:
  """The cache in `directory` when its meta.json equals `key`; otherwise (missing,
  incomplete, or another key) it is built from `source` and written there first.

  Written into a temporary sibling and renamed, so a killed build leaves no cache
  that could be read as complete.
  """
  key = {"format": FORMAT_VERSION, **key, "size": size, "margin": round(margin, 6)}
  found = _read_meta(directory)
  if found == key:
    return _open(directory)
  if found is not None or os.path.exists(directory):
    logging.warning("Crop cache %s was built for %s; rebuilding it for %s", directory,
                    found, key)
  parent = os.path.dirname(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".building-", dir=parent)
  os.rmdir(staging)
  build(source, size, margin, staging, progress=True)
  with open(os.path.join(staging, META_FILE), "w") as f:
    json.dump(key, f, indent=2)
  shutil.rmtree(directory, ignore_errors=True)
  os.rename(staging, directory)
  return _open(directory)


def for_split(builder, split: str, config: pipeline.InputConfig,
              root: str | None = None) -> CropCache:
  """The cache of a prepared TFDS `builder`'s `split` for `config`'s crops.

  Under `root` (default `<data_dir>/crop_cache`, beside the dataset folders):
  `<dataset>/<builder config>/<split>-<C>px`. With several processes, process 0
  builds and the others wait for it.
  """
  builder_config = builder.builder_config
  # The face builders store crops cut with this margin: black beyond it.
  margin = cache_margin(config, getattr(builder_config, "margin", None))
  size = cache_size(config, margin)
  config_name = builder_config.name if builder_config else "default"
  root = root or os.path.join(builder.data_dir_root, "crop_cache")
  directory = os.path.join(root, builder.name, config_name, f"{split}-{size}px")
  source = builder.as_data_source(split)
  key = {"dataset": builder.name, "config": config_name, "version": str(builder.version),
         "split": split, "records": len(source)}
  if jax.process_index() == 0:
    cache = load_or_build(directory, key, source, size, margin)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f"crop cache {directory}")
    if jax.process_index() != 0:
      cache = load_or_build(directory, key, source, size, margin)
  return cache


def train_batches(cache: CropCache, *, batch_size: int, seed: int,
                  shard_index: int | None = None, shard_count: int | None = None,
                  start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Infinite per-host batches of cached crops, in the order of
  `pipeline.create_train_iterator` (same epochs, shards and resumption).

  Each batch: image uint8 (B, C, C, 3), landmarks float32 (B, n, 2) cache pixels,
  pose float32 (B, 3), index int32 (B,); B the per-host batch.
  """
  stream = pipeline.TrainOrder(len(cache), batch_size=batch_size, seed=seed,
                               shard_index=shard_index, shard_count=shard_count)
  step = start_step
  while True:
    index = stream.batch_indices(step)
    yield {"image": cache.images[index], "landmarks": cache.landmarks[index],
           "pose": cache.pose[index], "index": index.astype(np.int32)}
    step += 1
