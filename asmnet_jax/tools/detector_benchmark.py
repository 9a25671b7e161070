"""Face detectors on a folder of annotated photos: faces found, false positives, speed.

    python -m asmnet_jax.tools.detector_benchmark --faces /work/shared/data/real_faces
        [--detectors haar,mtcnn] [--passes 3] [--renders 40] [--out detector_benchmark.json]

The folder holds images and a `landmarks.json` of `{"faces": [{"file", "landmarks"}]}`
(68 points (x, y) a face, 0-based pixels of the stored image; the layout of
`../shared/data/real_faces/`). Faces without an entry there are not known, so a
detector that finds them is charged with false positives.

Matching: a detection finds a face when it contains the centre of the face's
68-point landmark box and its size sqrt(w * h) is within a factor 2 of the
landmark box's; detections and faces are paired one to one, greedily by centre
distance. A detection that finds no face is a false positive, unless it would
have found a face another detection already took (a duplicate).

Speed: mean milliseconds per image (wall and process CPU) over --passes timed
passes after one warm-up pass, OpenCV single-threaded (--cv2_threads) so that
figures compare across machines; times include each detector's own resizing.

With --renders N it also measures each detector's box -> landmark box relation
(`detection.DetectorBoxMapping` terms) on clean frontal synthetic renderings,
which is where the detectors' `box_mapping` defaults come from. The relation on
the photos is printed too, as a check only: never tune a mapping to a check set.

Prints one JSON line per detector (and per render size) and writes all of it,
with the date and the machine, to --out.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
from absl import flags

from asmnet_jax import cli
from asmnet_jax.core import geometry
from asmnet_jax.data import images
from asmnet_jax.evaluate import photos as photo_scoring
from asmnet_jax.inference import detection
from asmnet_jax.runtime import machine

DETECTORS: dict[str, Callable[[], detection.FaceDetector]] = {
    "haar": detection.HaarFaceDetector,
    "mtcnn": detection.MtcnnFaceDetector,
}
MAX_SIZE_RATIO = photo_scoring.MAX_SIZE_RATIO  # of the matching rule (module doc).


def load_annotations(folder: str) -> tuple[dict[str, list[np.ndarray]], list[str]]:
  """The faces of `folder/landmarks.json`, by image file.

  Returns:
    ({file: [landmarks float64 (68, 2), ...]}, skipped): files in the JSON's order;
    `skipped` has one message per face entry left out (bad landmarks, no file).
  Raises:
    ValueError: no readable landmarks.json, or one without a "faces" list.
  """
  path = os.path.join(folder, "landmarks.json")
  try:
    with open(path) as f:
      data = json.load(f)
  except FileNotFoundError:
    raise ValueError(f"no landmarks.json in {folder}") from None
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"cannot read {path}: {e}") from None
  entries = data.get("faces") if isinstance(data, dict) else None
  if not isinstance(entries, list):
    raise ValueError(f"{path}: expected {{\"faces\": [...]}}")
  faces: dict[str, list[np.ndarray]] = {}
  skipped = []
  for index, entry in enumerate(entries):
    name = entry.get("file") if isinstance(entry, dict) else None
    try:
      points = np.asarray(entry["landmarks"], np.float64)
    except (KeyError, TypeError, ValueError):
      points = None
    if not isinstance(name, str) or points is None or points.shape != (68, 2) \
        or not np.all(np.isfinite(points)):
      shape = None if points is None else points.shape
      skipped.append(f"{path}: face {index} ({name}): needs a file and 68 finite (x, y) "
                     f"landmarks, got landmarks of shape {shape}")
      continue
    faces.setdefault(name, []).append(points)
  return faces, skipped


def match(boxes: np.ndarray, face_boxes: np.ndarray) -> dict[str, Any]:
  """Pairs detections with faces by the rule of the module doc
  (`asmnet_jax.evaluate.photos.match_detections`, which the scoring command uses too).

  Args:
    boxes: (k, 4) detections x0 y0 x1 y1.
    face_boxes: (n, 4) landmark boxes x0 y0 x1 y1.
  Returns:
    dict(pairs [(detection, face)] closest first, false_positives, duplicates,
    missed [face]).
  """
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  allowed, distance = photo_scoring.detection_candidates(face_boxes, boxes, MAX_SIZE_RATIO)
  face_of = photo_scoring.pair_candidates(allowed, distance)
  found = np.flatnonzero(face_of >= 0)
  pairs = sorted(((int(face_of[f]), int(f)) for f in found), key=lambda p: distance[p[1], p[0]])
  unpaired = np.setdiff1d(np.arange(len(boxes)), face_of[found])
  duplicates = int(allowed[:, unpaired].any(axis=0).sum())
  return {"pairs": pairs, "false_positives": len(unpaired) - duplicates,
          "duplicates": duplicates, "missed": np.flatnonzero(face_of < 0).tolist()}


def relation(boxes: np.ndarray, face_boxes: np.ndarray) -> np.ndarray:
  """(k, 4) detector boxes, (k, 4) landmark boxes -> (k, 4): centre_shift x, y and
  scale x, y of `detection.DetectorBoxMapping` that maps each box onto its face."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  face_boxes = np.asarray(face_boxes, np.float64).reshape(-1, 4)
  size = boxes[:, 2:] - boxes[:, :2]
  shift = (0.5 * (face_boxes[:, :2] + face_boxes[:, 2:]) - 0.5 * (boxes[:, :2] + boxes[:, 2:]))
  return np.concatenate([shift / size, (face_boxes[:, 2:] - face_boxes[:, :2]) / size], axis=1)


