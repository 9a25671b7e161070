"""Video in and out for the face tracker: frames from a file or a camera, an annotated
MP4 and one JSON Lines record per frame.

    report = track_video(VideoPredictor(Predictor.pretrained()), "talk.mp4",
                         "out/talk.mp4", "out/talk.jsonl")

Each JSON line is one frame, in order:
  {"frame": i, "time_s": t, "faces": [{"track_id": k, "box": [x0, y0, x1, y1],
   "score": s, "pose_deg": {"yaw": ., "pitch": ., "roll": .},
   "landmarks": [[x, y], ...]}, ...]}
(a frame without faces has "faces": []). Time stamps are frame index / the file's
frame rate, or seconds since the first frame for a camera. The MP4 shows each face's
landmarks, pose axes (red x, green y, blue the facing direction), track id and angles.

A stream that ends before the frame count its header declares is reported in
`VideoReport.stream_error`, with everything before the break written. Ctrl-C
(KeyboardInterrupt) stops after the frame in hand: the writer is released and the
JSON Lines file closed either way, so both hold every frame up to the last one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from asmnet_jax.evaluate import plots
from asmnet_jax.inference.tracking import TrackedFace, VideoPredictor

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".ts", ".3gp")
# BGR, as OpenCV draws.
_AXIS_BGR = {"red": (0, 0, 255), "green": (0, 200, 0), "blue": (255, 0, 0)}
_POINT_BGR = (0, 0, 255)
_TEXT_BGR = (0, 255, 255)


class VideoError(ValueError):
  """A video that cannot be read (the message names it)."""


def is_video_path(path: str) -> bool:
  return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


@dataclasses.dataclass
class VideoSource:
  """Frames of a video file or camera (`open_video`).

  name: the path, or "camera N".
  fps: frames per second from the container (cameras: as reported, else 30).
  frame_count: frames the file's header declares (0: unknown, e.g. a camera).
  width, height: frame size in pixels.
  """
  capture: cv2.VideoCapture
  name: str
  fps: float
  frame_count: int
  width: int
  height: int
  is_camera: bool

  def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time stamp in seconds, uint8 (H, W, 3) RGB) until the stream ends."""
    start = time.monotonic()
    index = 0
    while True:
      ok, bgr = self.capture.read()
      if not ok or bgr is None:
        return
      seconds = time.monotonic() - start if self.is_camera else index / self.fps
      yield index, seconds, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
      index += 1

  def release(self) -> None:
    self.capture.release()


def open_video(source: str | int) -> VideoSource:
  """Opens a video file (path) or camera (int index); `VideoError` if it gives no frame
  size (missing, empty, not a video, or a camera that is not there)."""
  is_camera = isinstance(source, int)
  name = f"camera {source}" if is_camera else str(source)
  if not is_camera and not os.path.isfile(source):
    raise VideoError(f"{name}: no such video file")
  if not is_camera and os.path.getsize(source) == 0:
    raise VideoError(f"{name}: empty file")
  capture = cv2.VideoCapture(source)
  width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) if capture.isOpened() else 0
  height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) if capture.isOpened() else 0
  if width <= 0 or height <= 0:
    capture.release()
    raise VideoError(f"{name}: cannot open as a video (unreadable, damaged, or not a video)"
                     if not is_camera else f"{name}: no camera at this index")
  fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
  fps = fps if 0 < fps < 1000 else 30.0
  count = 0 if is_camera else max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
  return VideoSource(capture, name, fps, count, width, height, is_camera)


