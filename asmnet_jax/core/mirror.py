"""Left-right mirroring of landmark schemes: mirror maps and the flip of points and pose.

A mirror map is an involution `perm` over the point indices: `perm[i]` is the point
that point i becomes in the mirrored face (its left-right partner, or i itself for a
midline point such as the nose tip). Flipping a face image horizontally therefore
moves point i of the flipped face to the mirrored position of point `perm[i]` of the
original. Head pose (yaw, pitch, roll in degrees, `asmnet_jax.core.rotation`) under a
horizontal flip keeps pitch and negates yaw and roll, since M R(yaw, pitch, roll) M
with M = diag(-1, 1, 1) is R(-yaw, pitch, -roll) for rotations about x, y and z.

Works on numpy and jax arrays alike (jittable: the permutation is static).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

# (left, right) partners, zero-based; the points not listed lie on the midline.
# 300-W / iBUG 68-point scheme.
PAIRS_68: tuple[tuple[int, int], ...] = (
    *((i, 16 - i) for i in range(8)),                    # jaw, 8 is the chin
    *((17 + i, 26 - i) for i in range(5)),               # brows
    (31, 35), (32, 34),                                  # nostrils, 33 the base
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),    # outer lips
    (60, 64), (61, 63), (65, 67),                        # inner lips
)
# WFLW 98-point scheme.
PAIRS_98: tuple[tuple[int, int], ...] = (
    *((i, 32 - i) for i in range(16)),                   # jaw, 16 is the chin
    (33, 46), (34, 45), (35, 44), (36, 43), (37, 42),    # brows, upper edge
    (38, 50), (39, 49), (40, 48), (41, 47),              # brows, lower edge
    (55, 59), (56, 58),                                  # nostrils
    (60, 72), (61, 71), (62, 70), (63, 69), (64, 68),    # eyes, upper lids
    (65, 75), (66, 74), (67, 73),                        # eyes, lower lids
    (76, 82), (77, 81), (78, 80), (83, 87), (84, 86),    # outer lips
    (88, 92), (89, 91), (93, 95),                        # inner lips
    (96, 97),                                            # pupils
)
BUILTIN_PAIRS = {68: PAIRS_68, 98: PAIRS_98}


def permutation_from_pairs(pairs: Iterable[Sequence[int]], num_points: int) -> np.ndarray:
  """Left-right pairs -> the mirror permutation, int32 (num_points,).

  Points in no pair map to themselves (midline points). Raises ValueError when an
  index is out of range, pairs with itself, or appears in two pairs.
  """
  perm = np.arange(num_points, dtype=np.int32)
  seen: set[int] = set()
  for pair in pairs:
    if len(pair) != 2:
      raise ValueError(f"mirror pair {tuple(pair)} must have two indices")
    a, b = (int(i) for i in pair)
    if a == b:
      raise ValueError(f"mirror pair ({a}, {b}) pairs a point with itself; "
                       "leave midline points out")
    for i in (a, b):
      if not 0 <= i < num_points:
        raise ValueError(f"mirror pair ({a}, {b}): index {i} outside [0, {num_points})")
      if i in seen:
        raise ValueError(f"mirror pair ({a}, {b}): point {i} is already in another pair")
      seen.add(i)
    perm[a], perm[b] = b, a
  return perm


def validate_permutation(perm: Sequence[int], num_points: int) -> np.ndarray:
  """Checks that `perm` is a mirror map (an involution of range(num_points)).

  Returns it as int32 (num_points,); raises ValueError naming the first bad point.
  """
  perm = np.asarray(perm)
  if perm.shape != (num_points,) or not np.issubdtype(perm.dtype, np.integer):
    raise ValueError(f"a mirror map for {num_points} points needs {num_points} integer "
                     f"indices, got shape {perm.shape} of {perm.dtype}")
  bad = np.flatnonzero((perm < 0) | (perm >= num_points))
  if bad.size:
    raise ValueError(f"mirror map: point {bad[0]} maps to {perm[bad[0]]}, outside "
                     f"[0, {num_points})")
  unpaired = np.flatnonzero(perm[perm] != np.arange(num_points))
  if unpaired.size:
    i = int(unpaired[0])
    raise ValueError(f"mirror map: point {i} maps to {perm[i]}, which maps to "
                     f"{perm[perm[i]]}, not back to {i}")
  return perm.astype(np.int32)


def builtin_permutation(num_points: int) -> np.ndarray | None:
  """The mirror permutation of the 68- or 98-point scheme; None for other counts."""
  pairs = BUILTIN_PAIRS.get(num_points)
  return None if pairs is None else permutation_from_pairs(pairs, num_points)


def flip_normalized_landmarks(landmarks, perm: np.ndarray):
  """Landmarks in normalised crop coordinates (..., n, 2), centred on the crop, of a
  horizontally flipped crop: x -> -x and points renumbered by `perm` (n,)."""
  return landmarks[..., np.asarray(perm), :] * np.array([-1.0, 1.0], np.float32)


def flip_pixel_landmarks(landmarks, perm: np.ndarray, width: float):
  """Pixel-centre landmarks (..., n, 2) in an image `width` pixels wide, after a
  horizontal flip of that image: x -> width - 1 - x and points renumbered by `perm`."""
  flipped = landmarks[..., np.asarray(perm), :]
  return flipped * np.array([-1.0, 1.0], np.float32) + np.array([width - 1.0, 0.0],
                                                                   np.float32)


def flip_pose(pose):
  """Yaw, pitch, roll in degrees (..., 3) of the horizontally flipped face."""
  return pose * np.array([-1.0, 1.0, -1.0], np.float32)
