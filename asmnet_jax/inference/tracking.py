"""Landmarks and head pose that follow faces across video frames, one frame at a time.

    video = VideoPredictor(Predictor.pretrained())
    for frame, seconds in my_capture_loop():    # frame: uint8 (H, W, 3) RGB
      for face in video(frame, seconds):
        face.track_id, face.landmarks, face.pose

Per frame:
  1. each track is searched for from its landmarks in the previous frame (carried
     into this one by the optical flow when the flow smoother is on: step 4): their
     bounding box (scaled by `recrop_scale`, default 1) is the next landmark-box
     estimate (`Predictor.predict_landmark_boxes`), re-cropped around the new
     landmarks until the crop settles (`refine_passes`, `converged`); all tracks go
     through in one batch;
  2. a track is lost when its shape leaves its crop (the shape's centre outside the
     crop, or more than `max_outside` of the points outside it), collapses or blows up
     (its landmark box's size sqrt(w h) changes by more than `max_size_change` from
     the crop's in one frame, falls below `collapse` times its largest size over the
     last `size_memory` frames or below `min_size` pixels, or its height / width
     leaves `aspect_range`), or leaves the image (less than `min_inside` of its
     landmark box inside). A face sliding out of the frame is usually caught by the
     collapse test: the network squeezes the shape into the visible part;
  3. the detector runs on the first frame, on a frame where a track was lost, and
     every `detect_every` frames to pick up new faces; detections scoring below
     `min_score` are ignored; a detection whose estimated
     landmark box overlaps a live track (IoU >= `match_iou`) is that face already;
     the others start tracks, and one that starts where a track was lost within the
     last `forget_after` frames takes back that track's id;
  4. unless smoothing is off, each track's landmarks are carried from the last frame
     by the image's optical flow and pulled toward the network's
     (`asmnet_jax.inference.flow`), or, with `flow=False`, One Euro filtered
     (`asmnet_jax.inference.smoothing`); its pose is One Euro filtered. With the flow
     smoother, step 1's search starts from the smoothed landmarks carried into the new
     frame by the flow (`FlowSmoother.predict`): centred where the face is now, steady
     while it is still. Otherwise it starts from the raw landmarks, so a low-pass
     filter's lag never drags the crop behind the face.

Coordinates and angles are the `Predictor`'s (`asmnet_jax.inference.predictor`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from asmnet_jax.core import geometry
from asmnet_jax.inference import flow as flow_lib
from asmnet_jax.inference import smoothing
from asmnet_jax.inference.model import validate_recrop_scale
from asmnet_jax.inference.predictor import Face, Predictor, recrop_box

# One Euro defaults, chosen on photo-style synthetic clips (docs/video.md): a still face is
# filtered at MIN_CUTOFF Hz; landmark speed is in face sizes per second, pose speed
# in radians per second.
DEFAULT_MIN_CUTOFF = 4.0
DEFAULT_BETA = 100.0
POSE_SPEED_SCALE = 180.0 / math.pi  # degrees per radian.
DEFAULT_FPS = 30.0  # time stamps when none are given: frame index / this.
# A face that moved since the last frame is found off-centre in its crop and pulled
# towards it; re-cropping until the crop settles removes that lag, and a still face
# settles after its first pass (chosen on synthetic clips: docs/video.md).
DEFAULT_REFINE_PASSES = 3
DEFAULT_CONVERGED = 0.01


def _size(box: np.ndarray) -> float:
  """sqrt(width * height) of a box x0 y0 x1 y1, pixels."""
  return float(geometry.box_size(box))


@dataclasses.dataclass(frozen=True)
class TrackedFace:
  """One face in one frame.

  landmarks: float32 (n, 2) pixels, smoothed unless smoothing is off.
  pose: float32 (3,) yaw, pitch, roll in degrees, smoothed likewise.
  box: float32 (4,) x0 y0 x1 y1, the bounding box of `landmarks`.
  score: the detector's confidence when the track started.
  track_id: the same for the same face across frames (0, 1, ...).
  raw_landmarks, raw_pose: the network's output before smoothing.
  """
  landmarks: np.ndarray
  pose: np.ndarray
  box: np.ndarray
  score: float
  track_id: int
  raw_landmarks: np.ndarray
  raw_pose: np.ndarray

  def to_json(self) -> dict[str, Any]:
    record = Face(self.landmarks, self.pose, self.box, self.score).to_json()
    return {"track_id": self.track_id, **record}


class TrackSmoother:
  """One face's smoothing: One Euro filters, all with the same parameters, and, given
  a `flow_lib.FlowSmoother`, that for the landmarks instead.

  The landmarks are split into where the face is and the shape it has: their box
  centre (speed in face sizes per second), the log of the box size sqrt(w h), and
  the points relative to that centre in face sizes (the shape). Each part has its
  own filter, so a face that moves fast but keeps its shape gets a high cut-off for
  its place and a low one for its shape, whose noise is most of the jitter. Pose
  speed is in radians per second.
  """

  def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
               flow: flow_lib.FlowSmoother | None = None):
    self.centre_filter, self.size_filter, self.shape_filter, self.pose_filter = (
        smoothing.OneEuroFilter(min_cutoff, beta) for _ in range(4))
    self.flow = flow

  def __call__(self, landmarks: np.ndarray, pose: np.ndarray, seconds: float,
               frames: tuple[np.ndarray | None, np.ndarray] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks (n, 2) px, pose (3,) degrees) at `seconds` -> their smoothed values;
    `frames`: (the previous grey frame or None, this grey frame), which the flow
    smoother needs (without them the landmarks are One Euro filtered)."""
    pose = self.pose_filter(pose, seconds, speed_scale=POSE_SPEED_SCALE)
    if self.flow is not None and frames is not None:
      return self.flow(*frames, landmarks), pose
    box = geometry.landmark_box(landmarks)
    centre, size = 0.5 * (box[:2] + box[2:]), _size(box)
    shape = self.shape_filter((landmarks - centre) / size, seconds)
    centre = self.centre_filter(centre, seconds, speed_scale=size)
    size = math.exp(float(self.size_filter(np.log(size), seconds)))
    return centre + size * shape, pose


