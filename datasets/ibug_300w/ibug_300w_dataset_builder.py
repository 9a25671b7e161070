"""iBUG 300-W (68 landmarks) face crops with head pose, from a manually downloaded copy.

See README.md in this folder for the folder layout, splits and options.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Iterator

import tensorflow_datasets as tfds

from asmnet_jax.data import builders
from asmnet_jax.data.images import ImageLoadError, load_rgb_image
from asmnet_jax.data import features as face_features

NUM_LANDMARKS = 68
FOLDERS = ("afw", "helen/trainset", "helen/testset", "lfpw/trainset", "lfpw/testset", "ibug")
SPLITS = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenging": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
}
IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg")
# The 300-W challenge's own test set (300 indoor, 300 outdoor faces): extra splits,
# built when its folders are in the manual directory (evaluate with --split private).
PRIVATE_SPLITS = {
    "private": ("300W/01_Indoor", "300W/02_Outdoor"),
    "private_indoor": ("300W/01_Indoor",),
    "private_outdoor": ("300W/02_Outdoor",),
}

_INSTRUCTIONS = """\
Download the 68-point annotated images of 300-W from the iBUG site
(https://ibug.doc.ic.ac.uk/resources/300-W/ and
https://ibug.doc.ic.ac.uk/resources/facial-point-annotations/: afw, helen, lfpw, ibug),
accept their terms, and extract them into one folder laid out as

  <manual_dir>/afw/                 (337 faces)
  <manual_dir>/helen/trainset/      (2000)
  <manual_dir>/helen/testset/       (330)
  <manual_dir>/lfpw/trainset/       (811)
  <manual_dir>/lfpw/testset/        (224)
  <manual_dir>/ibug/                (135)

with each image (.jpg or .png) beside its .pts file. Optional: the 300-W challenge's
private test set as <manual_dir>/300W/01_Indoor/ and 300W/02_Outdoor/ (300 faces each;
splits private, private_indoor, private_outdoor). Then build with
  python -m asmnet_jax.data.build ibug_300w --manual_dir <manual_dir>   (repository root)
Optional: <manual_dir>/pose_overrides.csv (filename,yaw,pitch,roll) with --config override.
"""


class Builder(builders.ArrayRecordBuilder):
  """300-W: train and validation (afw + helen/trainset + lfpw/trainset, split by a hash
  of the image path), common, challenging, full."""

  VERSION = tfds.core.Version("2.0.0")
  # The splits eval.py reports (METHOD.md, section 6).
  TEST_SPLITS = ("common", "challenging", "full")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "2.0.0": ("A `validation` split for model selection: the training images whose "
                "path hashes below `validation_fraction` (5 %), no longer in `train`."),
  }
  BUILDER_CONFIGS = builders.DEFAULT_CONFIGS
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "iBUG 300-W face crops with 68 landmarks (0-based pixels in the crop), the "
            "crop box in the original image, and head pose (yaw, pitch, roll in degrees; "
            f"source: {self.builder_config.pose_source})."),
        features=face_features.face_features(NUM_LANDMARKS, self.builder_config.image_format),
        homepage="https://ibug.doc.ic.ac.uk/resources/300-W/",
        metadata=tfds.core.MetadataDict(),  # "skipped": builders.SkipReport.
        citation=(
            "@article{sagonas2016300,\n  title={300 faces in-the-wild challenge: Database "
            "and results},\n  author={Sagonas, Christos and Antonakos, Epameinondas and "
            "Tzimiropoulos, Georgios and Zafeiriou, Stefanos and Pantic, Maja},\n  "
            "journal={Image and Vision Computing},\n  volume={47},\n  pages={3--18},\n  "
            "year={2016}\n}"),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = dl_manager.manual_dir  # TFDS raises with the instructions if absent/empty.
    builders.require_layout(manual_dir, FOLDERS, _INSTRUCTIONS)
    builders.PoseLabeler.from_config(self.builder_config, manual_dir)  # fail early.
    manual_dir = os.fspath(manual_dir)
    held_out = builders.validation_images(_training_images(manual_dir),
                                          self.builder_config.validation_fraction)
    folders = dict(SPLITS)
    if all(os.path.isdir(os.path.join(manual_dir, f)) for f in PRIVATE_SPLITS["private"]):
      folders.update(PRIVATE_SPLITS)
    splits = {split: self._generate_examples(manual_dir, split, split_folders)
              for split, split_folders in folders.items()}
    splits["train"] = self._generate_examples(manual_dir, "train", SPLITS["train"],
                                              exclude=held_out)
    splits[builders.VALIDATION_SPLIT] = self._generate_examples(
        manual_dir, builders.VALIDATION_SPLIT, SPLITS["train"], only=held_out)
    return splits

  def _generate_examples(
      self, manual_dir: str, split: str, folders: tuple[str, ...],
      exclude: frozenset[str] = frozenset(), only: frozenset[str] | None = None
  ) -> Iterator[tuple[str, dict]]:
    """The faces of `folders` whose image path is not in `exclude` (and is in `only`,
    when given); a sample without an image is reported by the split without `only`."""
    config = self.builder_config
    report = builders.SkipReport(self.name, split, self.info.metadata)
    labeler = builders.PoseLabeler.from_config(config, manual_dir)
    load = functools.lru_cache(maxsize=4)(load_rgb_image)  # AFW: faces of one image.
    for folder in folders:
      directory = os.path.join(manual_dir, folder)
      names = sorted(os.listdir(directory))
      images = _image_index(names)
      annotated = set()
      for name in names:
        if not name.lower().endswith(".pts"):
          continue
        key = f"{folder}/{name}"
        try:
          image_name = _find_image(name, images)
        except builders.MalformedSample as e:
          if only is None:
            report.skip(key, str(e))
          continue
        annotated.add(image_name)
        filename = f"{folder}/{image_name}"
        if filename in exclude or (only is not None and filename not in only):
          continue
        try:
          points = builders.parse_pts(os.path.join(directory, name))
          points = builders.check_landmarks(points - 1.0, NUM_LANDMARKS)  # 1-based.
          image = load(os.path.join(directory, image_name))
          angles = labeler([key, filename], points)
          example = builders.make_example(image, points, filename, angles, config)
        except (builders.MalformedSample, ImageLoadError) as e:
          report.skip(key, str(e).replace(manual_dir + os.sep, ""))
          continue
        yield key, example
      if only is None:  # the validation split's folders are train's: reported there.
        for image_name in sorted(set(images.values()) - annotated):
          report.skip(f"{folder}/{image_name}", "no .pts annotation beside it")
    labeler.report_into(report)
    report.finish()


# AFW stores several faces of one image as <id>_1.pts, <id>_2.pts beside <id>.jpg.
_FACE_SUFFIX = re.compile(r"^(.*)_\d+$")


def _training_images(manual_dir: str) -> list[str]:
  """The image paths of the training folders' well-formed faces (a parsable `.pts`
  of 68 finite points beside an image file): those a validation image can hold."""
  filenames = []
  for folder in SPLITS["train"]:
    directory = os.path.join(manual_dir, folder)
    names = sorted(os.listdir(directory))
    images = _image_index(names)
    for name in names:
      if name.lower().endswith(".pts"):
        try:
          image_name = _find_image(name, images)
          points = builders.parse_pts(os.path.join(directory, name))
          builders.check_landmarks(points, NUM_LANDMARKS)
        except builders.MalformedSample:
          continue  # reported by the train split.
        if os.path.isfile(os.path.join(directory, image_name)):
          filenames.append(f"{folder}/{image_name}")
  return filenames


def _image_index(names: list[str]) -> dict[str, str]:
  """{lower-case stem: file name} of the images among `names`, .jpg before .png."""
  index: dict[str, str] = {}
  for ext in IMAGE_EXTENSIONS:
    for name in names:
      stem, e = os.path.splitext(name)
      if e.lower() == ext:
        index.setdefault(stem.lower(), name)
  return index


def _find_image(pts_name: str, images: dict[str, str]) -> str:
  stem = os.path.splitext(pts_name)[0].lower()
  if stem in images:
    return images[stem]
  match = _FACE_SUFFIX.match(stem)
  if match and match.group(1) in images:
    return images[match.group(1)]
  raise builders.MalformedSample(
      f"no image {stem}{{{','.join(IMAGE_EXTENSIONS)}}} beside {pts_name}")
