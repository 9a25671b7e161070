"""Grain input pipelines: face crops, augmentation, host sharding, padded evaluation.

Sources: any random-access sequence (`__len__`, `__getitem__`) of record dicts in the
`asmnet_jax.data.features` layout, e.g. `builder.as_data_source(split)`:
  image uint8 (H, W, 3), landmarks float32 (n, 2) pixel-centre coordinates in that
  image, pose float32 (3,) yaw/pitch/roll degrees; optional `attributes` (WFLW).

Every batch is a dict of numpy arrays, B the per-host batch, S `config.image_size`:
  image          float32 (B, S, S, 3), RGB in [0, 1].
  landmarks      float32 (B, n, 2), normalised crop coordinates (see `augment`):
                 x_norm = (x_px + 0.5) / S - 0.5, x_px a pixel-centre coordinate in
                 the resized crop; the crop's edges are at -0.5 and +0.5.
  pose           float32 (B, 3), yaw, pitch, roll in degrees (roll follows a
                 rotation augmentation).
  mask           bool (B,), False for the evaluation padding.
  crop_to_image  float32 (B, 2, 3), affine from crop pixel-centre coordinates to
                 source-image pixel-centre coordinates: use
                 `geometry.crop_to_image_points`.
  index          int32 (B,), the record index in the data source (for filenames).
  attributes     (B, ...) copied from the records when they have it (WFLW).
  occluded       bool (B, n) per-point occlusion flags, when the records have them
                 (COFW), renumbered with the points by a flip.

Training streams are a pure function of (data source length, seed, shard, batch
size, step): epoch e is a permutation of the whole source drawn from (seed, e);
host h reads its own equal-sized contiguous part of that permutation, so hosts are
disjoint within an epoch, all run the same number of steps, and the examples a
shard cannot fill a batch with (< shard_count * per-host batch per epoch) differ
from epoch to epoch. An example's augmentation is drawn from (seed, epoch, record
index), independent of the host layout and of threads/workers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import time
from typing import Any, Iterator, Sequence

from absl import flags
import grain
import jax
import numpy as np

from asmnet_jax.core import geometry, mirror
from asmnet_jax.core import rotation as rotation_lib
from asmnet_jax.data import augment

__all__ = [
    "InputConfig",
    "TrainOrder",
    "create_train_iterator",
    "create_eval_iterator",
    "eval_normalized_landmarks",
    "steps_per_epoch",
    "per_host_batch_size",
]


@dataclasses.dataclass(frozen=True)
class InputConfig:
  """Crop, augmentation and loader settings.

  image_size: side S of the square model input, pixels.
  margin_range: per-side training margin, drawn independently per side from
    U(lo, hi), as a fraction of the landmark box width (left/right) or height
    (top/bottom). The paper: 0-10 %.
  eval_margin: the fixed per-side margin for evaluation and for the ASM fit.
  rotation_deg: training rotation drawn from U(-r, r) degrees (0 disables).
  scale_range: training zoom drawn from U(lo, hi); < 1 shrinks the face inside the
    crop, > 1 enlarges it and is clamped so that no landmark leaves the crop.
    No example is ever dropped: the crop box is fitted to the *rotated* landmarks
    (so rotation cannot push points out) and the zoom is clamped.
  flip_probability: share of training crops mirrored left-right (0 disables):
    the crop's x axis is reversed, the points renumbered by the mirror map, and yaw
    and roll negated (`asmnet_jax.core.mirror`).
  mirror_map: the mirror permutation of the points (`mirror.validate_permutation`);
    None uses the built-in 68- or 98-point map.
  brightness, contrast, colour, noise, salt_pepper: see `augment.Photometric`.
  occlusion_probability: share of training crops with one pasted rectangle of
    random colour (random erasing; 0 disables), its sides drawn from
    U(occlusion_size) x S (`augment.occlude`).
  random_conv_probability: share of training crops whose texture and colour are
    scrambled by a random convolution mixed with the crop (`augment.random_convolution`;
    0 disables), after the photometric terms and before any occlusion.
  augment_on_device: train from fixed-size uint8 crops (`crop_cache`) augmented
    inside the jitted step (`device_augment`) instead of by this module.
  seed: default stream seed, for callers that do not pass one.
  worker_count: grain worker processes (0: in-process threads only). They end with
    the process that started them, SIGKILL included (`exit_with_parent`), or at
    the iterator's `.close()`.
  worker_buffer_size: batches each worker process keeps ready.
  num_threads: grain read threads (each prepares whole batches).
  prefetch_batches: batches read ahead per process.
  """

  image_size: int = 224
  margin_range: tuple[float, float] = (0.0, 0.1)
  eval_margin: float = 0.05
  rotation_deg: float = 0.0
  scale_range: tuple[float, float] = (1.0, 1.0)
  flip_probability: float = 0.0
  mirror_map: tuple[int, ...] | None = None
  brightness: float = 0.2
  contrast: float = 0.3
  colour: float = 0.3
  noise: float = 0.0
  salt_pepper: float = 0.0
  occlusion_probability: float = 0.0
  occlusion_size: tuple[float, float] = (0.1, 0.4)
  random_conv_probability: float = 0.0
  augment_on_device: bool = False
  seed: int = 0
  worker_count: int = 0
  worker_buffer_size: int = 2
  num_threads: int = 2
  prefetch_batches: int = 2

  @property
  def photometric(self) -> augment.Photometric:
    return augment.Photometric(self.brightness, self.contrast, self.colour, self.noise,
                               self.salt_pepper)

  def mirror_permutation(self, num_points: int) -> np.ndarray:
    """The mirror map for `num_points` points, int32 (n,); ValueError if there is none."""
    if self.mirror_map is not None:
      return mirror.validate_permutation(self.mirror_map, num_points)
    perm = mirror.builtin_permutation(num_points)
    if perm is None:
      raise ValueError(f"flip_probability={self.flip_probability}: no mirror map for "
                       f"{num_points} points; the dataset must declare its left-right "
                       "pairs to be flipped")
    return perm


def _shards(shard_index: int | None, shard_count: int | None) -> tuple[int, int]:
  index = jax.process_index() if shard_index is None else int(shard_index)
  count = jax.process_count() if shard_count is None else int(shard_count)
  if not 0 <= index < count:
    raise ValueError(f"shard_index {index} not in [0, {count})")
  return index, count


def per_host_batch_size(batch_size: int, shard_count: int | None = None) -> int:
  """The per-host batch for a global `batch_size` (must divide evenly)."""
  count = jax.process_count() if shard_count is None else shard_count
  if batch_size % count:
    raise ValueError(f"global batch {batch_size} is not divisible by {count} hosts")
  return batch_size // count


def steps_per_epoch(num_examples: int, batch_size: int, shard_count: int | None = None) -> int:
  """Training steps in one epoch of `create_train_iterator` (global `batch_size`).

  Each host takes floor(N / hosts) examples of an epoch and drops its remainder
  below a full batch, so one epoch is floor(floor(N / hosts) / per-host batch) steps.
  """
  count = jax.process_count() if shard_count is None else shard_count
  return (num_examples // count) // per_host_batch_size(batch_size, count)


def _example(record: dict[str, Any], index: int, image_size: int, margins: np.ndarray,
             rotation_deg: float, scale: float, photometric: augment.Photometric | None,
             rng: np.random.Generator | None, mask: bool,
             flip_perm: np.ndarray | None = None,
             occlusion: tuple[float, tuple[float, float]] | None = None,
             random_conv: float = 0.0) -> dict[str, np.ndarray]:
  """One record -> one example dict (see module docstring); `flip_perm` mirrors it,
  `occlusion` (probability, size range) may paste a patch (`augment.occlude`),
  `random_conv` is the chance of `augment.random_convolution`."""
  landmarks = np.asarray(record["landmarks"], np.float64)
  image_to_norm, _ = geometry.crop_matrix(landmarks, margins, rotation_deg, scale)
  if flip_perm is not None:
    # Normalised crop coordinates are centred on the crop: mirroring negates x.
    image_to_norm = image_to_norm * np.array([[-1.0], [1.0]])
  image_to_crop = geometry.compose(geometry.norm_to_pixel_matrix(image_size), image_to_norm)
  crop_to_image = geometry.invert_affine(image_to_crop)
  pixels = augment.warp_image(record["image"], crop_to_image, image_size)
  pose = np.array(record.get("pose", np.zeros(3)), np.float64)
  if rotation_deg:
    # A content rotation by theta about the optical axis adds theta to the roll
    # (R' = Rz(theta) Rz(roll) Rx Ry, `asmnet_jax.core.rotation`); keep it in (-180, 180].
    pose[2] = rotation_lib.wrap_degrees(pose[2] + rotation_deg)
  crop_landmarks = geometry.apply_affine(image_to_norm, landmarks)
  if flip_perm is not None:
    crop_landmarks = crop_landmarks[flip_perm]
    pose = mirror.flip_pose(pose)
  image = augment.to_float_image(pixels, photometric, rng)
  if random_conv > 0:
    image = augment.random_convolution(image, rng, random_conv)
  if occlusion is not None:
    image = augment.occlude(image, rng, *occlusion)
  out = {
      "image": image,
      "landmarks": crop_landmarks.astype(np.float32),
      "pose": pose.astype(np.float32),
      "mask": np.bool_(mask),
      "crop_to_image": crop_to_image.astype(np.float32),
      "index": np.int32(index),
  }
  if "attributes" in record:
    out["attributes"] = np.asarray(record["attributes"])
  if "occluded" in record:  # per point (COFW): renumbered with the points.
    occluded = np.asarray(record["occluded"], bool)
    out["occluded"] = occluded if flip_perm is None else occluded[flip_perm]
  return out


class TrainOrder:
  """The training stream's order: host stream position -> (epoch, record index).

  Epoch e is the permutation of the N records drawn from (seed, e); host h reads its
  own contiguous part of it (see the module docstring). Thread-safe and picklable.
  """

  def __init__(self, num_records: int, *, batch_size: int, seed: int,
               shard_index: int | None = None, shard_count: int | None = None):
    self.shard_index, shard_count = _shards(shard_index, shard_count)
    self.host_batch = per_host_batch_size(batch_size, shard_count)
    steps = steps_per_epoch(num_records, batch_size, shard_count)
    if steps < 1:
      raise ValueError(f"{num_records} examples cannot fill one global batch of "
                       f"{batch_size} over {shard_count} hosts")
    self.num_records = num_records
    self.seed = int(seed)
    self.per_shard = num_records // shard_count
    self.per_epoch = steps * self.host_batch
    self._perms: dict[int, np.ndarray] = {}
    self._lock = threading.Lock()  # grain read threads share this object.

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_perms"], state["_lock"] = {}, None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def _permutation(self, epoch: int) -> np.ndarray:
    with self._lock:
      perm = self._perms.get(epoch)
      if perm is None:
        perm = np.random.default_rng([self.seed, epoch, 1]).permutation(self.num_records)
        if len(self._perms) > 2:  # keep a few: threads may straddle an epoch boundary.
          self._perms.pop(min(self._perms))
        self._perms[epoch] = perm
      return perm

  def record_index(self, position: int) -> tuple[int, int]:
    """(epoch, record index) at this host's stream position."""
    epoch, k = divmod(position, self.per_epoch)
    return epoch, int(self._permutation(epoch)[self.shard_index * self.per_shard + k])

  def batch_indices(self, step: int) -> np.ndarray:
    """int64 (host batch,): the record indices of this host's batch at `step`."""
    epoch, k = divmod(step * self.host_batch, self.per_epoch)
    start = self.shard_index * self.per_shard + k
    return self._permutation(epoch)[start:start + self.host_batch]


