"""How much of a model's error on annotated photos is one bias its shapes share.

    python -m asmnet_jax.evaluate.photos DATASET --out scores/   # the predictions
    python -m asmnet_jax.evaluate.shape_bias DATASET scores/scores.json [DATASET2 SCORES2 ...]

A measurement, not a correction to ship: it asks whether the errors repeat from face
to face in a way the predicted shape itself foretells. Per face (68 points), the
prediction is aligned by a similarity to the mean face's frontal projection
(`rotation.load_mean_face`), and the labels are mapped by the same similarity. In
that frame the correction is linear in [1, yaw, |yaw|], where yaw is a measure of
the predicted shape: how far the nose tip (30) lies from the middle of the jaw's ends
(0, 16), over their distance. It is fitted by ridge least squares to the faces of
the *other* photos (leave one photo out, each face also mirrored) and `shrink` of it
is applied to the held-out face, so no face is scored by a fit that saw it.

Prints the mean NME (inter-ocular, outer eye corners) before and after, the paired
difference with its standard error, and how many faces improved; writes nothing.
The faces are those of each SCORES_JSON (`evaluate.photos`' output) with a
prediction, matched to its DATASET's annotations by file and face index; several
pairs are pooled. `--shrink` and `--ridge` set the share applied and the penalty on
the yaw terms.
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

import numpy as np
from absl import flags

from asmnet_jax import cli
from asmnet_jax.core import geometry
from asmnet_jax.core import metrics
from asmnet_jax.core import mirror
from asmnet_jax.core import rotation
from asmnet_jax.data import annotations as annotations_lib

NUM_POINTS = 68
NOSE_TIP, JAW_ENDS = 30, (0, 16)
DEFAULT_SHRINK = 0.75
DEFAULT_RIDGE = 0.1


def similarity_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """The similarity (2, 3) x -> A x + b, A = [[a, -b], [b, a]], that maps `source`
  (n, 2) onto `target` (n, 2) in least squares."""
  s_mean, t_mean = source.mean(axis=0), target.mean(axis=0)
  s, t = source - s_mean, target - t_mean
  norm = float(np.sum(s * s))
  a = float(np.sum(s * t)) / norm
  b = float(np.sum(s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0])) / norm
  linear = np.array([[a, -b], [b, a]])
  return np.concatenate([linear, (t_mean - linear @ s_mean)[:, None]], axis=1)


def reference_shape() -> np.ndarray:
  """The mean face's frontal projection (68, 2), centred, inter-ocular distance 1."""
  face = rotation.load_mean_face()[:, :2]
  left, right = metrics.OUTER_EYE_CORNERS[NUM_POINTS]
  face = face - face.mean(axis=0)
  return face / np.linalg.norm(face[right] - face[left])


def yaw_measure(aligned: np.ndarray) -> float:
  """Where the nose tip lies between the jaw's ends, in their distance, from their
  middle (0 frontal; the sign is the side it turned to); `aligned` (68, 2)."""
  left, right = aligned[JAW_ENDS[0], 0], aligned[JAW_ENDS[1], 0]
  return float((aligned[NOSE_TIP, 0] - 0.5 * (left + right)) / (right - left))


def _features(aligned: np.ndarray) -> np.ndarray:
  yaw = yaw_measure(aligned)
  return np.array([1.0, yaw, abs(yaw)])


def _mirrored(aligned: np.ndarray, perm: np.ndarray) -> np.ndarray:
  flipped = aligned[perm].copy()
  flipped[:, 0] *= -1.0
  return flipped


def fit_correction(predictions: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                   ridge: float = DEFAULT_RIDGE) -> np.ndarray:
  """The correction (3, 136) of aligned shapes, fitted to (68, 2) pixel predictions
  and their labels (each face used as it is and mirrored)."""
  reference, perm = reference_shape(), mirror.builtin_permutation(NUM_POINTS)
  rows, targets = [], []
  for pred, label in zip(predictions, labels):
    matrix = similarity_fit(pred, reference)
    aligned = geometry.apply_affine(matrix, pred)
    aligned_label = geometry.apply_affine(matrix, label)
    for p, g in ((aligned, aligned_label),
                 (_mirrored(aligned, perm), _mirrored(aligned_label, perm))):
      rows.append(_features(p))
      targets.append((g - p).ravel())
  x, y = np.asarray(rows), np.asarray(targets)
  penalty = ridge * np.diag([0.0, 1.0, 1.0])  # the constant offset is not shrunk.
  return np.linalg.solve(x.T @ x + penalty, x.T @ y)


def corrected(prediction: np.ndarray, correction: np.ndarray,
              shrink: float = DEFAULT_SHRINK) -> np.ndarray:
  """`prediction` (68, 2) px moved by `shrink` of `correction` (from `fit_correction`)."""
  matrix = similarity_fit(prediction, reference_shape())
  aligned = geometry.apply_affine(matrix, prediction)
  moved = aligned + shrink * (_features(aligned) @ correction).reshape(NUM_POINTS, 2)
  return geometry.apply_affine(geometry.invert_affine(matrix), moved)


