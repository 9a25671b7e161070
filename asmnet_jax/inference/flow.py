"""Landmarks carried from frame to frame by the image's own motion, and pulled toward
the network's: the video tracker's landmark smoothing.

The network's landmarks on a moving face err by an amount that wanders with the pose,
so a low-pass filter cannot tell the error from the motion (docs/video.md). The pixels
show how the face moved:
  1. `face_motion`: corner features inside the face's previous landmark box are
     followed into the new frame by pyramidal Lucas-Kanade optical flow, kept when the
     flow back from the new frame returns within `BACKTRACK_PX`, and fitted by a RANSAC
     similarity (the face's global motion), whose inliers are kept;
  2. `carry`: each landmark moves by a weighted affine fit of the inlier flows near it
     (Gaussian weights, `sigma` face sizes), pulled toward the global similarity where
     few features are near, so the near and far sides of a turning head can move
     differently;
  3. `fuse`: each carried landmark q is pulled toward the network's p with gain
     g = floor + (1 - floor) min(1, |p - q| / (tolerance * size)): where they agree the
     carried point mostly stays (the network's error is averaged over about 1 / floor
     frames); where they disagree (motion the flow missed, a face that changed) the
     network's point wins.
Sizes are sqrt(w h) of the landmark box, in pixels. Frames are uint8 (H, W) grey.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from asmnet_jax.core import geometry

# Chosen on photo-style synthetic tuning clips (seeds 900-911: docs/video.md).
DEFAULT_FLOOR = 0.02
DEFAULT_TOLERANCE = 0.05
DEFAULT_SIGMA = 0.15
MAX_FEATURES = 80
MIN_FEATURES = 6
BACKTRACK_PX = 0.5
RANSAC_PX = 3.0
# The global similarity counts as one feature's worth of evidence at every landmark,
# with its linear part weighted as if spread over a tenth of the face size.
PRIOR_WEIGHT = 1.0
PRIOR_SPREAD = 0.1
_LK = dict(winSize=(15, 15), maxLevel=2,
           criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


@dataclasses.dataclass(frozen=True)
class FaceMotion:
  """How one face moved between two frames.

  similarity: float64 (2, 3), x' = A x + b of the whole face (pixels).
  sources, targets: float64 (k, 2), the inlier features in the first frame and where
    the flow found them in the second.
  """
  similarity: np.ndarray
  sources: np.ndarray
  targets: np.ndarray


def _pixel_span(lo: float, hi: float, limit: int) -> tuple[int, int]:
  """Integer pixel span [lo, hi) covering lo..hi, clipped to [0, limit]."""
  return min(max(int(lo), 0), limit), min(max(int(math.ceil(hi)), 0), limit)


def face_motion(previous: np.ndarray, current: np.ndarray, box: np.ndarray,
                max_features: int = MAX_FEATURES) -> FaceMotion | None:
  """The motion of the face in landmark box `box` (x0 y0 x1 y1, px, in `previous`)
  between grey frames `previous` and `current` (uint8 (H, W)); None when fewer than
  `MIN_FEATURES` features could be followed there."""
  x0, y0, x1, y1 = np.asarray(box, np.float64)
  width, height = x1 - x0, y1 - y0
  frame_height, frame_width = previous.shape
  # Features come from the box and a tenth around it; the flow is computed in a region
  # half a box wider on each side, which is as far as a face moves in one frame.
  fx0, fx1 = _pixel_span(x0 - 0.1 * width, x1 + 0.1 * width, frame_width)
  fy0, fy1 = _pixel_span(y0 - 0.1 * height, y1 + 0.1 * height, frame_height)
  rx0, rx1 = _pixel_span(x0 - 0.5 * width, x1 + 0.5 * width, frame_width)
  ry0, ry1 = _pixel_span(y0 - 0.5 * height, y1 + 0.5 * height, frame_height)
  if fx1 - fx0 < 8 or fy1 - fy0 < 8:
    return None
  before, after = previous[ry0:ry1, rx0:rx1], current[ry0:ry1, rx0:rx1]
  start = cv2.goodFeaturesToTrack(previous[fy0:fy1, fx0:fx1], max_features, 0.01, 3)
  if start is None or len(start) < MIN_FEATURES:
    return None
  start = start + np.array([fx0 - rx0, fy0 - ry0], np.float32)
  end, found, _ = cv2.calcOpticalFlowPyrLK(before, after, start, None, **_LK)
  back, found_back, _ = cv2.calcOpticalFlowPyrLK(after, before, end, None, **_LK)
  good = ((found[:, 0] == 1) & (found_back[:, 0] == 1)
          & (np.linalg.norm(back - start, axis=-1)[:, 0] < BACKTRACK_PX))
  if good.sum() < MIN_FEATURES:
    return None
  offset = np.array([rx0, ry0], np.float64)
  start = start[good][:, 0].astype(np.float64) + offset
  end = end[good][:, 0].astype(np.float64) + offset
  similarity, inliers = cv2.estimateAffinePartial2D(start, end, method=cv2.RANSAC,
                                                    ransacReprojThreshold=RANSAC_PX)
  if similarity is None:
    return None
  keep = inliers[:, 0] == 1
  return FaceMotion(similarity.astype(np.float64), start[keep], end[keep])


def carry(points: np.ndarray, motion: FaceMotion, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
  """`points` (n, 2) px moved by `motion`: per point, the affine fit of the feature
  flows weighted by exp(-d^2 / 2 (sigma size)^2), regularised toward the similarity."""
  points = np.asarray(points, np.float64)
  size = max(float(geometry.box_size(geometry.landmark_box(points))), 1.0)
  centre = points.mean(axis=0)
  # Displacement d(x) = [x - centre, 1] @ P, with P (3, 2); the similarity's P:
  a, b = motion.similarity[:, :2], motion.similarity[:, 2]
  prior = np.concatenate([a.T - np.eye(2), (centre @ a.T + b - centre)[None]], axis=0)
  weights = np.exp(-np.sum((points[:, None] - motion.sources[None]) ** 2, axis=-1)
                   / (2.0 * (sigma * size) ** 2))  # (n, k)
  design = np.concatenate([motion.sources - centre, np.ones((len(motion.sources), 1))], 1)
  normal = np.einsum("nk,ki,kj->nij", weights, design, design)
  moment = np.einsum("nk,ki,kj->nij", weights, design, motion.targets - motion.sources)
  regulariser = PRIOR_WEIGHT * np.diag([(PRIOR_SPREAD * size) ** 2] * 2 + [1.0])
  per_point = np.linalg.solve(normal + regulariser, moment + regulariser @ prior)
  at = np.concatenate([points - centre, np.ones((len(points), 1))], axis=1)
  return points + np.einsum("ni,nij->nj", at, per_point)


def fuse(carried: np.ndarray, network: np.ndarray, floor: float = DEFAULT_FLOOR,
         tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
  """carried + g (network - carried) per point (module doc); both (n, 2) px."""
  carried, network = np.asarray(carried, np.float64), np.asarray(network, np.float64)
  size = float(geometry.box_size(geometry.landmark_box(network)))
  disagreement = np.linalg.norm(network - carried, axis=-1) / max(size, 1e-6)
  gain = floor + (1.0 - floor) * np.minimum(1.0, disagreement / tolerance)
  return carried + gain[:, None] * (network - carried)


def next_grey_pair(pair: tuple[np.ndarray | None, np.ndarray] | None, frame: np.ndarray
                   ) -> tuple[np.ndarray | None, np.ndarray]:
  """(previous grey frame, grey `frame`) once `frame` uint8 (H, W, 3) RGB arrives,
  from the pair of the frame before (None at the first frame): what
  `FlowSmoother` and `tracking.TrackSmoother` take, each frame converted once."""
  return (pair[1] if pair is not None else None, cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))


class FlowSmoother:
  """One face's landmarks across consecutive frames (module doc).

  Args:
    floor: the least gain toward the network (0 < floor <= 1; 1: the network's output).
    tolerance: disagreement, in face sizes, at which the network's point wins outright.
    sigma: the feature weights' spread, in face sizes.
  """

  def __init__(self, floor: float = DEFAULT_FLOOR, tolerance: float = DEFAULT_TOLERANCE,
               sigma: float = DEFAULT_SIGMA):
    if not 0.0 < floor <= 1.0 or tolerance <= 0.0 or sigma <= 0.0:
      raise ValueError("FlowSmoother needs 0 < floor <= 1, tolerance > 0 and sigma > 0, got "
                       f"{floor}, {tolerance}, {sigma}")
    self.floor, self.tolerance, self.sigma = float(floor), float(tolerance), float(sigma)
    self.landmarks: np.ndarray | None = None  # float64 (n, 2), the last output.
    # (grey frame, carried landmarks or None) of the last `predict`.
    self._prediction: tuple[np.ndarray, np.ndarray | None] | None = None

  def predict(self, previous: np.ndarray | None, current: np.ndarray) -> np.ndarray | None:
    """The last output carried into grey frame `current` by the flow from `previous`:
    float64 (n, 2) px, where the face should now be; None on the track's first frame or
    when too few features could be followed. The tracker crops there, and this frame's
    `__call__` fuses the same points (computed once per frame)."""
    if self._prediction is not None and self._prediction[0] is current:
      return self._prediction[1]
    carried = None
    if previous is not None and self.landmarks is not None:
      motion = face_motion(previous, current, geometry.landmark_box(self.landmarks))
      if motion is not None:
        carried = carry(self.landmarks, motion, self.sigma)
    self._prediction = (current, carried)
    return carried

  def __call__(self, previous: np.ndarray | None, current: np.ndarray,
               network: np.ndarray) -> np.ndarray:
    """The landmarks in grey frame `current`, given the network's (n, 2) px there and
    the grey frame before it (None on the track's first frame)."""
    network = np.asarray(network, np.float64)
    carried = self.predict(previous, current)
    self._prediction = None
    self.landmarks = network if carried is None else fuse(carried, network, self.floor,
                                                          self.tolerance)
    return self.landmarks
