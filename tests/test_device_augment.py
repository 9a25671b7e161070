"""On-device augmentation (`device_augment`) and the crop cache (`crop_cache`): its
geometry against the host pipeline's, and the statistics of both paths."""

from __future__ import annotations

import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from asmnet_jax.core import geometry
from asmnet_jax.data import augment
from asmnet_jax.data import crop_cache
from asmnet_jax.data import device_augment
from asmnet_jax.data import pipeline as ip
from asmnet_jax.data import registry
from asmnet_jax.tools import input_benchmark
from tests.test_input_pipeline import NO_PHOTO, _blob_record, _centroid, make_records

# The paper's geometric augmentation, flips, and every photometric term.
PAPER = dict(rotation_deg=31.5, scale_range=(0.8, 1.0), flip_probability=0.5,
             brightness=0.2, contrast=0.3, colour=0.3, noise=0.05, salt_pepper=0.02,
             # `synthetic_source`'s ring of 68 points at angles 2 pi k / 68: k mirrors
             # to 34 - k.
             mirror_map=tuple((34 - k) % 68 for k in range(68)))


def test_crop_matrix_is_the_host_crop_matrix():
  rng = np.random.default_rng(0)
  landmarks = make_records(1, 120, 100)[0]["landmarks"]
  cases = [(rng.uniform(0, 0.1, 4), 25.0, 0.85), (np.full(4, 0.05), -40.0, 1.3),  # clamped.
           (np.zeros(4), 0.0, 1.0)]
  margins, rotations, scales = (np.array(v, np.float32) for v in zip(*cases))
  got = jax.jit(jax.vmap(device_augment.crop_matrix, (None, 0, 0, 0)))(
      landmarks, margins, rotations, scales)
  for k, (margin, rotation, scale) in enumerate(cases):
    expected, _ = geometry.crop_matrix(landmarks, margin, rotation, scale)
    np.testing.assert_allclose(got[k], expected, rtol=2e-5, atol=2e-5)


def test_warp_is_the_host_bilinear_warp():
  image = make_records(1, 60, 50)[0]["image"]
  # Up-sampling by ~1.3 with a rotation: the host samples without box-filtering too.
  t = np.radians(20.0)
  crop_to_image = np.array([[0.7 * np.cos(t), -0.7 * np.sin(t), 10.0],
                            [0.7 * np.sin(t), 0.7 * np.cos(t), 5.0]])
  host = augment.warp_image(image, crop_to_image, 48).astype(np.float64)
  warp = jax.jit(device_augment.warp, static_argnums=2)
  device = np.asarray(warp(image, crop_to_image.astype(np.float32), 48))
  inner = (slice(4, -4), slice(4, -4))  # PIL and the gather treat the border differently.
  assert np.abs(host[inner] - device[inner]).max() <= 1.01  # the host rounds to uint8.


def _device_batch(records, config, batch_size, seed=0, step=0):
  margin = crop_cache.cache_margin(config)
  cache = crop_cache.build(records, crop_cache.cache_size(config, margin), margin)
  batch = next(crop_cache.train_batches(cache, batch_size=batch_size, seed=seed,
                                        shard_index=0, shard_count=1, start_step=step))
  fn = jax.jit(device_augment.make_augment(config, len(records[0]["landmarks"])))
  out = fn(jax.random.fold_in(jax.random.key(seed), step), batch)
  return {k: np.asarray(v) for k, v in out.items()}


def test_device_landmarks_follow_pixels_and_roll_follows_rotation():
  """A spot drawn at landmark 3 ends up at its denormalised position, as on the host."""
  point = np.array([47.3, 61.8])
  config = ip.InputConfig(image_size=64, **NO_PHOTO, rotation_deg=30.0,
                          scale_range=(0.8, 1.15))
  batch = _device_batch([_blob_record(point)] * 8, config, 8)
  for b in range(8):
    expected = geometry.denormalize_landmarks(batch["landmarks"][b, 3], 64)
    np.testing.assert_allclose(_centroid(batch["image"][b]), expected, atol=0.3)
  np.testing.assert_allclose(batch["pose"][:, :2], np.tile([5.0, -3.0], (8, 1)))
  roll_delta = (batch["pose"][:, 2] - 170.0 + 180.0) % 360.0 - 180.0
  assert np.abs(roll_delta).max() <= 30.0 + 1e-3 and np.ptp(roll_delta) > 1.0
  # The roll change is the rotation of the shape: of the line through points 0 and 6.
  src = _blob_record(point)["landmarks"]
  dst = batch["landmarks"]
  angle = lambda p: np.degrees(np.arctan2(p[..., 6, 1] - p[..., 0, 1],  # noqa: E731
                                          p[..., 6, 0] - p[..., 0, 0]))
  turned = (angle(dst) - angle(src) + 180.0) % 360.0 - 180.0
  # Normalised coordinates scale x and y alike only for square boxes: compare loosely.
  np.testing.assert_allclose(turned, roll_delta, atol=6.0)


