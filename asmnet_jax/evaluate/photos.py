"""Scores a landmark predictor on a folder of annotated real photos (NME, FR, AUC, CED).

    python -m asmnet_jax.evaluate.photos DATASET --workdir DIR [--out photo_scores]
        [--boxes landmarks|detector] [--checkpoint best|latest|STEP_DIR] [--nodraw]

DATASET, recognised by its contents:
  * a 300-W folder: images (searched recursively) each with a `.pts` file of the
    same stem beside it (AFW's `<id>_<k>.pts` for several faces of `<id>.jpg` too);
    `.pts` coordinates are 1-based and converted to 0-based;
  * a landmarks JSON `{"faces": [{"file": ..., "landmarks": [[x, y], ...]}, ...]}`
    (`file` relative to the JSON's folder, landmarks 0-based pixels), given as the
    file itself or as a folder holding it as `landmarks.json`, like
    ../shared/data/real_faces/;
  * a CSV of rows `file,x0,y0,x1,y1,...` (0-based), or a folder holding it as
    `landmarks.csv` (readers: `asmnet_jax.data.annotations`).
A `dataset.json` beside the annotations or one folder up (`landmark_folder`'s
layout) declares the scheme's eye points and normaliser.
Faces have any number of points, as many as the model gives; faces with another
count than most faces of the dataset are skipped.

--boxes=landmarks crops each face from its ground-truth landmark box (the 300-W
protocol: it scores the landmark model alone); --boxes=detector runs the
predictor's face detector and matches its boxes to the annotated faces (a face is
found when a box contains the centre of the face's landmark box and is within a
factor 2 of its size sqrt(w * h); one-to-one, closest centres first). NME is the
mean point error over the inter-ocular distance (outer eye corners: the 300-W
standard for 68 points, WFLW's for 98, or the `eye_corners` a `dataset.json`
declares), else over the diagonal of the landmark box (or what
`dataset.json`'s `normalizer` names); the summary names it. The failure rate (FR)
and the AUC of the CED use 10 % and 8 %.

Writes OUT/scores.json (per face, and the summary), OUT/ced.png and, unless
--nodraw, OUT/drawings/<image>.png (the photo, then each face enlarged: ground
truth cyan, prediction red), and prints a summary paragraph. An image or
annotation that cannot be used (unreadable, empty, enormous, a wrong point count,
no face detected) is named on stderr, counted as skipped, and the rest scored; the
exit status is then 1, unless the only ones skipped are photos without a detected
face (their faces count as missed). A DATASET in neither format, or a wrong
--workdir, stops with one line `error: ...` (exit status 2). Without --workdir or
--checkpoint, the bundled model (`Predictor.pretrained()`) is scored.

From Python, with any object called like `Predictor`
(`predictor(image, boxes=None, landmark_boxes=False) -> [[face, ...]]`, faces with
`.landmarks` (n, 2) and, for the detector, `.box` x0 y0 x1 y1):

    scores = score_photos(predictor, "my_photos/", "out/", boxes="landmarks")
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # Files only; no display on servers.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import tqdm
from absl import flags
from PIL import Image

from asmnet_jax import cli
from asmnet_jax.core import geometry
from asmnet_jax.core import metrics
from asmnet_jax.data import annotations as annotations_lib
from asmnet_jax.data import images
from asmnet_jax.data import scheme as scheme_lib
from asmnet_jax.evaluate import plots

BOX_MODES = ("landmarks", "detector")
# The 300-W threshold, and the 8 % many 300-W papers report beside it.
THRESHOLDS = (metrics.FAILURE_THRESHOLD, 0.08)
JSON_NAME = annotations_lib.JSON_NAME
IMAGE_EXTENSIONS = annotations_lib.IMAGE_EXTENSIONS
# PIL's decompression-bomb warning size (about 0.27 GB decoded): larger images are
# skipped before decoding rather than risk the memory of a shared machine.
MAX_PIXELS = 89_478_485
# A detection matches a face when their sizes sqrt(w * h) differ by at most this factor.
MAX_SIZE_RATIO = 2.0
GT_COLOUR, PRED_COLOUR = "#00e5ff", "#ff2a2a"  # cyan and red: apart for colour-blind eyes.
DETECTION_COLOUR = "#ffd000"


# A dataset or predictor that cannot be scored at all (not one bad sample).
PhotoScoringError = annotations_lib.AnnotationError


# The readers live in asmnet_jax.data.annotations (the landmark_folder builder uses them too).
Annotations = annotations_lib.Annotations
read_annotations = annotations_lib.read_annotations


def load_photo(path: str) -> np.ndarray:
  """uint8 (H, W, 3) RGB of the stored pixel grid, which the annotations refer to.

  Raises:
    images.ImageLoadError: naming the file: missing, empty, unreadable, or more
      than MAX_PIXELS (checked from the header, before decoding).
  """
  if os.path.isfile(path) and os.path.getsize(path) == 0:
    raise images.ImageLoadError(f"empty file: {path}")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our check below.
      with Image.open(path) as img:
        width, height = img.size
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
    width = height = 0  # load_rgb_image words the error.
  if width * height > MAX_PIXELS:
    raise images.ImageLoadError(
        f"image too large: {path} is {width} x {height} ({width * height / 1e6:.0f} Mpx; "
        f"the limit is {MAX_PIXELS / 1e6:.0f} Mpx)")
  return images.load_rgb_image(path)


# ----------------------------------------------------------------------------------
# Scoring.


def detection_candidates(landmark_boxes: np.ndarray, detection_boxes: np.ndarray,
                         max_size_ratio: float = MAX_SIZE_RATIO
                         ) -> tuple[np.ndarray, np.ndarray]:
  """Which detection could have found which face (module doc's rule), and how far.

  Args:
    landmark_boxes: (k, 4) x0 y0 x1 y1 of the faces' ground-truth landmarks.
    detection_boxes: (m, 4) x0 y0 x1 y1 of the detector's boxes, same pixels.
    max_size_ratio: the largest ratio of the two sizes sqrt(w * h).

  Returns:
    (candidate bool (k, m): the detection contains the face's landmark-box centre
    and the sizes are within the ratio; distance float64 (k, m): between the two
    box centres, pixels).
  """
  faces = np.asarray(landmark_boxes, np.float64).reshape(-1, 4)
  found = np.asarray(detection_boxes, np.float64).reshape(-1, 4)
  centre = 0.5 * (faces[:, :2] + faces[:, 2:])
  size = np.sqrt(np.prod(np.maximum(faces[:, 2:] - faces[:, :2], 0.0), axis=1))
  found_centre = 0.5 * (found[:, :2] + found[:, 2:])
  found_size = np.sqrt(np.prod(np.maximum(found[:, 2:] - found[:, :2], 0.0), axis=1))
  lo, hi = found[None, :, :2], found[None, :, 2:]
  inside = np.all((lo <= centre[:, None]) & (centre[:, None] <= hi), axis=-1)  # (k, m)
  ratio = found_size[None, :] / np.maximum(size[:, None], 1e-9)
  candidate = inside & (ratio <= max_size_ratio) & (ratio >= 1.0 / max_size_ratio)
  return candidate, np.linalg.norm(centre[:, None] - found_centre[None], axis=-1)


def match_detections(landmark_boxes: np.ndarray, detection_boxes: np.ndarray,
                     max_size_ratio: float = MAX_SIZE_RATIO) -> np.ndarray:
  """Which detection found each annotated face (module doc's rule).

  Args: as `detection_candidates`.

  Returns:
    int (k,): the index of each face's detection, or -1 for a missed face. Of the
    `detection_candidates`, pairs are taken one-to-one, closest box centres first.
  """
  return pair_candidates(*detection_candidates(landmark_boxes, detection_boxes,
                                               max_size_ratio))


def pair_candidates(candidate: np.ndarray, distance: np.ndarray) -> np.ndarray:
  """`detection_candidates`' output -> int (k,) each face's detection or -1: pairs
  taken one-to-one, closest box centres first."""
  matches = np.full(candidate.shape[0], -1, np.int64)
  taken = np.zeros(candidate.shape[1], bool)
  for i, j in sorted(zip(*np.nonzero(candidate)), key=lambda ij: distance[ij]):
    if matches[i] < 0 and not taken[j]:
      matches[i], taken[j] = j, True
  return matches


def _summary_metrics(nmes: np.ndarray, prefix: str = "") -> dict[str, float]:
  """FR and AUC at each of THRESHOLDS (`metrics`), keys like "failure_rate@0.10"."""
  out = {}
  for t in THRESHOLDS:
    out[f"{prefix}failure_rate@{t:.2f}"] = float(metrics.failure_rate(nmes, t))
    out[f"{prefix}auc@{t:.2f}"] = float(metrics.auc(nmes, t))
  return out


def _finite_or_none(value: float) -> float | None:
  return float(value) if math.isfinite(value) else None


def _drawing_name(name: str) -> str:
  """drawings/<image path with '/' as '__'>.png: unique for a recursive folder."""
  return os.path.splitext(name)[0].replace(os.sep, "__").replace("/", "__") + ".png"


def _model_description(predictor: Any) -> str:
  model = getattr(predictor, "model", None)
  return str(getattr(model, "source", "") or type(predictor).__name__)


def _search_description(predictor: Any) -> dict[str, Any] | None:
  """The re-crops, flip test, re-crop scale and test-time views of a `Predictor`; None
  for others."""
  names = ("refine_passes", "flip_test", "recrop_scale", "tta_scales", "tta_rotations")
  if not all(hasattr(predictor, name) for name in names):
    return None
  return {"refine_passes": int(predictor.refine_passes), "flip_test": bool(predictor.flip_test),
          "recrop_scale": [float(v) for v in predictor.recrop_scale],
          "tta_scales": [float(v) for v in predictor.tta_scales],
          "tta_rotations": [float(v) for v in predictor.tta_rotations]}


def _detector_description(predictor: Any) -> str | None:
  """The detector's class name, where the predictor has a `detector` (as Predictor)."""
  detector = getattr(predictor, "detector", None)
  return None if detector is None else type(detector).__name__


def _usable_annotations(path: str) -> tuple[Annotations, scheme_lib.LandmarkScheme]:
  """`read_annotations` and the point scheme scored; PhotoScoringError when not one
  face can be used.

  The scheme's point count is the one most faces have (the others are skipped);
  its normaliser is declared in a `dataset.json` beside the annotations, else the
  built-in one (inter-ocular for 68 and 98 points, the landmark-box diagonal
  otherwise).
  """
  annotations = read_annotations(path)
  counts = annotations.point_counts()
  if counts:
    num_points = counts.most_common(1)[0][0]
    annotations.keep_point_count(num_points, f"most faces of {path} have {num_points}")
  if not annotations.photos:
    first = f": {annotations.skipped[0]['reason']}" if annotations.skipped else ""
    raise PhotoScoringError(f"no usable annotated face in {path} ({len(annotations.skipped)} "
                            f"skipped{first})")
  folder = os.path.abspath(path if os.path.isdir(path) else os.path.dirname(path))
  # Beside the annotations, or one up: a landmark_folder split sub-folder.
  found = [os.path.join(f, scheme_lib.DATASET_FILE) for f in (folder, os.path.dirname(folder))
           if os.path.isfile(os.path.join(f, scheme_lib.DATASET_FILE))]
  declarations = found[0] if found else scheme_lib.DATASET_FILE
  try:
    declared = scheme_lib.read_dataset_file(declarations) if found else {}
    scheme = scheme_lib.scheme_from_declarations(declared, num_points, where=declarations)
  except ValueError as e:
    raise PhotoScoringError(str(e)) from None
  return annotations, scheme


def score_photos(predictor: Any, dataset_path: str, out_dir: str, boxes: str = "landmarks",
                 *, draw: bool = True, progress: bool = True) -> dict[str, Any]:
  """Scores `predictor` on the annotated photos of `dataset_path` (module doc).

  Args:
    predictor: called as `predictor(image uint8 (H, W, 3), boxes (k, 4),
      landmark_boxes=True)` ("landmarks") or `predictor(image)` ("detector"),
      returning `[faces]` whose items have `.landmarks` (n, 2) pixels and, for
      the detector, `.box` (4,) and optionally `.score`, like `Predictor`.
    dataset_path: a 300-W folder or a landmarks JSON (or its folder).
    out_dir: where scores.json, ced.png and drawings/ go (created).
    boxes: "landmarks" (crop from the true landmark box) or "detector".
    draw: write one drawing per image.
    progress: show a progress bar on stderr.

  Returns:
    What scores.json holds: {"summary": {...}, "faces": [per face], "false_positives":
    [...], "skipped": [{"file", "reason", "faces"}]}; NMEs as fractions.

  Raises:
    PhotoScoringError: for a dataset in neither format, without any usable face, or
      a predictor whose point count differs from the annotations'.
  """
  if boxes not in BOX_MODES:
    raise ValueError(f"boxes must be one of {BOX_MODES}, got {boxes!r}")
  annotations, scheme = _usable_annotations(dataset_path)
  skipped = list(annotations.skipped)
  for entry in skipped:
    print(f"skipping: {entry['reason']}", file=sys.stderr)
  os.makedirs(out_dir, exist_ok=True)
  if draw:
    os.makedirs(os.path.join(out_dir, "drawings"), exist_ok=True)

  records: list[dict[str, Any]] = []  # per face; "pred"/"gt" arrays removed at the end.
  false_positives: list[dict[str, Any]] = []
  no_face_images = 0
  bar = tqdm.tqdm(annotations.photos, desc="scoring photos", unit="image",
                  disable=not progress, file=sys.stderr)
  for photo in bar:
    try:
      image = load_photo(photo.path)
    except images.ImageLoadError as e:
      bar.write(f"skipping: {e}", file=sys.stderr)
      skipped.append({"file": photo.name, "reason": str(e), "faces": len(photo.landmarks)})
      continue
    gt = photo.landmarks
    face_boxes = np.stack([geometry.landmark_box(points) for points in gt])
    if boxes == "landmarks":
      faces, = predictor(image, face_boxes, landmark_boxes=True)
      if len(faces) != len(gt):
        raise PhotoScoringError(f"the predictor returned {len(faces)} faces for the "
                                f"{len(gt)} boxes of {photo.name}")
      matches = np.arange(len(gt))
    else:
      faces, = predictor(image)
      detected = np.array([np.asarray(f.box, np.float64) for f in faces]).reshape(-1, 4)
      matches = match_detections(face_boxes, detected)
      for j in sorted(set(range(len(faces))) - set(matches.tolist())):
        false_positives.append({"file": photo.name, "box": detected[j].tolist(),
                                "score": float(getattr(faces[j], "score", 1.0))})
      if not faces:
        no_face_images += 1
        reason = (f"no face detected in {photo.path} (its {len(gt)} annotated face(s) count "
                  "as missed)")
        bar.write(f"skipping: {reason}", file=sys.stderr)
        skipped.append({"file": photo.name, "reason": reason, "faces": 0})
    image_records = []
    for k, (points, j) in enumerate(zip(gt, matches)):
      record = {"file": photo.name, "face": k, "landmark_box": face_boxes[k].tolist(),
                "found": bool(j >= 0), "nme": None, "gt": points, "pred": None}
      if j >= 0:
        pred = np.asarray(faces[j].landmarks, np.float64)
        if pred.shape != points.shape:
          raise PhotoScoringError(f"the predictor gives {pred.shape[0]}-point landmarks; "
                                  f"{photo.name} is annotated with {len(points)} points")
        record["pred"] = pred
        if boxes == "detector":
          record["detection_box"] = np.asarray(faces[j].box, np.float64).tolist()
          record["detection_score"] = float(getattr(faces[j], "score", 1.0))
      image_records.append(record)
    # Per image, so that the drawing can show each face's NME.
    scored = [r for r in image_records if r["found"]]
    if scored:
      values = np.asarray(scheme.nme(np.stack([r["pred"] for r in scored]),
                                      np.stack([r["gt"] for r in scored])), np.float64)
      for r, value in zip(scored, values):
        r["nme"] = float(value) if math.isfinite(value) else math.inf  # NaN: a failure.
    if draw:
      detected_boxes = ([np.asarray(f.box, np.float64) for f in faces]
                        if boxes == "detector" else [])
      draw_photo(image, image_records, detected_boxes,
                 os.path.join(out_dir, "drawings", _drawing_name(photo.name)), photo.name)
    records += image_records

  if not records:
    raise PhotoScoringError(f"no face of {dataset_path} could be scored: "
                            f"{len(skipped)} skipped (first: {skipped[0]['reason']})")
  found = [r for r in records if r["found"]]
  nmes = np.array([r["nme"] for r in found], np.float64)
  summary: dict[str, Any] = {
      "dataset": os.path.abspath(dataset_path), "format": annotations.format,
      "boxes": boxes, "model": _model_description(predictor),
      "detector": _detector_description(predictor) if boxes == "detector" else None,
      "search": _search_description(predictor),
      "num_points": int(records[0]["gt"].shape[0]),
      "normalizer": scheme.normalizer, "normalizer_description": scheme.describe_normalizer(),
      "images": len({r["file"] for r in records}), "faces": len(records), "found": len(found),
      "false_positives": len(false_positives) if boxes == "detector" else None,
      "nme_mean": _finite_or_none(float(np.mean(nmes))) if len(nmes) else None,
      "nme_median": _finite_or_none(float(np.median(nmes))) if len(nmes) else None,
  }
  if len(nmes):
    summary.update(_summary_metrics(nmes))
  if boxes == "detector":
    # A missed face as an infinite error: a failure at any threshold, 0 in the AUC.
    with_missed = np.array([r["nme"] if r["found"] else math.inf for r in records])
    summary.update(_summary_metrics(with_missed, prefix="with_missed_"))
  summary.update({
      "skipped": len(skipped), "skipped_faces": int(sum(s["faces"] for s in skipped)),
      "no_face_detected_images": no_face_images if boxes == "detector" else None,
      "unannotated_images": annotations.unannotated_images,
  })

  curves = {}
  if len(nmes):
    curves[f"{'found' if boxes == 'detector' else 'all'} faces ({len(nmes)})"] = nmes
  if boxes == "detector":
    curves[f"all faces, missed = failed ({len(records)})"] = with_missed
  plots.ced_curves(curves, os.path.join(out_dir, "ced.png"))
  faces_json = []
  for r in records:
    entry = {k: v for k, v in r.items() if k not in ("gt", "pred")}
    entry["nme"] = None if r["nme"] is None else _finite_or_none(r["nme"])
    entry["landmarks"] = None if r["pred"] is None else r["pred"].tolist()
    faces_json.append(entry)
  scores = {"summary": summary, "faces": faces_json, "false_positives": false_positives,
            "skipped": skipped}
  with open(os.path.join(out_dir, "scores.json"), "w") as f:
    # One line a face or entry: readable, and a landmark list stays on its line.
    f.write("{\n" + ",\n".join(
        f'"{key}": ' + (json.dumps(value, indent=1) if key == "summary" else
                        "[\n" + ",\n".join(json.dumps(item) for item in value) + "\n]")
        for key, value in scores.items()) + "\n}\n")
  return scores


def summary_text(scores: dict[str, Any], out_dir: str | None = None) -> str:
  """The one-paragraph summary of `score_photos`'s result, figures in %."""
  s = scores["summary"]
  pct = lambda v: "n/a" if v is None else f"{100 * v:.2f} %"  # noqa: E731
  how = ("crops from the ground-truth landmark boxes" if s["boxes"] == "landmarks"
         else f"the predictor's face detector ({s['detector'] or 'its own'})")
  parts = [f"Scored {s['found']} of {s['faces']} annotated faces in {s['images']} images of "
           f"{s['dataset']} ({s['format']}, {s['num_points']} points) with {how}, "
           f"model {s['model']}."]
  if s["boxes"] == "detector":
    parts.append(f"The detector found {s['found']} of {s['faces']} faces "
                 f"({s['faces'] - s['found']} missed) and {s['false_positives']} false "
                 f"positive(s).")
  if s["found"]:
    t0, t1 = (f"{t:.2f}" for t in THRESHOLDS)
    over = " over the found faces" if s["boxes"] == "detector" else ""
    parts.append(
        f"NME{over} (normalised by the {s['normalizer_description']}): mean {pct(s['nme_mean'])}, median {pct(s['nme_median'])}; "
        f"failure rate {pct(s[f'failure_rate@{t0}'])} at NME > {float(t0):.0%} "
        f"({pct(s[f'failure_rate@{t1}'])} at {float(t1):.0%}); AUC "
        f"{s[f'auc@{t0}']:.4f} over [0, {float(t0):.0%}] ({s[f'auc@{t1}']:.4f} over "
        f"[0, {float(t1):.0%}]).")
  if s["boxes"] == "detector":
    parts.append(f"Counting missed faces as failures: failure rate "
                 f"{pct(s[f'with_missed_failure_rate@{THRESHOLDS[0]:.2f}'])}, AUC "
                 f"{s[f'with_missed_auc@{THRESHOLDS[0]:.2f}']:.4f}.")
  reasons = "; ".join(f"{e['file']}: {e['reason']}" for e in scores["skipped"][:3])
  more = f" and {len(scores['skipped']) - 3} more" if len(scores["skipped"]) > 3 else ""
  parts.append(f"Skipped {s['skipped']} image(s) or annotation(s)" +
               (f" ({reasons}{more})." if reasons else "."))
  if s["unannotated_images"]:
    parts.append(f"{s['unannotated_images']} image(s) without a .pts were ignored.")
  if out_dir is not None:
    parts.append(f"Wrote {os.path.join(out_dir, 'scores.json')} and ced.png"
                 f"{' and drawings/' if os.path.isdir(os.path.join(out_dir, 'drawings')) else ''}"
                 ".")
  return " ".join(parts)


# ----------------------------------------------------------------------------------
# Drawings.


def _face_window(record: dict[str, Any], height: int, width: int) -> tuple[int, int, int, int]:
  """Integer pixel rows/columns (x0, y0, x1, y1, inclusive) shown for one face: its
  landmark box, grown to hold a prediction nearby, plus a margin, square."""
  x0, y0, x1, y1 = record["landmark_box"]
  size = max(x1 - x0, y1 - y0, 4.0)
  if record["pred"] is not None and np.all(np.isfinite(record["pred"])):
    lo, hi = record["pred"].min(0), record["pred"].max(0)
    # A wild prediction would shrink the face to a dot: show at most 1 box around it.
    x0, y0 = max(min(x0, lo[0]), x0 - size), max(min(y0, lo[1]), y0 - size)
    x1, y1 = min(max(x1, hi[0]), x1 + size), min(max(y1, hi[1]), y1 + size)
  half = 0.5 * max(x1 - x0, y1 - y0) * 1.3
  cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
  return (max(0, math.floor(cx - half)), max(0, math.floor(cy - half)),
          min(width - 1, math.ceil(cx + half)), min(height - 1, math.ceil(cy + half)))


def draw_photo(image: np.ndarray, records: Sequence[dict[str, Any]],
               detections: Sequence[np.ndarray], out_path: str, title: str) -> None:
  """The photo with its face boxes, then each face cropped and enlarged.

  Args:
    image: uint8 (H, W, 3).
    records: per face, "landmark_box" (4,), "gt" (n, 2), "pred" (n, 2) or None
      (missed), "face", and "nme" when scored.
    detections: the detector's boxes (m, 4), drawn on the photo (may be empty).
    out_path: the PNG to write.
    title: the photo's name.
  """
  h, w = image.shape[:2]
  panels = len(records) + 1
  columns = min(4, panels)
  rows = math.ceil(panels / columns)
  fig, axes = plt.subplots(rows, columns, figsize=(2.8 * columns, 3.0 * rows), squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  overview = axes.flat[0]
  overview.imshow(image)
  for box in detections:
    overview.add_patch(plt.Rectangle(box[:2], *(box[2:] - box[:2]), fill=False,
                                     color=DETECTION_COLOUR, linewidth=1, linestyle="--"))
  for r in records:
    x0, y0, x1, y1 = r["landmark_box"]
    colour = GT_COLOUR if r["pred"] is not None else PRED_COLOUR
    overview.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colour,
                                     linewidth=1))
    overview.text(x0, y0 - 2, str(r["face"]), color=colour, fontsize=7, va="bottom")
  legend = "cyan: true, red: predicted" + (
      "\nyellow: detections, red box: missed" if any(r["pred"] is None for r in records)
      or len(detections) else "")
  overview.set_title(f"{title}\n{legend}", fontsize=7)
  marker = dict(s=9, edgecolors="black", linewidths=0.3)  # a dark rim reads on any skin.
  for ax, r in zip(list(axes.flat)[1:], records):
    wx0, wy0, wx1, wy1 = _face_window(r, h, w)
    crop = image[wy0:wy1 + 1, wx0:wx1 + 1]
    # extent in image pixel-centre coordinates, so the points need no shifting.
    ax.imshow(crop, extent=(wx0 - 0.5, wx1 + 0.5, wy1 + 0.5, wy0 - 0.5),
              interpolation="bilinear")
    ax.scatter(r["gt"][:, 0], r["gt"][:, 1], c=GT_COLOUR, **marker)
    if r["pred"] is not None:
      ax.scatter(r["pred"][:, 0], r["pred"][:, 1], c=PRED_COLOUR, **marker)
      nme = r.get("nme")
      label = "NME n/a" if nme is None or not math.isfinite(nme) else f"NME {100 * nme:.1f} %"
    else:
      label = "missed by the detector"
    ax.set_xlim(wx0 - 0.5, wx1 + 0.5)
    ax.set_ylim(wy1 + 0.5, wy0 - 0.5)
    ax.set_title(f"face {r['face']}: {label}", fontsize=8)
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)


