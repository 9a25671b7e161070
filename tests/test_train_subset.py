"""config.max_train_examples: training reads the first n records only, in-process and
through a grain worker process, and the ASM fit reads their landmarks undecoded."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from tensorflow_datasets.core.features import image_feature

from asmnet_jax.core import asm
from asmnet_jax.core import geometry
from asmnet_jax.data import pipeline
from asmnet_jax.data import registry
from asmnet_jax.train import loop
from tests.test_train import tiny_config

NUM_RECORDS = 16  # of the 48 in synthetic_faces/tiny's train split.
BATCH = 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """`synthetic_faces/tiny` built once for this module."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  registry.prepare("synthetic_faces/tiny", data_dir)
  return data_dir


@pytest.fixture
def image_decodes(monkeypatch):
  """A list that grows by one for every image TFDS decodes in this process."""
  decodes = []
  decode = image_feature.Image.decode_example_np

  def counting(self, example):
    decodes.append(1)
    return decode(self, example)

  monkeypatch.setattr(image_feature.Image, "decode_example_np", counting)
  return decodes


def _train_source(data_dir: str):
  builder = registry.get_builder("synthetic_faces/tiny", data_dir)
  return registry.open_splits(builder, ["train"])["train"]


def _first_landmarks(source, count: int) -> np.ndarray:
  """(count, n, 2) pixel landmarks of the first records, read one by one."""
  return np.stack([np.asarray(source[i]["landmarks"], np.float64) for i in range(count)])


@pytest.mark.parametrize("worker_count", [0, 1])
def test_first_records_pickle_and_feed_the_stream(data_dir, worker_count):
  source = _train_source(data_dir)
  assert len(source) > 2 * NUM_RECORDS
  first = loop._first_records(source, NUM_RECORDS)
  assert len(first) == NUM_RECORDS
  assert len(loop._first_records(source, 10**6)) == len(source)
  # A worker process receives the view pickled: it must survive the round trip.
  restored = pickle.loads(pickle.dumps(first))
  np.testing.assert_array_equal(_first_landmarks(restored, NUM_RECORDS),
                                _first_landmarks(source, NUM_RECORDS))
  config = pipeline.InputConfig(image_size=32, worker_count=worker_count)
  stream = pipeline.create_train_iterator(first, batch_size=BATCH, config=config, seed=0,
                                          shard_index=0, shard_count=1)
  try:
    epochs = [np.concatenate([next(stream)["index"] for _ in range(NUM_RECORDS // BATCH)])
              for _ in range(2)]
  finally:
    stream.close()
  for indices in epochs:  # Each epoch is a permutation of exactly the first n records.
    np.testing.assert_array_equal(np.sort(indices), np.arange(NUM_RECORDS))


def test_asm_shapes_of_the_first_records_decode_no_image(data_dir, image_decodes):
  source = _train_source(data_dir)
  shapes = pipeline.eval_normalized_landmarks(source, 0.05, NUM_RECORDS)
  assert not image_decodes
  expected = geometry.eval_normalized(_first_landmarks(source, NUM_RECORDS), 0.05)
  assert len(image_decodes) == NUM_RECORDS  # Reading them normally does decode.
  np.testing.assert_allclose(shapes, expected, atol=1e-6)
  assert len(pipeline.eval_normalized_landmarks(source, 0.05)) == len(source)


@pytest.mark.slow
def test_train_on_first_records_with_a_worker(data_dir, tmp_path, image_decodes,
                                              monkeypatch):
  """The default config's worker process (it used to die unpickling the subset)."""
  fits = []
  fit = loop.fit_or_load_shape_model

  def counting_fit(*args, **kwargs):
    before = len(image_decodes)
    shape_model = fit(*args, **kwargs)
    fits.append(len(image_decodes) - before)
    return shape_model

  monkeypatch.setattr(loop, "fit_or_load_shape_model", counting_fit)
  workdir = str(tmp_path / "run")
  config = tiny_config(data_dir, max_train_examples=NUM_RECORDS, batch_size=BATCH,
                       num_epochs=2, precise_bn_batches=0, eval_every_steps=1000,
                       checkpoint_every_steps=1000)
  assert config.input.worker_count == 1
  loop.train_and_evaluate(config, workdir)

  assert fits == [0]  # The ASM fit decoded no image.
  with open(os.path.join(workdir, loop.METRICS_FILE)) as f:
    steps = [r["step"] for r in map(json.loads, f) if "loss" in r]
  # n // batch steps per epoch (the full split would give 48 // 8 = 6).
  assert steps == list(range(1, 2 * (NUM_RECORDS // BATCH) + 1))
  # The ASM is that of the first n shapes: its mean is their mean.
  shape_model = asm.ShapeModel.load(os.path.join(workdir, loop.SHAPE_MODEL_FILE))
  shapes = geometry.eval_normalized(_first_landmarks(_train_source(data_dir),
                                                     NUM_RECORDS), config.input.eval_margin)
  np.testing.assert_allclose(shape_model.mean, shapes.reshape(NUM_RECORDS, -1).mean(0),
                             atol=1e-5)


def test_asm_is_refitted_when_what_it_was_fitted_to_changes(data_dir, tmp_path):
  source = _train_source(data_dir)
  workdir = str(tmp_path)
  config = tiny_config(data_dir, max_train_examples=NUM_RECORDS)
  config.variance_kept = 0.9
  first = loop.fit_or_load_shape_model(config, workdir, source, NUM_RECORDS)
  shapes = geometry.eval_normalized(_first_landmarks(source, NUM_RECORDS),
                                    config.input.eval_margin).reshape(NUM_RECORDS, -1)
  # Unchanged: the cached file is used, even if the data were to differ.
  again = loop.fit_or_load_shape_model(config, workdir, source, 8)
  np.testing.assert_array_equal(again.components, first.components)
  # A resumed run on other data (or keeping more variance) refits, and records it.
  config.variance_kept = 0.999
  config.max_train_examples = 32
  refit = loop.fit_or_load_shape_model(config, workdir, source, 32)
  all_shapes = geometry.eval_normalized(_first_landmarks(source, 32),
                                        config.input.eval_margin).reshape(32, -1)
  np.testing.assert_allclose(refit.mean, all_shapes.mean(0), atol=1e-5)
  assert not np.allclose(refit.mean, shapes.mean(0), atol=1e-4)
  assert refit.num_components > first.num_components
  with open(os.path.join(workdir, loop.SHAPE_MODEL_RECORD_FILE)) as f:
    assert json.load(f) == loop.shape_model_fit(config)
  stored = asm.ShapeModel.load(os.path.join(workdir, loop.SHAPE_MODEL_FILE))
  np.testing.assert_array_equal(stored.mean, refit.mean)
