"""Predicts landmarks and head pose of the faces in images.

    python predict.py IMAGE [IMAGE ...] [--out DIR]       # the model shipped in the package
    python predict.py --workdir DIR IMAGE [IMAGE ...] [--checkpoint latest|STEP]  # your own
    python predict.py VIDEO.mp4 [--detect_every 10] [--nosmooth]   # videos (any of
    python predict.py --camera 0 [--max_frames 300]                # VIDEO_EXTENSIONS)

For each image writes OUT/<name>.png (the image with its face boxes, landmarks and
pose axes: red x, green y, blue the facing direction) and OUT/predictions.json:
  [{"image": path, "width": W, "height": H, "drawing": "<name>.png",
    "faces": [{"box": [x0, y0, x1, y1], "score": s,
               "pose_deg": {"yaw": ., "pitch": ., "roll": .},
               "landmarks": [[x, y], ...]}]}, ...]
An unreadable image gets {"image": path, "error": message, "faces": []}, and the
exit status is 1 once the others are done; a wrong --workdir (or one without a
readable checkpoint) or --landmark_boxes_json stops with one line `error: ...`
(exit status 2). It says which checkpoint it used; a damaged one is moved aside and
the next older one used (docs/training.md).
Coordinates are pixels of the image as displayed (EXIF orientation applied),
0-based with pixel centres on integers; faces come from the predictor's face
detector unless --landmark_boxes_json gives boxes. See
`asmnet_jax.inference.predictor`.

A video (a file with a video extension, or --camera N) is tracked frame by frame
(`asmnet_jax.inference.tracking`: the detector on the first frame, on a lost track
and every --detect_every frames; unless --nosmooth, each face's landmarks are carried
by optical flow, which also places the next crop, and pulled toward the network's, or
One Euro filtered with --noflow, and its pose One Euro filtered)
and gives OUT/<name>.mp4 (landmarks, pose axes, track ids) and OUT/<name>.jsonl, one
record per frame: {"frame": i, "time_s": t, "faces": [{"track_id": k, "box": ...,
"score": ..., "pose_deg": ..., "landmarks": ...}]} (`asmnet_jax.inference.video`).
A video that cannot be opened stops with `error: ...` (exit status 2); one that
breaks off mid-stream keeps everything before the break and reports it (exit status
1); Ctrl-C leaves both files complete up to the last frame (exit status 130).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
from absl import flags

from asmnet_jax import cli
from asmnet_jax.data import images
from asmnet_jax.evaluate import plots
from asmnet_jax.inference import predictor as inference
from asmnet_jax.inference import flow as flow_smoothing
from asmnet_jax.inference import pretrained
from asmnet_jax.inference import tracking
from asmnet_jax.inference import video as video_io
from asmnet_jax.inference.model import validate_recrop_scale
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib

EXIT_INTERRUPTED = 130


def draw_faces(image: np.ndarray, faces: Sequence[inference.Face], out_path: str) -> None:
  """Saves `image` uint8 (H, W, 3) with each face's box, landmarks and pose axes."""
  h, w = image.shape[:2]
  dpi = 100
  fig = plt.figure(figsize=(w / dpi, h / dpi), dpi=dpi)
  ax = fig.add_axes((0, 0, 1, 1))
  ax.imshow(image)
  ax.set_xlim(-0.5, w - 0.5)
  ax.set_ylim(h - 0.5, -0.5)
  ax.axis("off")
  for face in faces:
    x0, y0, x1, y1 = face.box
    ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="yellow",
                               linewidth=1))
    points = face.landmarks
    diameter = max(1.5, float(np.ptp(points[:, 0])) / 35.0)  # pixels
    ax.scatter(points[:, 0], points[:, 1], s=(diameter * 72.0 / dpi) ** 2, c="red",
               linewidths=0)
    nose = plots.NOSE_POINTS.get(len(points), slice(None))
    length = 0.5 * float(np.ptp(points[:, 0]))
    plots.draw_pose_axes(ax, points[nose].mean(0), face.pose, length)
    yaw, pitch, roll = face.pose
    ax.text(x0, y0 - 2, f"yaw {yaw:.0f} pitch {pitch:.0f} roll {roll:.0f}", color="yellow",
            fontsize=max(6, min(12, w / 60)), va="bottom")
  fig.savefig(out_path, dpi=dpi)
  plt.close(fig)


def _drawing_names(paths: Sequence[str]) -> list[str]:
  """<stem>.png per input, numbered where two inputs share a stem."""
  stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
  return [f"{stem}.png" if stems.count(stem) == 1 else f"{stem}_{i}.png"
          for i, stem in enumerate(stems)]


