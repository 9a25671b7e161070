"""Video: the tracker's detector schedule and ids, synthetic clips, predict.py on videos
(outputs, a truncated file, Ctrl-C, unreadable and face-less videos), the benchmark's
scores."""

import dataclasses
import json
import types

import cv2
import numpy as np
import pytest

import predict
from asmnet_jax.core import geometry
from asmnet_jax.inference import detection
from asmnet_jax.inference import tracking
from asmnet_jax.inference.predictor import Predictor
from asmnet_jax.synthetic.clips import ClipConfig, SyntheticClip
from asmnet_jax.tools import video_benchmark

# A small one-face clip: 192x144, near frontal (so MTCNN finds it), no exit, no fast turn.
SMALL = ClipConfig(seconds=0.2, fps=30.0, width=192, height=144, exits=0, fast_turns=0,
                   two_face_prob=0.0, supersample=1, yaw=(-10.0, 10.0), pitch=(-5.0, 5.0),
                   roll=(-5.0, 5.0))


@pytest.fixture(scope="module")
def predictor():
  shared = Predictor.pretrained()
  default = shared.detector
  yield shared
  shared.detector = default


@pytest.fixture(scope="module")
def small_clip():
  clip = SyntheticClip(14, SMALL)
  return clip, list(clip.frames())


class CountingDetector:
  """Returns the clip's true landmark boxes (for `IDENTITY_MAPPING`), counting calls."""

  def __init__(self, clip, frames):
    self.clip, self.frames, self.calls = clip, frames, []

  def __call__(self, frame):
    index = next(i for i, f in enumerate(self.frames) if f is frame)
    self.calls.append(index)
    boxes = geometry.landmark_box(self.clip.landmarks[index]).astype(np.float32)
    return detection.Detections(boxes, np.full(len(boxes), 0.99, np.float32))


def test_tracker_keeps_the_id_and_detects_on_schedule(predictor, small_clip):
  clip, frames = small_clip
  counting = CountingDetector(clip, frames)
  predictor.detector, predictor.box_mapping = counting, detection.IDENTITY_MAPPING
  try:
    video = tracking.VideoPredictor(predictor, detect_every=4)
    out = [video(frame, t) for frame, t in zip(frames, clip.timestamps)]
  finally:
    predictor.detector, predictor.box_mapping = None, None
  assert counting.calls == [0, 4]  # the first frame, then every 4th.
  assert [[face.track_id for face in faces] for faces in out] == [[0]] * len(frames)
  for faces, truth in zip(out, clip.landmarks):
    gt = truth[0]
    nme = np.linalg.norm(faces[0].raw_landmarks - gt, axis=-1).mean() / np.linalg.norm(
        gt[36] - gt[45])
    assert nme < 0.15
  # Smoothing starts from the raw value: the first frame is the network's output.
  np.testing.assert_array_equal(out[0][0].landmarks, out[0][0].raw_landmarks)


class ScriptedPredictor:
  """The face of a script, found wherever the tracker looks near it; elsewhere the shape
  collapses. The frame index is the frame's first pixel."""

  def __init__(self, script):
    self.script = script  # per frame: the face's (n, 2) landmarks or None.
    self.detector_calls = []
    self.model = types.SimpleNamespace(eval_margin=0.05, num_landmarks=68)
    self.box_mapping = detection.IDENTITY_MAPPING
    self.boxes, self.scales = [], []  # the start boxes and re-crop scale of each search.

  def detector(self, frame):
    index = int(frame[0, 0, 0])
    self.detector_calls.append(index)
    face = self.script[index]
    if face is None:
      return detection.no_detections()
    return detection.Detections(geometry.landmark_box(face)[None].astype(np.float32),
                                np.array([0.99], np.float32))

  def predict_landmark_boxes(self, frame, boxes, refine_passes=None, converged=None,
                             recrop_scale=None, tta=True):
    self.search = (refine_passes, converged, tta)
    self.boxes.append(np.asarray(boxes))
    self.scales.append(recrop_scale)
    face = self.script[int(frame[0, 0, 0])]
    out = []
    for box in boxes:
      if face is not None and geometry.box_iou(box, geometry.landmark_box(face))[0, 0] > 0.3:
        out.append(face)
      else:  # a collapsed shape: every point within 1 px of the crop's centre.
        centre = 0.5 * (box[:2] + box[2:])
        out.append(centre + np.random.default_rng(0).uniform(-0.5, 0.5, (68, 2)))
    return np.stack(out).astype(np.float64), np.zeros((len(boxes), 3)), np.asarray(boxes)


