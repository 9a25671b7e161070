"""Command line: build the face-landmark TFDS datasets of `datasets/` without TensorFlow.

TFDS 4.9.10's own `tfds build` imports TensorFlow at start-up, so use this instead,
from any directory:

  python -m asmnet_jax.data.build ibug_300w --manual_dir ~/data/300W
  python -m asmnet_jax.data.build wflw --manual_dir ~/data/WFLW --config override \
      --pose_overrides ~/data/wflw_hopenet.csv    # -> config "override_wflw_hopenet"
  python -m asmnet_jax.data.build cofw --manual_dir ~/data/COFW
  python -m asmnet_jax.data.build cofw/cofw68 --manual_dir ~/data/COFW   # + COFW68/*.pts
  python -m asmnet_jax.data.build landmark_folder --manual_dir ~/data/my_faces

The datasets are written as array_record under `--data_dir`
(default ~/tensorflow_datasets) and read with
`Builder(data_dir=...).as_data_source(split)`. A missing or mis-laid download or a
malformed pose CSV stops with one line `error: ...` (exit status 2).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Sequence

import tensorflow_datasets as tfds
from absl import flags

from asmnet_jax import cli
from asmnet_jax.data import builders, registry, scheme

# The datasets built from users' downloads or folders (synthetic_faces builds itself
# on first use).
DATASETS = ("ibug_300w", "wflw", "cofw", "landmark_folder")


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
  cls = registry.builder_class(name)
  config_for = getattr(cls, "config_for_manual_dir", None)
  if config_for is not None:  # landmark_folder: its config is made from the folder.
    if config != "fit" or pose_overrides is not None:
      raise ValueError(f"{name} takes poses from <manual_dir>/"
                       f"{builders.POSE_OVERRIDES_FILENAME} when present; --config and "
                       "--pose_overrides do not apply")
    builder_config = config_for(manual_dir)
  elif not any(c.name == config for c in cls.BUILDER_CONFIGS):  # cofw: no pose options.
    if config != "fit" or pose_overrides is not None:
      raise ValueError(f"{name} has no pose labels to choose: --config and "
                       "--pose_overrides do not apply")
    # "cofw/cofw68" names its config; "cofw" takes the default.
    builder_config = name.split("/")[1] if "/" in name else None
  else:
    builder_config = make_config(config, pose_overrides)
  builder = cls(data_dir=data_dir, config=builder_config, file_format="array_record")
  mode = (tfds.download.GenerateMode.FORCE_REDOWNLOAD if overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(manual_dir), download_mode=mode))
  return builder


def define_flags(fv: flags.FlagValues) -> None:
  """The build command's flags (the dataset name is the positional argument)."""
  flags.DEFINE_string("manual_dir", None,
                      "The downloaded dataset (layout: datasets/<name>/README.md).",
                      required=True, flag_values=fv)
  flags.DEFINE_string("data_dir", None, "Where to write it (default ~/tensorflow_datasets).",
                      flag_values=fv)
  flags.DEFINE_enum("config", "fit", [c.name for c in builders.DEFAULT_CONFIGS],
                    "fit: poses fitted to the landmarks; override: from a CSV.", flag_values=fv)
  flags.DEFINE_string("pose_overrides", None,
                      "CSV filename,yaw,pitch,roll for --config override (default "
                      f"<manual_dir>/{builders.POSE_OVERRIDES_FILENAME}).", flag_values=fv)
  flags.DEFINE_boolean("overwrite", False, "Rebuild if already built.", flag_values=fv)


def _run(fv: flags.FlagValues, args: list[str]) -> None:
  if len(args) != 1 or registry.dataset_family(args[0]) not in DATASETS:
    raise cli.UsageError(f"expected one dataset name, one of {', '.join(DATASETS)}; "
                         f"got {' '.join(args) or 'none'}")
  # Missing/mis-laid manual directory, missing or malformed pose CSV: the message
  # says what to do, a traceback would only bury it.
  with cli.reported(AssertionError, FileNotFoundError, ValueError):
    builder = build(args[0], fv.manual_dir, fv.data_dir, fv.config, fv.pose_overrides,
                    fv.overwrite)
  for split, info in builder.info.splits.items():
    print(f"{builder.name}/{builder.builder_config.name} {split}: {info.num_examples} examples")
  print(f"written to {builder.data_dir}")
  if getattr(type(builder), "config_for_manual_dir", None) is not None:
    declared = scheme.scheme_of(builder)
    print(f"{declared.num_points} points; NME normalised by the "
          f"{declared.describe_normalizer()}; "
          f"{'a mirror map (flips allowed)' if declared.mirror_map else 'no mirror map (no flips)'}"
          f"; pose {declared.pose_source}")
    data_dir = f" --config.data_dir={fv.data_dir}" if fv.data_dir else ""
    print(f"train with: python train.py --workdir DIR --config.dataset={args[0]} "
          f"--config.manual_dir={fv.manual_dir}{data_dir}")


def main(argv: Sequence[str] | None = None) -> int:
  """Builds per `argv` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, _run, argv, positional="DATASET")


if __name__ == "__main__":
  sys.exit(main())
