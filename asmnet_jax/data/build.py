"""Command line: build the face-landmark TFDS datasets of `datasets/` without TensorFlow.

TFDS 4.9.10's own `tfds build` imports TensorFlow at start-up, so use this instead,
from any directory:

  python -m asmnet_jax.data.build ibug_300w --manual_dir ~/data/300W
  python -m asmnet_jax.data.build wflw --manual_dir ~/data/WFLW --config override \
      --pose_overrides ~/data/wflw_hopenet.csv    # -> config "override_wflw_hopenet"

The datasets are written as array_record under `--data_dir`
(default ~/tensorflow_datasets) and read with
`Builder(data_dir=...).as_data_source(split)`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from typing import Sequence

import tensorflow_datasets as tfds

from asmnet_jax.data import builders, registry

# The datasets built from users' downloads (synthetic_faces builds itself on first use).
DATASETS = ("ibug_300w", "wflw")


def make_config(config: str, pose_overrides: str | None) -> builders.FaceBuilderConfig:
  """A default config by name, or, given a CSV, an "override_<csv stem>" config.

  TFDS forbids custom configs named like a built-in one; the CSV's name also keeps
  datasets labelled from different CSVs in different directories.
  """
  by_name = {c.name: c for c in builders.DEFAULT_CONFIGS}
  if config not in by_name:
    raise ValueError(f"unknown config {config!r}; known: {', '.join(by_name)}")
  chosen = by_name[config]
  if pose_overrides is None:
    return chosen
  if chosen.pose_source != "override":
    raise ValueError("--pose_overrides needs --config override")
  path = os.path.abspath(os.path.expanduser(pose_overrides))
  stem = re.sub(r"[^A-Za-z0-9_]+", "_", os.path.splitext(os.path.basename(path))[0])
  return builders.FaceBuilderConfig(
      name=f"override_{stem}", pose_source="override", pose_overrides_csv=path,
      description=f"Pose from {path}; faces it lacks fall back to the fit.")


def build(
    name: str,
    manual_dir: str,
    data_dir: str | None = None,
    config: str = "fit",
    pose_overrides: str | None = None,
    overwrite: bool = False,
) -> tfds.core.DatasetBuilder:
  """Builds one dataset; returns its (prepared) builder."""
  builder = registry.builder_class(name)(
      data_dir=data_dir, config=make_config(config, pose_overrides),
      file_format="array_record")
  mode = (tfds.download.GenerateMode.FORCE_REDOWNLOAD if overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(manual_dir), download_mode=mode))
  return builder


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("dataset", choices=DATASETS)
  parser.add_argument("--manual_dir", required=True,
                      help="the downloaded dataset (layout: datasets/<name>/README.md)")
  parser.add_argument("--data_dir", default=None, help="default ~/tensorflow_datasets")
  parser.add_argument("--config", default="fit",
                      choices=[c.name for c in builders.DEFAULT_CONFIGS],
                      help="fit: poses fitted to the landmarks; override: from a CSV")
  parser.add_argument("--pose_overrides", default=None,
                      help="CSV filename,yaw,pitch,roll for --config override "
                           f"(default <manual_dir>/{builders.POSE_OVERRIDES_FILENAME})")
  parser.add_argument("--overwrite", action="store_true", help="rebuild if already built")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
  try:
    builder = build(args.dataset, args.manual_dir, args.data_dir, args.config,
                    args.pose_overrides, args.overwrite)
  except (AssertionError, FileNotFoundError, ValueError) as e:
    # Missing/mis-laid manual directory, missing or malformed pose CSV: the message
    # says what to do, a traceback would only bury it.
    print(f"error: {e}", file=sys.stderr)
    return 2
  for split, info in builder.info.splits.items():
    print(f"{builder.name}/{builder.builder_config.name} {split}: {info.num_examples} examples")
  print(f"written to {builder.data_dir}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