def test_lost_track_triggers_detection_and_gets_its_id_back():
  rng = np.random.default_rng(1)
  shape = rng.uniform(0, 60, (68, 2)) + [50, 40]
  script = [shape + [2 * t, 0] for t in range(5)] + [None, None] + [shape + [8, 0]] * 5
  fake = ScriptedPredictor(script)
  video = tracking.VideoPredictor(fake, detect_every=5, smooth=False)
  ids = []
  for t in range(len(script)):
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[0, 0, 0] = t
    ids.append([face.track_id for face in video(frame)])
  # Frame 0 (first), 5 (the track is lost there), 10 (every 5 frames): the face that
  # came back at frame 7 is picked up at frame 10, with its old id.
  assert fake.detector_calls == [0, 5, 10]
  assert ids == [[0]] * 5 + [[]] * 5 + [[0]] * 2
  assert (video.tracks_lost, video.recoveries, video.tracks_started) == (1, 1, 2)
  # Each face is re-cropped until its crop settles, by the tracker's settings.
  # One view a frame unless asked: the test-time augmentation's cost is per frame.
  assert fake.search == (tracking.DEFAULT_REFINE_PASSES, tracking.DEFAULT_CONVERGED, False)


@pytest.mark.parametrize("scale", [(1.0, 1.0), (1.2, 0.8)])
def test_tracks_start_from_their_landmarks_box_scaled(scale):
  shape = np.random.default_rng(3).uniform(0, 60, (68, 2)) + [50, 40]
  fake = ScriptedPredictor([shape + [t, 0] for t in range(3)])
  video = tracking.VideoPredictor(fake, detect_every=10, smooth=False, recrop_scale=scale)
  for t in range(3):
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[0, 0, 0] = t
    video(frame)
  # Frame 0 is detected; frames 1 and 2 search from the last landmarks' box scaled
  # about its centre, and re-crop with the same scale.
  assert fake.scales == [scale] * 3
  for t in (1, 2):
    box = geometry.landmark_box(shape + [t - 1, 0])
    centre, half = 0.5 * (box[:2] + box[2:]), 0.5 * (box[2:] - box[:2]) * scale
    np.testing.assert_allclose(fake.boxes[t][0], np.concatenate([centre - half, centre + half]))
  with pytest.raises(ValueError, match="recrop_scale"):
    tracking.VideoPredictor(fake, recrop_scale=(3.0, 1.0))


@pytest.mark.parametrize("smooth,flow", [(True, True), (True, False), (False, True)])
def test_searches_start_where_the_flow_carries_the_smoothed_face(smooth, flow):
  texture = cv2.GaussianBlur(np.random.default_rng(5).random((200, 320)).astype(np.float32),
                             (0, 0), 2.0)
  texture = (255 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)
  shape = np.random.default_rng(3).uniform(0, 60, (68, 2)) + [60, 60]
  step = 6.0  # px a frame to the right: the image and the face move together.
  fake = ScriptedPredictor([shape + [step * t, 0] for t in range(4)])
  video = tracking.VideoPredictor(fake, detect_every=10, smooth=smooth, flow=flow)
  for t in range(4):
    frame = np.repeat(texture[:, 100 - int(step) * t:300 - int(step) * t, None], 3, axis=-1)
    frame[0, 0, 0] = t
    video(frame)
  for t in (1, 2, 3):
    # The flow smoother looks where the face is now; without it the search starts from
    # the last frame's landmarks, a step behind.
    lag = 0.0 if smooth and flow else step
    expected = geometry.landmark_box(shape + [step * t - lag, 0])
    np.testing.assert_allclose(fake.boxes[t][0], expected, atol=0.5)


