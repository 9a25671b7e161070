"""The face tracker on synthetic clips with exact labels: accuracy, jitter, track
losses and speed.

    python -m asmnet_jax.tools.video_benchmark [--seeds 100-107] [--out video_benchmark.json]
        [--tune_seeds 900-903 --tune] [--style photo] [--recrop_scale 1,1]

Clips come from `asmnet_jax.synthetic.clips` (640x480, 30 fps; fast turns, exits,
two faces in some), with cartoon faces or, with --style photo, photo-style ones. The
model is the bundled one (`Predictor.pretrained()`), with its default detector and, as
`predict.py` runs it, test-time flips (--noflip_test: one pass); the tracker re-crops
with its own `recrop_scale` (default 1; --recrop_scale sets it). Figures (all over the
clips' frames):
  * nme_pct: per frame and face, the mean landmark error over the inter-ocular
    (outer eye corner) distance, in percent, for faces with all 68 points in the
    frame and a predicted face on them; raw (a run with smoothing off, as
    `predict.py --nosmooth`) and smoothed (the default run). With the flow smoother
    the smoothed landmarks steer the crops (`tracking`), so the network's own output
    differs between the two runs; the smoothed run's is reported as
    `network_in_smoothed_run`;
  * jitter_pct: on consecutive frames where one track stays on one face (in view on
    both), the mean over points of |(p_t - p_t-1) - (g_t - g_t-1)| / IOD_t, percent:
    the frame-to-frame motion that the true motion does not explain; raw and smoothed;
  * still_jitter_pct: the same on pairs of frames where the face is still (no true
    landmark moves by 0.5 % of the IOD): the trembling of a still face;
  * jitter_by_motion: the jitter, raw and smoothed, and the number of frame pairs, in
    bands of the true motion (mean point displacement between the frames, % of the
    IOD): where the jitter comes from;
  * coverage: the share of in-view face-frames with a predicted face on them;
  * losses_in_view: tracks that ended while their face was still fully in the frame;
    losses_on_exit: those that ended while it was leaving; recoveries: a face picked
    up again after frames in view without a track, with the frames that took;
    id_switches: a face followed by another track id than on its previous frame;
    false_faces: predicted faces on no true face (face-frames);
  * speed: frames per second (wall) and process CPU ms per frame of the tracker
    alone (frames already decoded) on a one-face clip, with tracking (the default
    `detect_every`) and with the detector on every frame (`detect_every=1`).
A predicted face is on a true face when their landmark boxes overlap with IoU >= 0.3
(the best such pair first).

--tune grid-searches on --tune_seeds (never the reported seeds) the One Euro
parameters (the landmarks filtered with --noflow, and the pose; resmoothed from the
raw run, since these filters never steer the crops), then the flow smoother's
(`asmnet_jax.inference.flow`; the tracker run anew for each setting), each for the
least smoothed jitter whose NME is within 0.1 points of raw, and prints the grids.
Prints one JSON object and writes it, with the date and the machine, to --out.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import sys
import time
from typing import Any, Sequence

import numpy as np
import tqdm
from absl import flags

from asmnet_jax import cli
from asmnet_jax.core import geometry
from asmnet_jax.core.metrics import OUTER_EYE_CORNERS
from asmnet_jax.inference import flow as flow_lib
from asmnet_jax.inference import tracking
from asmnet_jax.inference.model import validate_recrop_scale
from asmnet_jax.inference.predictor import Predictor
from asmnet_jax.runtime import machine
from asmnet_jax.synthetic.clips import ClipConfig, SyntheticClip

MATCH_IOU = 0.3
STILL = 0.005  # a still face: no true landmark moves 0.5 % of the IOD between frames.
MOTION_BANDS = (0.0, 0.005, 0.02, 0.05, float("inf"))  # true motion, fractions of the IOD.
TUNE_MIN_CUTOFFS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
TUNE_BETAS = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0)
TUNE_FLOW_FLOORS = (0.02, 0.05, 0.1, 0.2)
TUNE_FLOW_TOLERANCES = (0.03, 0.05, 0.1)


def parse_seeds(text: str) -> list[int]:
  """"100-103,7" -> [100, 101, 102, 103, 7]."""
  seeds = []
  for part in text.split(","):
    lo, _, hi = part.strip().partition("-")
    seeds += list(range(int(lo), int(hi or lo) + 1))
  return seeds


def run_clip(video: tracking.VideoPredictor, frames: Sequence[np.ndarray],
             timestamps: np.ndarray) -> list[list[tracking.TrackedFace]]:
  """The tracker's faces on every frame of a clip (reset first)."""
  video.reset()
  return [video(frame, t) for frame, t in zip(frames, timestamps)]