def _summary(rel: np.ndarray) -> dict[str, Any]:
  """Mean and std of `relation` rows, rounded for the record (None without rows)."""
  if not len(rel):
    return {"centre_shift": None, "scale": None, "centre_shift_std": None, "scale_std": None}
  mean, std = rel.mean(axis=0), rel.std(axis=0)
  return {"centre_shift": np.round(mean[:2], 3).tolist(), "scale": np.round(mean[2:], 3).tolist(),
          "centre_shift_std": np.round(std[:2], 3).tolist(),
          "scale_std": np.round(std[2:], 3).tolist()}


def benchmark_photos(detector: detection.FaceDetector, photos: dict[str, np.ndarray],
                     faces: dict[str, list[np.ndarray]], passes: int) -> dict[str, Any]:
  """Found / false positives / duplicates / ms per image of one detector on `photos`."""
  found, false_positives, duplicates, missed, rel = 0, 0, 0, [], []
  for name, image in photos.items():  # the warm-up pass, and the one that is scored.
    result = detector(image)
    face_boxes = np.stack([geometry.landmark_box(p) for p in faces[name]])
    matched = match(result.boxes, face_boxes)
    found += len(matched["pairs"])
    false_positives += matched["false_positives"]
    duplicates += matched["duplicates"]
    missed += [f"{name}#{f}" for f in matched["missed"]]
    if matched["pairs"]:
      d, f = (list(i) for i in zip(*matched["pairs"]))
      rel.append(relation(np.asarray(result.boxes)[d], face_boxes[f]))
  wall = cpu = 0.0
  for _ in range(passes):
    for image in photos.values():
      start, start_cpu = time.perf_counter(), time.process_time()
      detector(image)
      wall += time.perf_counter() - start
      cpu += time.process_time() - start_cpu
  timed = passes * len(photos)
  return {"found": found, "faces": sum(len(faces[name]) for name in photos),
          "false_positives": false_positives, "duplicates": duplicates,
          "ms_per_image": round(1e3 * wall / timed, 1),
          "cpu_ms_per_image": round(1e3 * cpu / timed, 1), "passes": passes,
          "missed": missed,
          "check_set_relation": _summary(np.concatenate(rel) if rel else np.zeros((0, 4)))}


