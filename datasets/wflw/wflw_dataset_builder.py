"""WFLW (98 landmarks, 6 attribute flags) face crops with head pose, from a manually
downloaded copy. See README.md in this folder for the layout, splits and options.
"""

from __future__ import annotations

import functools
import os
from typing import Iterator, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from asmnet_jax.data import builders
from asmnet_jax.data.images import ImageLoadError, load_rgb_image
from asmnet_jax.data import features as face_features

NUM_LANDMARKS = 98
ANNOTATION_DIR = "WFLW_annotations/list_98pt_rect_attr_train_test"
IMAGE_DIR = "WFLW_images"
LIST_FILES = {
    "train": f"{ANNOTATION_DIR}/list_98pt_rect_attr_train.txt",
    "test": f"{ANNOTATION_DIR}/list_98pt_rect_attr_test.txt",
}
# Order of the `attributes` feature, as in the annotation files.
ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
# Test subsets: split name -> attribute index.
SUBSETS = {"largepose": 0, "expression": 1, "illumination": 2, "makeup": 3,
           "occlusion": 4, "blur": 5}
# A line: 196 landmark numbers, 4 box numbers, 6 flags, then the image path.
_NUM_NUMBERS = 2 * NUM_LANDMARKS + 4 + len(ATTRIBUTES)

_INSTRUCTIONS = """\
Download WFLW from its authors' project page (https://wywu.github.io/projects/LAB/WFLW.html):
WFLW_images.tar.gz and WFLW_annotations.tar.gz, and extract both into one folder:

  <manual_dir>/WFLW_images/<event>/<image>.jpg     (e.g. 0--Parade/0_Parade_marchingband_1_116.jpg)
  <manual_dir>/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_train.txt
  <manual_dir>/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt

Then build with
  python -m asmnet_jax.data.build wflw --manual_dir <manual_dir>   (repository root)
Optional: <manual_dir>/pose_overrides.csv (filename,yaw,pitch,roll) with --config override.
"""


class Annotation(NamedTuple):
  line: int  # 1-based line number in its list file.
  landmarks: np.ndarray  # float64 (98, 2), 0-based pixels as stored.
  attributes: np.ndarray  # bool (6,), in `ATTRIBUTES` order.
  image: str  # path relative to WFLW_images/.


def parse_line(text: str, line: int) -> Annotation:
  """One annotation line -> `Annotation`; MalformedSample if it is not one."""
  tokens = text.split()
  if len(tokens) <= _NUM_NUMBERS:
    raise builders.MalformedSample(
        f"expected {_NUM_NUMBERS} numbers and a path, got {len(tokens)} fields")
  try:
    numbers = np.array([float(t) for t in tokens[:_NUM_NUMBERS]])
  except ValueError:
    raise builders.MalformedSample(
        f"expected {_NUM_NUMBERS} numbers before the path, found a non-number") from None
  try:
    float(tokens[_NUM_NUMBERS])
  except ValueError:
    pass
  else:  # a number where the path should be: too many points.
    raise builders.MalformedSample(f"more than {_NUM_NUMBERS} numbers before the path")
  flags = numbers[-len(ATTRIBUTES):]
  if not np.isin(flags, (0, 1)).all():
    raise builders.MalformedSample(f"attribute flags must be 0 or 1, got {flags}")
  return Annotation(
      line=line,
      landmarks=numbers[:2 * NUM_LANDMARKS].reshape(NUM_LANDMARKS, 2),
      attributes=flags.astype(bool),
      image=" ".join(tokens[_NUM_NUMBERS:]).replace("\\", "/"),
  )


def _training_images(manual_dir: str) -> list[str]:
  """The image paths (`WFLW_images/...`) of the training list's well-formed faces
  (a parsable line of finite points naming an existing file)."""
  # Undecodable lines are reported by the train split.
  lines = builders.read_text_lines(os.path.join(manual_dir, LIST_FILES["train"]),
                                   builders.SkipReport("", ""))
  filenames = []
  for line_no, text in lines:
    if text.strip():
      try:
        ann = parse_line(text, line_no)
        builders.check_landmarks(ann.landmarks, NUM_LANDMARKS)
      except builders.MalformedSample:
        continue  # reported by the train split.
      if os.path.isfile(os.path.join(manual_dir, IMAGE_DIR, ann.image)):
        filenames.append(f"{IMAGE_DIR}/{ann.image}")
  return filenames