# ----------------------------------------------------------------------------------
# The command.


def define_flags(fv: flags.FlagValues) -> None:
  """The command's flags (DATASET is the positional argument)."""
  flags.DEFINE_string("workdir", None, "A train.py work directory (default: the bundled "
                      "pretrained model, where the package has one).", flag_values=fv)
  flags.DEFINE_string("checkpoint", "best",
                      "With --workdir: 'best' or 'latest'. Without: a checkpoint step "
                      "directory such as DIR/checkpoints/7020.", flag_values=fv)
  flags.DEFINE_enum("boxes", "landmarks", list(BOX_MODES),
                    "Crop faces from their ground-truth landmark boxes, or find them with "
                    "the predictor's face detector.", flag_values=fv)
  flags.DEFINE_string("out", "photo_scores", "Output directory.", flag_values=fv)
  flags.DEFINE_integer("refine_passes", None, "Re-crops around the predicted landmarks "
                       "(default: 0 with --boxes landmarks, whose crop already is the "
                       "evaluation crop; 1 with detector boxes).", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_boolean("flip_test", True, "Average each face's prediction with that of "
                       "its mirror image, as predict.py does (twice the network time; "
                       "--noflip_test for one pass).", flag_values=fv)
  flags.DEFINE_boolean("tta", True, "The model's test-time augmentation, as predict.py "
                       "runs it (the bundle's: crops at three box scales, averaged; a work "
                       "directory's: none); --notta for one view, at the middle of the "
                       "model's box scales (the bundle's 1.075).", flag_values=fv)
  flags.DEFINE_boolean("draw", True, "Write one drawing per image.", flag_values=fv)


def _predictor(fv: flags.FlagValues) -> Any:
  """The Predictor the flags name (imported here: --help needs no JAX)."""
  from asmnet_jax.inference import predictor as inference  # pylint: disable=g-import-not-at-top
  refine_passes = fv.refine_passes
  if refine_passes is None:
    # Re-cropping a true landmark box around predicted landmarks only adds their error.
    refine_passes = 0 if fv.boxes == "landmarks" else 1
  # A model whose points have no mirror map runs one pass (noted in `_run`).
  kwargs = {"refine_passes": refine_passes, "flip_test": "auto" if fv.flip_test else False}
  if not fv.tta:
    kwargs.update(inference.ONE_VIEW)
  with cli.reported(FileNotFoundError, ValueError):  # not a work directory / step dir.
    if fv.workdir:
      if fv.checkpoint not in ("best", "latest"):
        raise cli.UsageError(f"--checkpoint must be 'best' or 'latest' with --workdir, got "
                             f"{fv.checkpoint!r} (a step directory goes without --workdir)")
      return inference.Predictor.from_workdir(fv.workdir, fv.checkpoint, **kwargs)
    if fv["checkpoint"].present:
      if not os.path.isdir(fv.checkpoint):
        raise cli.UsageError(f"--checkpoint {fv.checkpoint}: no such checkpoint step "
                             "directory (e.g. DIR/checkpoints/7020), nor 'best'/'latest' "
                             "with --workdir")
      return inference.Predictor.from_checkpoint(fv.checkpoint, **kwargs)
    pretrained = getattr(inference.Predictor, "pretrained", None)
    if pretrained is None:
      raise cli.UsageError("no model given and this version bundles no pretrained one: "
                           "pass --workdir DIR (a train.py work directory) or --checkpoint "
                           "STEP_DIR")
    return pretrained(**kwargs)


def _run(fv: flags.FlagValues, args: list[str]) -> int:
  if len(args) != 1:
    raise cli.UsageError("give one DATASET (usage: python -m asmnet_jax.evaluate.photos "
                         "DATASET --workdir DIR)")
  with cli.reported(PhotoScoringError):
    _usable_annotations(args[0])  # a wrong DATASET fails before the model loads.
  predictor = _predictor(fv)
  if notice := predictor.flip_test_fallback_notice(fv.flip_test):
    print(notice, file=sys.stderr)
  with cli.reported(PhotoScoringError, status=cli.EXIT_FAILURE):
    scores = score_photos(predictor, args[0], fv.out, fv.boxes, draw=fv.draw)
  print(summary_text(scores, fv.out))
  bad_input = [e for e in scores["skipped"] if not e["reason"].startswith("no face detected")]
  return cli.EXIT_FAILURE if bad_input else cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
  """Scores per `argv` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, _run, argv, positional="DATASET")


if __name__ == "__main__":
  sys.exit(main())