class _TrainExample:
  """Stream position -> augmented example; picklable for grain worker processes."""

  def __init__(self, source: Sequence[dict[str, Any]], config: InputConfig, order: TrainOrder):
    self.source = source
    self.config = config
    self.order = order
    self.seed = order.seed

  def record_index(self, position: int) -> tuple[int, int]:
    return self.order.record_index(position)

  def __call__(self, position: int, _: Any = None) -> dict[str, np.ndarray]:
    epoch, index = self.record_index(position)
    c = self.config
    rng = np.random.default_rng([self.seed, epoch, index, 2])
    margins = rng.uniform(c.margin_range[0], c.margin_range[1], size=4)
    rotation = float(rng.uniform(-c.rotation_deg, c.rotation_deg)) if c.rotation_deg else 0.0
    lo, hi = c.scale_range
    scale = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    record = self.source[index]
    flip_perm = None
    # Drawn only when enabled, so runs without flips keep their augmentation stream.
    if c.flip_probability > 0 and rng.random() < c.flip_probability:
      flip_perm = c.mirror_permutation(len(record["landmarks"]))
    # Drawn only when enabled, as the flip.
    occlusion = ((c.occlusion_probability, c.occlusion_size)
                 if c.occlusion_probability > 0 else None)
    return _example(record, index, c.image_size, margins, rotation, scale,
                    c.photometric, rng, mask=True, flip_perm=flip_perm, occlusion=occlusion,
                    random_conv=c.random_conv_probability)