class Builder(builders.ArrayRecordBuilder):
  """WFLW: train and validation (the training list, split by a hash of the image
  path), test, and the test subsets largepose ... blur."""

  VERSION = tfds.core.Version("2.0.0")
  # The splits eval.py reports (METHOD.md, section 6).
  TEST_SPLITS = ("test", "largepose", "expression", "illumination", "makeup", "occlusion",
                 "blur")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "2.0.0": ("A `validation` split for model selection: the training images whose "
                "path hashes below `validation_fraction` (5 %), no longer in `train`."),
  }
  BUILDER_CONFIGS = builders.DEFAULT_CONFIGS
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    extra = {"attributes": tfds.features.Tensor(shape=(len(ATTRIBUTES),), dtype=np.bool_)}
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "WFLW face crops with 98 landmarks (0-based pixels in the crop), the crop box "
            "in the original image, head pose (yaw, pitch, roll in degrees; source: "
            f"{self.builder_config.pose_source}) and the attribute flags "
            f"{', '.join(ATTRIBUTES)} (`attributes`, bool (6,), in that order)."),
        features=face_features.face_features(
            NUM_LANDMARKS, self.builder_config.image_format, extra),
        homepage="https://wywu.github.io/projects/LAB/WFLW.html",
        metadata=tfds.core.MetadataDict(),  # "skipped": builders.SkipReport.
        citation=(
            "@inproceedings{wayne2018lab,\n  author={Wu, Wayne and Qian, Chen and Yang, "
            "Shuo and Wang, Quan and Cai, Yici and Zhou, Qiang},\n  title={Look at "
            "Boundary: A Boundary-Aware Face Alignment Algorithm},\n  booktitle={CVPR},\n"
            "  year={2018}\n}"),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = dl_manager.manual_dir  # TFDS raises with the instructions if absent/empty.
    builders.require_layout(
        manual_dir, [*LIST_FILES.values(), IMAGE_DIR], _INSTRUCTIONS)
    builders.PoseLabeler.from_config(self.builder_config, manual_dir)  # fail early.
    manual_dir = os.fspath(manual_dir)
    held_out = builders.validation_images(_training_images(manual_dir),
                                          self.builder_config.validation_fraction)
    splits = {"train": self._generate_examples(manual_dir, "train", "train", None,
                                               exclude=held_out),
              builders.VALIDATION_SPLIT: self._generate_examples(
                  manual_dir, builders.VALIDATION_SPLIT, "train", None, only=held_out),
              "test": self._generate_examples(manual_dir, "test", "test", None)}
    for name, index in SUBSETS.items():
      splits[name] = self._generate_examples(manual_dir, name, "test", index)
    return splits

  def _generate_examples(
      self, manual_dir: str, split: str, list_split: str, attribute: int | None,
      exclude: frozenset[str] = frozenset(), only: frozenset[str] | None = None
  ) -> Iterator[tuple[int, dict]]:
    """Faces of `list_split`'s list file (those with flag `attribute` set, if given)
    whose image path is not in `exclude` (and is in `only`, when given).

    Keys are the 1-based line numbers: unique even when an image holds several faces.
    A line that does not parse is reported by the split without `only`.
    """
    config = self.builder_config
    report = builders.SkipReport(self.name, split, self.info.metadata)
    labeler = builders.PoseLabeler.from_config(config, manual_dir)
    load = functools.lru_cache(maxsize=8)(load_rgb_image)  # faces of one image.
    list_file = LIST_FILES[list_split]
    # The validation split reads train's list: its undecodable lines are train's to report.
    lines = builders.read_text_lines(os.path.join(manual_dir, list_file),
                                     report if only is None else builders.SkipReport("", ""))
    for line_no, text in lines:
      if not text.strip():
        continue
      where = f"{os.path.basename(list_file)}:{line_no}"
      try:
        ann = parse_line(text, line_no)
      except builders.MalformedSample as e:
        if only is None:
          report.skip(where, str(e))
        continue
      if attribute is not None and not ann.attributes[attribute]:
        continue
      filename = f"{IMAGE_DIR}/{ann.image}"
      if filename in exclude or (only is not None and filename not in only):
        continue
      try:
        points = builders.check_landmarks(ann.landmarks, NUM_LANDMARKS)
        image = load(os.path.join(manual_dir, IMAGE_DIR, ann.image))
        angles = labeler([f"{filename}#{line_no}", filename], points)
        example = builders.make_example(
            image, points, filename, angles, config, {"attributes": ann.attributes})
      except (builders.MalformedSample, ImageLoadError) as e:
        report.skip(f"{where} ({filename})", str(e).replace(manual_dir + os.sep, ""))
        continue
      yield line_no, example
    labeler.report_into(report)
    report.finish()