def define_flags(fv: flags.FlagValues) -> None:
  """predict.py's flags (the images are positional arguments)."""
  flags.DEFINE_string("workdir", None, "A train.py work directory (default: the "
                      "pretrained model shipped in the package).", flag_values=fv)
  flags.DEFINE_string("checkpoint", "best", "Which checkpoint to use: best, latest or a "
                      "step number.", flag_values=fv)
  flags.register_validator(
      "checkpoint", lambda v: v in checkpoints.CHECKPOINT_CHOICES or v.isdigit(),
      "must be best, latest or a step number", flag_values=fv)
  flags.DEFINE_string("out", "predictions", "Output directory.", flag_values=fv)
  flags.DEFINE_string("landmark_boxes_json", None,
                      "JSON {image path: [[x0, y0, x1, y1], ...]} of landmark bounding "
                      "boxes to use instead of detecting faces.", flag_values=fv)
  flags.DEFINE_boolean("flip_test", True, "Average each face's prediction with that of "
                       "its mirror image (twice the network time; --noflip_test for one "
                       "pass).", flag_values=fv)
  flags.DEFINE_boolean("tta", True, "Photos: the model's test-time augmentation (the "
                       "bundle's: crops at three box scales, averaged, three times the "
                       "network time; a work directory's: none); --notta for one view, at the "
                       "middle of the model's box scales (the bundle's 1.075). "
                       "Videos: one view.", flag_values=fv)
  flags.DEFINE_integer("refine_passes", 1, "Photos: re-crops around the predicted "
                       "landmarks (videos re-crop each face until its crop settles).",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_list("recrop_scale", [], "Photos: width and height factors of the re-crop "
                    "box about its centre (default: the model's: the bundle's 1.04, a work "
                    "directory's 1; videos: 1).", flag_values=fv)
  flags.DEFINE_integer("camera", None, "Track faces on this camera (OpenCV index) until "
                       "Ctrl-C or --max_frames.", lower_bound=0, flag_values=fv)
  flags.DEFINE_integer("detect_every", 10, "Videos: run the face detector at least every "
                       "this many frames (1: on every frame).", lower_bound=1, flag_values=fv)
  flags.DEFINE_boolean("smooth", True, "Videos: smooth each face's landmarks and pose "
                       "(--nosmooth: raw network output).", flag_values=fv)
  flags.DEFINE_boolean("flow", True, "Videos: smooth the landmarks by carrying them with "
                       "the image's optical flow (--noflow: a One Euro filter).",
                       flag_values=fv)
  flags.DEFINE_float("flow_floor", flow_smoothing.DEFAULT_FLOOR, "Videos: the flow "
                     "smoother's least weight of the network's landmarks (lower: steadier).",
                     lower_bound=1e-6, upper_bound=1.0, flag_values=fv)
  flags.DEFINE_float("flow_tolerance", flow_smoothing.DEFAULT_TOLERANCE, "Videos: "
                     "disagreement between carried and network landmarks, in face sizes, "
                     "at which the network's are taken (lower: less lag).", lower_bound=1e-6,
                     flag_values=fv)
  flags.DEFINE_float("min_cutoff", tracking.DEFAULT_MIN_CUTOFF, "Videos: One Euro cut-off "
                     "for a still face, Hz (lower: steadier, more lag).", lower_bound=1e-6,
                     flag_values=fv)
  flags.DEFINE_float("beta", tracking.DEFAULT_BETA, "Videos: One Euro speed coefficient "
                     "(higher: less lag in motion).", lower_bound=0.0, flag_values=fv)
  flags.DEFINE_integer("max_frames", 0, "Videos: stop after this many frames (0: all).",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_boolean("progress", True, "Videos: show a progress bar with the frame rate.",
                       flag_values=fv)


def _run_videos(fv: flags.FlagValues, predictor: inference.Predictor,
                sources: list[str | int]) -> int:
  """Tracks faces through each video (all opened first); returns the exit status."""
  with cli.reported(video_io.VideoError):
    streams = [video_io.open_video(source) for source in sources]
  tracker = tracking.VideoPredictor(predictor, detect_every=fv.detect_every, smooth=fv.smooth,
                                    flow=fv.flow, flow_floor=fv.flow_floor,
                                    flow_tolerance=fv.flow_tolerance,
                                    min_cutoff=fv.min_cutoff, beta=fv.beta)
  names = _drawing_names([f"camera{s}" if isinstance(s, int) else s for s in sources])
  status = cli.EXIT_OK
  for stream, name in zip(streams, names):
    stem = os.path.splitext(name)[0]
    out_video, out_jsonl = (os.path.join(fv.out, stem + ext) for ext in (".mp4", ".jsonl"))
    with cli.reported(video_io.VideoError):
      report = video_io.track_video(tracker, stream, out_video, out_jsonl,
                                    max_frames=fv.max_frames, progress=fv.progress)
    print(f"{stream.name}: {report.frames} frames, {report.faces} faces, {report.fps:.1f} "
          f"frames/s -> {out_video}, {out_jsonl}", file=sys.stderr)
    if report.stream_error:
      print(f"warning: {report.stream_error}; the {report.frames} frames before the break "
            "are written", file=sys.stderr)
      status = cli.EXIT_FAILURE
    if report.interrupted:
      print(f"interrupted after {report.frames} frames; {out_video} and {out_jsonl} hold "
            "them all", file=sys.stderr)
      for rest in streams[streams.index(stream) + 1:]:
        rest.release()
      return EXIT_INTERRUPTED
  return status


def _run(fv: flags.FlagValues, paths: list[str]) -> int:
  if not paths and fv.camera is None:
    raise cli.UsageError("no images given (usage: predict.py [--workdir DIR] "
                         "IMAGE|VIDEO ... or --camera N)")
  videos: list[str | int] = [p for p in paths if video_io.is_video_path(p)]
  if fv.camera is not None:
    videos.append(fv.camera)
  paths = [p for p in paths if not video_io.is_video_path(p)]
  given = None
  if fv.landmark_boxes_json:
    with cli.reported(FileNotFoundError, json.JSONDecodeError):
      with open(fv.landmark_boxes_json) as f:
        given = json.load(f)
  # A model whose points have no mirror map runs one pass, with a notice below.
  flip_test = "auto" if fv.flip_test else False
  with cli.reported(ValueError):
    recrop_scale = validate_recrop_scale(fv.recrop_scale) if fv.recrop_scale else None
  search = {"refine_passes": fv.refine_passes, "flip_test": flip_test,
            "recrop_scale": recrop_scale, **({} if fv.tta else inference.ONE_VIEW)}
  if fv.workdir is None:
    with cli.reported(pretrained.BundleError, status=cli.EXIT_FAILURE):
      predictor = inference.Predictor.pretrained(**search)
  else:
    # Not a work directory, a bad config.json, no (readable) checkpoint.
    with cli.reported(FileNotFoundError, config_lib.ConfigFileError,
                      checkpoints.CheckpointError):
      predictor = inference.Predictor.from_workdir(fv.workdir, fv.checkpoint, **search)
    print(f"predict.py: {fv.checkpoint} checkpoint -> {predictor.model.source}",
          file=sys.stderr)
  if notice := predictor.flip_test_fallback_notice(fv.flip_test):
    print(f"predict.py: {notice}", file=sys.stderr)
  os.makedirs(fv.out, exist_ok=True)
  status = _run_videos(fv, predictor, videos) if videos else cli.EXIT_OK
  if not paths:
    return status
  report = []
  for path, drawing in zip(paths, _drawing_names(paths)):
    try:
      image = images.load_image(path)
    except images.ImageLoadError as e:  # report it and go on with the others.
      print(f"{path}: {e}", file=sys.stderr)
      report.append({"image": path, "error": str(e), "faces": []})
      continue
    if given is not None:
      faces, = predictor(image, boxes=given.get(path, []), landmark_boxes=True)
    else:
      faces, = predictor(image)
    draw_faces(image, faces, os.path.join(fv.out, drawing))
    report.append({"image": path, "width": int(image.shape[1]), "height": int(image.shape[0]),
                   "drawing": drawing, "faces": [face.to_json() for face in faces]})
    print(f"{path}: {len(faces)} face(s) -> {os.path.join(fv.out, drawing)}", file=sys.stderr)
  with open(os.path.join(fv.out, "predictions.json"), "w") as f:
    f.write("[\n" + ",\n".join(json.dumps(entry) for entry in report) + "\n]\n")
  if any("error" in entry for entry in report):
    return cli.EXIT_FAILURE
  return status


def main(argv: Sequence[str] | None = None) -> int:
  """Predicts per `argv` (default sys.argv[1:]); returns the exit status (1 when an
  image could not be read or a video broke off, 130 after Ctrl-C on a video)."""
  return cli.run(define_flags, _run, argv, positional="IMAGE|VIDEO [IMAGE|VIDEO ...]")


if __name__ == "__main__":
  sys.exit(main())