class _EvalExample:
  """Padded position -> deterministic evaluation example."""

  def __init__(self, source: Sequence[dict[str, Any]], config: InputConfig, start: int,
               count: int):
    self.source = source
    self.config = config
    self.start = start
    self.count = count
    self.margins = np.full(4, config.eval_margin)

  def __call__(self, position: int, _: Any = None) -> dict[str, np.ndarray]:
    real = position < self.count
    # Padding repeats a real example (finite metrics) with mask False.
    index = self.start + (position if real else max(self.count - 1, 0))
    return _example(self.source[index], index, self.config.image_size, self.margins, 0.0,
                    1.0, None, None, mask=real)


PARENT_POLL_S = 0.25


def exit_with_parent(parent_pid: int, worker_index: int = 0, worker_count: int = 1) -> None:
  """Grain worker init: ends this worker process soon after `parent_pid` dies.

  Grain's workers are daemonic, so a parent that exits ends them; a parent killed
  by SIGKILL or the OOM killer cannot, and they would live on as orphans holding
  their memory (and multiprocessing's resource tracker with them). A daemon thread
  polls for the re-parenting that follows the parent's death (portable, and unlike
  PR_SET_PDEATHSIG it does not depend on which parent thread started the worker).
  """
  del worker_index, worker_count

  def watch():
    while os.getppid() == parent_pid:
      time.sleep(PARENT_POLL_S)
    os._exit(1)

  threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _loader(ds: grain.MapDataset, config: InputConfig) -> grain.IterDataset:
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=config.num_threads,
                                            prefetch_buffer_size=config.prefetch_batches))
  if config.worker_count > 0:
    # grain 0.2.18 reads an absl flag in mp_prefetch and fails in scripts that never
    # parsed flags (google/grain#1355); mark them parsed (defaults) in that case only.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=config.worker_count,
                                     per_worker_buffer_size=config.worker_buffer_size),
        worker_init_fn=functools.partial(exit_with_parent, os.getpid()))
    it = it.map(_copy_out_of_shared_memory)
  return it