class NoisyStillFace:
  """A still textured face whose network output trembles by 0.5 px (seeded)."""

  def __init__(self, shape):
    self.shape, self.rng = shape, np.random.default_rng(7)
    self.model = types.SimpleNamespace(eval_margin=0.05, num_landmarks=68)
    self.box_mapping = detection.IDENTITY_MAPPING

  def detector(self, frame):
    return detection.Detections(geometry.landmark_box(self.shape)[None].astype(np.float32),
                                np.array([0.99], np.float32))

  def predict_landmark_boxes(self, frame, boxes, refine_passes=None, converged=None,
                             recrop_scale=None, tta=True):
    out = self.shape + self.rng.normal(0.0, 0.5, (len(boxes),) + self.shape.shape)
    return out, np.zeros((len(boxes), 3)), np.asarray(boxes)


@pytest.mark.parametrize("flow", [True, False])
def test_smoothing_steadies_a_still_face_with_flow_or_one_euro(flow):
  rng = np.random.default_rng(2)
  texture = cv2.GaussianBlur(rng.random((200, 200)).astype(np.float32), (0, 0), 2.0)
  frame = np.repeat((255 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)
                    [..., None], 3, axis=-1)
  shape = rng.uniform(60.0, 140.0, (68, 2))
  video = tracking.VideoPredictor(NoisyStillFace(shape), flow=flow)
  out = [video(frame)[0] for _ in range(30)]
  raw = np.stack([face.raw_landmarks for face in out])
  smooth = np.stack([face.landmarks for face in out])
  raw_jitter = np.linalg.norm(np.diff(raw, axis=0), axis=-1).mean()
  smooth_jitter = np.linalg.norm(np.diff(smooth, axis=0), axis=-1).mean()
  # The flow smoother averages over about 1 / floor = 20 frames; One Euro at 4 Hz
  # and 30 frames/s keeps 0.46 of each new sample (frame-to-frame noise x0.37).
  assert smooth_jitter < (0.3 if flow else 0.6) * raw_jitter
  if not flow:  # One Euro on the landmarks, as TrackSmoother does without a flow smoother.
    reference = tracking.TrackSmoother()
    expected = [reference(face.raw_landmarks.astype(np.float64), np.zeros(3), k / 30.0)[0]
                for k, face in enumerate(out)]
    np.testing.assert_allclose(smooth, np.stack(expected), atol=1e-3)


def test_clips_are_deterministic_with_exits_and_two_faces():
  config = ClipConfig(seconds=3.0, fps=10.0, width=320, height=240, two_face_prob=1.0,
                      supersample=1)
  a, b = SyntheticClip(5, config), SyntheticClip(5, config)
  np.testing.assert_array_equal(a.landmarks, b.landmarks)
  np.testing.assert_array_equal(a.frame(3), b.frame(3))
  assert a.landmarks.shape == (30, 2, 68, 2) and a.pose.shape == (30, 2, 3)
  assert a.frame(0).shape == (240, 320, 3)
  assert not a.inside[:, 0].all() and a.inside[:, 0].any()  # the first face exits.
  yaw_speed = np.abs(np.diff(a.pose[:, :, 0], axis=0)).max() * config.fps
  assert yaw_speed > 60.0  # degrees per second: a fast turn.
  assert not np.array_equal(SyntheticClip(6, config).landmarks, a.landmarks)


