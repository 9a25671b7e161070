"""Plumbing shared by the face-landmark TFDS builders in `datasets/`.

  * `FaceBuilderConfig` and `DEFAULT_CONFIGS`: crop/encoding options and where the
    pose labels come from ("fit": `asmnet_jax.core.pose`; "override": a CSV of labels).
  * `parse_pts`: iBUG `.pts` landmark files.
  * `check_sample`: landmarks inside the image (within a tolerance), an image no
    smaller than a face can be; `make_example` checks every sample with it, then
    crops: image + landmarks -> one example of `face_features`.
  * `read_text_lines`: a list file's lines; an undecodable one is skipped and named.
  * `SkipReport`: malformed samples are skipped, counted, and reported at the end
    of each split (log + `SkippedSamplesWarning` + the dataset's metadata.json
    field "skipped"), never silently.
  * `require_layout`: a clear error when the manual directory has the wrong layout.
  * `validation_images`: the deterministic validation part of a training split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds

from asmnet_jax.core import pose
from asmnet_jax.data import crops as face_crop

log = logging.getLogger(__name__)

POSE_OVERRIDES_FILENAME = "pose_overrides.csv"
# The split carved out of the training images for model selection.
VALIDATION_SPLIT = "validation"
DEFAULT_VALIDATION_FRACTION = 0.05
# A landmark may lie outside its image (an occluded chin at the border) by this
# fraction of the image's longer side; farther, the annotation is wrong.
OUTSIDE_TOLERANCE = 0.25
# The shorter side (pixels) below which an image cannot hold a usable face.
MIN_IMAGE_SIDE = 16


class ArrayRecordBuilder(tfds.core.GeneratorBasedBuilder):
  """A TFDS builder that writes `array_record` files unless told otherwise: TFDS's
  default, tfrecord, needs TensorFlow, which this project never imports. Abstract:
  each dataset's `Builder` subclasses it."""

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format or "array_record", **kwargs)


class MalformedSample(ValueError):
  """A sample that cannot be used; the builders skip and report it."""


class SkippedSamplesWarning(UserWarning):
  """Emitted at the end of a split when samples were skipped (or poses fell back)."""


@dataclasses.dataclass(eq=False)
class FaceBuilderConfig(tfds.core.BuilderConfig):
  """Options of the face-landmark builders.

  Attributes:
    pose_source: "fit" labels pose by fitting the 3D mean face to the landmarks;
      "override" reads `pose_overrides_csv` (filename,yaw,pitch,roll; see
      `asmnet_jax.core.pose.load_pose_overrides`) and fits only faces it lacks.
    pose_overrides_csv: the CSV for "override"; None means
      `<manual_dir>/pose_overrides.csv`.
    margin: crop margin on each side, fraction of the landmark box's longer side.
    max_size: longer side cap of stored crops in pixels (None: no cap).
    image_format: "jpeg" (quality 95, no chroma subsampling) or "png".
    validation_fraction: share of the training *images* held out as the
      `validation` split (`validation_images`), in (0, 0.5).
  """

  pose_source: str = "fit"
  pose_overrides_csv: str | None = None
  margin: float = face_crop.DEFAULT_MARGIN
  max_size: int | None = face_crop.DEFAULT_MAX_SIZE
  image_format: str = "jpeg"
  validation_fraction: float = DEFAULT_VALIDATION_FRACTION

  def __post_init__(self):
    if self.pose_source not in ("fit", "override"):
      raise ValueError(f"pose_source must be 'fit' or 'override', got {self.pose_source!r}")
    self._check_validation_fraction()

  def _check_validation_fraction(self) -> None:
    """The share of training images held out (300-W, WFLW): in (0, 0.5)."""
    if not 0.0 < self.validation_fraction < 0.5:
      raise ValueError(f"validation_fraction must be in (0, 0.5), got "
                       f"{self.validation_fraction!r}")


