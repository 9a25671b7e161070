"""Writes the tiny labelled-folder fixture beside this script (committed; rerun to
regenerate).

  python datasets/landmark_folder/dummy_data/make_dummy_data.py

A 5-point scheme (eye centres, nose tip, mouth corners) drawn from the 3D mean face
at known poses (FACES below), split into sub-folders in two formats:
  train/landmarks.csv + PNGs   0-based pixels; t2.png holds two faces (two rows)
  test/*.pts + JPEGs           1-based, as 300-W's
  dataset.json                 5 points, eye centres normalise, mirror pairs
Malformed samples exercise the builder's skip report:
  train/landmarks.csv line 5   a non-numeric cell ("x12")
  train/landmarks.csv line 6   the same face as line 2 again (a duplicate)
  train/landmarks.csv line 7   a point outside its 48 x 48 image
  train/landmarks.csv line 8   an image that does not exist (t9.png)
  test/u3.pts                  4 points (the dataset declares 5)
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from asmnet_jax import testing

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = (48, 48)

# face -> (image, yaw, pitch, roll, scale, centre); images may hold several faces.
FACES = {
    "train/t1": ("train/t1.png", 10.0, 0.0, 5.0, 11.0, (24, 24)),
    "train/t2a": ("train/t2.png", -20.0, 5.0, -10.0, 7.0, (14, 22)),
    "train/t2b": ("train/t2.png", 25.0, -5.0, 8.0, 7.0, (34, 26)),
    "train/t3": ("train/t3.png", 0.0, 10.0, 0.0, 12.0, (25, 23)),
    "train/t4": ("train/t4.png", -5.0, 0.0, 20.0, 10.0, (23, 25)),
    "test/u1": ("test/u1.jpg", 30.0, 0.0, -5.0, 11.0, (24, 24)),
    "test/u2": ("test/u2.jpg", -30.0, 0.0, 0.0, 12.0, (24, 25)),
    "test/u3": ("test/u3.jpg", 0.0, 0.0, 0.0, 11.0, (24, 24)),
}


def points_of(face: str) -> np.ndarray:
  _, yaw, pitch, roll, scale, centre = FACES[face]
  return testing.drawn_face_points(5, yaw, pitch, roll, scale, centre)


def csv_row(name: str, points: np.ndarray) -> str:
  return name + "," + ",".join(f"{v:.3f}" for v in points.ravel())


def write_pts(path: str, points: np.ndarray) -> None:
  """300-W's layout; coordinates 1-based."""
  lines = ["version: 1", f"n_points: {len(points)}", "{"]
  lines += [f"{x + 1:.3f} {y + 1:.3f}" for x, y in points]
  with open(path, "w") as f:
    f.write("\n".join(lines + ["}"]) + "\n")


def main() -> None:
  images: dict[str, list[np.ndarray]] = {}
  for face, (image, *_) in FACES.items():
    images.setdefault(image, []).append(points_of(face))
  for k, (image, faces) in enumerate(images.items()):
    os.makedirs(os.path.join(HERE, os.path.dirname(image)), exist_ok=True)
    pixels = Image.fromarray(testing.draw_face_image(SIZE, faces, seed=k))
    pixels.save(os.path.join(HERE, image), **({"quality": 85} if image.endswith(".jpg") else {}))
  t1, t3 = points_of("train/t1"), points_of("train/t3")
  outside = points_of("train/t4").copy()
  outside[4, 0] = 49.0
  rows = ["file,x0,y0,x1,y1,x2,y2,x3,y3,x4,y4",
          csv_row("t1.png", t1),
          csv_row("t2.png", points_of("train/t2a")),
          csv_row("t2.png", points_of("train/t2b")),
          csv_row("t3.png", t3).replace(f"{t3[1, 0]:.3f}", "x12", 1),
          csv_row("t1.png", t1),
          csv_row("t4.png", outside),
          csv_row("t9.png", t1)]
  with open(os.path.join(HERE, "train", "landmarks.csv"), "w") as f:
    f.write("\n".join(rows) + "\n")
  for face in ("test/u1", "test/u2", "test/u3"):
    points = points_of(face)
    write_pts(os.path.join(HERE, face + ".pts"), points[:4] if face == "test/u3" else points)
  with open(os.path.join(HERE, "dataset.json"), "w") as f:
    json.dump({"num_points": 5, **testing.FOLDER_SCHEMES[5]}, f, indent=1)
    f.write("\n")


if __name__ == "__main__":
  main()
