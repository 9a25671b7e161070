"""Writes the tiny WFLW fixture beside this script (committed; rerun to regenerate).

  python datasets/wflw/dummy_data/make_dummy_data.py

Faces are the 3D mean face at a known pose (FACES below), projected with a
weak-perspective camera; the 68 points map to their WFLW indices
(`asmnet_jax.core.pose.WFLW_TO_300W`) and the other 30 are interpolated. Lines follow the
published format: 196 coordinates, the 4-number box, 6 flags (pose, expression,
illumination, make-up, occlusion, blur), the image path relative to WFLW_images/.

train list: two faces in one image, a grayscale image, then two malformed lines
  (97 points; an image that does not exist).
test list: three good faces with different flags (an RGBA PNG among them), then a
  line with a NaN coordinate (flagged large pose).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from asmnet_jax.core import pose
from asmnet_jax.core import rotation

HERE = os.path.dirname(os.path.abspath(__file__))
LIST_DIR = os.path.join(HERE, "WFLW_annotations", "list_98pt_rect_attr_train_test")

IMAGES = {  # path under WFLW_images -> (size, mode)
    "0--Parade/0_Parade_marchingband_1_116.jpg": ((128, 96), "RGB"),
    "1--Handshaking/1_Handshaking_Handshaking_1_94.jpg": ((96, 96), "L"),
    "2--Demonstration/2_Demonstration_Protesters_2_204.jpg": ((96, 96), "RGB"),
    "3--Riot/3_Riot_Riot_3_123.png": ((96, 96), "RGBA"),
    "4--Dancing/4_Dancing_Dancing_4_21.jpg": ((112, 96), "RGB"),
}
# (list, image, yaw, pitch, roll, scale, centre, flags, defect)
FACES = [
    ("train", "0--Parade/0_Parade_marchingband_1_116.jpg", 15.0, 5.0, 10.0, 18.0, (34, 46),
     (0, 0, 0, 0, 0, 0), None),
    ("train", "0--Parade/0_Parade_marchingband_1_116.jpg", -40.0, -10.0, -5.0, 17.0, (94, 50),
     (1, 0, 0, 0, 1, 0), None),
    ("train", "1--Handshaking/1_Handshaking_Handshaking_1_94.jpg", 0.0, 15.0, 0.0, 30.0,
     (48, 48), (0, 1, 0, 0, 0, 0), None),
    ("train", "1--Handshaking/1_Handshaking_Handshaking_1_94.jpg", 0.0, 0.0, 0.0, 30.0,
     (48, 48), (0, 0, 0, 0, 0, 0), "97 points"),
    ("train", "9--Missing/9_Missing_1.jpg", 0.0, 0.0, 0.0, 30.0, (48, 48),
     (0, 0, 0, 0, 0, 0), None),
    ("test", "2--Demonstration/2_Demonstration_Protesters_2_204.jpg", 55.0, 10.0, 20.0, 30.0,
     (48, 48), (1, 0, 0, 0, 0, 1), None),
    ("test", "3--Riot/3_Riot_Riot_3_123.png", -20.0, -20.0, -25.0, 30.0, (48, 48),
     (0, 1, 1, 1, 1, 0), None),
    ("test", "4--Dancing/4_Dancing_Dancing_4_21.jpg", 30.0, 0.0, 5.0, 36.0, (20, 80),
     (0, 0, 0, 0, 1, 1), None),
    ("test", "2--Demonstration/2_Demonstration_Protesters_2_204.jpg", 0.0, 0.0, 0.0, 20.0,
     (48, 48), (1, 0, 0, 0, 0, 0), "nan"),
]


def wflw_points(yaw: float, pitch: float, roll: float, scale: float, centre) -> np.ndarray:
  """(98, 2) 0-based pixel coordinates in WFLW order of the mean face at this pose."""
  face = rotation.load_mean_face() @ rotation.euler_to_rotation(yaw, pitch, roll).T
  p68 = scale * face[:, :2] + np.asarray(centre, dtype=np.float64)
  p = np.full((98, 2), np.nan)
  p[pose.WFLW_TO_300W] = p68
  p[1:32:2] = (p[0:31:2] + p[2:33:2]) / 2  # jaw midpoints.
  down = (p[8] - p[27]) * 0.08  # a little toward the chin.
  p[38:42] = p[[37, 36, 35, 34]] + down  # lower brow contours, inner -> outer.
  p[47:51] = p[[46, 45, 44, 43]] + down
  for a, b, c in ((61, 62, 63), (65, 66, 67), (69, 70, 71), (73, 74, 75)):
    p[b] = (p[a] + p[c]) / 2  # middle lid points.
  p[96] = p[60:68].mean(0)  # pupils.
  p[97] = p[68:76].mean(0)
  assert np.isfinite(p).all()
  return p


def draw_face(image: Image.Image, points: np.ndarray) -> None:
  draw = ImageDraw.Draw(image)
  lo, hi = points.min(0), points.max(0)
  pad = 0.15 * (hi - lo)
  draw.ellipse([*(lo - pad), *(hi + pad)], fill=(205, 160, 130))
  for x, y in points:
    draw.point((float(x), float(y)), fill=(40, 20, 20))


def main() -> None:
  rng = np.random.default_rng(0)
  canvases = {}
  for name, (size, _) in IMAGES.items():
    noise = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    canvases[name] = Image.fromarray(noise).resize(size, Image.Resampling.BILINEAR)
  lines = {"train": [], "test": []}
  for split, image, yaw, pitch, roll, scale, centre, flags, defect in FACES:
    points = wflw_points(yaw, pitch, roll, scale, centre)
    if image in canvases:
      draw_face(canvases[image], points)
    coords = [f"{v:.6f}" for v in points.reshape(-1)]
    if defect == "97 points":
      coords = coords[:-2]
    elif defect == "nan":
      coords[2 * 40] = "nan"
    lo, hi = points.min(0), points.max(0)
    box = [f"{int(v)}" for v in (lo[0], lo[1], hi[0], hi[1])]
    lines[split].append(" ".join(coords + box + [str(f) for f in flags] + [image]))
  os.makedirs(LIST_DIR, exist_ok=True)
  for split, rows in lines.items():
    with open(os.path.join(LIST_DIR, f"list_98pt_rect_attr_{split}.txt"), "w") as f:
      f.write("\n".join(rows) + "\n")
  for name, canvas in canvases.items():
    path = os.path.join(HERE, "WFLW_images", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = IMAGES[name][1]
    if mode == "L":
      canvas = canvas.convert("L")
    elif mode == "RGBA":
      canvas = canvas.convert("RGBA")
      canvas.putalpha(128)
    if path.endswith(".jpg"):
      canvas.save(path, quality=80)
    else:
      canvas.save(path, optimize=True)


if __name__ == "__main__":
  main()