def resmooth(output: list[list[tracking.TrackedFace]], timestamps: np.ndarray,
             min_cutoff: float, beta: float) -> list[list[tracking.TrackedFace]]:
  """The tracker's output One Euro filtered anew from its raw landmarks and pose, as
  the tracker with `flow=False` would with these parameters (a track that reappears
  starts a new smoother). Those filters never steer the crops, so the raw output does
  not depend on them; the flow smoother does, and needs a run of the tracker."""
  smoothers: dict[int, tracking.TrackSmoother] = {}
  out = []
  for faces, seconds in zip(output, timestamps):
    smoothers = {f.track_id: smoothers.get(f.track_id) or tracking.TrackSmoother(
        min_cutoff, beta) for f in faces}
    row = []
    for face in faces:
      landmarks, pose = smoothers[face.track_id](face.raw_landmarks.astype(np.float64),
                                                 face.raw_pose.astype(np.float64), seconds)
      row.append(dataclasses.replace(face, landmarks=landmarks.astype(np.float32),
                                     pose=pose.astype(np.float32),
                                     box=geometry.landmark_box(landmarks).astype(np.float32)))
    out.append(row)
  return out


def _match(faces: Sequence[tracking.TrackedFace], truth: np.ndarray) -> dict[int, int]:
  """{true face index: predicted face index}, greedily by landmark-box IoU."""
  if not faces:
    return {}
  iou = geometry.box_iou(geometry.landmark_box(truth),
                         geometry.landmark_box(np.stack([f.raw_landmarks for f in faces])))
  pairs = {}
  while iou.size and iou.max() >= MATCH_IOU:
    g, p = np.unravel_index(np.argmax(iou), iou.shape)
    pairs[int(g)] = int(p)
    iou[g, :], iou[:, p] = -1.0, -1.0
  return pairs