def _copy_out_of_shared_memory(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """A worker's batch copied into this process's own memory (1-3 ms for 30 MB).

  grain hands over worker batches in shared memory that is unlinked once nothing
  references it. JAX may alias host arrays on CPU, and arrays that reach it would
  keep their segments until the interpreter exits (multiprocessing's resource
  tracker then reports them as leaked); a copy leaves nothing behind.
  """
  return {key: np.array(value) for key, value in batch.items()}


def train_dataset(data_source: Sequence[dict[str, Any]], *, batch_size: int,
                  config: InputConfig, seed: int | None = None,
                  shard_index: int | None = None, shard_count: int | None = None,
                  start_step: int = 0) -> grain.IterDataset:
  """The grain `IterDataset` behind `create_train_iterator` (same arguments)."""
  order = TrainOrder(len(data_source), batch_size=batch_size,
                     seed=config.seed if seed is None else seed, shard_index=shard_index,
                     shard_count=shard_count)
  fn = _TrainExample(data_source, config, order)
  # Infinite, random-access: skipping to `start_step` is a slice, nothing is read.
  ds = grain.MapDataset.range(2**62).map(fn).batch(order.host_batch, drop_remainder=True)
  return _loader(ds[start_step:], config)


def create_train_iterator(data_source: Sequence[dict[str, Any]], *, batch_size: int,
                          config: InputConfig, seed: int | None = None,
                          shard_index: int | None = None, shard_count: int | None = None,
                          start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Infinite iterator of augmented per-host training batches.

  Args:
    data_source: random-access records (see module docstring).
    batch_size: the *global* batch; each host yields batch_size // shard_count.
    config: crop/augmentation/loader settings.
    seed: stream seed (shuffling and augmentation); None uses `config.seed`.
    shard_index, shard_count: this host and the number of hosts; default
      `jax.process_index()` and `jax.process_count()`.
    start_step: the first batch to yield; a run resumed at step k with the same
      arguments continues exactly the stream a fresh run yields from step k on.

  Epochs are `steps_per_epoch(len(data_source), batch_size, shard_count)` steps; the
  returned grain iterator also has `get_state`/`set_state`.
  """
  return iter(train_dataset(data_source, batch_size=batch_size, config=config, seed=seed,
                            shard_index=shard_index, shard_count=shard_count,
                            start_step=start_step))


def eval_dataset(data_source: Sequence[dict[str, Any]], *, batch_size: int,
                 config: InputConfig, shard_index: int | None = None,
                 shard_count: int | None = None) -> grain.IterDataset:
  """The grain `IterDataset` behind `create_eval_iterator` (same arguments)."""
  shard_index, shard_count = _shards(shard_index, shard_count)
  host_batch = per_host_batch_size(batch_size, shard_count)
  n = len(data_source)
  if n == 0:
    raise ValueError("empty data source")
  per_shard = math.ceil(n / shard_count)
  start = min(shard_index * per_shard, n)
  count = min(per_shard, n - start)
  # Every host runs the same number of batches (collectives stay in step).
  num_batches = math.ceil(per_shard / host_batch)
  fn = _EvalExample(data_source, config, start if count else 0, count)
  ds = grain.MapDataset.range(num_batches * host_batch).map(fn).batch(host_batch)
  return _loader(ds, config)


def create_eval_iterator(data_source: Sequence[dict[str, Any]], *, batch_size: int,
                         config: InputConfig, shard_index: int | None = None,
                         shard_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """One deterministic pass in source order, `config.eval_margin` crops, no augmentation.

  Host h reads the contiguous block [h * ceil(N / hosts), ...) of the source. Every
  host yields ceil(ceil(N / hosts) / per-host batch) full batches; the padding
  (copies of a real example) has `mask` False, so each record appears exactly once
  with mask True across all hosts.
  """
  return iter(eval_dataset(data_source, batch_size=batch_size, config=config,
                           shard_index=shard_index, shard_count=shard_count))


def _landmarks_only(data_source: Any) -> Any:
  """A TFDS data source that skips image decoding, or the source itself."""
  if not dataclasses.is_dataclass(data_source) or not hasattr(data_source, "decoders"):
    return data_source
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    decoders = dict(data_source.decoders or {})
    decoders["image"] = tfds.decode.SkipDecoding()
    return dataclasses.replace(data_source, decoders=decoders)
  except Exception:  # pylint: disable=broad-except
    return data_source


def read_fields(data_source: Sequence[dict[str, Any]], indices: Sequence[int],
                field: str) -> np.ndarray:
  """`field` of records `indices`, stacked, without decoding images (`_landmarks_only`)."""
  source = _landmarks_only(data_source)
  return np.stack([np.asarray(source[int(i)][field]) for i in indices])


def eval_normalized_landmarks(data_source: Sequence[dict[str, Any]], margin: float = 0.05,
                              num_records: int | None = None) -> np.ndarray:
  """The landmarks of the first `num_records` records (None: all) in their evaluation
  crops, float32 (K, n, 2), normalised.

  The crop depends only on the landmarks, so no image is warped; for TFDS sources
  the image decoder is skipped (`_landmarks_only`), so only the record bytes are read.
  Pass the TFDS source itself, not a view of it, for that to apply.
  """
  source = _landmarks_only(data_source)
  count = len(source) if num_records is None else min(num_records, len(source))
  landmarks = np.stack([np.asarray(source[i]["landmarks"], np.float64)
                        for i in range(count)])
  return geometry.eval_normalized(landmarks, margin)


def measure(iterator: Iterator[dict[str, np.ndarray]], num_batches: int,
            warmup: int = 1) -> dict[str, float]:
  """Examples/s of an iterator over `num_batches` batches after `warmup` ones."""
  for _ in range(warmup):
    next(iterator)
  start = time.perf_counter()
  examples = 0
  for _ in range(num_batches):
    batch = next(iterator)
    examples += int(batch["index"].shape[0])
  elapsed = time.perf_counter() - start
  return {"images_per_s": examples / elapsed, "seconds": elapsed, "images": examples}