def test_both_paths_draw_the_same_distributions():
  """Landmark spread, pixel moments, the roll-change histogram and the flip share of
  the host pipeline and the on-device path agree (distributions, not values)."""
  # Smooth face-like images, as photos are (resampling white noise twice, through
  # the cache, would lower its variance).
  records = input_benchmark.synthetic_source(64, size=96)
  config = ip.InputConfig(image_size=32, **PAPER)
  host = next(ip.create_train_iterator(records * 4, batch_size=256, config=config, seed=1,
                                       shard_index=0, shard_count=1))
  device = _device_batch(records * 4, config, 256, seed=1)
  stats = {}
  for name, batch in (("host", host), ("device", device)):
    source_pose = np.stack([records[i % 64]["pose"] for i in batch["index"]])
    roll = (batch["pose"][:, 2] - source_pose[:, 2] + 180.0) % 360.0 - 180.0
    flipped = np.sign(batch["pose"][:, 0]) != np.sign(source_pose[:, 0])
    # Undo the flip's negation of the roll to see the drawn rotation.
    roll = np.where(flipped, -batch["pose"][:, 2] - source_pose[:, 2], roll)
    roll = (roll + 180.0) % 360.0 - 180.0
    stats[name] = {
        "landmark_mean": batch["landmarks"].mean(axis=(0, 1)),
        "landmark_std": batch["landmarks"].std(axis=(0, 1)),
        "pixel_mean": batch["image"].mean(axis=(0, 1, 2)),
        "pixel_std": batch["image"].std(axis=(0, 1, 2)),
        "roll_histogram": np.histogram(roll, bins=6, range=(-31.5, 31.5))[0] / len(roll),
        "flip_share": flipped.mean(),
    }
  h, d = stats["host"], stats["device"]
  np.testing.assert_allclose(d["landmark_mean"], h["landmark_mean"], atol=0.02)
  np.testing.assert_allclose(d["landmark_std"], h["landmark_std"], rtol=0.08)
  np.testing.assert_allclose(d["pixel_mean"], h["pixel_mean"], atol=0.03)
  np.testing.assert_allclose(d["pixel_std"], h["pixel_std"], rtol=0.1)
  # Uniform over ±31.5°: 1/6 a bin; 256 draws leave about ±0.023 a bin.
  np.testing.assert_allclose(d["roll_histogram"], 1 / 6, atol=0.08)
  np.testing.assert_allclose(h["roll_histogram"], 1 / 6, atol=0.08)
  assert abs(d["flip_share"] - 0.5) < 0.12 and abs(h["flip_share"] - 0.5) < 0.12


def test_occlusion_pastes_one_flat_patch_of_the_drawn_size():
  image = jnp.zeros((32, 32, 3))
  u = jnp.array([0.5, 0.5, 0.5, 0.4, 0.6, 0.2, 0.7, 0.9])  # apply, sides, centre, colour.
  occlude = jax.jit(device_augment.occlude, static_argnums=(2, 3))
  out = np.asarray(occlude(u, image, 0.6, (0.25, 0.25)))
  covered = (out != 0).any(axis=-1)
  # An 8 x 8 patch centred on (12.8, 19.2): columns 9..16, rows 15..22, colour u[5:].
  rows, cols = np.nonzero(covered)
  assert (rows.min(), rows.max(), cols.min(), cols.max()) == (15, 22, 9, 16)
  assert covered.sum() == 64
  np.testing.assert_allclose(out[covered], np.tile([0.2, 0.7, 0.9], (64, 1)), rtol=1e-6)
  host = augment.occlude(np.zeros((32, 32, 3), np.float32), np.random.default_rng(3), 1.0,
                         (0.25, 0.25))
  host_covered = (host != 0).any(axis=-1)
  assert 0 < host_covered.sum() <= 8 * 8 and len(np.unique(host[host_covered], axis=0)) == 1
  assert np.asarray(occlude(u, image, 0.4, (0.25, 0.25))).max() == 0  # u[0] >= p: none.


