"""Finding, building and opening the project's TFDS datasets.

The builders live in the repository's `datasets/` folder (one folder a dataset),
installed as the package `asmnet_jax_datasets` (not `datasets`, which would shadow
Hugging Face's); importing `asmnet_jax_datasets.<name>.<name>_dataset_builder`
registers the builder with TFDS under `<name>`. Datasets are written as
array_record and read with `as_data_source`, so no TensorFlow is needed.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Sequence

import jax
import tensorflow_datasets as tfds

BUILDERS_PACKAGE = "asmnet_jax_datasets"


def dataset_family(dataset: str) -> str:
  """`synthetic_faces/tiny` -> `synthetic_faces`; `wflw:1.0.0` -> `wflw`."""
  return dataset.split("/")[0].split(":")[0]


def known_datasets() -> list[str]:
  """The dataset folders with a builder, by name."""
  root = os.path.dirname(importlib.import_module(BUILDERS_PACKAGE).__file__)
  return sorted(name for name in os.listdir(root)
                if os.path.exists(os.path.join(root, name, f"{name}_dataset_builder.py")))


def builder_class(dataset: str) -> type[tfds.core.GeneratorBasedBuilder]:
  """The `Builder` of `datasets/<family>/` (registering it with TFDS)."""
  family = dataset_family(dataset)
  if family not in known_datasets():
    raise ValueError(f"unknown dataset {family!r}: no builder at datasets/{family}/ "
                     f"(known: {', '.join(known_datasets())})")
  module = importlib.import_module(f"{BUILDERS_PACKAGE}.{family}.{family}_dataset_builder")
  return module.Builder


def test_splits(dataset: str, builder: tfds.core.DatasetBuilder | None = None
                ) -> tuple[str, ...]:
  """The splits `eval.py` reports for a dataset: its builder's `TEST_SPLITS`, or, for
  a builder whose splits depend on its data (`TEST_SPLITS = None`), every split of
  the prepared `builder` but "train"."""
  splits = builder_class(dataset).TEST_SPLITS
  if splits is None:
    if builder is None:
      raise ValueError(f"the test splits of {dataset} depend on its data: pass its builder")
    splits = [name for name in builder.info.splits if name != "train"]
  return tuple(splits)


def get_builder(dataset: str, data_dir: str | None = None,
                manual_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """The TFDS builder for e.g. `synthetic_faces/tiny` or `wflw`.

  A builder made from its manual directory (`landmark_folder`: it has a
  `config_for_manual_dir`) gets the config of `manual_dir`.
  """
  cls = builder_class(dataset)
  config_for = getattr(cls, "config_for_manual_dir", None)
  if config_for is not None:
    return cls(data_dir=data_dir, config=config_for(manual_dir), file_format="array_record")
  return tfds.builder(dataset, data_dir=data_dir, file_format="array_record")


def prepare(dataset: str, data_dir: str | None = None,
            manual_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """Builds the dataset once (a no-op when already built) and returns its builder.

  With several processes, process 0 builds and the others wait for it, so that
  no two write the same files.
  """
  builder = get_builder(dataset, data_dir, manual_dir)
  if jax.process_index() == 0:
    download_config = tfds.download.DownloadConfig(
        manual_dir=os.path.expanduser(manual_dir) if manual_dir else None)
    builder.download_and_prepare(download_config=download_config,
                                 file_format="array_record")
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f"prepared {dataset}")
    builder = get_builder(dataset, data_dir, manual_dir)
  logging.info("Dataset %s at %s", dataset, builder.data_dir)
  return builder


def open_splits(builder: tfds.core.DatasetBuilder, splits: Sequence[str]) -> dict:
  """`{split: data_source}`: random-access sources of decoded example dicts."""
  return {split: builder.as_data_source(split=split) for split in splits}