def test_benchmark_scores_known_offsets(small_clip):
  clip, _ = small_clip
  gt = clip.landmarks[:, 0].astype(np.float64)
  iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)
  sign = np.where(np.arange(len(gt)) % 2 == 0, 1.0, -1.0)
  # Raw output jitters by +-1 px in x about the truth; "smoothed" is 2 px off, steady.
  output = [[tracking.TrackedFace(
      (g + [0.0, 2.0]).astype(np.float32), np.zeros(3, np.float32),
      geometry.landmark_box(g).astype(np.float32), 1.0, 0,
      (g + [s, 0.0]).astype(np.float32), np.zeros(3, np.float32))]
      for g, s in zip(gt, sign)]
  scores = video_benchmark.score_clip(clip, output)
  np.testing.assert_allclose(scores["nme"]["raw"], 1.0 / iod, rtol=1e-5)
  np.testing.assert_allclose(scores["nme"]["smoothed"], 2.0 / iod, rtol=1e-5)
  np.testing.assert_allclose(scores["jitter"]["raw"], 2.0 / iod[1:], rtol=1e-4)
  np.testing.assert_allclose(scores["jitter"]["smoothed"], 0.0, atol=1e-4)
  assert scores["counts"]["covered"] == len(gt) and scores["counts"]["id_switches"] == 0
  true_motion = np.linalg.norm(np.diff(gt, axis=0), axis=-1).mean(-1) / iod[1:]
  np.testing.assert_allclose(scores["motion"]["raw"], true_motion, rtol=1e-4)
  np.testing.assert_allclose(scores["motion"]["smoothed"], true_motion, rtol=1e-4)
  bands = video_benchmark.summarise([scores])["jitter_by_motion"]
  assert sum(b["pairs_raw"] for b in bands) == len(gt) - 1
  for band, (lo, hi) in zip(bands, zip(video_benchmark.MOTION_BANDS[:-1],
                                       video_benchmark.MOTION_BANDS[1:])):
    inside = (true_motion >= lo) & (true_motion < hi)
    assert band["pairs_raw"] == band["pairs_smoothed"] == inside.sum()
    if inside.any():
      assert band["jitter_pct_raw"] == pytest.approx(100 * np.mean(2.0 / iod[1:][inside]), abs=2e-3)


def test_benchmark_takes_raw_figures_from_the_unsmoothed_run(small_clip):
  clip, _ = small_clip
  gt = clip.landmarks[:, 0].astype(np.float64)
  iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)

  def face(smoothed, raw):
    return tracking.TrackedFace(smoothed.astype(np.float32), np.zeros(3, np.float32),
                                geometry.landmark_box(smoothed).astype(np.float32), 1.0, 0,
                                raw.astype(np.float32), np.zeros(3, np.float32))

  unsmoothed = [[face(g + [1.0, 0.0], g + [1.0, 0.0])] for g in gt]
  # The smoothed run's network output (3 px off) must not count as raw; it misses the
  # face on the last frame.
  smoothed = [[face(g + [2.0, 0.0], g + [3.0, 0.0])] for g in gt[:-1]] + [[]]
  combined = video_benchmark.combine(video_benchmark.score_clip(clip, unsmoothed),
                                     video_benchmark.score_clip(clip, smoothed))
  np.testing.assert_allclose(combined["nme"]["raw"], 1.0 / iod, rtol=1e-5)
  np.testing.assert_allclose(combined["nme"]["smoothed"], 2.0 / iod[:-1], rtol=1e-5)
  assert combined["counts"]["covered"] == len(gt) - 1
  bands = video_benchmark.summarise([combined])["jitter_by_motion"]
  assert sum(b["pairs_raw"] for b in bands) == len(gt) - 1
  assert sum(b["pairs_smoothed"] for b in bands) == len(gt) - 2
  network = video_benchmark.network_figures([video_benchmark.score_clip(clip, smoothed)])
  assert network["nme_pct_raw"] == pytest.approx(100 * np.mean(3.0 / iod[:-1]), abs=1e-3)


# ------------------------------------------------------------------------------------
# predict.py on videos.


@pytest.fixture
def run_predict(predictor, monkeypatch, capsys):
  monkeypatch.setattr(predict.inference.Predictor, "pretrained",
                      classmethod(lambda cls, *a, **k: predictor))

  def run(*args):
    status = predict.main([*args, "--noprogress"])
    return status, capsys.readouterr().err
  return run


def _write_video(path, frames, fourcc="mp4v", fps=30.0):
  h, w = frames[0].shape[:2]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
  for frame in frames:
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()


def _read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def _frame_count(path):
  capture = cv2.VideoCapture(str(path))
  count = 0
  while capture.read()[0]:
    count += 1
  size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
  capture.release()
  return count, size


