"""A dataset's landmark scheme: point count, NME normaliser, mirror map, pose source.

Builders of other schemes than 300-W's 68 points and WFLW's 98 declare theirs in the
dataset's TFDS metadata (`builder.info.metadata["landmark_scheme"]`, a JSON object
written by `LandmarkScheme.to_json`); a dataset without it gets the built-in scheme
of its point count (`default_scheme`). Training reads the mirror map for flips and
the pose source from it, evaluation the normaliser of its NME.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from asmnet_jax.core import metrics, mirror

METADATA_KEY = "landmark_scheme"
# Where a dataset's pose labels come from.
POSE_SOURCES = ("fit", "csv", "absent")


@dataclasses.dataclass(frozen=True)
class LandmarkScheme:
  """How a dataset's points are laid out and scored.

  num_points: n, the points of every face.
  normalizer: the NME normaliser (`asmnet_jax.core.metrics.NORMALIZERS`).
  eye_corners: zero-based (left, right) outer eye corners, or None.
  mirror_map: the left-right mirror permutation (n,) (`core.mirror`), or None
    when the dataset declares none (flipping it is then refused).
  pose_source: "fit" (mean-face fit), "csv" (given labels) or "absent" (the
    stored poses are zeros: pose is neither trained nor scored).
  """

  num_points: int
  normalizer: str
  eye_corners: tuple[int, int] | None = None
  mirror_map: tuple[int, ...] | None = None
  pose_source: str = "fit"

  def __post_init__(self):
    if self.num_points < 2:
      raise ValueError(f"a landmark scheme needs at least 2 points, got {self.num_points}")
    if self.normalizer not in metrics.NORMALIZERS:
      raise ValueError(f"unknown normalizer {self.normalizer!r}; known: "
                       f"{', '.join(metrics.NORMALIZERS)}")
    if self.pose_source not in POSE_SOURCES:
      raise ValueError(f"pose_source must be one of {POSE_SOURCES}, got {self.pose_source!r}")
    if self.eye_corners is not None:
      left, right = self.eye_corners
      if left == right or not (0 <= left < self.num_points and 0 <= right < self.num_points):
        raise ValueError(f"eye_corners {tuple(self.eye_corners)}: two different indices in "
                         f"[0, {self.num_points}) needed")
    elif self.normalizer == "inter_ocular":
      raise ValueError(f"the inter_ocular normalizer needs eye_corners for "
                       f"{self.num_points} points")
    if self.mirror_map is not None:
      perm = mirror.validate_permutation(np.asarray(self.mirror_map), self.num_points)
      if self.eye_corners is not None and perm[self.eye_corners[0]] != self.eye_corners[1]:
        raise ValueError(f"mirror map: eye corner {self.eye_corners[0]} mirrors to "
                         f"{perm[self.eye_corners[0]]}, not to the other eye corner "
                         f"{self.eye_corners[1]}")

  @property
  def has_pose(self) -> bool:
    return self.pose_source != "absent"

  def describe_normalizer(self) -> str:
    """e.g. "inter-ocular distance (outer eye corners 36, 45)", for reports."""
    return metrics.describe_normalizer(self.normalizer, self.eye_corners, self.num_points)

  def nme(self, pred, gt, point_mask=None):
    """`metrics.nme` with this scheme's normaliser: (batch, n, 2) -> (batch,)."""
    return metrics.nme(pred, gt, self.eye_corners, self.normalizer, point_mask)

  def to_json(self) -> dict[str, Any]:
    return {"num_points": self.num_points, "normalizer": self.normalizer,
            "eye_corners": None if self.eye_corners is None else list(self.eye_corners),
            "mirror_map": None if self.mirror_map is None else list(self.mirror_map),
            "pose_source": self.pose_source}

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> LandmarkScheme:
    eyes, perm = data.get("eye_corners"), data.get("mirror_map")
    return cls(num_points=int(data["num_points"]), normalizer=data["normalizer"],
               eye_corners=None if eyes is None else (int(eyes[0]), int(eyes[1])),
               mirror_map=None if perm is None else tuple(int(i) for i in perm),
               pose_source=data.get("pose_source", "fit"))


def default_scheme(num_points: int, pose_source: str = "fit") -> LandmarkScheme:
  """The built-in scheme of a point count: 68 (300-W) and 98 (WFLW) have eye corners
  and a mirror map; other counts neither (box-diagonal NME, no flips)."""
  eyes = metrics.OUTER_EYE_CORNERS.get(num_points)
  perm = mirror.builtin_permutation(num_points)
  return LandmarkScheme(num_points, metrics.default_normalizer(num_points, eyes), eyes,
                        None if perm is None else tuple(int(i) for i in perm), pose_source)