DEFAULT_CONFIGS = [
    FaceBuilderConfig(
        name="fit",
        description="Pose from a weak-perspective fit of the 3D mean face to the landmarks.",
    ),
    FaceBuilderConfig(
        name="override",
        pose_source="override",
        description=(
            f"Pose from <manual_dir>/{POSE_OVERRIDES_FILENAME} (filename,yaw,pitch,roll in "
            "degrees, e.g. HopeNet labels); faces it lacks fall back to the fit."),
    ),
]


def validation_images(filenames: Iterable[str], fraction: float) -> frozenset[str]:
  """The training images held out for validation: of the distinct `filenames` (image
  paths relative to the manual directory), the ceil(fraction * count) whose SHA-256
  of the UTF-8 path is smallest.

  Deterministic on every machine and independent of the order of the files; at least
  one image when there is any; every face of one image falls on the same side.
  """
  names = sorted(set(filenames))
  count = math.ceil(fraction * len(names))
  ranked = sorted(names, key=lambda name: hashlib.sha256(name.encode("utf-8")).digest())
  return frozenset(ranked[:count])


def parse_pts(path: str | os.PathLike) -> np.ndarray:
  """Reads an iBUG `.pts` file: float64 (n, 2) as stored (1-based, Matlab style).

  Format: `version: 1`, `n_points: N`, `{`, N lines `x y`, `}`.

  Raises:
    MalformedSample: naming the file and line, if the file is missing, malformed,
      or its point count disagrees with its `n_points` header.
  """
  where = os.fspath(path)
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      lines = [line.strip() for line in f]
  except OSError as e:
    raise MalformedSample(f"cannot read {where}: {e}") from None
  lines = [(i, line) for i, line in enumerate(lines, start=1) if line]
  header = {}
  k = 0
  while k < len(lines) and lines[k][1] != "{":
    i, line = lines[k]
    key, sep, value = line.partition(":")
    if not sep:
      raise MalformedSample(f"{where}, line {i}: expected 'key: value' or '{{', got {line!r}")
    header[key.strip().lower()] = value.strip()
    k += 1
  if k == len(lines):
    raise MalformedSample(f"{where}: no '{{' opening the point list")
  try:
    n_points = int(header["n_points"])
  except (KeyError, ValueError):
    raise MalformedSample(f"{where}: missing or bad 'n_points' header") from None
  points = []
  for i, line in lines[k + 1:]:
    if line == "}":
      break
    values = line.split()
    try:
      if len(values) != 2:
        raise ValueError
      points.append([float(values[0]), float(values[1])])
    except ValueError:
      raise MalformedSample(f"{where}, line {i}: expected 'x y', got {line!r}") from None
  else:
    raise MalformedSample(f"{where}: no '}}' closing the point list")
  if len(points) != n_points:
    raise MalformedSample(f"{where}: header says {n_points} points, the list has {len(points)}")
  return np.array(points, dtype=np.float64).reshape(-1, 2)


def check_landmarks(landmarks: np.ndarray, num_landmarks: int) -> np.ndarray:
  """float64 (n, 2) landmarks, or MalformedSample (wrong count, NaN/inf, degenerate)."""
  landmarks = np.asarray(landmarks, dtype=np.float64)
  if landmarks.shape != (num_landmarks, 2):
    raise MalformedSample(f"expected {num_landmarks} points, got {landmarks.shape[0]}")
  if not np.isfinite(landmarks).all():
    raise MalformedSample("non-finite (NaN or inf) landmark coordinates")
  if np.ptp(landmarks, axis=0).max() <= 0:
    raise MalformedSample("degenerate landmarks (all points coincide)")
  return landmarks