def _reference_random_conv(image, normal, side, keep):
  """A direct per-pixel sum over the reflected K x K neighbourhood (an independent
  computation of `augment.random_convolution`'s filtering), rescaled and mixed."""
  k = normal.shape[0]
  reach = np.abs(np.arange(k) - (k - 1) // 2) <= (side - 1) // 2
  kernel = np.where((reach[:, None] & reach[None, :])[:, :, None, None],
                    normal / np.sqrt(3.0 * side * side), 0.0)
  pad = (k - 1) // 2
  padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
  s = image.shape[0]
  convolved = np.zeros((s, s, 3))
  for y in range(s):
    for x in range(s):
      convolved[y, x] = np.einsum("ijc,ijcd->d", padded[y:y + k, x:x + k], kernel)
  rescaled = ((convolved - convolved.mean(axis=(0, 1))) / convolved.std(axis=(0, 1))
              * image.std(axis=(0, 1)) + image.mean(axis=(0, 1)))
  return np.clip(keep * image + (1 - keep) * rescaled, 0.0, 1.0)


def test_random_convolution_on_host_and_device_is_the_direct_sum():
  rng = np.random.default_rng(4)
  image = rng.uniform(0.2, 0.8, (20, 20, 3)).astype(np.float32)
  normal = rng.standard_normal((7, 7, 3, 3)).astype(np.float32)
  conv = jax.jit(device_augment.random_convolution, static_argnums=3)
  for index, side in enumerate(augment.RANDOM_CONV_KERNELS):
    expected = _reference_random_conv(image, normal, side, 0.3)
    u = np.array([0.1, (index + 0.5) / len(augment.RANDOM_CONV_KERNELS), 0.3], np.float32)
    np.testing.assert_allclose(conv(u, normal, image, 0.5), expected, atol=2e-5)
    # The host draws apply, side, keep, then the weights: replay them.
    draws = np.random.default_rng(side)
    host = augment.random_convolution(image, np.random.default_rng(side), 1.0)
    draws.random()
    host_side = int(draws.choice(augment.RANDOM_CONV_KERNELS))
    keep = float(draws.uniform())
    reference = _reference_random_conv(image, draws.standard_normal((7, 7, 3, 3)), host_side, keep)
    np.testing.assert_allclose(host, reference, atol=2e-5)
  u = np.array([0.6, 0.9, 0.3], np.float32)  # u[0] >= p: untouched.
  np.testing.assert_array_equal(conv(u, normal, image, 0.5), image)
  assert augment.random_convolution(image, rng, 0.0) is image


def test_random_convolution_changes_pixels_not_labels():
  """On both paths the same draws give the same crop geometry with and without the
  random convolution; about the drawn share of crops changes."""
  records = input_benchmark.synthetic_source(16, size=96)
  base = ip.InputConfig(image_size=32, **PAPER)
  conv = ip.InputConfig(image_size=32, **PAPER, random_conv_probability=0.5)
  host = [next(ip.create_train_iterator(records * 4, batch_size=64, config=c, seed=2,
                                        shard_index=0, shard_count=1)) for c in (base, conv)]
  device = [_device_batch(records * 4, c, 64, seed=2) for c in (base, conv)]
  for without, with_conv in (host, device):
    np.testing.assert_array_equal(with_conv["landmarks"], without["landmarks"])
    np.testing.assert_array_equal(with_conv["pose"], without["pose"])
    changed = np.abs(with_conv["image"] - without["image"]).max(axis=(1, 2, 3)) > 1e-3
    assert 0.25 < changed.mean() < 0.75
    assert with_conv["image"].min() >= 0.0 and with_conv["image"].max() <= 1.0


def test_cache_of_another_build_version_is_rebuilt(tmp_path, caplog):
  records = make_records(4, 60, 50)
  directory = str(tmp_path / "train-40px")
  v1 = crop_cache.load_or_build(directory, {"version": "1.0.0"}, records, 40, 0.35)
  assert json.loads(open(os.path.join(directory, "meta.json")).read())["version"] == "1.0.0"
  # Another version's records, same settings: rebuilt from them, never read.
  changed = [dict(r, landmarks=r["landmarks"] * 0.9 + 2.0) for r in records]
  with caplog.at_level(logging.WARNING):
    v2 = crop_cache.load_or_build(directory, {"version": "2.0.0"}, changed, 40, 0.35)
  assert "rebuilding" in caplog.text
  assert json.loads(open(os.path.join(directory, "meta.json")).read())["version"] == "2.0.0"
  expected = crop_cache.build(changed, 40, 0.35)
  np.testing.assert_array_equal(v2.images, expected.images)
  np.testing.assert_allclose(v2.landmarks, expected.landmarks)
  assert isinstance(v2.images, np.memmap) and not np.allclose(v1.landmarks, v2.landmarks)
  caplog.clear()
  with caplog.at_level(logging.WARNING):  # the same key: read as it is.
    crop_cache.load_or_build(directory, {"version": "2.0.0"}, records, 40, 0.35)
  assert "rebuilding" not in caplog.text
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".building")]