@dataclasses.dataclass
class _Track:
  track_id: int
  landmarks: np.ndarray  # float64 (n, 2), raw, last frame.
  pose: np.ndarray  # float64 (3,), raw.
  score: float
  smoother: TrackSmoother | None
  sizes: list[float] = dataclasses.field(default_factory=list)  # recent sqrt(w h), px.


class VideoPredictor:
  """Tracks faces through frames given one at a time (module doc).

  Args:
    predictor: the `Predictor` (its model, detector, box mapping, re-crop passes).
    detect_every: run the detector at least every this many frames (>= 1; 1 detects
      on every frame).
    smooth: smooth the output (False: raw network output).
    flow: smooth the landmarks with optical flow (`flow_lib.FlowSmoother`); False: One
      Euro filter them like the pose.
    flow_floor, flow_tolerance: the flow smoother's parameters.
    min_cutoff, beta: the One Euro filter's parameters (`smoothing.OneEuroFilter`).
    max_outside, max_size_change, collapse, size_memory, min_size, aspect_range,
      min_inside: the loss tests (module doc).
    min_score: detections below this score start no track (the detector's scale:
      MTCNN's face probability, whose false positives on clutter score 0.7-0.85;
      Haar weights of faces run far above it, so it then keeps every detection).
    match_iou: a detection at least this close to a track is that track's face.
    forget_after: frames a lost track's id and place are kept for a recovery.
    fps: frames per second assumed for time stamps that are not given.
    refine_passes, converged: each face is re-cropped around its predicted landmarks
      until its crop moves by less than `converged` of its size, at most
      `refine_passes` times (`Predictor.predict_landmark_boxes`; None: every pass).
    recrop_scale: (width, height) factors of each search's start box and re-crop
      boxes about their centre. Default (1, 1), not the model's: a scale compounds
      over the frames' passes, and the bundle's (then 1.08) made tracks run off the
      faces of the benchmark clips (docs/video.md).
    tta: run the predictor's test-time augmentation (`Predictor`) in every search, at
      its views' network time a frame; default off (one view), as the tracker's
      defaults were measured.

  Attributes (counts since the last `reset`):
    frames, detector_calls, tracks_started, tracks_lost, recoveries.
  """

  def __init__(self, predictor: Predictor, *, detect_every: int = 10, smooth: bool = True,
               flow: bool = True, flow_floor: float = flow_lib.DEFAULT_FLOOR,
               flow_tolerance: float = flow_lib.DEFAULT_TOLERANCE,
               min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
               max_outside: float = 0.25, max_size_change: float = 1.6,
               collapse: float = 0.7, size_memory: int = 15, min_size: float = 20.0,
               aspect_range: tuple[float, float] = (0.5, 2.5), min_inside: float = 0.6,
               min_score: float = 0.9, match_iou: float = 0.3, forget_after: int = 30,
               fps: float = DEFAULT_FPS, refine_passes: int = DEFAULT_REFINE_PASSES,
               converged: float | None = DEFAULT_CONVERGED,
               recrop_scale: Sequence[float] = (1.0, 1.0), tta: bool = False):
    if detect_every < 1:
      raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    if fps <= 0:
      raise ValueError(f"fps must be > 0, got {fps}")
    if refine_passes < 0 or (converged is not None and converged < 0):
      raise ValueError(f"refine_passes and converged must be >= 0, got {refine_passes}, "
                       f"{converged}")
    smoothing.OneEuroFilter(min_cutoff, beta)  # validates them.
    flow_lib.FlowSmoother(flow_floor, flow_tolerance)  # validates them.
    self.predictor = predictor
    self.detect_every = int(detect_every)
    self.smooth = smooth
    self.flow, self.flow_floor, self.flow_tolerance = flow, float(flow_floor), float(flow_tolerance)
    self.min_cutoff, self.beta = float(min_cutoff), float(beta)
    self.max_outside = max_outside
    self.max_size_change = max_size_change
    self.collapse, self.size_memory, self.min_size = collapse, int(size_memory), min_size
    self.aspect_range = aspect_range
    self.min_score = min_score
    self.min_inside = min_inside
    self.match_iou = match_iou
    self.forget_after = forget_after
    self.fps = float(fps)
    self.refine_passes, self.converged = int(refine_passes), converged
    self.recrop_scale = validate_recrop_scale(recrop_scale)
    self.tta = tta
    self.reset()

  def reset(self) -> None:
    """Forgets every track (a new video)."""
    self._tracks: list[_Track] = []
    self._lost: list[tuple[int, np.ndarray, int]] = []  # (id, landmark box, frame).
    self._next_id = 0
    self._last_detection: int | None = None
    self._frames: tuple[np.ndarray | None, np.ndarray] | None = None  # grey, for the flow.
    self.frames = 0
    self.detector_calls = 0
    self.tracks_started = 0
    self.tracks_lost = 0
    self.recoveries = 0

  def __call__(self, frame: np.ndarray, timestamp: float | None = None) -> list[TrackedFace]:
    """The faces in `frame` uint8 (H, W, 3) RGB taken at `timestamp` seconds (default:
    frame index / fps), ordered by track id."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
      raise ValueError(f"frames must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
    index = self.frames
    self.frames += 1
    seconds = index / self.fps if timestamp is None else float(timestamp)
    if self.smooth and self.flow:
      self._frames = flow_lib.next_grey_pair(self._frames, frame)
    lost_now = self._follow(frame, index)
    due = (self._last_detection is None
           or index - self._last_detection >= self.detect_every or lost_now)
    if due:
      self._detect(frame, index)
    self._lost = [entry for entry in self._lost if index - entry[2] <= self.forget_after]
    return [self._output(track, seconds) for track in sorted(self._tracks,
                                                             key=lambda t: t.track_id)]

  # ---------------------------------------------------------------------------------

  def _follow(self, frame: np.ndarray, index: int) -> bool:
    """Moves every track to this frame; drops the lost ones. Returns whether any was."""
    if not self._tracks:
      return False
    boxes = recrop_box(np.stack([self._search_start(t) for t in self._tracks]),
                       self.recrop_scale)
    landmarks, pose, crops = self.predictor.predict_landmark_boxes(
        frame, boxes, refine_passes=self.refine_passes, converged=self.converged,
        recrop_scale=self.recrop_scale, tta=self.tta)
    kept = []
    for track, points, angles, crop in zip(self._tracks, landmarks, pose, crops):
      if self._is_lost(points, crop, frame.shape, max(track.sizes[-self.size_memory:])):
        self.tracks_lost += 1
        self._lost.append((track.track_id, geometry.landmark_box(track.landmarks), index))
        continue
      track.landmarks, track.pose = points, angles
      track.sizes = track.sizes[-self.size_memory:] + [_size(geometry.landmark_box(points))]
      kept.append(track)
    lost = len(kept) < len(self._tracks)
    self._tracks = kept
    return lost

  def _search_start(self, track: _Track) -> np.ndarray:
    """Where to look for `track`'s face in this frame: its smoothed landmarks carried
    into it by the optical flow when the flow smoother can follow them, else its raw
    landmarks of the last frame. A crop centred where the face is now, and steady
    while it is still, lowers both the jitter and the error (docs/video.md)."""
    flow = track.smoother.flow if track.smoother is not None else None
    if flow is not None and self._frames is not None:
      carried = flow.predict(*self._frames)
      if carried is not None:
        return carried
    return track.landmarks

  def _is_lost(self, points: np.ndarray, crop: np.ndarray, shape: tuple[int, ...],
               recent_size: float = 0.0) -> bool:
    """The loss tests of the module doc for `points` (n, 2) found in landmark box `crop`;
    `recent_size`: the track's largest size over the last frames (px)."""
    if not np.all(np.isfinite(points)):
      return True
    margin = self.predictor.model.eval_margin
    crop_size = np.maximum(crop[2:] - crop[:2], 1.0)
    lo, hi = crop[:2] - margin * crop_size, crop[2:] + margin * crop_size
    outside = np.any((points < lo) | (points > hi), axis=1).mean()
    box = geometry.landmark_box(points)
    centre = 0.5 * (box[:2] + box[2:])
    if outside > self.max_outside or np.any((centre < lo) | (centre > hi)):
      return True
    size = _size(box)
    if not 1.0 / self.max_size_change <= size / _size(crop) <= self.max_size_change:
      return True
    if size < max(self.min_size, self.collapse * recent_size):
      return True
    width, height = np.maximum(box[2:] - box[:2], 1e-6)
    if not self.aspect_range[0] <= height / width <= self.aspect_range[1]:
      return True
    h, w = shape[:2]
    inside = np.clip(np.minimum(box[2:], [w - 0.5, h - 0.5]) - np.maximum(box[:2], -0.5), 0, None)
    area = np.prod(np.maximum(box[2:] - box[:2], 1e-6))
    return float(np.prod(inside) / area) < self.min_inside

  def _detect(self, frame: np.ndarray, index: int) -> None:
    """Runs the detector; detections away from the live tracks start new tracks."""
    self.detector_calls += 1
    self._last_detection = index
    found = self.predictor.detector(frame)
    sure = np.asarray(found.scores) >= self.min_score
    found = type(found)(np.asarray(found.boxes)[sure], np.asarray(found.scores)[sure])
    if not len(found.boxes):
      return
    estimates = self.predictor.box_mapping(np.asarray(found.boxes, np.float64))
    live = [geometry.landmark_box(t.landmarks) for t in self._tracks]
    new = [k for k in range(len(estimates))
           if not live or geometry.box_iou(estimates[k], np.stack(live)).max() < self.match_iou]
    if not new:
      return
    landmarks, pose, crops = self.predictor.predict_landmark_boxes(
        frame, estimates[new], refine_passes=self.refine_passes, converged=self.converged,
        recrop_scale=self.recrop_scale, tta=self.tta)
    for k, points, angles, crop in zip(new, landmarks, pose, crops):
      if self._is_lost(points, crop, frame.shape):
        continue
      box = geometry.landmark_box(points)
      live_boxes = [geometry.landmark_box(t.landmarks) for t in self._tracks]
      if live_boxes and geometry.box_iou(box, np.stack(live_boxes)).max() >= self.match_iou:
        continue  # two detections of one face.
      self._tracks.append(_Track(self._recovered_id(box), points, angles,
                                 float(found.scores[k]), self._smoother(), [_size(box)]))
      self.tracks_started += 1

  def _recovered_id(self, box: np.ndarray) -> int:
    """The id of a recently lost track at `box`, else a new one."""
    if self._lost:
      overlap = geometry.box_iou(box, np.stack([entry[1] for entry in self._lost]))[0]
      best = int(np.argmax(overlap))
      if overlap[best] >= self.match_iou:
        self.recoveries += 1
        return self._lost.pop(best)[0]
    self._next_id += 1
    return self._next_id - 1

  def _smoother(self) -> TrackSmoother | None:
    if not self.smooth:
      return None
    flow = flow_lib.FlowSmoother(self.flow_floor, self.flow_tolerance) if self.flow else None
    return TrackSmoother(self.min_cutoff, self.beta, flow)

  def _output(self, track: _Track, seconds: float) -> TrackedFace:
    landmarks, pose = track.landmarks, track.pose
    if track.smoother is not None:
      landmarks, pose = track.smoother(landmarks, pose, seconds, self._frames)
    return TrackedFace(landmarks.astype(np.float32), pose.astype(np.float32),
                       geometry.landmark_box(landmarks).astype(np.float32), track.score,
                       track.track_id, track.landmarks.astype(np.float32),
                       track.pose.astype(np.float32))
