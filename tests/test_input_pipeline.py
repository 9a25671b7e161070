"""Tests for `asmnet_jax.data.pipeline` and `asmnet_jax.data.augment` on synthetic records."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from asmnet_jax.core import geometry
from asmnet_jax.data import pipeline as ip
from tests import procfs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SIZE = 64  # model input side used by most tests (speed).
N_POINTS = 12
NO_PHOTO = dict(brightness=0.0, contrast=0.0, colour=0.0, noise=0.0, salt_pepper=0.0)


def _shape(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """A face-like ring of points, float32 (N_POINTS, 2), well inside the image."""
  t = np.linspace(0.0, 2.0 * np.pi, N_POINTS, endpoint=False)
  centre = np.array([width, height]) * rng.uniform(0.4, 0.6, size=2)
  radius = np.array([width, height]) * rng.uniform(0.15, 0.25, size=2)
  points = centre + radius * np.stack([np.cos(t), np.sin(t)], axis=1)
  return (points + rng.normal(0.0, 1.0, points.shape)).astype(np.float32)


def make_records(count: int, height: int = 96, width: int = 80, seed: int = 0,
                 attributes: bool = False) -> list[dict]:
  rng = np.random.default_rng(seed)
  records = []
  for i in range(count):
    record = {
        "image": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        "landmarks": _shape(rng, height, width),
        "crop_box": np.array([10.0, 20.0, 10.0 + width, 20.0 + height], np.float32),
        "pose": rng.uniform(-30, 30, size=3).astype(np.float32),
        "filename": f"img_{i}.png",
    }
    if attributes:
      record["attributes"] = rng.integers(0, 2, size=6).astype(np.int64)
    records.append(record)
  return records


def _config(**kw) -> ip.InputConfig:
  return ip.InputConfig(image_size=kw.pop("image_size", SIZE), **kw)


def _take(iterator, count: int) -> list[dict]:
  return [next(iterator) for _ in range(count)]


def _assert_batches_equal(a: list[dict], b: list[dict]) -> None:
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for key in x:
      np.testing.assert_array_equal(x[key], y[key], err_msg=key)


# -- conventions ---------------------------------------------------------------


def test_normalize_denormalize_round_trip():
  rng = np.random.default_rng(1)
  px = rng.uniform(-10, 240, size=(5, 7, 2))
  for size in (224, 112, 63):
    norm = geometry.normalize_landmarks(px, size)
    np.testing.assert_allclose(geometry.denormalize_landmarks(norm, size), px, atol=1e-9)
    np.testing.assert_allclose(geometry.normalize_landmarks(geometry.denormalize_landmarks(norm, size), size),
                               norm, atol=1e-12)
  # Edges: the crop's left/top edge (-0.5 px from the first centre) is -0.5, the far edge +0.5.
  np.testing.assert_allclose(geometry.normalize_landmarks(np.array([-0.5, 223.5]), 224), [-0.5, 0.5])
  assert geometry.normalize_landmarks(np.zeros(2, np.float32), 8).dtype == np.float32


def test_crop_matrix_box_spans_unit_square():
  points = np.array([[10.0, 20.0], [50.0, 20.0], [30.0, 100.0]])
  m, _ = geometry.crop_matrix(points, margins=(0.0, 0.0, 0.0, 0.0))
  norm = geometry.apply_affine(m, points)
  np.testing.assert_allclose(norm.min(0), [-0.5, -0.5])
  np.testing.assert_allclose(norm.max(0), [0.5, 0.5])
  m, _ = geometry.crop_matrix(points, margins=(0.1, 0.2, 0.3, 0.4))
  norm = geometry.apply_affine(m, points)
  # Left margin 0.1 of the width and right 0.3: box width 1.4 w.
  np.testing.assert_allclose(norm[:, 0].min(), -0.5 + 0.1 / 1.4)
  np.testing.assert_allclose(norm[:, 0].max(), 0.5 - 0.3 / 1.4)
  np.testing.assert_allclose(norm[:, 1].min(), -0.5 + 0.2 / 1.6)


# -- batches -------------------------------------------------------------------


def test_train_batch_shapes_dtypes_ranges():
  records = make_records(20, attributes=True)
  config = _config(rotation_deg=25.0, scale_range=(0.8, 1.2), noise=0.05, salt_pepper=0.01)
  batch = next(ip.create_train_iterator(records, batch_size=8, config=config, seed=0,
                                        shard_index=0, shard_count=1))
  assert batch["image"].shape == (8, SIZE, SIZE, 3) and batch["image"].dtype == np.float32
  assert batch["image"].min() >= 0.0 and batch["image"].max() <= 1.0
  assert batch["landmarks"].shape == (8, N_POINTS, 2) and batch["landmarks"].dtype == np.float32
  assert np.abs(batch["landmarks"]).max() <= 0.5 + 1e-6
  assert batch["pose"].shape == (8, 3) and batch["pose"].dtype == np.float32
  assert batch["mask"].shape == (8,) and batch["mask"].dtype == np.bool_ and batch["mask"].all()
  assert batch["crop_to_image"].shape == (8, 2, 3) and batch["crop_to_image"].dtype == np.float32
  assert batch["index"].shape == (8,)
  assert batch["attributes"].shape == (8, 6)


def test_eval_batch_shapes_and_landmarks_match_fit_helper():
  records = make_records(7)
  config = _config()
  batches = list(ip.create_eval_iterator(records, batch_size=4, config=config,
                                         shard_index=0, shard_count=1))
  assert [b["image"].shape for b in batches] == [(4, SIZE, SIZE, 3)] * 2
  landmarks = np.concatenate([b["landmarks"][b["mask"]] for b in batches])
  expected = ip.eval_normalized_landmarks(records, margin=config.eval_margin)
  assert expected.shape == (7, N_POINTS, 2) and expected.dtype == np.float32
  np.testing.assert_allclose(landmarks, expected, atol=1e-5)
  given = np.stack([r["landmarks"] for r in records])
  np.testing.assert_array_equal(geometry.eval_normalized(given, config.eval_margin), expected)
  # The evaluation margin: the tightest points sit 0.05 / 1.1 inside the edges.
  np.testing.assert_allclose(np.abs(expected).max(axis=(1, 2)), 0.5 - 0.05 / 1.1, atol=1e-6)


def _blob_record(point: np.ndarray, height: int = 120, width: int = 100) -> dict:
  """Black image with a Gaussian spot centred exactly at `point` (pixel-centre coords)."""
  rng = np.random.default_rng(5)
  landmarks = _shape(rng, height, width)
  landmarks[3] = point
  yy, xx = np.mgrid[0:height, 0:width]
  spot = np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * 2.0**2))
  image = np.repeat((255 * spot)[..., None], 3, axis=-1).round().astype(np.uint8)
  return {"image": image, "landmarks": landmarks, "pose": np.array([5.0, -3.0, 170.0], np.float32),
          "crop_box": np.zeros(4, np.float32), "filename": "blob"}


def _centroid(image: np.ndarray) -> np.ndarray:
  """Intensity centroid (x, y) of an (S, S, 3) image in pixel-centre coordinates."""
  weight = image[..., 0].astype(np.float64)
  weight = np.where(weight > 0.05 * weight.max(), weight, 0.0)
  yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
  return np.array([(weight * xx).sum(), (weight * yy).sum()]) / weight.sum()


@pytest.mark.parametrize("geometric", [False, True])
@pytest.mark.parametrize("size", [64, 112])
def test_landmarks_follow_pixels(geometric, size):
  """Independent check: a spot drawn at landmark 3 ends up at its denormalised position."""
  point = np.array([47.3, 61.8])
  records = [_blob_record(point)] * 8
  extra = dict(rotation_deg=30.0, scale_range=(0.8, 1.15)) if geometric else {}
  config = _config(image_size=size, **NO_PHOTO, **extra)
  batch = next(ip.create_train_iterator(records, batch_size=8, config=config, seed=3,
                                        shard_index=0, shard_count=1))
  for b in range(8):
    expected = geometry.denormalize_landmarks(batch["landmarks"][b, 3], size)
    np.testing.assert_allclose(_centroid(batch["image"][b]), expected, atol=0.25)
  if geometric:
    # Rotation changes only the roll, by the drawn angle (wrapped to (-180, 180]).
    assert np.ptp(batch["pose"][:, 2]) > 1.0
    np.testing.assert_allclose(batch["pose"][:, :2], np.tile([5.0, -3.0], (8, 1)))
    roll_delta = (batch["pose"][:, 2] - 170.0 + 180.0) % 360.0 - 180.0
    assert np.abs(roll_delta).max() <= 30.0 + 1e-3
    # The roll change equals the in-image rotation of the shape (eye line analogue).
    for b in range(8):
      src = records[b]["landmarks"]
      dst = geometry.crop_to_image_points(batch["landmarks"][b], batch["crop_to_image"][b], size)
      np.testing.assert_allclose(dst, src, atol=1e-3)
  else:
    np.testing.assert_array_equal(batch["pose"], np.tile([5.0, -3.0, 170.0], (8, 1)))


def test_rotation_angle_matches_roll_change():
  """The content turns clockwise (as displayed) by exactly the roll increment."""
  point = np.array([47.3, 61.8])
  records = [_blob_record(point)] * 4
  config = _config(**NO_PHOTO, rotation_deg=40.0, margin_range=(0.05, 0.05))
  batch = next(ip.create_train_iterator(records, batch_size=4, config=config, seed=11,
                                        shard_index=0, shard_count=1))
  for b in range(4):
    a = batch["crop_to_image"][b, :, :2].astype(np.float64)
    image_to_crop = np.linalg.inv(a)
    # image_to_crop = diag(sx, sy) @ R: unit rows recover the rotation R.
    rot = image_to_crop / np.linalg.norm(image_to_crop, axis=1, keepdims=True)
    angle = np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))
    delta = (batch["pose"][b, 2] - 170.0 + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(angle, delta, atol=1e-3)


def test_zoom_is_clamped_inside_crop():
  records = make_records(16)
  config = _config(**NO_PHOTO, rotation_deg=30.0, scale_range=(1.5, 2.0),
                   margin_range=(0.0, 0.02))
  batch = next(ip.create_train_iterator(records, batch_size=16, config=config, seed=0,
                                        shard_index=0, shard_count=1))
  assert np.abs(batch["landmarks"]).max() <= 0.5 + 1e-5
  assert batch["mask"].all()


def test_crop_to_image_maps_back_to_source():
  records = make_records(12)
  config = _config(rotation_deg=20.0, scale_range=(0.85, 1.0))
  batch = next(ip.create_train_iterator(records, batch_size=12, config=config, seed=2,
                                        shard_index=0, shard_count=1))
  source = np.stack([records[i]["landmarks"] for i in batch["index"]])
  mapped = geometry.crop_to_image_points(batch["landmarks"], batch["crop_to_image"], SIZE)
  np.testing.assert_allclose(mapped, source, atol=2e-3)
  # Eval too.
  batch = next(ip.create_eval_iterator(records, batch_size=12, config=config,
                                       shard_index=0, shard_count=1))
  mapped = geometry.crop_to_image_points(batch["landmarks"], batch["crop_to_image"], SIZE)
  np.testing.assert_allclose(mapped, np.stack([r["landmarks"] for r in records]), atol=2e-3)


def test_downscaled_crop_keeps_alignment():
  """Big sources go through Image.reduce first; the spot must still line up."""
  point = np.array([300.4, 401.7])
  height, width = 640, 520
  rng = np.random.default_rng(0)
  landmarks = _shape(rng, height, width) * 1.6 - np.array([width, height]) * 0.3
  landmarks[3] = point
  yy, xx = np.mgrid[0:height, 0:width]
  spot = np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * 8.0**2))
  image = np.repeat((255 * spot)[..., None], 3, axis=-1).round().astype(np.uint8)
  record = {"image": image, "landmarks": landmarks, "pose": np.zeros(3, np.float32)}
  batch = next(ip.create_eval_iterator([record], batch_size=1, config=_config(),
                                       shard_index=0, shard_count=1))
  expected = geometry.denormalize_landmarks(batch["landmarks"][0, 3], SIZE)
  np.testing.assert_allclose(_centroid(batch["image"][0]), expected, atol=0.3)


# -- order, determinism, sharding ------------------------------------------------


def test_train_determinism_by_seed():
  records = make_records(16)
  config = _config(rotation_deg=10.0, noise=0.02)
  kw = dict(batch_size=4, config=config, shard_index=0, shard_count=1)
  a = _take(ip.create_train_iterator(records, seed=7, **kw), 5)
  b = _take(ip.create_train_iterator(records, seed=7, **kw), 5)
  _assert_batches_equal(a, b)
  c = _take(ip.create_train_iterator(records, seed=8, **kw), 5)
  assert not np.array_equal(np.concatenate([x["index"] for x in a]),
                            np.concatenate([x["index"] for x in c]))
  # Threads do not change the stream.
  d = _take(ip.create_train_iterator(records, seed=7, batch_size=4, shard_index=0,
                                     shard_count=1,
                                     config=dataclasses.replace(config, num_threads=0)), 5)
  _assert_batches_equal(a, d)


def test_epochs_reshuffle_and_cover():
  records = make_records(24)
  config = _config(**NO_PHOTO)
  steps = ip.steps_per_epoch(len(records), 6, 1)
  assert steps == 4
  batches = _take(ip.create_train_iterator(records, batch_size=6, config=config, seed=0,
                                           shard_index=0, shard_count=1), 3 * steps)
  epochs = [np.concatenate([b["index"] for b in batches[e * steps:(e + 1) * steps]])
            for e in range(3)]
  for order in epochs:
    np.testing.assert_array_equal(np.sort(order), np.arange(24))
  assert not np.array_equal(epochs[0], epochs[1])
  assert not np.array_equal(epochs[1], epochs[2])
  # The same record is augmented differently in different epochs (random margins).
  first = {int(i): b["landmarks"][k] for b in batches[:steps] for k, i in enumerate(b["index"])}
  second = {int(i): b["landmarks"][k] for b in batches[steps:2 * steps]
            for k, i in enumerate(b["index"])}
  assert not np.allclose(first[0], second[0])


def test_train_shards_are_disjoint_and_cover():
  records = make_records(26)  # 26 // 2 = 13 per host, 3 batches of 4 -> 1 dropped per host.
  config = _config(**NO_PHOTO)
  steps = ip.steps_per_epoch(len(records), 8, 2)
  assert steps == 3
  per_host = []
  for shard in range(2):
    batches = _take(ip.create_train_iterator(records, batch_size=8, config=config, seed=4,
                                             shard_index=shard, shard_count=2), steps)
    assert all(b["image"].shape[0] == 4 for b in batches)
    per_host.append(np.concatenate([b["index"] for b in batches]))
  assert not set(per_host[0]) & set(per_host[1])
  assert len(set(per_host[0]) | set(per_host[1])) == 24
  # Same example on any host layout gets the same augmentation.
  single = _take(ip.create_train_iterator(records, batch_size=8, config=config, seed=4,
                                          shard_index=0, shard_count=1), 3)
  by_index = {int(i): b["landmarks"][k] for b in single for k, i in enumerate(b["index"])}
  batches = _take(ip.create_train_iterator(records, batch_size=8, config=config, seed=4,
                                           shard_index=1, shard_count=2), steps)
  for b in batches:
    for k, i in enumerate(b["index"]):
      if int(i) in by_index:
        np.testing.assert_array_equal(b["landmarks"][k], by_index[int(i)])


def test_start_step_resumes_same_stream():
  records = make_records(20)
  config = _config(rotation_deg=15.0)
  kw = dict(batch_size=6, config=config, seed=9, shard_index=0, shard_count=1)
  full = _take(ip.create_train_iterator(records, **kw), 9)  # spans 3 epochs of 3 steps.
  resumed = _take(ip.create_train_iterator(records, start_step=4, **kw), 5)
  _assert_batches_equal(full[4:], resumed)


@pytest.mark.parametrize("count,batch,hosts", [(11, 4, 1), (11, 4, 2), (3, 4, 2), (8, 4, 1)])
def test_eval_covers_every_example_once(count, batch, hosts):
  records = make_records(count)
  seen = []
  num_batches = set()
  for shard in range(hosts):
    batches = list(ip.create_eval_iterator(records, batch_size=batch, config=_config(),
                                           shard_index=shard, shard_count=hosts))
    num_batches.add(len(batches))
    for b in batches:
      assert b["image"].shape[0] == batch // hosts
      assert b["mask"].dtype == np.bool_
      seen.extend(b["index"][b["mask"]].tolist())
      assert np.isfinite(b["landmarks"]).all()
  assert len(num_batches) == 1  # hosts stay in step.
  assert sorted(seen) == list(range(count))


def test_eval_is_deterministic_and_unaugmented():
  records = make_records(5)
  config = _config(rotation_deg=30.0, noise=0.1)
  a = list(ip.create_eval_iterator(records, batch_size=5, config=config, shard_index=0,
                                   shard_count=1))
  b = list(ip.create_eval_iterator(records, batch_size=5, config=config, shard_index=0,
                                   shard_count=1))
  _assert_batches_equal(a, b)
  np.testing.assert_array_equal(a[0]["pose"], np.stack([r["pose"] for r in records]))


def test_errors():
  records = make_records(5)
  with pytest.raises(ValueError, match="5 examples cannot fill one global batch of 8"):
    ip.create_train_iterator(records, batch_size=8, config=_config(), seed=0,
                             shard_index=0, shard_count=1)
  with pytest.raises(ValueError, match="global batch 5 is not divisible by 2 hosts"):
    ip.create_eval_iterator(records, batch_size=5, config=_config(), shard_index=0,
                            shard_count=2)
  with pytest.raises(ValueError, match=r"shard_index 2 not in \[0, 2\)"):
    ip.create_eval_iterator(records, batch_size=4, config=_config(), shard_index=2,
                            shard_count=2)
  with pytest.raises(ValueError, match="empty data source"):
    ip.create_eval_iterator([], batch_size=4, config=_config(), shard_index=0,
                            shard_count=1)


def test_default_shards_from_jax():
  records = make_records(8)
  batch = next(ip.create_train_iterator(records, batch_size=4, config=_config(), seed=0))
  assert batch["image"].shape[0] == 4  # one process: the whole global batch.


@pytest.mark.slow
def test_worker_processes_give_same_stream():
  records = make_records(12)
  config = _config(rotation_deg=10.0)
  kw = dict(batch_size=4, seed=1, shard_index=0, shard_count=1)
  a = _take(ip.create_train_iterator(records, config=config, **kw), 4)
  it = ip.create_train_iterator(records, config=dataclasses.replace(config, worker_count=2), **kw)
  b = _take(it, 4)
  it.close()
  _assert_batches_equal(a, b)
  # Copied out of grain's shared memory: nothing outlives the iterator.
  assert all(type(v) is np.ndarray for batch in b for v in batch.values())


# A parent that starts a child calling `exit_with_parent`, prints its pid, and waits.
_PARENT_SCRIPT = textwrap.dedent("""
    import os, subprocess, sys, time
    child_code = (
        "import time\\n"
        "from asmnet_jax.data.pipeline import exit_with_parent\\n"
        f"exit_with_parent({os.getpid()})\\n"
        "print('ready', flush=True)\\n"
        "time.sleep(120)\\n")
    child = subprocess.Popen([sys.executable, "-c", child_code], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "ready"
    print(child.pid, flush=True)
    time.sleep(120)
""")


@pytest.mark.skipif(not procfs.AVAILABLE, reason="reads /proc")
def test_worker_exits_when_its_parent_is_killed():
  """`exit_with_parent`, the grain worker init: SIGKILL the parent and the child ends."""
  parent = subprocess.Popen([sys.executable, "-c", _PARENT_SCRIPT], cwd=REPO,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": REPO})
  child = int(parent.stdout.readline())
  assert procfs.running(child)
  parent.kill()
  parent.wait()
  assert not procfs.wait_until_ended([child], 20)


# -- a real TFDS data source --------------------------------------------------------


def test_tfds_data_source(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  from PIL import Image
  from asmnet_jax.data.features import face_features

  records = make_records(6, height=40, width=50)

  def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()

  class TinyFaces(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=face_features(N_POINTS))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for i, r in enumerate(records):
        yield i, {**r, "image": png(r["image"])}

  builder = TinyFaces(data_dir=str(tmp_path), file_format="array_record")
  builder.download_and_prepare()
  source = builder.as_data_source("train")
  # Records keep their content; order in the source is the builder's.
  by_name = {str(r["filename"]): r for r in records}
  order = [by_name[s["filename"].decode() if isinstance(s["filename"], bytes)
                   else s["filename"]] for s in (source[i] for i in range(len(source)))]
  expected = geometry.eval_normalized(np.stack([r["landmarks"] for r in order]), 0.05)
  np.testing.assert_allclose(ip.eval_normalized_landmarks(source), expected, atol=1e-6)
  np.testing.assert_allclose(ip.eval_normalized_landmarks(source, num_records=4),
                             expected[:4], atol=1e-6)
  # The landmark-only view does not decode images.
  assert isinstance(ip._landmarks_only(source)[0]["image"], bytes)
  batch = next(ip.create_eval_iterator(source, batch_size=6, config=_config(),
                                       shard_index=0, shard_count=1))
  np.testing.assert_allclose(batch["landmarks"], expected, atol=1e-5)
  batch = next(ip.create_train_iterator(source, batch_size=4, config=_config(), seed=0,
                                        shard_index=0, shard_count=1))
  assert batch["image"].shape == (4, SIZE, SIZE, 3)


def test_training_config_defaults_are_the_pipeline_defaults():
  from asmnet_jax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  assert config_lib.input_config(config_lib.base_config()) == ip.InputConfig()


# -- horizontal flip -------------------------------------------------------------


def test_flip_mirrors_image_points_and_pose():
  """flip_probability=1 gives the mirror image of the unflipped crop: pixels reversed
  along x, points mirrored and renumbered by the map, yaw and roll negated."""
  records = make_records(4)
  perm = np.roll(np.arange(N_POINTS)[::-1], 1)  # a valid involution of 12 ring points.
  common = dict(rotation_deg=20.0, scale_range=(0.9, 1.0), **NO_PHOTO)
  plain = next(ip.create_train_iterator(records, batch_size=4, config=_config(**common),
                                        seed=3, shard_index=0, shard_count=1))
  flipped = next(ip.create_train_iterator(
      records, batch_size=4, seed=3, shard_index=0, shard_count=1,
      config=_config(flip_probability=1.0, mirror_map=tuple(perm), **common)))
  np.testing.assert_array_equal(flipped["index"], plain["index"])
  # Bilinear samples at mirrored positions: equal up to rounding of the uint8 warp.
  np.testing.assert_allclose(flipped["image"], plain["image"][:, :, ::-1], atol=1.5 / 255)
  np.testing.assert_allclose(flipped["landmarks"],
                             plain["landmarks"][:, perm] * np.array([-1.0, 1.0]), atol=1e-5)
  np.testing.assert_allclose(flipped["pose"], plain["pose"] * np.array([-1.0, 1.0, -1.0]),
                             atol=1e-4)
  # crop_to_image still maps the crop's points back onto the source landmarks.
  back = geometry.crop_to_image_points(flipped["landmarks"], flipped["crop_to_image"], SIZE)
  source = np.stack([records[i]["landmarks"] for i in flipped["index"]])
  np.testing.assert_allclose(back, source[:, perm], atol=1e-3)


def test_flip_without_mirror_map_is_refused():
  records = make_records(2)  # 12 points: no built-in map.
  iterator = ip.create_train_iterator(records, batch_size=2, shard_index=0, shard_count=1,
                                      config=_config(flip_probability=1.0))
  with pytest.raises(ValueError, match="no mirror map for 12 points"):
    next(iterator)