def draw_tracked_faces(frame_rgb: np.ndarray, faces: Sequence[TrackedFace]) -> np.ndarray:
  """A BGR copy (H, W, 3) of the frame with each face's landmarks, pose axes, id and
  angles drawn (what the annotated video shows)."""
  image = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
  for face in faces:
    points = face.landmarks.astype(np.float64)
    width = float(np.ptp(points[:, 0]))
    radius = max(1, int(round(width / 80.0)))
    for x, y in points:
      cv2.circle(image, (int(round(x)), int(round(y))), radius, _POINT_BGR, -1, cv2.LINE_AA)
    nose = plots.NOSE_POINTS.get(len(points), slice(None))
    origin = points[nose].mean(axis=0)
    for tip, colour in zip(plots.pose_axis_tips(origin, face.pose, 0.5 * width),
                           plots.POSE_AXIS_COLOURS):
      cv2.line(image, tuple(int(round(v)) for v in origin), tuple(int(round(v)) for v in tip),
               _AXIS_BGR[colour], 2, cv2.LINE_AA)
    yaw, pitch, roll = (float(v) for v in face.pose)
    x0, y0 = int(face.box[0]), int(face.box[1])
    cv2.putText(image, f"#{face.track_id} yaw {yaw:.0f} pitch {pitch:.0f} roll {roll:.0f}",
                (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _TEXT_BGR, 1,
                cv2.LINE_AA)
  return image


def frame_record(index: int, seconds: float, faces: Sequence[TrackedFace]) -> dict:
  """The JSON Lines record of one frame (module doc)."""
  return {"frame": int(index), "time_s": round(float(seconds), 4),
          "faces": [face.to_json() for face in faces]}


@dataclasses.dataclass
class VideoReport:
  """What `track_video` did.

  frames: frames processed and written; faces: faces over all of them.
  stream_error: why the stream ended early (None when it ended where declared).
  interrupted: stopped by Ctrl-C.
  fps: frames per second of the whole loop (decode, track, draw, encode).
  """
  source: str
  frames: int = 0
  faces: int = 0
  stream_error: str | None = None
  interrupted: bool = False
  fps: float = 0.0


def track_video(video: VideoPredictor, source: str | int | VideoSource, out_video: str,
                out_jsonl: str, *, max_frames: int = 0, progress: bool = True) -> VideoReport:
  """Tracks faces through a video file or camera; writes the annotated MP4 and the
  JSON Lines file (module doc). A KeyboardInterrupt stops it cleanly.

  Args:
    video: the tracker (reset first; its `fps` set to the stream's).
    source: a path, a camera index or an opened `VideoSource`.
    out_video, out_jsonl: output paths (directories must exist).
    max_frames: stop after this many frames (0: until the stream ends).
    progress: show a tqdm bar (frames of the total for files) with the frame rate.
  Raises:
    VideoError: the source cannot be opened, or gives no frame at all.
  """
  stream = source if isinstance(source, VideoSource) else open_video(source)
  report = VideoReport(stream.name)
  video.reset()
  video.fps = stream.fps
  writer = cv2.VideoWriter(out_video, cv2.VideoWriter_fourcc(*"mp4v"), stream.fps,
                           (stream.width, stream.height))
  if not writer.isOpened():
    stream.release()
    raise VideoError(f"{out_video}: OpenCV cannot write an MP4 (mp4v) video here")
  total = stream.frame_count or None
  if total and max_frames:
    total = min(total, max_frames)
  bar = tqdm(total=total, unit="frame", desc=os.path.basename(stream.name),
             disable=not progress, dynamic_ncols=True)
  start = time.perf_counter()
  try:
    with open(out_jsonl, "w") as lines:
      for index, seconds, frame in stream.frames():
        faces = video(frame, seconds)
        writer.write(draw_tracked_faces(frame, faces))
        lines.write(json.dumps(frame_record(index, seconds, faces)) + "\n")
        lines.flush()
        report.frames += 1
        report.faces += len(faces)
        bar.update(1)
        if max_frames and report.frames >= max_frames:
          break
  except KeyboardInterrupt:
    report.interrupted = True
  finally:
    writer.release()
    bar.close()
    stream.release()
  report.fps = report.frames / max(time.perf_counter() - start, 1e-9)
  if report.frames == 0 and not report.interrupted:
    raise VideoError(f"{stream.name}: no frame could be decoded (damaged or not a video)")
  ended_early = (stream.frame_count and not report.interrupted
                 and report.frames < stream.frame_count
                 and not (max_frames and report.frames >= max_frames))
  if ended_early:
    report.stream_error = (f"{stream.name}: the stream broke off after frame "
                           f"{report.frames - 1} of the {stream.frame_count} its header "
                           "declares (truncated or damaged file)")
  return report