def check_sample(image_shape: Sequence[int], landmarks: np.ndarray) -> None:
  """Raises MalformedSample for an image too small for a face or landmarks outside it.

  Args:
    image_shape: (H, W, ...) of the original image.
    landmarks: float64 (n, 2), 0-based pixels (`check_landmarks`'d).
  """
  height, width = int(image_shape[0]), int(image_shape[1])
  if min(height, width) < MIN_IMAGE_SIDE:
    raise MalformedSample(f"image of {width}x{height} px, smaller than the smallest face "
                          f"({MIN_IMAGE_SIDE} px)")
  tolerance = OUTSIDE_TOLERANCE * max(height, width)
  below = np.maximum(-0.5 - landmarks, 0.0)
  above = np.maximum(landmarks - (np.array([width, height]) - 0.5), 0.0)
  outside = np.max(below + above, axis=1)
  worst = int(np.argmax(outside))
  if outside[worst] > tolerance:
    x, y = landmarks[worst]
    raise MalformedSample(
        f"landmark {worst} at ({x:.6g}, {y:.6g}) lies {outside[worst]:.0f} px outside the "
        f"{width}x{height} image (tolerance {tolerance:.0f} px)")


def read_text_lines(path: str, report: SkipReport, name: str | None = None
                    ) -> list[tuple[int, str]]:
  """(1-based line number, text) of each UTF-8 line of `path`; each undecodable line
  is skipped into `report` as `<name>:<line>` (name: default the file's basename)."""
  name = name or os.path.basename(path)
  with open(path, "rb") as f:
    raw_lines = f.read().splitlines()
  lines = []
  for number, raw in enumerate(raw_lines, start=1):
    try:
      lines.append((number, raw.decode("utf-8")))
    except UnicodeDecodeError as e:
      report.skip(f"{name}:{number}", f"not UTF-8 text (byte 0x{raw[e.start]:02x} at "
                  f"column {e.start + 1})")
  return lines


class SkipReport:
  """Collects skipped samples of one split and reports them when the split ends.

  metadata: the builder's `info.metadata` (a `tfds.core.MetadataDict`), where
  `finish` records {"skipped": {split: {"count": n, "samples": ["name: reason"]}}}
  for the build's metadata.json; None: log and warn only.
  """

  def __init__(self, dataset: str, split: str, metadata: dict | None = None):
    self.dataset, self.split = dataset, split
    self.metadata = metadata
    self.skipped: list[tuple[str, str]] = []  # (filename, reason)
    self.notes: list[str] = []

  def skip(self, filename: str, reason: str) -> None:
    self.skipped.append((filename, reason))
    log.info("%s/%s: skipping %s: %s", self.dataset, self.split, filename, reason)

  def note(self, message: str) -> None:
    self.notes.append(message)

  def summary(self) -> str:
    lines = []
    if self.skipped:
      lines.append(f"{self.dataset}/{self.split}: skipped {len(self.skipped)} malformed "
                   "sample(s):")
      lines += [f"  {name}: {reason}" for name, reason in self.skipped]
    lines += [f"{self.dataset}/{self.split}: {note}" for note in self.notes]
    return "\n".join(lines)

  def finish(self) -> str:
    """Logs and warns (`SkippedSamplesWarning`) if anything was skipped or noted, and
    records the count in `metadata`."""
    if self.metadata is not None:
      skipped = dict(self.metadata.get("skipped", {}))
      skipped[self.split] = {"count": len(self.skipped),
                             "samples": [f"{name}: {reason}" for name, reason in self.skipped]}
      self.metadata["skipped"] = skipped
    text = self.summary()
    if text:
      log.warning("%s", text)
      warnings.warn(text, SkippedSamplesWarning, stacklevel=2)
    return text


