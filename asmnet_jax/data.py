"""Finding, building and opening the project's TFDS datasets.

The builders live in the repository's `datasets/` folder (one folder a dataset);
importing `datasets.<name>` registers the builder with TFDS under `<name>`.
Datasets are written as array_record and read with `as_data_source`, so no
TensorFlow is needed.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Sequence

import jax
import tensorflow_datasets as tfds

# The test splits `eval.py` runs for each dataset (METHOD.md, section 6).
TEST_SPLITS = {
    "synthetic_faces": ("test",),
    "ibug_300w": ("common", "challenging", "full"),
    "wflw": ("test", "largepose", "expression", "illumination", "makeup", "occlusion", "blur"),
}
NUM_LANDMARKS = {"synthetic_faces": 68, "ibug_300w": 68, "wflw": 98}


def dataset_family(dataset: str) -> str:
  """`synthetic_faces/tiny` -> `synthetic_faces`."""
  return dataset.split("/")[0].split(":")[0]


def _register(family: str) -> None:
  try:
    importlib.import_module(f"datasets.{family}")
  except ModuleNotFoundError as e:
    if e.name not in (f"datasets.{family}", "datasets"):
      raise
    known = ", ".join(sorted(TEST_SPLITS))
    raise ValueError(
        f"unknown dataset {family!r}: no builder at datasets/{family}/ (known: {known}). "
        "Run from the repository root so that its datasets/ folder is importable.") from e


def get_builder(dataset: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """The TFDS builder for e.g. `synthetic_faces/tiny` or `wflw`."""
  _register(dataset_family(dataset))
  return tfds.builder(dataset, data_dir=data_dir, file_format="array_record")


def prepare(dataset: str, data_dir: str | None = None,
            manual_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """Builds the dataset once (a no-op when already built) and returns its builder.

  With several processes, process 0 builds and the others wait for it, so that
  no two write the same files.
  """
  builder = get_builder(dataset, data_dir)
  if jax.process_index() == 0:
    download_config = tfds.download.DownloadConfig(
        manual_dir=os.path.expanduser(manual_dir) if manual_dir else None)
    builder.download_and_prepare(download_config=download_config,
                                 file_format="array_record")
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f"prepared {dataset}")
    builder = get_builder(dataset, data_dir)
  logging.info("Dataset %s at %s", dataset, builder.data_dir)
  return builder


def open_splits(builder: tfds.core.DatasetBuilder, splits: Sequence[str]) -> dict:
  """`{split: data_source}`: random-access sources of decoded example dicts."""
  return {split: builder.as_data_source(split=split) for split in splits}