def score_clip(clip: SyntheticClip, output: list[list[tracking.TrackedFace]]) -> dict[str, Any]:
  """Per-clip sums and lists behind the module doc's figures."""
  left, right = OUTER_EYE_CORNERS[68]
  nme = {"raw": [], "smoothed": []}
  jitter = {"raw": [], "smoothed": []}
  still = {"raw": [], "smoothed": []}
  motion = {"raw": [], "smoothed": []}
  counts = dict(in_view=0, covered=0, losses_in_view=0, losses_on_exit=0, recoveries=0,
                id_switches=0, false_faces=0)
  recovery_frames = []
  previous: dict[int, tuple[int, tracking.TrackedFace]] = {}  # face -> (frame, match).
  last_id: dict[int, int] = {}
  unmatched_since: dict[int, int] = {}
  for t, faces in enumerate(output):
    truth = clip.landmarks[t]
    pairs = _match(faces, truth)
    counts["false_faces"] += len(faces) - len(pairs)
    ids_now = {face.track_id for face in faces}
    for g in range(clip.num_faces):
      inside = bool(clip.inside[t, g])
      gt = truth[g].astype(np.float64)
      iod = float(np.linalg.norm(gt[left] - gt[right]))
      before = previous.get(g)
      if before is not None and before[0] == t - 1 and before[1].track_id not in ids_now:
        counts["losses_in_view" if inside else "losses_on_exit"] += 1
      if inside:
        counts["in_view"] += 1
      if g not in pairs:
        if inside:
          unmatched_since.setdefault(g, t)
        continue
      face = faces[pairs[g]]
      if g in last_id and last_id[g] != face.track_id:
        counts["id_switches"] += 1
      last_id[g] = face.track_id
      if g in unmatched_since and inside:
        if t > 0 and before is not None:
          counts["recoveries"] += 1
          recovery_frames.append(t - unmatched_since[g])
      unmatched_since.pop(g, None)
      if inside:
        counts["covered"] += 1
        for kind, points in (("raw", face.raw_landmarks), ("smoothed", face.landmarks)):
          nme[kind].append(float(np.linalg.norm(points - gt, axis=-1).mean()) / iod)
        if (before is not None and before[0] == t - 1 and before[1].track_id == face.track_id
            and clip.inside[t - 1, g]):
          true_step = gt - clip.landmarks[t - 1, g]
          for kind, attr in (("raw", "raw_landmarks"), ("smoothed", "landmarks")):
            motion[kind].append(float(np.linalg.norm(true_step, axis=-1).mean()) / iod)
            step = getattr(face, attr).astype(np.float64) - getattr(before[1], attr)
            error = float(np.linalg.norm(step - true_step, axis=-1).mean()) / iod
            jitter[kind].append(error)
            if float(np.linalg.norm(true_step, axis=-1).max()) / iod < STILL:
              still[kind].append(error)
      previous[g] = (t, face)
  return {"nme": nme, "jitter": jitter, "still_jitter": still, "motion": motion,
          "counts": counts, "recovery_frames": recovery_frames}


def combine(raw: dict[str, Any], smoothed: dict[str, Any]) -> dict[str, Any]:
  """One clip's `score_clip` results from a run with smoothing off (`raw`) and one with
  it on (`smoothed`): the "raw" lists of the first, the "smoothed" lists and the counts
  of the second."""
  return {**smoothed, **{name: {"raw": raw[name]["raw"], "smoothed": smoothed[name]["smoothed"]}
                         for name in ("nme", "jitter", "still_jitter", "motion")}}


