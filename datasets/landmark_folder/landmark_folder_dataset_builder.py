"""Your own labelled folder: face crops with any number of landmarks, several faces an
image, in the layout every other builder here writes. See README.md in this folder.

The folder is the TFDS manual directory. Its builder config is made from it
(`Builder.config_for_manual_dir`): named after the folder and a fingerprint of its
files, so that two folders, or one folder after an edit, never share a built copy.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from asmnet_jax.core import pose as pose_lib
from asmnet_jax.data import annotations as annotations_lib
from asmnet_jax.data import builders
from asmnet_jax.data import features as face_features
from asmnet_jax.data import scheme as scheme_lib
from asmnet_jax.data.images import ImageLoadError, load_rgb_image

TRAIN = "train"
DEFAULT_TEST_FRACTION = 0.2
# Held out of training for picking checkpoints, so that the test split stays unseen.
DEFAULT_VALIDATION_FRACTION = 0.1
_SPLIT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

_INSTRUCTIONS = """\
Put your labelled images in one folder (see datasets/landmark_folder/README.md):

  <manual_dir>/ images with, in ONE of these formats,
      .pts files beside them (<stem>.pts, or <stem>_<k>.pts for face k; 1-based), or
      landmarks.json  {"faces": [{"file": "a.jpg", "landmarks": [[x, y], ...]}, ...]}, or
      landmarks.csv   rows file,x0,y0,x1,y1,...   (0-based pixels)
  <manual_dir>/dataset.json         optional: eye_corners, normalizer, mirror_pairs +
                                    midline_points, num_points, test_fraction, ...
  <manual_dir>/pose_overrides.csv   optional: filename,yaw,pitch,roll (degrees)

Splits: sub-folders <manual_dir>/train/, <manual_dir>/test/, ... (each in one format),
or, without a train/ sub-folder, drawn from a hash of each image's path.
Train with  python train.py --config.dataset=landmark_folder --config.manual_dir=<manual_dir>
"""


@dataclasses.dataclass(eq=False)
class FolderConfig(builders.FaceBuilderConfig):
  """A labelled folder's builder config (`Builder.config_for_manual_dir`).

  Attributes:
    folder: the folder's absolute path.
    scheme: the landmark scheme (point count, normaliser, mirror map, pose source).
    split_folders: the split sub-folders, or () for hash-drawn splits.
    test_fraction, validation_fraction: hash-drawn shares of the images.
  """

  folder: str = ""
  scheme: scheme_lib.LandmarkScheme | None = None
  split_folders: tuple[str, ...] = ()
  test_fraction: float = DEFAULT_TEST_FRACTION
  validation_fraction: float = DEFAULT_VALIDATION_FRACTION

  def _check_validation_fraction(self) -> None:
    """A share of all images here, 0 allowed: checked with test_fraction when read."""


@dataclasses.dataclass
class _Survey:
  """What a folder holds: {split or "": annotations}, declarations, pose source."""
  parts: dict[str, annotations_lib.Annotations]
  declared: dict[str, Any]
  pose_csv: str | None


def _survey(folder: str) -> _Survey:
  """Reads every annotation of `folder` (no image is opened).

  Raises:
    annotations_lib.AnnotationError: unknown or mixed formats, a bad split name.
    ValueError: a bad dataset.json.
  """
  declarations = os.path.join(folder, scheme_lib.DATASET_FILE)
  declared = (scheme_lib.read_dataset_file(declarations) if os.path.isfile(declarations)
              else {})
  if os.path.isdir(os.path.join(folder, TRAIN)):
    parts = {}
    for name in sorted(os.listdir(folder)):
      path = os.path.join(folder, name)
      if not os.path.isdir(path) or name.startswith((".", "_")):
        continue
      if not _SPLIT_NAME.match(name):
        raise annotations_lib.AnnotationError(
            f"{path}: a split sub-folder needs a name of letters, digits and '_' "
            "(starting with a letter)")
      parts[name] = annotations_lib.read_annotations(path)
  else:
    parts = {"": annotations_lib.read_annotations(folder)}
  pose_csv = os.path.join(folder, builders.POSE_OVERRIDES_FILENAME)
  return _Survey(parts, declared, pose_csv if os.path.isfile(pose_csv) else None)


def _point_count(survey: _Survey, folder: str) -> int:
  """The dataset's point count: declared, else the one every face has.

  Raises:
    ValueError: faces of unequal counts and none declared, naming a file of each.
  """
  declared = survey.declared.get("num_points")
  if declared is not None:
    return int(declared)
  first_source: dict[int, str] = {}
  counts: dict[int, int] = {}
  for split, part in survey.parts.items():
    for photo in part.photos:
      for points, source in zip(photo.landmarks, photo.sources):
        n = len(points)
        counts[n] = counts.get(n, 0) + 1
        first_source.setdefault(n, os.path.join(split, source) if split else source)
  if not counts:
    skipped = [s for part in survey.parts.values() for s in part.skipped]
    first = f" (first of {len(skipped)} skipped: {skipped[0]['reason']})" if skipped else ""
    raise annotations_lib.AnnotationError(f"no usable annotated face in {folder}{first}")
  if len(counts) > 1:
    listed = "; ".join(f"{n} points in {first_source[n]} and {counts[n] - 1} other face(s)"
                       for n in sorted(counts, key=counts.get, reverse=True))
    raise ValueError(f"{folder}: unequal point counts ({listed}). Fix the files, or set "
                     f'"num_points" in {scheme_lib.DATASET_FILE} to keep that count and '
                     "skip (and list) the others")
  return next(iter(counts))


def _fingerprint(folder: str) -> str:
  """A hash of the folder's path and of every file's path, size and modification time."""
  digest = hashlib.sha256(os.path.abspath(folder).encode())
  for directory, subdirs, names in os.walk(folder):
    subdirs.sort()
    for name in sorted(names):
      stat = os.stat(os.path.join(directory, name))
      rel = os.path.relpath(os.path.join(directory, name), folder)
      digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
  return digest.hexdigest()[:10]


def hash_fraction(name: str) -> float:
  """A deterministic number in [0, 1) from an image's relative path (its split draw)."""
  key = name.replace(os.sep, "/").encode()
  return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2.0**64


