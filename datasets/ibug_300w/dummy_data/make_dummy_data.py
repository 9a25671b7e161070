"""Writes the tiny 300-W fixture beside this script (committed; rerun to regenerate).

  python datasets/ibug_300w/dummy_data/make_dummy_data.py

Faces are the 3D mean face at a known pose (listed in POSES below), projected with a
weak-perspective camera and drawn on noise, in the published .pts format (1-based).
Malformed samples exercise the builder's skip report:
  helen/trainset/h3_1.pts   67 points
  helen/testset/t3_1.pts    a NaN coordinate
  lfpw/trainset/l3.pts      no image beside it
  lfpw/testset/u3.pts       an unreadable image (u3.png is not a PNG)
  ibug/image_003_1.pts      an unparsable point line
Also: afw/100.jpg holds two faces (100_1.pts, 100_2.pts: AFW's naming), a
grayscale JPEG (afw/101_1.jpg), an RGBA PNG (helen/trainset/h2_1.png), a palette
PNG (helen/testset/t2_1.png), and a face that overhangs the image (ibug/image_002_1).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from asmnet_jax.core import rotation

HERE = os.path.dirname(os.path.abspath(__file__))

# file stem (relative) -> (image stem, image size, image mode, yaw, pitch, roll, scale, centre)
POSES = {
    "afw/100_1": ("afw/100.jpg", (128, 96), "RGB", 20.0, 5.0, -10.0, 18.0, (36, 48)),
    "afw/100_2": ("afw/100.jpg", (128, 96), "RGB", -30.0, -5.0, 8.0, 16.0, (92, 46)),
    "afw/101_1": ("afw/101_1.jpg", (80, 96), "L", 0.0, 10.0, 0.0, 30.0, (40, 50)),
    "helen/trainset/h1_1": ("helen/trainset/h1_1.jpg", (96, 96), "RGB", 45.0, 0.0, 5.0, 32.0, (48, 50)),
    "helen/trainset/h2_1": ("helen/trainset/h2_1.png", (96, 80), "RGBA", -15.0, 15.0, 20.0, 28.0, (48, 40)),
    "helen/trainset/h3_1": ("helen/trainset/h3_1.jpg", (96, 96), "RGB", 0.0, 0.0, 0.0, 30.0, (48, 48)),
    "helen/testset/t1_1": ("helen/testset/t1_1.jpg", (96, 96), "RGB", 10.0, -20.0, 0.0, 30.0, (48, 48)),
    "helen/testset/t2_1": ("helen/testset/t2_1.png", (96, 96), "P", -50.0, 0.0, -15.0, 30.0, (50, 46)),
    "helen/testset/t3_1": ("helen/testset/t3_1.jpg", (96, 96), "RGB", 0.0, 0.0, 0.0, 30.0, (48, 48)),
    "lfpw/trainset/l1": ("lfpw/trainset/l1.png", (96, 96), "RGB", 5.0, 5.0, 5.0, 30.0, (48, 48)),
    "lfpw/trainset/l2": ("lfpw/trainset/l2.png", (112, 96), "RGB", -5.0, -25.0, 25.0, 30.0, (56, 48)),
    "lfpw/trainset/l3": (None, None, None, 0.0, 0.0, 0.0, 30.0, (48, 48)),
    "lfpw/testset/u1": ("lfpw/testset/u1.png", (96, 96), "RGB", 30.0, 10.0, -5.0, 30.0, (48, 48)),
    "lfpw/testset/u2": ("lfpw/testset/u2.png", (96, 96), "RGB", -35.0, 0.0, 0.0, 30.0, (48, 48)),
    "lfpw/testset/u3": ("lfpw/testset/u3.png", None, "broken", 0.0, 0.0, 0.0, 30.0, (48, 48)),
    "ibug/image_001_1": ("ibug/image_001_1.jpg", (96, 96), "RGB", 60.0, 20.0, 30.0, 30.0, (48, 48)),
    "ibug/image_002_1": ("ibug/image_002_1.jpg", (96, 96), "RGB", -25.0, -10.0, -30.0, 34.0, (12, 84)),
    "ibug/image_003_1": ("ibug/image_003_1.jpg", (96, 96), "RGB", 0.0, 0.0, 0.0, 30.0, (48, 48)),
}


def project(yaw: float, pitch: float, roll: float, scale: float, centre) -> np.ndarray:
  """(68, 2) 0-based pixel coordinates of the mean face at this pose."""
  face = rotation.load_mean_face() @ rotation.euler_to_rotation(yaw, pitch, roll).T
  return scale * face[:, :2] + np.asarray(centre, dtype=np.float64)


def draw_face(image: Image.Image, points: np.ndarray) -> None:
  """A face-ish drawing: a skin ellipse around the points, dark dots on them."""
  draw = ImageDraw.Draw(image)
  lo, hi = points.min(0), points.max(0)
  pad = 0.15 * (hi - lo)
  draw.ellipse([*(lo - pad), *(hi + pad)], fill=(205, 160, 130))
  for x, y in points:
    draw.point((float(x), float(y)), fill=(40, 20, 20))


def write_pts(path: str, points: np.ndarray) -> None:
  """The published layout; coordinates 1-based, as in the real files."""
  lines = ["version: 1", f"n_points:  {len(points)}", "{"]
  lines += [f"{x + 1:.3f} {y + 1:.3f}" for x, y in points]
  lines.append("}")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def replace_line(path: str, index: int, text: str) -> None:
  with open(path) as f:
    lines = f.read().splitlines()
  lines[index] = text
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def main() -> None:
  rng = np.random.default_rng(0)
  images: dict[str, tuple[Image.Image, str]] = {}
  for stem, (image_name, size, mode, yaw, pitch, roll, scale, centre) in POSES.items():
    os.makedirs(os.path.join(HERE, os.path.dirname(stem)), exist_ok=True)
    points = project(yaw, pitch, roll, scale, centre)
    if stem.endswith("h3_1"):
      points = points[:67]  # malformed: 67 points.
    write_pts(os.path.join(HERE, stem + ".pts"), points)
    if stem.endswith("t3_1"):  # malformed: a NaN coordinate.
      replace_line(os.path.join(HERE, stem + ".pts"), 3 + 10, "nan 40.000")
    if stem.endswith("image_003_1"):  # malformed: an unparsable point line.
      replace_line(os.path.join(HERE, stem + ".pts"), 3 + 20, "12.5,40.0")
    if image_name is None:
      continue
    if mode == "broken":
      with open(os.path.join(HERE, image_name), "wb") as f:
        f.write(b"this is not an image\n")
      continue
    if image_name not in images:
      # Smooth noise (upsampled): a background that compresses to a few KB.
      noise = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
      background = Image.fromarray(noise).resize(size, Image.Resampling.BILINEAR)
      images[image_name] = (background, mode)
    draw_face(images[image_name][0], points)
  for image_name, (image, mode) in images.items():
    path = os.path.join(HERE, image_name)
    if mode == "L":
      image = image.convert("L")
    elif mode == "RGBA":
      image = image.convert("RGBA")
      image.putalpha(200)
    elif mode == "P":
      image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    if path.endswith(".jpg"):
      image.save(path, quality=80)
    else:
      image.save(path, optimize=True)


if __name__ == "__main__":
  main()