def test_predict_writes_video_and_jsonl(run_predict, small_clip, tmp_path):
  clip, frames = small_clip
  _write_video(tmp_path / "clip.mp4", frames)
  status, err = run_predict(str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out"))
  assert status == 0, err
  records = _read_jsonl(tmp_path / "out" / "clip.jsonl")
  assert [r["frame"] for r in records] == list(range(len(frames)))
  np.testing.assert_allclose([r["time_s"] for r in records], clip.timestamps, atol=1e-4)
  assert all(len(r["faces"]) == 1 and r["faces"][0]["track_id"] == 0 for r in records)
  face = records[-1]["faces"][0]
  assert np.asarray(face["landmarks"]).shape == (68, 2)
  assert set(face["pose_deg"]) == {"yaw", "pitch", "roll"} and len(face["box"]) == 4
  truth = clip.landmarks[-1, 0]
  error = np.linalg.norm(np.asarray(face["landmarks"]) - truth, axis=-1).mean()
  assert error < 0.15 * np.linalg.norm(truth[36] - truth[45])
  assert _frame_count(tmp_path / "out" / "clip.mp4") == (len(frames), (192.0, 144.0))
  assert "frames/s" in err


def test_truncated_video_keeps_the_frames_before_the_break(run_predict, small_clip, tmp_path):
  _, frames = small_clip
  _write_video(tmp_path / "whole.avi", frames, fourcc="MJPG")
  data = (tmp_path / "whole.avi").read_bytes()
  (tmp_path / "cut.avi").write_bytes(data[:len(data) // 2])
  status, err = run_predict(str(tmp_path / "cut.avi"), "--out", str(tmp_path / "out"))
  assert status == 1
  decoded = len(_read_jsonl(tmp_path / "out" / "cut.jsonl"))
  assert 0 < decoded < len(frames)
  assert f"broke off after frame {decoded - 1} of the {len(frames)}" in err
  assert _frame_count(tmp_path / "out" / "cut.mp4")[0] == decoded


def test_ctrl_c_leaves_complete_outputs(run_predict, small_clip, tmp_path, monkeypatch):
  _, frames = small_clip
  _write_video(tmp_path / "clip.mp4", frames)
  original = tracking.VideoPredictor.__call__

  def interrupted(self, frame, timestamp=None):
    if self.frames == 3:
      raise KeyboardInterrupt
    return original(self, frame, timestamp)

  monkeypatch.setattr(tracking.VideoPredictor, "__call__", interrupted)
  status, err = run_predict(str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out"))
  assert status == predict.EXIT_INTERRUPTED
  assert [r["frame"] for r in _read_jsonl(tmp_path / "out" / "clip.jsonl")] == [0, 1, 2]
  assert _frame_count(tmp_path / "out" / "clip.mp4")[0] == 3
  assert "interrupted after 3 frames" in err


def test_unreadable_and_empty_videos(run_predict, tmp_path):
  (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 50)
  (tmp_path / "empty.mov").write_bytes(b"")
  status, err = run_predict(str(tmp_path / "junk.mp4"), "--out", str(tmp_path / "out"))
  assert status == 2 and err.strip().splitlines()[-1].startswith("error: ")
  assert "junk.mp4: cannot open as a video" in err
  status, err = run_predict(str(tmp_path / "empty.mov"), "--out", str(tmp_path / "out"))
  assert status == 2 and "empty.mov: empty file" in err


def test_video_without_faces_gives_empty_records(run_predict, tmp_path):
  rng = np.random.default_rng(0)
  frames = [np.full((96, 128, 3), 90, np.uint8) + rng.integers(0, 8, (96, 128, 3), np.uint8)
            for _ in range(4)]
  _write_video(tmp_path / "wall.mp4", frames)
  status, err = run_predict(str(tmp_path / "wall.mp4"), "--out", str(tmp_path / "out"))
  assert status == 0, err
  assert _read_jsonl(tmp_path / "out" / "wall.jsonl") == [
      {"frame": i, "time_s": round(i / 30.0, 4), "faces": []} for i in range(4)]


def test_pan_zoom_starts_on_the_whole_photo_and_zooms_about_its_centre():
  from asmnet_jax.tools.pan_zoom import pan_zoom_frames  # pylint: disable=g-import-not-at-top
  photo = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
  first, last = pan_zoom_frames(photo, 2, 64, 48, zoom=2.0, pan=0.0)
  np.testing.assert_array_equal(first, photo)  # scale 1: the identity warp.
  # Zoom 2 about the centre (32, 24): output pixel centre x samples photo x / 2 + 15.75
  # (and y / 2 + 11.75), bilinearly.
  qx, qy = np.arange(64) / 2 + 15.75, np.arange(48) / 2 + 11.75
  x0, y0 = np.floor(qx).astype(int), np.floor(qy).astype(int)
  fx, fy = (qx - x0)[None, :, None], (qy - y0)[:, None, None]
  p = photo.astype(float)
  expected = ((1 - fy) * ((1 - fx) * p[y0][:, x0] + fx * p[y0][:, x0 + 1])
              + fy * ((1 - fx) * p[y0 + 1][:, x0] + fx * p[y0 + 1][:, x0 + 1]))
  np.testing.assert_allclose(last, expected, atol=1.5)  # OpenCV's fixed-point weights.


class FakeCamera:
  """Stands in for `cv2.VideoCapture(index)`: camera 0 gives the clip's frames (BGR)
  without end, a frame count of 0 and no fps; other indices are not there."""

  def __init__(self, frames, index):
    self.frames, self.index, self.reads = frames, index, 0

  def isOpened(self):  # pylint: disable=invalid-name
    return self.index == 0

  def get(self, prop):
    h, w = self.frames[0].shape[:2]
    return {cv2.CAP_PROP_FRAME_WIDTH: w, cv2.CAP_PROP_FRAME_HEIGHT: h}.get(prop, 0.0)

  def read(self):
    frame = self.frames[self.reads % len(self.frames)]
    self.reads += 1
    return True, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)

  def release(self):
    pass


def test_camera_until_max_frames_and_a_missing_camera(run_predict, small_clip, tmp_path,
                                                      monkeypatch):
  _, frames = small_clip
  from asmnet_jax.inference import video as video_io  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(video_io.cv2, "VideoCapture", lambda source: FakeCamera(frames, source))
  status, err = run_predict("--camera", "0", "--max_frames", "5", "--out", str(tmp_path / "out"))
  assert status == 0, err
  records = _read_jsonl(tmp_path / "out" / "camera0.jsonl")
  assert [r["frame"] for r in records] == list(range(5))
  times = [r["time_s"] for r in records]  # wall-clock seconds since the first frame.
  assert times[0] == pytest.approx(0.0, abs=0.5) and times == sorted(times)
  assert all(len(r["faces"]) == 1 for r in records)
  status, err = run_predict("--camera", "3", "--out", str(tmp_path / "missing"))
  assert status == 2 and "camera 3: no camera at this index" in err
  monkeypatch.undo()  # the real VideoCapture reads the MP4 back.
  assert _frame_count(tmp_path / "out" / "camera0.mp4") == (5, (192.0, 144.0))


def test_photo_clips_keep_the_labels_backdrop_and_look_of_the_cartoon_ones():
  quiet = dataclasses.replace(SMALL, noise=0.0, jpeg_quality=100)
  photo = SyntheticClip(14, dataclasses.replace(quiet, style="photo"))
  cartoon = SyntheticClip(14, quiet)
  np.testing.assert_array_equal(photo.landmarks, cartoon.landmarks)
  first, again, later = photo.frame(0), photo.frame(0), photo.frame(5)
  np.testing.assert_array_equal(first, again)
  # Away from the head (the frame's corners) both styles show the same still backdrop.
  for corner in (np.s_[:8, :8], np.s_[-8:, -8:], np.s_[:8, -8:]):
    np.testing.assert_allclose(first[corner], cartoon.frame(0)[corner], atol=3)
  # Between the eyes and the mouth the head is drawn, not the cartoon's face, and it
  # keeps its skin from frame to frame (its look does not depend on the pose).
  def inner(index):
    corners = photo.landmarks[index, 0, [36, 45, 48, 54]]
    (x0, y0), (x1, y1) = corners.min(axis=0).astype(int), corners.max(axis=0).astype(int)
    return np.s_[y0:y1, x0:x1]

  assert np.abs(first[inner(0)].astype(float) - cartoon.frame(0)[inner(0)]).mean() > 10.0
  np.testing.assert_allclose(first[inner(0)].reshape(-1, 3).mean(0),
                             later[inner(5)].reshape(-1, 3).mean(0), atol=8.0)
  with pytest.raises(ValueError, match="style"):
    ClipConfig(style="oil")