def mirror_map_from(num_points: int, pairs: Sequence[Sequence[int]] | None = None,
                    midline: Sequence[int] | None = None,
                    permutation: Sequence[int] | None = None) -> tuple[int, ...]:
  """A declared mirror map, checked to account for every point.

  Either `permutation` (n indices, an involution) or `pairs` of left-right partners
  together with the `midline` points that mirror onto themselves; a point in
  neither is refused, so that a forgotten pair cannot pass as a midline point.
  """
  if permutation is not None:
    if pairs is not None or midline is not None:
      raise ValueError("give a mirror permutation or mirror pairs with midline points, "
                       "not both")
    return tuple(int(i) for i in mirror.validate_permutation(np.asarray(permutation),
                                                             num_points))
  if pairs is None:
    raise ValueError("mirror pairs missing")
  perm = mirror.permutation_from_pairs(pairs, num_points)
  paired = {int(i) for pair in pairs for i in pair}
  midline = [int(i) for i in (midline or [])]
  for i in midline:
    if not 0 <= i < num_points:
      raise ValueError(f"midline point {i} outside [0, {num_points})")
    if i in paired:
      raise ValueError(f"point {i} is both in a mirror pair and on the midline")
  missing = sorted(set(range(num_points)) - paired - set(midline))
  if missing:
    raise ValueError(f"the mirror map does not account for point(s) {missing}: list each "
                     "point in a mirror pair or among the midline points")
  return tuple(int(i) for i in perm)


def scheme_of(builder: Any) -> LandmarkScheme:
  """The scheme a TFDS builder declares in its metadata, else the built-in one of its
  point count."""
  num_points = builder.info.features["landmarks"].shape[0]
  metadata = builder.info.metadata or {}
  if METADATA_KEY in metadata:
    scheme = LandmarkScheme.from_json(metadata[METADATA_KEY])
    if scheme.num_points != num_points:
      raise ValueError(f"{builder.name}: its metadata declares {scheme.num_points} points, "
                       f"its landmarks feature has {num_points}")
    return scheme
  return default_scheme(num_points)


# A training run's scheme, in its work directory, for inference (flip test, scoring).
WORKDIR_FILE = "scheme.json"


def save_to_workdir(scheme: LandmarkScheme, workdir: str) -> None:
  """Writes `scheme` as DIR/scheme.json."""
  with open(os.path.join(workdir, WORKDIR_FILE), "w", encoding="utf-8") as f:
    json.dump(scheme.to_json(), f, indent=2)


def load_from_workdir(workdir: str) -> LandmarkScheme | None:
  """The scheme a run recorded in DIR/scheme.json; None for a run from before the file
  existed. ValueError naming the file when it cannot be read as a scheme."""
  path = os.path.join(workdir, WORKDIR_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      return LandmarkScheme.from_json(json.load(f))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path}: not a landmark scheme ({e})") from e


# A labelled folder's declarations (`landmark_folder` builder, `evaluate.photos`).
DATASET_FILE = "dataset.json"
SCHEME_KEYS = ("num_points", "eye_corners", "normalizer", "mirror_pairs", "midline_points",
               "mirror_map")
SPLIT_KEYS = ("test_fraction", "validation_fraction")


def read_dataset_file(path: str) -> dict[str, Any]:
  """The JSON object of a folder's DATASET_FILE; ValueError naming the file and key
  when it is not JSON, not an object, or has an unknown key."""
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"cannot read {path}: {e}") from None
  if not isinstance(data, dict):
    raise ValueError(f"{path}: expected a JSON object such as "
                     '{"eye_corners": [0, 1], "mirror_pairs": [[0, 1]], "midline_points": [2]}')
  unknown = sorted(set(data) - set(SCHEME_KEYS) - set(SPLIT_KEYS))
  if unknown:
    raise ValueError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; known: "
                     f"{', '.join(SCHEME_KEYS + SPLIT_KEYS)}")
  return data


def scheme_from_declarations(declared: Mapping[str, Any], num_points: int,
                             pose_source: str = "fit", where: str = DATASET_FILE
                             ) -> LandmarkScheme:
  """The scheme of `num_points`-point faces given a folder's declarations.

  Undeclared parts come from `default_scheme` (68/98 points: eye corners and
  mirror map built in). The normaliser defaults to inter-ocular when eye corners
  are known, else the box diagonal. ValueError, prefixed with `where`, for a bad
  or inconsistent declaration (mirror maps must account for every point).
  """
  try:
    declared_count = declared.get("num_points")
    if declared_count is not None and int(declared_count) != num_points:
      raise ValueError(f"num_points is {declared_count}, the annotations have {num_points}")
    base = default_scheme(num_points, pose_source)
    eyes = declared.get("eye_corners", base.eye_corners)
    if eyes is not None:
      if len(eyes) != 2:
        raise ValueError(f"eye_corners must be two indices, got {eyes}")
      eyes = (int(eyes[0]), int(eyes[1]))
    perm = base.mirror_map
    if any(k in declared for k in ("mirror_pairs", "midline_points", "mirror_map")):
      perm = mirror_map_from(num_points, declared.get("mirror_pairs"),
                             declared.get("midline_points"), declared.get("mirror_map"))
    normalizer = declared.get("normalizer", metrics.default_normalizer(num_points, eyes))
    return LandmarkScheme(num_points, normalizer, eyes, perm, pose_source)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{where}: {e}") from None