def _fraction(declared: dict[str, Any], key: str, default: float, where: str) -> float:
  value = declared.get(key, default)
  if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
    raise ValueError(f"{where}: {key} must be a number in [0, 1), got {value!r}")
  return float(value)


class Builder(builders.ArrayRecordBuilder):
  """A labelled folder: splits from its sub-folders or drawn by hash (README.md)."""

  VERSION = tfds.core.Version("1.0.0")
  # None: eval.py reports every split but "train" (they depend on the folder).
  TEST_SPLITS = None
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(self.builder_config, FolderConfig):
      raise ValueError("landmark_folder is built from your folder: make the builder with "
                       "config=Builder.config_for_manual_dir(DIR) (train.py and the build "
                       "command do, given --config.manual_dir / --manual_dir)")

  @classmethod
  def config_for_manual_dir(cls, manual_dir: str | None,
                            base: builders.FaceBuilderConfig | None = None) -> FolderConfig:
    """The config of the labelled folder `manual_dir` (reads its annotations).

    Args:
      manual_dir: the folder.
      base: crop and encoding options to copy (default: the defaults).

    Raises:
      ValueError: no folder given, unequal point counts, bad dataset.json,
        unknown or mixed annotation formats (`AnnotationError`).
      FileNotFoundError: the folder does not exist.
    """
    if not manual_dir:
      raise ValueError("landmark_folder reads your labelled folder: give it as "
                       "--config.manual_dir=DIR (python -m asmnet_jax.data.build: "
                       "--manual_dir DIR)")
    folder = os.path.abspath(os.path.expanduser(manual_dir))
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"labelled folder not found: {folder}")
    survey = _survey(folder)
    num_points = _point_count(survey, folder)
    if survey.pose_csv:
      pose_source = "csv"
    elif num_points in (68, 98):
      pose_source = "fit"
    else:
      pose_source = "absent"
    where = os.path.join(folder, scheme_lib.DATASET_FILE)
    scheme = scheme_lib.scheme_from_declarations(survey.declared, num_points, pose_source,
                                                 where)
    test = _fraction(survey.declared, "test_fraction", DEFAULT_TEST_FRACTION, where)
    validation = _fraction(survey.declared, "validation_fraction", DEFAULT_VALIDATION_FRACTION,
                           where)
    if test + validation >= 1.0:
      raise ValueError(f"{where}: test_fraction + validation_fraction must stay below 1")
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", os.path.basename(folder)).strip("_") or "folder"
    base = base or builders.FaceBuilderConfig(name="base")
    split_folders = tuple(s for s in survey.parts if s)
    return FolderConfig(
        name=f"{stem}_{num_points}pts_{_fingerprint(folder)}",
        description=f"{folder}: {num_points} points, pose {pose_source}",
        pose_source="override" if pose_source == "csv" else "fit",
        pose_overrides_csv=survey.pose_csv, margin=base.margin, max_size=base.max_size,
        image_format=base.image_format, folder=folder, scheme=scheme,
        split_folders=split_folders, test_fraction=test, validation_fraction=validation)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    scheme = config.scheme
    pose = {"fit": "fitted to the landmarks (mean face)",
            "csv": f"from {builders.POSE_OVERRIDES_FILENAME}",
            "absent": "absent (zeros; not trained or scored)"}[scheme.pose_source]
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            f"Face crops of {config.folder} with {scheme.num_points} landmarks (0-based "
            f"pixels in the crop), the crop box in the original image and head pose "
            f"(yaw, pitch, roll in degrees), {pose}. NME normaliser: "
            f"{scheme.describe_normalizer()}."),
        features=face_features.face_features(scheme.num_points, config.image_format),
        metadata=tfds.core.MetadataDict({scheme_lib.METADATA_KEY: scheme.to_json(),
                                         "folder": config.folder}),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # The folder is the config's (it names the built copy).
    config = self.builder_config
    survey = _survey(config.folder)
    if config.split_folders:
      assignments = {split: [(survey.parts[split], photo) for photo in part.photos]
                     for split, part in survey.parts.items()}
      skipped = {split: part.skipped for split, part in survey.parts.items()}
    else:
      part = survey.parts[""]
      assignments = {TRAIN: []}
      if config.test_fraction:
        assignments["test"] = []
      for photo in part.photos:
        assignments[self._hash_split(photo.name)].append((part, photo))
      train = assignments[TRAIN]
      if config.validation_fraction and len(train) > 1:
        # Ranked, not thresholded, so that a small folder still gets one (and keeps one
        # training image).
        held = builders.validation_images([photo.name for _, photo in train],
                                          config.validation_fraction)
        held = set(sorted(held)[:len(train) - 1])
        assignments["validation"] = [item for item in train if item[1].name in held]
        assignments[TRAIN] = [item for item in train if item[1].name not in held]
      skipped = {split: [] for split in assignments}
      for entry in part.skipped:
        skipped[self._hash_split(entry["file"])].append(entry)
      for split, items in assignments.items():
        if not items:
          raise ValueError(
              f"{config.folder}: the hash draw left split {split!r} without an image (of "
              f"{len(part.photos)}); add images, or change test_fraction / "
              f"validation_fraction in {scheme_lib.DATASET_FILE}")
    return {split: self._generate_examples(split, items, skipped[split])
            for split, items in assignments.items()}

  def _hash_split(self, name: str) -> str:
    """`test` or `train` by the hash of an image's name (validation comes out of train)."""
    return "test" if hash_fraction(name) < self.builder_config.test_fraction else TRAIN

  def _generate_examples(
      self, split: str, items: Sequence[tuple[annotations_lib.Annotations, Any]],
      skipped: Sequence[dict[str, Any]]
  ) -> Iterator[tuple[str, dict]]:
    """Faces of `items` ((annotations, photo) pairs); keys `<image path>#<face>`."""
    config = self.builder_config
    scheme = config.scheme
    report = builders.SkipReport(self.name, split)
    for entry in skipped:
      report.skip(entry["file"], entry["reason"].replace(config.folder + os.sep, ""))
    labeler = (builders.PoseLabeler.from_config(config, config.folder)
               if scheme.pose_source == "csv" else None)
    load = functools.lru_cache(maxsize=2)(load_rgb_image)
    outside = 0
    prefix = "" if not config.split_folders else split + "/"
    for _, photo in items:
      filename = prefix + photo.name.replace(os.sep, "/")
      for k, (points, source) in enumerate(zip(photo.landmarks, photo.sources)):
        where = f"{prefix}{source}"
        if len(points) != scheme.num_points:
          report.skip(where, f"{len(points)} points, the dataset has {scheme.num_points}")
          continue
        try:
          image = load(photo.path)
        except ImageLoadError as e:
          report.skip(where, str(e).replace(config.folder + os.sep, ""))
          continue
        height, width = image.shape[:2]
        out = ((points < -0.5) | (points > np.array([width, height]) - 0.5)).any(axis=1)
        if out.any():
          outside += 1
          report.skip(where, f"{int(out.sum())} of {len(points)} points outside the "
                      f"{width} x {height} image (first: point {int(np.flatnonzero(out)[0])})")
          continue
        key = f"{filename}#{k}"
        try:
          angles = self._pose(labeler, [key, filename], points, scheme)
        except builders.MalformedSample as e:
          report.skip(where, str(e))
          continue
        yield key, builders.make_example(image, points, filename, angles, config)
    if outside:
      report.note(f"{outside} face(s) skipped for points outside their image")
    if labeler is not None:
      labeler.report_into(report)
    report.finish()

  @staticmethod
  def _pose(labeler, keys: list[str], points: np.ndarray,
            scheme: scheme_lib.LandmarkScheme) -> np.ndarray:
    """float32 (3,) degrees: from the CSV, the mean-face fit (68/98), or zeros."""
    if scheme.pose_source == "absent":
      return np.zeros(3, np.float32)
    if labeler is not None and scheme.num_points not in (68, 98):
      for key in keys:
        if pose_lib.normalize_key(key) in labeler.overrides:
          return labeler(keys, points)
      raise builders.MalformedSample(
          f"no row for {keys[1]} (or {keys[0]}) in {labeler.source}, and "
          f"{scheme.num_points}-point faces cannot be fitted")
    if labeler is not None:
      return labeler(keys, points)
    return builders.PoseLabeler()(keys, points)
