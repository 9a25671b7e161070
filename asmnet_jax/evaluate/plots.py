"""PNG figures: training curves, CED curves, faces with landmarks and pose axes."""

from __future__ import annotations

import json
import math
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # Files only; no display on servers.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from asmnet_jax.core import metrics
from asmnet_jax.core import rotation

# Landmarks whose mean is the pose-axes origin: the nose (68-point 27-35, 98-point 51-59).
NOSE_POINTS = {68: slice(27, 36), 98: slice(51, 60)}


def training_curves(metrics_path: str, out_path: str) -> None:
  """Loss terms, α and learning rate by step, and validation NME / pose MAE."""
  with open(metrics_path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  train = [r for r in records if "loss" in r]
  val = [r for r in records if "val_nme" in r]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for key in ("loss", "landmark_loss", "asm_loss", "pose_loss"):
    points = [(r["step"], r[key]) for r in train if r.get(key, 0) > 0]
    if points:
      axes[0].plot(*zip(*points), label=key)
  axes[0].set(yscale="log", xlabel="step", title="training loss")
  axes[0].legend()
  if train:
    steps = [r["step"] for r in train]
    axes[1].plot(steps, [r["alpha"] for r in train], label="α (ASM weight)")
    twin = axes[1].twinx()
    twin.plot(steps, [r["learning_rate"] for r in train], color="tab:red", label="lr")
    twin.set_ylabel("learning rate")
    axes[1].legend(loc="upper right")
  axes[1].set(xlabel="step", title="schedules")
  if val:
    steps = [r["step"] for r in val]
    axes[2].plot(steps, [100 * r["val_nme"] for r in val], "o-", label="NME (%)")
    if all("val_pose_mae_mean" in r for r in val):  # absent: a dataset without pose.
      axes[2].plot(steps, [r["val_pose_mae_mean"] for r in val], "s-", label="pose MAE (°)")
    axes[2].legend()
  axes[2].set(xlabel="step", title="validation")
  fig.tight_layout()
  fig.savefig(out_path, dpi=90)
  plt.close(fig)


def ced_curves(nmes_by_name: Mapping[str, np.ndarray], out_path: str,
               threshold: float = metrics.FAILURE_THRESHOLD) -> None:
  """Cumulative error distributions, one curve a split or model, AUC in the legend."""
  fig, ax = plt.subplots(figsize=(6, 4.5))
  for name, nmes in nmes_by_name.items():
    x, y = metrics.ced(np.asarray(nmes), threshold)
    ax.plot(100 * np.asarray(x), 100 * np.asarray(y),
            label=f"{name} (AUC {float(metrics.auc(np.asarray(nmes), threshold)):.3f})")
  ax.set(xlabel="NME (%)", ylabel="images (%)", xlim=(0, 100 * threshold), ylim=(0, 100),
         title="Cumulative error distribution")
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right")
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)


POSE_AXIS_COLOURS = ("red", "green", "blue")


def pose_axis_tips(origin: np.ndarray, pose_deg: np.ndarray, length: float) -> np.ndarray:
  """(3, 2) image points where the head's x, y and facing-direction axes, drawn from
  `origin` (2,) with `length` pixels, end (orthographic projection of the pose)."""
  matrix = rotation.euler_to_rotation(*np.asarray(pose_deg, np.float64))
  # Columns are the head axes in camera coordinates; -z is where the face points.
  return np.asarray(origin, np.float64) + length * (matrix[:2] * [1.0, 1.0, -1.0]).T


def draw_pose_axes(ax, origin: np.ndarray, pose_deg: np.ndarray, length: float,
                   linestyle: str = "-") -> None:
  """The head's x (red), y (green) and facing direction (blue) projected on the image."""
  for tip, colour in zip(pose_axis_tips(origin, pose_deg, length), POSE_AXIS_COLOURS):
    ax.plot([origin[0], tip[0]], [origin[1], tip[1]], color=colour, linestyle=linestyle,
            linewidth=1.5)


def face_grid(images: Sequence[np.ndarray], pred_landmarks: np.ndarray,
              gt_landmarks: np.ndarray, pred_pose: np.ndarray, gt_pose: np.ndarray,
              out_path: str, titles: Sequence[str] | None = None, columns: int = 4,
              draw_pose: bool = True) -> None:
  """Faces with true (green) and predicted (red) landmarks and pose axes.

  Predicted axes are solid, true ones dashed. Landmarks (N, n, 2) are pixel
  coordinates of the given images; poses (N, 3) degrees (not drawn without
  `draw_pose`: a dataset without pose labels).
  """
  count = len(images)
  rows = max(1, math.ceil(count / columns))
  # Fixed margins and titles as text: tight_layout and axis titles cost seconds a grid.
  height = 3.2 * rows
  fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, height), squeeze=False,
                           gridspec_kw={"left": 0.01, "right": 0.99, "bottom": 0.01,
                                        "top": 1.0 - 0.35 / height, "wspace": 0.05,
                                        "hspace": 0.35 * rows / (height - 0.35)})
  for i, ax in enumerate(axes.flat):
    ax.axis("off")
    if i >= count:
      continue
    ax.imshow(images[i])
    gt, pred = np.asarray(gt_landmarks[i]), np.asarray(pred_landmarks[i])
    ax.scatter(gt[:, 0], gt[:, 1], s=4, c="lime", label="true")
    ax.scatter(pred[:, 0], pred[:, 1], s=4, c="red", label="predicted")
    title = titles[i] if titles is not None else ""
    if not draw_pose:
      _caption(ax, title)
      continue
    nose = NOSE_POINTS.get(len(gt), slice(None))
    length = 0.35 * float(np.ptp(gt[:, 0]))
    draw_pose_axes(ax, pred[nose].mean(0), pred_pose[i], length)
    draw_pose_axes(ax, gt[nose].mean(0), gt_pose[i], length, linestyle="--")
    _caption(ax, f"{title}\nyaw/pitch/roll {pred_pose[i][0]:.0f}/{pred_pose[i][1]:.0f}/"
             f"{pred_pose[i][2]:.0f} (true {gt_pose[i][0]:.0f}/{gt_pose[i][1]:.0f}/"
             f"{gt_pose[i][2]:.0f})")
  fig.savefig(out_path, dpi=90)
  plt.close(fig)


def _caption(ax, text: str) -> None:
  """`text` centred above the axes (a plain text artist: no title layout pass)."""
  ax.text(0.5, 1.01, text, transform=ax.transAxes, ha="center", va="bottom", fontsize=7)