def benchmark_renders(detector: detection.FaceDetector, count: int,
                      size: int) -> dict[str, Any]:
  """The box relation on `count` clean frontal renders of `size` px (seeds 0..count-1).

  Each render is border-replicated to twice its side, so that no face touches the
  border (a detector clips such boxes), and its face is matched as on the photos.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  from asmnet_jax.synthetic import faces as synthetic_faces  # pylint: disable=g-import-not-at-top
  pad = size // 2
  fired, found, false_positives, rel = 0, 0, 0, []
  for seed in range(count):
    face = synthetic_faces.render_face(seed, size, synthetic_faces.CLEAN_FRONTAL_CONFIG)
    image = cv2.copyMakeBorder(face["image"], pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    face_box = geometry.landmark_box(face["landmarks"].astype(np.float64) + pad)[None]
    result = detector(image)
    fired += bool(len(result.boxes))
    matched = match(result.boxes, face_box)
    found += len(matched["pairs"])
    false_positives += matched["false_positives"]
    for d, f in matched["pairs"]:
      rel.append(relation(np.asarray(result.boxes)[d], face_box[f]))
  return {"render_size": size, "renders": count, "fired": fired, "found": found,
          "false_positives": false_positives,
          **_summary(np.concatenate(rel) if rel else np.zeros((0, 4)))}


def define_flags(fv: flags.FlagValues) -> None:
  """The detector benchmark's flags."""
  flags.DEFINE_string("faces", None, "A folder of photos with a landmarks.json.",
                      required=True, flag_values=fv)
  flags.DEFINE_list("detectors", list(DETECTORS), f"Of: {', '.join(DETECTORS)}.",
                    flag_values=fv)
  flags.register_validator(
      "detectors", lambda names: bool(names) and set(names) <= set(DETECTORS),
      f"--detectors takes {' and/or '.join(DETECTORS)}, comma-separated", flag_values=fv)
  flags.DEFINE_integer("passes", 3, "Timed passes over the photos.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("renders", 0, "Synthetic renders per size for the box relation "
                       "(0: none).", lower_bound=0, flag_values=fv)
  flags.DEFINE_list("render_sizes", ["64", "128"], "Render sides in pixels.", flag_values=fv)
  flags.register_validator(
      "render_sizes", lambda sizes: all(s.isdigit() and int(s) >= 32 for s in sizes),
      "--render_sizes takes whole numbers of pixels >= 32, comma-separated", flag_values=fv)
  flags.DEFINE_integer("cv2_threads", 1, "cv2.setNumThreads (0: OpenCV's default).",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_string("out", "detector_benchmark.json", "The JSON record written.",
                      flag_values=fv)


def _run(args: flags.FlagValues) -> None:
  import cv2  # pylint: disable=g-import-not-at-top
  if args.cv2_threads:
    cv2.setNumThreads(args.cv2_threads)
  with cli.reported(ValueError):
    faces, skipped = load_annotations(args.faces)
  sizes = [int(s) for s in args.render_sizes]
  photos = {}
  for name in faces:
    try:
      photos[name] = images.load_rgb_image(os.path.join(args.faces, name))
    except images.ImageLoadError as e:
      skipped.append(f"{e} ({len(faces[name])} faces left out)")
  for message in skipped:
    print(f"skipped: {message}", file=sys.stderr)
  if not photos:
    raise cli.CommandError(f"no readable annotated image in {args.faces}")
  record: dict[str, Any] = {
      "date": datetime.date.today().isoformat(), **machine.machine_record(),
      "cv2": cv2.__version__, "cv2_threads": args.cv2_threads, "faces_dir": args.faces,
      "images": len(photos), "faces": sum(len(faces[n]) for n in photos),
      "skipped": skipped, "detectors": [], "renders": []}
  for name in args.detectors:
    with cli.reported(ImportError, status=cli.EXIT_FAILURE):
      detector = DETECTORS[name]()
    result = {"detector": name, **benchmark_photos(detector, photos, faces, args.passes)}
    record["detectors"].append(result)
    print(json.dumps(result), flush=True)
    for size in sizes if args.renders else ():
      rendered = {"detector": name, **benchmark_renders(detector, args.renders, size)}
      record["renders"].append(rendered)
      print(json.dumps(rendered), flush=True)
  print(json.dumps({k: record[k] for k in ("date", "cpu", "cpu_count", "load_avg_1min",
                                           "cv2", "images", "faces")}), flush=True)
  with open(args.out, "w") as f:
    json.dump(record, f, indent=1)
  print(f"wrote {args.out}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the benchmark per `argv` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, _run, argv)


if __name__ == "__main__":
  sys.exit(main())