def leave_one_group_out(predictions: np.ndarray, labels: np.ndarray, groups: Sequence[str],
                        shrink: float = DEFAULT_SHRINK, ridge: float = DEFAULT_RIDGE
                        ) -> np.ndarray:
  """Each face (F, 68, 2) corrected by the fit to the faces of the other groups
  (photos); float64 (F, 68, 2)."""
  groups = np.asarray(groups)
  if len(set(groups.tolist())) < 2:
    raise ValueError("leave-one-out needs faces from at least two photos")
  out = np.empty_like(np.asarray(predictions, np.float64))
  for group in sorted(set(groups.tolist())):
    held = groups == group
    correction = fit_correction(predictions[~held], labels[~held], ridge)
    for k in np.flatnonzero(held):
      out[k] = corrected(predictions[k], correction, shrink)
  return out


def inter_ocular_nme(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Per face (F,): mean point error over the labels' outer-eye-corner distance."""
  left, right = metrics.OUTER_EYE_CORNERS[NUM_POINTS]
  iod = np.linalg.norm(labels[:, right] - labels[:, left], axis=-1)
  return np.linalg.norm(predictions - labels, axis=-1).mean(axis=-1) / iod


def paired_faces(dataset: str, scores_path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """(predictions, labels) float64 (F, 68, 2) and each face's photo, for the faces
  of `scores_path` with a prediction."""
  photos = {photo.name: photo for photo in annotations_lib.read_annotations(dataset).photos}
  with open(scores_path) as f:
    faces = json.load(f)["faces"]
  preds, labels, groups = [], [], []
  for face in faces:
    if not face.get("found") or face.get("landmarks") is None:
      continue
    photo = photos.get(face["file"])
    if photo is None or face["face"] >= len(photo.landmarks):
      raise ValueError(f"{scores_path}: face {face['face']} of {face['file']} is not in "
                       f"{dataset}")
    pred = np.asarray(face["landmarks"], np.float64)
    if pred.shape != (NUM_POINTS, 2):
      raise ValueError(f"{scores_path}: {face['file']} has {pred.shape[0]} points; the "
                       f"shape-bias measure needs {NUM_POINTS}")
    preds.append(pred)
    labels.append(np.asarray(photo.landmarks[face["face"]], np.float64))
    groups.append(face["file"])
  return np.asarray(preds), np.asarray(labels), groups


def report(predictions: np.ndarray, labels: np.ndarray, groups: Sequence[str],
           shrink: float = DEFAULT_SHRINK, ridge: float = DEFAULT_RIDGE) -> dict[str, float]:
  """Mean NME (%) before and after the leave-one-photo-out correction, the paired
  difference (points) with its standard error, and the faces improved."""
  before = inter_ocular_nme(predictions, labels)
  after = inter_ocular_nme(leave_one_group_out(predictions, labels, groups, shrink, ridge),
                           labels)
  diff = 100.0 * (after - before)
  return {"faces": len(before), "photos": len(set(groups)),
          "nme_pct": 100.0 * float(before.mean()), "nme_corrected_pct": 100.0 * float(after.mean()),
          "difference_points": float(diff.mean()),
          "standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff))),
          "faces_improved": int(np.sum(diff < 0))}


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_float("shrink", DEFAULT_SHRINK, "Share of the fitted correction applied.",
                     lower_bound=0.0, flag_values=fv)
  flags.DEFINE_float("ridge", DEFAULT_RIDGE, "Ridge penalty on the yaw terms.",
                     lower_bound=0.0, flag_values=fv)


def _run(fv: flags.FlagValues, args: list[str]) -> int:
  if not args or len(args) % 2:
    raise cli.UsageError("give pairs of DATASET and SCORES_JSON (usage: python -m "
                         "asmnet_jax.evaluate.shape_bias DATASET scores/scores.json ...)")
  predictions, labels, groups = [], [], []
  with cli.reported(ValueError, OSError):
    for dataset, scores in zip(args[::2], args[1::2]):
      pred, label, photos = paired_faces(dataset, scores)
      predictions.append(pred)
      labels.append(label)
      groups += [f"{dataset}:{photo}" for photo in photos]
    result = report(np.concatenate(predictions), np.concatenate(labels), groups,
                    shrink=fv.shrink, ridge=fv.ridge)
  print(f"{result['faces']} faces in {result['photos']} photos: NME {result['nme_pct']:.2f} % "
        f"-> {result['nme_corrected_pct']:.2f} % with a correction fitted to the other photos "
        f"({result['difference_points']:+.2f} +- {result['standard_error']:.2f} points, "
        f"{result['faces_improved']} faces improved)")
  return cli.EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
  """Measures per `argv` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, _run, argv, positional="DATASET SCORES_JSON [DATASET SCORES_JSON ...]")


if __name__ == "__main__":
  sys.exit(main())
