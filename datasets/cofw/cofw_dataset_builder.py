"""COFW (29 landmarks with occlusion flags) face crops, from the published MATLAB v7.3
files. See README.md in this folder for the layout, splits and options.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds

from asmnet_jax.data import builders
from asmnet_jax.data import features as face_features
from asmnet_jax.data import scheme as scheme_lib

NUM_LANDMARKS = 29
# split -> (file, images cell, shapes (87, N): 29 x, 29 y, 29 occlusion flags, boxes).
FILES = {
    "train": ("COFW_train_color.mat", "IsTr", "phisTr", "bboxesTr"),
    "test": ("COFW_test_color.mat", "IsT", "phisT", "bboxesT"),
}
# The NME normaliser of HRNet's and PIPNet's COFW evaluation (zero-based points 8, 9).
EYE_CORNERS = (8, 9)
# Left-right partners (zero-based; HRNet's COFW flip pairs), and the midline points.
MIRROR_PAIRS = ((0, 1), (4, 6), (2, 3), (5, 7), (8, 9), (10, 11), (12, 14), (16, 17),
                (13, 15), (18, 19), (22, 23))
MIDLINE = (20, 21, 24, 25, 26, 27, 28)
SCHEME = scheme_lib.LandmarkScheme(
    NUM_LANDMARKS, "inter_ocular", EYE_CORNERS,
    scheme_lib.mirror_map_from(NUM_LANDMARKS, MIRROR_PAIRS, MIDLINE), "absent")

# COFW-68: 68-point (300-W scheme) re-annotations of the test faces, one `.pts` file a
# face named by its 1-based index in COFW_test_color.mat (1.pts ... 507.pts).
COFW68_DIR = "COFW68"
COFW68 = "cofw68"

_INSTRUCTIONS = """\
Download COFW's colour release (Burgos-Artizzu et al., ICCV 2013; e.g.
https://data.caltech.edu/records/20099) and put both files in one folder:

  <manual_dir>/COFW_train_color.mat    (1,345 faces; MATLAB v7.3 / HDF5)
  <manual_dir>/COFW_test_color.mat     (507 faces)

Reading them needs h5py:  pip install -e '.[cofw]'. Then build with
  python -m asmnet_jax.data.build cofw --manual_dir <manual_dir>
For config cofw68 (the 68-point re-annotation of the test set), add
  <manual_dir>/COFW68/<k>.pts          (k = 1 ... 507, 300-W .pts, 1-based)
  python -m asmnet_jax.data.build cofw/cofw68 --manual_dir <manual_dir>