def test_cache_margin_holds_every_training_crop():
  config = ip.InputConfig(image_size=224, rotation_deg=31.5, scale_range=(0.8, 1.0))
  margin = crop_cache.cache_margin(config)
  # The widest training crop of a square face box, turned by the largest rotation.
  box = np.array([[0.0, 0.0], [100.0, 100.0], [0.0, 100.0], [100.0, 0.0]])
  image_to_norm, _ = geometry.crop_matrix(box, np.full(4, 0.1), 31.5, 0.8)
  corners = geometry.apply_affine(geometry.invert_affine(image_to_norm),
                                  np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]))
  reach = np.abs(corners - 50.0).max()
  assert 100.0 * (0.5 + margin) - 1e-6 <= reach <= 100.0 * (0.5 + margin) + 1e-6  # tight.
  assert crop_cache.cache_margin(config, record_margin=0.35) == 0.35
  size = crop_cache.cache_size(config, 0.35)
  assert size % 2 == 0 and size == 2 * np.ceil(224 * 1.7 / 1.1 / 2)


def test_cached_batches_follow_the_training_order():
  records = make_records(10, 40, 40)
  cache = crop_cache.build(records, 24, 0.35)
  host = ip.create_train_iterator(records, batch_size=4, config=ip.InputConfig(image_size=32),
                                  seed=5, shard_index=1, shard_count=2, start_step=3)
  cached = crop_cache.train_batches(cache, batch_size=4, seed=5, shard_index=1, shard_count=2,
                                    start_step=3)
  for _ in range(3):
    a, b = next(host), next(cached)
    np.testing.assert_array_equal(a["index"], b["index"])
    np.testing.assert_array_equal(b["image"], cache.images[b["index"]])
    np.testing.assert_allclose(b["pose"], np.stack([records[i]["pose"] for i in b["index"]]))


def test_training_loop_with_on_device_augmentation(tiny_data_dir, tmp_path):
  """train_and_evaluate's on-device path end to end (a tiny network: ASMNet's step
  would compile for tens of seconds): the crop cache is built beside the dataset,
  keyed by its version. (A resumed run's stream: the batches by
  `test_cached_batches_follow_the_training_order`, the draws by the step's key.)"""
  from asmnet_jax.train import loop  # pylint: disable=g-import-not-at-top
  from tests.test_train import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config(tiny_data_dir, num_epochs=1, eval_every_steps=6,
                       checkpoint_every_steps=3, precise_bn_batches=1)
  config.input.worker_count = 0
  config.input.augment_on_device = True
  config.input.flip_probability = config.input.occlusion_probability = 0.5
  workdir = str(tmp_path / "w")
  results = loop.train_and_evaluate(config, workdir)
  assert np.isfinite(results["nme"])
  root = os.path.join(tiny_data_dir, "crop_cache", "synthetic_faces", "tiny")
  in_config = ip.InputConfig(image_size=32, rotation_deg=10.0, scale_range=(0.9, 1.1))
  size = crop_cache.cache_size(in_config, crop_cache.cache_margin(in_config))
  assert os.listdir(root) == [f"train-{size}px"]
  with open(os.path.join(root, f"train-{size}px", "meta.json")) as f:
    meta = json.load(f)
  assert (meta["dataset"], meta["split"], meta["records"]) == ("synthetic_faces", "train", 48)
  built_version = str(registry.builder_class("synthetic_faces").VERSION)
  assert meta["version"] == built_version and meta["size"] == size
  with open(os.path.join(workdir, loop.METRICS_FILE)) as f:
    records = [json.loads(line) for line in f]
  assert [r["step"] for r in records if "loss" in r] == list(range(1, 7))
  assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)