class PoseLabeler:
  """Pose of a face: its override (first matching key) if any, else the fit."""

  def __init__(self, overrides: dict[str, tuple[float, float, float]] | None = None,
               source: str | None = None):
    self.overrides = overrides
    self.source = source
    self.fallbacks: list[str] = []

  @classmethod
  def from_config(cls, config: FaceBuilderConfig, manual_dir: os.PathLike) -> PoseLabeler:
    if config.pose_source == "fit":
      return cls()
    path = config.pose_overrides_csv or os.path.join(manual_dir, POSE_OVERRIDES_FILENAME)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"config {config.name!r} takes poses from {path}, which does not exist. Write "
          "one row 'filename,yaw,pitch,roll' (degrees) per face there, or build the "
          "'fit' config (e.g. `tfds build ... --config fit`) to fit poses to landmarks.")
    return cls(pose.load_pose_overrides(path), source=os.fspath(path))

  def __call__(self, keys: Sequence[str], landmarks: np.ndarray) -> np.ndarray:
    """float32 (3,) yaw, pitch, roll in degrees for one face.

    Args:
      keys: the face's override keys, most specific first (normalised here).
      landmarks: (n, 2) its landmarks, for the fit.
    """
    if self.overrides is not None:
      for key in keys:
        key = pose.normalize_key(key)
        if key in self.overrides:
          return np.asarray(self.overrides[key], dtype=np.float32)
      self.fallbacks.append(keys[0])
    angles = pose.pose_from_landmarks(landmarks)
    if not np.isfinite(angles).all():
      raise MalformedSample("the mean-face pose fit failed (degenerate landmarks)")
    return angles.astype(np.float32)

  def report_into(self, report: SkipReport) -> None:
    if self.overrides is None:
      return
    if self.fallbacks:
      shown = ", ".join(self.fallbacks[:10]) + (" ..." if len(self.fallbacks) > 10 else "")
      report.note(f"{len(self.fallbacks)} face(s) missing from {self.source} got fitted "
                  f"poses: {shown}")


def require_layout(manual_dir: os.PathLike, required: Sequence[str], instructions: str) -> None:
  """Raises FileNotFoundError naming the `required` paths missing from `manual_dir`."""
  missing = [p for p in required if not os.path.exists(os.path.join(manual_dir, p))]
  if missing:
    raise FileNotFoundError(
        f"The manual directory {os.fspath(manual_dir)} lacks: {', '.join(missing)}.\n"
        f"{instructions}")


def make_example(
    image: np.ndarray,
    landmarks: np.ndarray,
    filename: str,
    pose_angles: np.ndarray,
    config: FaceBuilderConfig,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
  """One `face_features` example from a decoded image and checked landmarks.

  Args:
    image: uint8 (H, W, 3) RGB original.
    landmarks: float64 (n, 2), 0-based pixel coordinates in `image`.
    filename: the image path relative to the manual directory.
    pose_angles: float32 (3,) yaw, pitch, roll in degrees.
    config: crop and encoding options.
    extra: dataset-specific features.

  Raises:
    MalformedSample: `check_sample` refuses it.
  """
  check_sample(image.shape, landmarks)  # also bounds the crop's size by the image's.
  crop = face_crop.crop_face(image, landmarks, config.margin, config.max_size)
  example = {
      "image": face_crop.encode_image(crop.image, config.image_format),
      "landmarks": crop.landmarks,
      "crop_box": crop.crop_box,
      "pose": np.asarray(pose_angles, dtype=np.float32),
      "filename": filename,
  }
  example.update(extra or {})
  return example


def prepare_reporting_skips(builder: tfds.core.DatasetBuilder,
                            manual_dir: str | None = None) -> list[str]:
  """Builds `builder` (from `manual_dir`) and returns its skipped-sample reports.

  The reports are the `SkippedSamplesWarning` messages of the build, one per split
  that skipped samples (they are also shown as warnings and logged).
  """
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  reports = []
  for caught_warning in caught:
    if issubclass(caught_warning.category, SkippedSamplesWarning):
      reports.append(str(caught_warning.message))
    else:  # Hand the other warnings on.
      warnings.warn_explicit(caught_warning.message, caught_warning.category,
                             caught_warning.filename, caught_warning.lineno)
  return reports


def read_split(builder: tfds.core.DatasetBuilder, split: str) -> list[dict[str, Any]]:
  """Every record of a prepared split, decoded, in order (for tests and inspection)."""
  source = builder.as_data_source(split)
  return [source[i] for i in range(len(source))]