def network_figures(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """NME and jitter of the network's own (raw) landmarks in the runs of `scores`."""
  figures = summarise(scores)
  return {k: figures[k] for k in ("nme_pct_raw", "nme_pct_raw_median", "jitter_pct_raw",
                                  "still_jitter_pct_raw")}


def summarise(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """The figures of the module doc over several clips' `score_clip` results."""
  out: dict[str, Any] = {}
  for name in ("nme", "jitter", "still_jitter"):
    for kind in ("raw", "smoothed"):
      values = np.concatenate([np.asarray(s[name][kind], np.float64) for s in scores])
      out[f"{name}_pct_{kind}"] = round(100 * float(values.mean()), 3) if len(values) else None
      if name == "nme" and len(values):
        out[f"nme_pct_{kind}_median"] = round(100 * float(np.median(values)), 3)
  if out["jitter_pct_raw"] and out["jitter_pct_smoothed"] is not None:
    out["jitter_ratio"] = round(out["jitter_pct_smoothed"] / out["jitter_pct_raw"], 3)
  if out["nme_pct_raw"] is not None:
    out["nme_cost_pct"] = round(out["nme_pct_smoothed"] - out["nme_pct_raw"], 3)
  pairs = {kind: tuple(np.concatenate([np.asarray(s[name][kind], np.float64) for s in scores])
                      for name in ("motion", "jitter")) for kind in ("raw", "smoothed")}
  out["jitter_by_motion"] = []
  for lo, hi in zip(MOTION_BANDS[:-1], MOTION_BANDS[1:]):
    row: dict[str, Any] = {
        "motion_pct": [round(100 * lo, 1), round(100 * hi, 1) if math.isfinite(hi) else None]}
    for kind, (motion, jitter) in pairs.items():
      band = (motion >= lo) & (motion < hi)
      row[f"pairs_{kind}"] = int(band.sum())
      row[f"jitter_pct_{kind}"] = round(100 * float(jitter[band].mean()), 3) if band.any() else None
    out["jitter_by_motion"].append(row)
  counts = {k: sum(s["counts"][k] for s in scores) for k in scores[0]["counts"]}
  out["coverage"] = round(counts.pop("covered") / max(counts["in_view"], 1), 4)
  out.update(counts)
  waits = [w for s in scores for w in s["recovery_frames"]]
  out["recovery_frames_mean"] = round(float(np.mean(waits)), 1) if waits else None
  return out


def measure_fps(predictor: Predictor, frames: Sequence[np.ndarray], timestamps: np.ndarray,
                repeats: int = 2, **tracker_args) -> dict[str, float]:
  """The tracker's speed on `frames`, best of `repeats` after a warm-up: frames per
  second of wall time, and process CPU milliseconds per frame (all threads; less
  sensitive than wall time to other work on the machine)."""
  video = tracking.VideoPredictor(predictor, **tracker_args)
  run_clip(video, frames[:5], timestamps[:5])  # compiles every shape used.
  wall, cpu = float("inf"), float("inf")
  for _ in range(repeats):
    start, start_cpu = time.perf_counter(), time.process_time()
    run_clip(video, frames, timestamps)
    wall = min(wall, time.perf_counter() - start)
    cpu = min(cpu, time.process_time() - start_cpu)
  return {"fps": round(len(frames) / wall, 1),
          "cpu_ms_per_frame": round(1000 * cpu / len(frames), 2),
          "detector_calls": video.detector_calls, "frames": len(frames)}


def load_clips(seeds: Sequence[int], config: ClipConfig = ClipConfig()
               ) -> list[tuple[SyntheticClip, list[np.ndarray]]]:
  clips = (SyntheticClip(s, config) for s in tqdm.tqdm(seeds, desc="rendering clips", unit="clip"))
  return [(clip, list(clip.frames())) for clip in clips]


def _grid_search(clips, raw, raw_scores, settings: Sequence[dict[str, float]],
                 max_nme_cost: float, smoothed_output
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """Each of `settings` scored on the clips, the raw figures from `raw_scores` (the
  `score_clip` results of `raw`, the clips' outputs with smoothing off) and the
  smoothed ones from `smoothed_output(setting, clip, frames, raw_output)`; the least
  smoothed jitter within `max_nme_cost` points of the raw NME."""
  grid = []
  for setting in tqdm.tqdm(settings, desc="grid", unit="setting"):
    figures = summarise([
        combine(raw_score, score_clip(clip, smoothed_output(setting, clip, frames, output)))
        for (clip, frames), output, raw_score in zip(clips, raw, raw_scores)])
    grid.append({**setting, **{
        k: figures[k] for k in ("jitter_pct_raw", "jitter_pct_smoothed", "jitter_ratio",
                                "still_jitter_pct_raw", "still_jitter_pct_smoothed",
                                "nme_pct_raw", "nme_pct_smoothed", "nme_cost_pct")}})
    print(json.dumps(grid[-1]), file=sys.stderr, flush=True)
  fine = [g for g in grid if g["nme_cost_pct"] <= max_nme_cost] or grid
  return min(fine, key=lambda g: g["jitter_pct_smoothed"]), grid


def tune(predictor: Predictor, clips, min_cutoffs: Sequence[float], betas: Sequence[float],
         floors: Sequence[float] = TUNE_FLOW_FLOORS,
         tolerances: Sequence[float] = TUNE_FLOW_TOLERANCES, max_nme_cost: float = 0.1,
         **tracker_args) -> dict[str, Any]:
  """The grids on `clips` and the chosen entries (module doc): {"one_euro": (chosen,
  grid), "flow": (chosen, grid)}; the flow grid uses the chosen One Euro parameters."""
  video = tracking.VideoPredictor(predictor, smooth=False, **tracker_args)
  raw = [run_clip(video, frames, clip.timestamps)
         for clip, frames in tqdm.tqdm(clips, desc="tracking tuning clips", unit="clip")]
  raw_scores = [score_clip(clip, output) for (clip, _), output in zip(clips, raw)]
  one_euro = _grid_search(
      clips, raw, raw_scores, [{"min_cutoff": c, "beta": b} for c in min_cutoffs for b in betas],
      max_nme_cost, lambda setting, clip, frames, output: resmooth(
          output, clip.timestamps, **setting))
  pose_filter = {k: one_euro[0][k] for k in ("min_cutoff", "beta")}
  flow = _grid_search(
      clips, raw, raw_scores, [{**pose_filter, "flow_floor": f, "flow_tolerance": t}
                   for f in floors for t in tolerances],
      max_nme_cost, lambda setting, clip, frames, output: run_clip(
          tracking.VideoPredictor(predictor, **setting, **tracker_args), frames,
          clip.timestamps))
  return {"one_euro": one_euro, "flow": flow}


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("seeds", "100-107", "Clip seeds reported (ranges a-b, commas).",
                      flag_values=fv)
  flags.DEFINE_string("tune_seeds", "900-911", "Clip seeds for --tune (never the reported "
                      "ones).", flag_values=fv)
  flags.DEFINE_boolean("tune", False, "Grid-search the One Euro and flow smoother "
                       "parameters on --tune_seeds first and report with the chosen ones.",
                       flag_values=fv)
  flags.DEFINE_boolean("flow", True, "Smooth the landmarks with optical flow "
                       "(--noflow: One Euro filters).", flag_values=fv)
  flags.DEFINE_float("flow_floor", flow_lib.DEFAULT_FLOOR, "Flow smoother's least gain "
                     "toward the network.", flag_values=fv)
  flags.DEFINE_float("flow_tolerance", flow_lib.DEFAULT_TOLERANCE, "Flow smoother's "
                     "disagreement (face sizes) at which the network wins.", flag_values=fv)
  flags.DEFINE_float("seconds", 4.0, "Clip length.", lower_bound=0.1, flag_values=fv)
  flags.DEFINE_enum("style", "cartoon", ["cartoon", "photo"], "The clips' faces: flat-shaded "
                    "cartoon or shaded, textured photo style (slower to render).",
                    flag_values=fv)
  flags.DEFINE_integer("detect_every", 10, "Detector interval of the tracker.",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_float("min_cutoff", tracking.DEFAULT_MIN_CUTOFF, "One Euro min cut-off (Hz).",
                     flag_values=fv)
  flags.DEFINE_float("beta", tracking.DEFAULT_BETA, "One Euro beta.", flag_values=fv)
  flags.DEFINE_integer("refine_passes", tracking.DEFAULT_REFINE_PASSES, "Most re-crops "
                       "per face and frame.", lower_bound=0, flag_values=fv)
  flags.DEFINE_float("converged", tracking.DEFAULT_CONVERGED, "Stop re-cropping a face "
                     "whose crop moves by less than this fraction of its size (0: every "
                     "pass).", lower_bound=0.0, flag_values=fv)
  flags.DEFINE_boolean("flip_test", True, "Average each crop's prediction with its mirror "
                       "image's, as predict.py does by default.", flag_values=fv)
  flags.DEFINE_list("recrop_scale", ["1", "1"], "Width and height factors of the "
                    "tracker's crop boxes (`VideoPredictor`).", flag_values=fv)
  flags.DEFINE_string("out", "video_benchmark.json", "JSON output.", flag_values=fv)


def _run(fv: flags.FlagValues) -> None:
  with cli.reported(ValueError):
    seeds, tune_seeds = parse_seeds(fv.seeds), parse_seeds(fv.tune_seeds)
  if fv.tune and set(seeds) & set(tune_seeds):
    raise cli.UsageError(f"--tune_seeds overlap --seeds: {sorted(set(seeds) & set(tune_seeds))}")
  config = ClipConfig(seconds=fv.seconds, style=fv.style)
  with cli.reported(ValueError):
    recrop_scale = validate_recrop_scale(fv.recrop_scale)
  predictor = Predictor.pretrained(flip_test=fv.flip_test)
  record: dict[str, Any] = {
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "machine": machine.machine_record(), "seeds": seeds,
      "clip": {"seconds": config.seconds, "fps": config.fps, "size": [config.width, config.height],
               "style": config.style},
      "detect_every": fv.detect_every, "flip_test": fv.flip_test,
      "refine_passes": fv.refine_passes, "converged": fv.converged,
      "recrop_scale": list(recrop_scale)}
  search = {"detect_every": fv.detect_every, "refine_passes": fv.refine_passes,
            "converged": fv.converged, "recrop_scale": recrop_scale}
  min_cutoff, beta = fv.min_cutoff, fv.beta
  floor, tolerance = fv.flow_floor, fv.flow_tolerance
  if fv.tune:
    tuned = tune(predictor, load_clips(tune_seeds, config), TUNE_MIN_CUTOFFS, TUNE_BETAS,
                 **search)
    record["tuning"] = {"seeds": tune_seeds, **{
        name: {"grid": grid, "chosen": chosen} for name, (chosen, grid) in tuned.items()}}
    min_cutoff, beta = (tuned["one_euro"][0][k] for k in ("min_cutoff", "beta"))
    floor, tolerance = (tuned["flow"][0][k] for k in ("flow_floor", "flow_tolerance"))
  record["one_euro"] = {"min_cutoff": min_cutoff, "beta": beta}
  record["flow"] = {"on": fv.flow, "floor": floor, "tolerance": tolerance}
  clips = load_clips(seeds, config)
  record["clips"] = {"count": len(clips), "two_face": sum(c.num_faces == 2 for c, _ in clips),
                     "frames": sum(c.num_frames for c, _ in clips)}
  # The flow smoother steers the crops, so the speed is timed with these settings too.
  smoothing = {"min_cutoff": min_cutoff, "beta": beta, "flow": fv.flow, "flow_floor": floor,
               "flow_tolerance": tolerance}
  video = tracking.VideoPredictor(predictor, **smoothing, **search)
  unsmoothed = tracking.VideoPredictor(predictor, smooth=False, **search)
  raw_scores, smoothed_scores = [], []
  for clip, frames in tqdm.tqdm(clips, desc="tracking clips (smoothing off, on)", unit="clip"):
    raw_scores.append(score_clip(clip, run_clip(unsmoothed, frames, clip.timestamps)))
    smoothed_scores.append(score_clip(clip, run_clip(video, frames, clip.timestamps)))
  scores = [combine(r, s) for r, s in zip(raw_scores, smoothed_scores)]
  record["figures"] = summarise(scores)
  record["network_in_smoothed_run"] = network_figures(smoothed_scores)
  record["per_clip"] = [{"seed": clip.seed, "faces": clip.num_faces, **{
      k: v for k, v in summarise([score]).items()
      if k in ("coverage", "nme_pct_raw", "jitter_ratio", "losses_on_exit", "recoveries")}}
      for (clip, _), score in zip(clips, scores)]
  # Speed on the one-face clip that the tracker covered best (a clip whose face the
  # detector never finds would time the detector alone).
  one_face = [(score["counts"]["covered"], k) for k, ((clip, _), score)
              in enumerate(zip(clips, scores)) if clip.num_faces == 1]
  clip, frames = clips[max(one_face)[1] if one_face else 0]
  record["speed"] = {
      "clip_seed": clip.seed, "load_avg_1min_before": round(os.getloadavg()[0], 2),
      "tracking": measure_fps(predictor, frames, clip.timestamps, **smoothing, **search),
      "detect_every_frame": measure_fps(predictor, frames, clip.timestamps, **smoothing,
                                        **{**search, "detect_every": 1})}
  record["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
  print(json.dumps(record, indent=1))
  with open(fv.out, "w") as f:
    json.dump(record, f, indent=1)


def main(argv: Sequence[str] | None = None) -> int:
  return cli.run(define_flags, _run, argv)


if __name__ == "__main__":
  sys.exit(main())
