"""Reading landmark annotations of image folders, in three formats, any point count.

  * `.pts` files beside the images (iBUG 300-W): `<stem>.pts` beside `<stem>.jpg`
    (or another IMAGE_EXTENSIONS), `<stem>_<k>.pts` for face k of `<stem>.jpg`
    (AFW's naming); searched recursively; coordinates 1-based (Matlab style),
    returned 0-based.
  * one JSON file `{"faces": [{"file": ..., "landmarks": [[x, y], ...]}, ...]}`
    (`file` relative to the JSON's folder; landmarks 0-based pixels), the layout of
    ../shared/data/real_faces/landmarks.json; a folder holding it as JSON_NAME.
  * one CSV file of rows `file,x0,y0,x1,y1,...` (0-based pixels; an optional
    header row starting with `file`; `#` comment lines), a folder holding it as
    CSV_NAME.

An image listed several times (or with several `.pts`) holds several faces. A face
that cannot be used is skipped, with the file and the reason, into
`Annotations.skipped`; a folder in no format (or in two) raises `AnnotationError`.
Used by the `landmark_folder` TFDS builder and by `asmnet_jax.evaluate.photos`.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
from typing import Any

import numpy as np

from asmnet_jax.data import builders

JSON_NAME = "landmarks.json"
CSV_NAME = "landmarks.csv"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Files that look like annotations in a format not read here (named in the error).
_OTHER_ANNOTATION_EXTENSIONS = (".json", ".csv", ".txt", ".xml", ".mat", ".npy", ".npz",
                                ".yaml", ".yml", ".ljson", ".tsv")


class AnnotationError(ValueError):
  """A dataset that cannot be read at all (not one bad sample)."""


@dataclasses.dataclass
class Photo:
  """One annotated image.

  path: the image file. name: its path relative to the dataset (for reports).
  landmarks: per face, float64 (n, 2) 0-based pixel-centre coordinates of the
    stored pixel grid (EXIF orientation not applied, as annotation tools show it).
  sources: per face, where its annotation is (`a_1.pts`, `landmarks.csv:12`).
  """
  path: str
  name: str
  landmarks: list[np.ndarray]
  sources: list[str] = dataclasses.field(default_factory=list)

  def add(self, points: np.ndarray, source: str) -> None:
    self.landmarks.append(points)
    self.sources.append(source)


@dataclasses.dataclass
class Annotations:
  """A parsed dataset: its format ("300w", "json" or "csv"), photos, skipped
  annotations ({"file", "reason", "faces"}) and the number of images without a
  `.pts` (the `.pts` format only)."""
  format: str
  photos: list[Photo]
  skipped: list[dict[str, Any]]
  unannotated_images: int = 0

  def point_counts(self) -> collections.Counter:
    """{n: faces with n points}."""
    return collections.Counter(len(p) for photo in self.photos for p in photo.landmarks)

  def keep_point_count(self, num_points: int, why: str) -> None:
    """Moves faces with another point count than `num_points` into `skipped`,
    each named with its source, the count and `why` (e.g. "the dataset has 68")."""
    kept = []
    for photo in self.photos:
      faces = [(p, s) for p, s in zip(photo.landmarks, photo.sources) if len(p) == num_points]
      for points, source in zip(photo.landmarks, photo.sources):
        if len(points) != num_points:
          self.skipped.append({"file": source, "faces": 1,
                               "reason": f"{source}: {len(points)} points, {why}"})
      if faces:
        kept.append(Photo(photo.path, photo.name, [p for p, _ in faces], [s for _, s in faces]))
    self.photos = kept


def checked_points(points: Any) -> np.ndarray:
  """(n, 2) float64 finite, non-degenerate landmarks, or `builders.MalformedSample`."""
  try:
    points = np.asarray(points, np.float64)
  except (TypeError, ValueError):
    raise builders.MalformedSample("landmarks are not a list of [x, y] numbers") from None
  if points.ndim != 2 or points.shape[-1] != 2 or len(points) < 2:
    raise builders.MalformedSample(f"landmarks must be (n, 2) [x, y] pairs with n >= 2, "
                                   f"got shape {points.shape}")
  return builders.check_landmarks(points, len(points))  # NaN, inf, all in one spot.


def _duplicate_of(seen: dict, photo_key: str, points: np.ndarray, where: str) -> str | None:
  """The place the same face (image and points) was listed before, else None."""
  key = (photo_key, points.tobytes())
  if key in seen:
    return seen[key]
  seen[key] = where
  return None


def read_pts_folder(root: str) -> Annotations:
  """Every `.pts` under `root` (recursively) with the image of its stem beside it.

  Coordinates come back 0-based: 300-W's `.pts` are 1-based Matlab pixels (the
  top-left pixel's centre is (1, 1)), ours put that centre at (0, 0). A `.pts`
  whose stem matches two images (`a.jpg` and `a.png`) is skipped as ambiguous.
  """
  photos: dict[str, Photo] = {}
  skipped: list[dict[str, Any]] = []
  used_images, all_images = set(), set()
  for directory, subdirs, names in os.walk(root):
    subdirs.sort()
    stems: dict[str, list[str]] = {}  # lower-case stem -> image names, IMAGE_EXTENSIONS order.
    for ext in IMAGE_EXTENSIONS:
      for name in sorted(names):
        stem, e = os.path.splitext(name)
        if e.lower() == ext:
          stems.setdefault(stem.lower(), []).append(name)
          all_images.add(os.path.join(directory, name))
    for name in sorted(names):
      if not name.lower().endswith(".pts"):
        continue
      pts_path = os.path.join(directory, name)
      rel = os.path.relpath(pts_path, root)
      stem = os.path.splitext(name)[0].lower()
      # AFW: <id>_1.pts, <id>_2.pts are the faces of <id>.jpg.
      base, _, suffix = stem.rpartition("_")
      candidates = stems.get(stem) or (stems.get(base) if suffix.isdigit() else None)
      if not candidates:
        skipped.append({"file": rel, "reason": f"no image {os.path.splitext(name)[0]}"
                        f".{{jpg,png,...}} beside {pts_path}", "faces": 1})
        continue
      if len(candidates) > 1:
        skipped.append({"file": rel, "faces": 1, "reason": (
            f"{pts_path}: duplicate image names {' and '.join(candidates)} both match it; "
            "keep one")})
        continue
      try:
        points = builders.parse_pts(pts_path)
        points = checked_points(points) - 1.0  # 1-based -> 0-based (docstring).
      except builders.MalformedSample as e:
        reason = str(e) if pts_path in str(e) else f"{pts_path}: {e}"
        skipped.append({"file": rel, "reason": reason, "faces": 1})
        continue
      image_path = os.path.join(directory, candidates[0])
      used_images.add(image_path)
      photo = photos.setdefault(image_path, Photo(image_path, os.path.relpath(image_path, root),
                                                  []))
      photo.add(points, rel)
  return Annotations("300w", list(photos.values()), skipped, len(all_images - used_images))


def read_landmarks_json(path: str) -> Annotations:
  """The faces of a `{"faces": [{"file", "landmarks", ...}]}` JSON (0-based pixels).

  Raises:
    AnnotationError: if the file is not JSON or has no "faces" list.
  """
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except (OSError, UnicodeDecodeError) as e:
    raise AnnotationError(f"cannot read {path}: {e}") from None
  except json.JSONDecodeError as e:
    raise AnnotationError(f"{path} is not valid JSON: {e}") from None
  if not isinstance(data, dict) or not isinstance(data.get("faces"), list):
    raise AnnotationError(f'{path}: expected {{"faces": [{{"file": ..., "landmarks": '
                          '[[x, y], ...]}, ...]}')
  folder = os.path.dirname(os.path.abspath(path))
  photos: dict[str, Photo] = {}
  skipped: list[dict[str, Any]] = []
  seen: dict = {}
  for i, entry in enumerate(data["faces"]):
    where = f"{path}: faces[{i}]"
    file = entry.get("file") if isinstance(entry, dict) else None
    if not isinstance(file, str) or not file:
      skipped.append({"file": where, "reason": f"{where}: no 'file' name", "faces": 1})
      continue
    _add_face(photos, skipped, seen, folder, file, entry.get("landmarks"), where,
              f"faces[{i}]", f"{os.path.basename(path)}: faces[{i}]")
  return Annotations("json", list(photos.values()), skipped)


def _add_face(photos: dict[str, Photo], skipped: list[dict[str, Any]], seen: dict,
              folder: str, file: str, points: Any, where: str, key: str,
              label: str) -> None:
  """Adds one listed face of `file` (in `folder`) to `photos`, or records in
  `skipped` why not: missing or bad points, or a duplicate of an earlier face."""
  try:
    if points is None:
      raise builders.MalformedSample("no 'landmarks'")
    points = checked_points(points)
  except builders.MalformedSample as e:
    skipped.append({"file": file, "faces": 1, "reason": f"{where} ({file}): {e}"})
    return
  first = _duplicate_of(seen, file, points, key)
  if first is not None:
    skipped.append({"file": file, "faces": 1,
                    "reason": f"{where} ({file}): duplicate of {first}"})
    return
  image_path = os.path.join(folder, file)
  photos.setdefault(image_path, Photo(image_path, file, [])).add(points, label)


def _is_number(text: str) -> bool:
  """Whether a CSV cell parses as a float (NaN and inf do; `check_landmarks` refuses them)."""
  try:
    float(text)
  except ValueError:
    return False
  return True


def read_landmarks_csv(path: str) -> Annotations:
  """The faces of a CSV of rows `file,x0,y0,x1,y1,...` (0-based pixels).

  A first row starting with `file` (any case) is a header; blank rows and rows
  starting with `#` are ignored. A row with a non-numeric cell or an odd number of
  coordinates is skipped, naming the line and column.

  Raises:
    AnnotationError: if the file cannot be read.
  """
  try:
    with open(path, encoding="utf-8", newline="") as f:
      rows = list(csv.reader(f))
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise AnnotationError(f"cannot read {path}: {e}") from None
  folder = os.path.dirname(os.path.abspath(path))
  base = os.path.basename(path)
  photos: dict[str, Photo] = {}
  skipped: list[dict[str, Any]] = []
  seen: dict = {}
  for line, row in enumerate(rows, start=1):
    row = [cell.strip() for cell in row]
    while row and not row[-1]:
      row.pop()  # a trailing comma.
    if not row or row[0].startswith("#"):
      continue
    if line == 1 and row[0].lower() in ("file", "filename", "image"):
      continue  # the header.
    where = f"{path}, line {line}"
    file = row[0]
    bad = [(column, cell) for column, cell in enumerate(row[1:], start=2)
           if not _is_number(cell)]
    if bad:
      column, cell = bad[0]
      skipped.append({"file": file or where, "faces": 1, "reason": (
          f"{where}, column {column}: {cell!r} is not a number")})
      continue
    if not file or (len(row) - 1) % 2:
      reason = ("no file name in the first column" if not file else
                f"{len(row) - 1} coordinates, an odd number (expected x0,y0,x1,y1,...)")
      skipped.append({"file": file or where, "faces": 1, "reason": f"{where}: {reason}"})
      continue
    _add_face(photos, skipped, seen, folder, file,
              np.asarray([float(c) for c in row[1:]]).reshape(-1, 2), where,
              f"line {line}", f"{base}:{line}")
  return Annotations("csv", list(photos.values()), skipped)


def _formats_in(path: str) -> list[str]:
  """The annotation formats present in folder `path`: "json", "csv", "300w"."""
  found = []
  if os.path.isfile(os.path.join(path, JSON_NAME)):
    found.append("json")
  if os.path.isfile(os.path.join(path, CSV_NAME)):
    found.append("csv")
  if any(name.lower().endswith(".pts") for _, _, names in os.walk(path) for name in names):
    found.append("300w")
  return found


def read_annotations(path: str) -> Annotations:
  """The faces of DATASET in any format (module doc), detected from its contents.

  Raises:
    AnnotationError: naming `path` when it is missing, in no format, or in two.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise AnnotationError(f"dataset not found: {path}")
  if os.path.isfile(path):
    if path.lower().endswith(".json"):
      return read_landmarks_json(path)
    if path.lower().endswith(".csv"):
      return read_landmarks_csv(path)
    raise AnnotationError(f"{path}: unknown annotation format (expected a landmarks .json "
                          "or .csv file, or a folder)")
  formats = _formats_in(path)
  if len(formats) > 1:
    names = {"json": JSON_NAME, "csv": CSV_NAME, "300w": ".pts files"}
    raise AnnotationError(f"{path} holds annotations in {len(formats)} formats ("
                          f"{', '.join(names[f] for f in formats)}); keep one")
  if formats == ["json"]:
    return read_landmarks_json(os.path.join(path, JSON_NAME))
  if formats == ["csv"]:
    return read_landmarks_csv(os.path.join(path, CSV_NAME))
  if formats == ["300w"]:
    return read_pts_folder(path)
  others = sorted(name for name in os.listdir(path)
                  if name.lower().endswith(_OTHER_ANNOTATION_EXTENSIONS))
  hint = (f"; found {', '.join(others[:5])}, in no format read here" if others else "")
  raise AnnotationError(
      f"{path}: unknown annotation format{hint}. Expected a 300-W folder (images with a "
      f".pts file of the same stem beside them), a landmarks JSON ({{\"faces\": [...]}}, "
      f"or a folder holding {JSON_NAME}) or a CSV (file,x0,y0,x1,y1,..., or a folder "
      f"holding {CSV_NAME})")