"""


class CofwFileError(ValueError):
  """A COFW .mat file that cannot be read (not HDF5, missing arrays, wrong shapes)."""


def _h5py():
  try:
    import h5py  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError("the COFW builder reads MATLAB v7.3 (HDF5) files with h5py: "
                      "pip install -e '.[cofw]' (or pip install h5py)") from None
  return h5py


def read_mat(path: str, images_key: str, shapes_key: str, boxes_key: str
             ) -> tuple[Any, Any, np.ndarray, np.ndarray]:
  """Opens one COFW file: (h5py file, image references (N,), shapes (N, 87), boxes (N, 4)).

  MATLAB v7.3 stores an (N, 87) matrix as an HDF5 dataset of shape (87, N) and the
  N-image cell array as (1, N) object references; boxes are x, y, w, h, 1-based.

  Raises:
    CofwFileError: naming the file and what is wrong with it.
  """
  h5py = _h5py()
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise CofwFileError(f"{path} is not a MATLAB v7.3 (HDF5) file ({e}); COFW's "
                        "*_color.mat releases are") from None
  missing = [k for k in (images_key, shapes_key, boxes_key) if k not in f]
  if missing:
    f.close()
    raise CofwFileError(f"{path} lacks {', '.join(missing)} (it has: {', '.join(sorted(f))})")
  refs = np.asarray(f[images_key]).reshape(-1)
  shapes, boxes = np.asarray(f[shapes_key], np.float64), np.asarray(f[boxes_key], np.float64)
  n = len(refs)
  if shapes.shape != (3 * NUM_LANDMARKS, n) or boxes.shape != (4, n):
    f.close()
    raise CofwFileError(f"{path}: {shapes_key} is {shapes.shape} and {boxes_key} "
                        f"{boxes.shape}; expected ({3 * NUM_LANDMARKS}, {n}) and (4, {n}) "
                        f"for its {n} images (MATLAB's N x 87 and N x 4, stored transposed)")
  return f, refs, shapes.T, boxes.T


def decode_image(f: Any, ref: Any) -> np.ndarray:
  """uint8 (H, W, 3) RGB of one cell: MATLAB's H x W x 3 (or H x W grey) uint8 array,
  stored transposed as (3, W, H) (or (W, H))."""
  pixels = np.asarray(f[ref])
  if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (
      pixels.ndim == 3 and pixels.shape[0] != 3):
    raise builders.MalformedSample(f"image of shape {pixels.shape} and type {pixels.dtype}; "
                                   "expected uint8 (3, W, H) or (W, H)")
  pixels = pixels.T
  if pixels.ndim == 2:
    pixels = np.repeat(pixels[..., None], 3, axis=-1)
  return np.ascontiguousarray(pixels)


def parse_shape(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """One row of 87 numbers -> (landmarks float64 (29, 2) 0-based, occluded bool (29,))."""
  n = NUM_LANDMARKS
  flags = row[2 * n:]
  if not np.isin(flags, (0, 1)).all():
    raise builders.MalformedSample(f"occlusion flags must be 0 or 1, got {flags[~np.isin(flags, (0, 1))][:3]}")
  points = np.stack([row[:n], row[n:2 * n]], axis=-1) - 1.0  # MATLAB's 1-based pixels.
  return builders.check_landmarks(points, n), flags.astype(bool)


class Builder(builders.ArrayRecordBuilder):
  """COFW: train (1,345 faces) and test (507), 29 points with occlusion flags."""

  VERSION = tfds.core.Version("1.1.0")
  TEST_SPLITS = ("test",)
  RELEASE_NOTES = {"1.0.0": "Initial release.",
                   "1.1.0": "A `validation` split: the training faces with the smallest "
                             "SHA-256 of their key (`validation_fraction`, 5 %)."}
  BUILDER_CONFIGS = [
      builders.FaceBuilderConfig(
          name="default", description="29 points; no pose labels (zeros)."),
      builders.FaceBuilderConfig(
          name=COFW68, description=(
              "The test faces with 68-point (300-W scheme) re-annotations from "
              f"<manual_dir>/{COFW68_DIR}/<k>.pts; pose fitted to them.")),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    if self.builder_config.name == COFW68:
      return tfds.core.DatasetInfo(
          builder=self,
          description=(
              "COFW test faces with the 68-point re-annotation (COFW-68, 300-W scheme; "
              "0-based pixels in the crop), the crop box in the original image and head "
              "pose fitted to the landmarks (yaw, pitch, roll in degrees)."),
          features=face_features.face_features(68, self.builder_config.image_format),
          homepage="https://github.com/golnazghiasi/cofw68-benchmark")
    extra = {"occluded": tfds.features.Tensor(shape=(NUM_LANDMARKS,), dtype=np.bool_)}
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "COFW face crops with 29 landmarks (0-based pixels in the crop), their "
            "occlusion flags (`occluded`, bool (29,), True = occluded) and the crop box "
            "in the original image; no pose labels (`pose` is zeros). NME normaliser: "
            f"{SCHEME.describe_normalizer()}."),
        features=face_features.face_features(NUM_LANDMARKS, self.builder_config.image_format,
                                             extra),
        metadata=tfds.core.MetadataDict({scheme_lib.METADATA_KEY: SCHEME.to_json()}),
        homepage="https://data.caltech.edu/records/20099",
        citation=(
            "@inproceedings{burgos2013robust,\n  title={Robust face landmark estimation "
            "under occlusion},\n  author={Burgos-Artizzu, Xavier P and Perona, Pietro and "
            "Doll{\\'a}r, Piotr},\n  booktitle={ICCV},\n  pages={1513--1520},\n"
            "  year={2013}\n}"),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = dl_manager.manual_dir  # TFDS raises with the instructions if absent/empty.
    if self.builder_config.name == COFW68:
      builders.require_layout(manual_dir, [FILES["test"][0], COFW68_DIR], _INSTRUCTIONS)
      _h5py()
      return {"test": self._generate_cofw68(os.fspath(manual_dir))}
    builders.require_layout(manual_dir, [f[0] for f in FILES.values()], _INSTRUCTIONS)
    _h5py()  # fail early without it.
    manual_dir = os.fspath(manual_dir)
    name, images_key, shapes_key, boxes_key = FILES["train"]
    f, refs, _, _ = read_mat(os.path.join(manual_dir, name), images_key, shapes_key,
                             boxes_key)
    f.close()
    count = len(refs)
    # The checkpoint is picked on training faces held out by a hash of their key.
    held_out = builders.validation_images(
        [f"{name}#{i + 1}" for i in range(count)], self.builder_config.validation_fraction)
    return {
        "train": self._generate_examples(manual_dir, "train", lambda k: k not in held_out),
        "validation": self._generate_examples(manual_dir, "train", held_out.__contains__,
                                              report_as="validation"),
        "test": self._generate_examples(manual_dir, "test"),
    }

  def _generate_cofw68(self, manual_dir: str) -> Iterator[tuple[str, dict]]:
    """Test faces with their COFW68/<k>.pts; faces without one are skipped and counted."""
    config = self.builder_config
    report = builders.SkipReport(self.name, "test")
    labeler = builders.PoseLabeler()
    name, images_key, shapes_key, boxes_key = FILES["test"]
    f, refs, _, _ = read_mat(os.path.join(manual_dir, name), images_key, shapes_key,
                             boxes_key)
    with f:
      for i, ref in enumerate(refs):
        key = f"{name}#{i + 1}"
        pts = os.path.join(manual_dir, COFW68_DIR, f"{i + 1}.pts")
        try:
          if not os.path.exists(pts):
            raise builders.MalformedSample(f"no {COFW68_DIR}/{i + 1}.pts")
          points = builders.check_landmarks(builders.parse_pts(pts) - 1.0, 68)  # 1-based.
          image = decode_image(f, ref)
          example = builders.make_example(image, points, key, labeler([key], points), config)
        except builders.MalformedSample as e:
          report.skip(key, str(e).replace(manual_dir + os.sep, ""))
          continue
        yield key, example
    report.finish()

  def _generate_examples(self, manual_dir: str, split: str,
                         keep: Callable[[str], bool] = lambda key: True,
                         report_as: str | None = None) -> Iterator[tuple[str, dict]]:
    """The faces of `split`'s file whose key `keep`s, in file order; keys and file
    names `<file>#<1-based index>`."""
    config = self.builder_config
    report = builders.SkipReport(self.name, report_as or split)
    name, images_key, shapes_key, boxes_key = FILES[split]
    f, refs, shapes, _ = read_mat(os.path.join(manual_dir, name), images_key, shapes_key,
                                  boxes_key)
    with f:
      for i, (ref, row) in enumerate(zip(refs, shapes)):
        key = f"{name}#{i + 1}"
        if not keep(key):
          continue
        try:
          points, occluded = parse_shape(row)
          image = decode_image(f, ref)
          example = builders.make_example(image, points, key, np.zeros(3, np.float32),
                                          config, {"occluded": occluded})
        except builders.MalformedSample as e:
          report.skip(key, str(e))
          continue
        yield key, example
    report.finish()
