"""Writes the tiny COFW fixture beside this script (committed; rerun to regenerate).

  python datasets/cofw/dummy_data/make_dummy_data.py

The two files in the published format: MATLAB v7.3 MAT-files (HDF5 with MATLAB's
512-byte user block and MATLAB_class attributes) holding the images as a 1 x N cell
(object references into #refs#, each H x W x 3 uint8 stored transposed), the shapes
as an N x 87 double matrix (29 x, 29 y, 29 occlusion flags; 1-based pixels) and the
face boxes as N x 4 (x, y, w, h), both stored transposed. Faces: 29 points of the
mean face at known poses (FACES), drawn on noise.
Also: train face 2 is a grey (H x W) image; malformed samples:
  COFW_train_color.mat #4   an occlusion flag of 2
  COFW_test_color.mat  #3   a NaN coordinate
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from asmnet_jax import testing

HERE = os.path.dirname(os.path.abspath(__file__))
N = testing.drawn_face_points(29, 0, 0, 0, 1.0, (0, 0)).shape[0]

# split -> faces: (yaw, pitch, roll, scale, centre, image size (w, h), occluded points)
FACES = {
    "train": [(10.0, 0.0, 5.0, 14.0, (30, 28), (60, 56), (16, 22)),
              (-20.0, 5.0, -10.0, 12.0, (26, 30), (52, 60), ()),
              (25.0, -5.0, 8.0, 13.0, (28, 26), (56, 52), (0, 1, 2)),
              (0.0, 0.0, 0.0, 13.0, (28, 28), (56, 56), ())],
    "test": [(30.0, 0.0, -5.0, 14.0, (30, 30), (60, 60), (28,)),
             (-30.0, 10.0, 0.0, 12.0, (26, 28), (52, 56), (5, 6, 7, 8)),
             (0.0, 0.0, 0.0, 13.0, (28, 28), (56, 56), ())],
}
FILES = {"train": ("COFW_train_color.mat", "IsTr", "phisTr", "bboxesTr"),
         "test": ("COFW_test_color.mat", "IsT", "phisT", "bboxesT")}


def face(split: str, k: int) -> tuple[np.ndarray, np.ndarray]:
  """(points (29, 2) 0-based, occluded bool (29,)) of face k of a split."""
  yaw, pitch, roll, scale, centre, _, occluded = FACES[split][k]
  flags = np.zeros(N, bool)
  flags[list(occluded)] = True
  return testing.drawn_face_points(29, yaw, pitch, roll, scale, centre), flags


def matlab_header() -> bytes:
  """The 128 bytes MATLAB writes at the start of a v7.3 MAT-file's user block."""
  text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
  return text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"


def write_mat(path: str, split: str) -> None:
  _, images_key, shapes_key, boxes_key = FILES[split]
  faces = FACES[split]
  shapes = np.zeros((len(faces), 3 * N))
  boxes = np.zeros((len(faces), 4))
  with h5py.File(path, "w", userblock_size=512) as f:
    refs_group = f.create_group("#refs#")
    refs = np.empty((1, len(faces)), dtype=h5py.ref_dtype)
    for k, (*_, size, _) in enumerate(faces):
      points, occluded = face(split, k)
      image = testing.draw_face_image(size, [points], seed=100 * len(split) + k)
      if split == "train" and k == 1:
        image = image.mean(-1).astype(np.uint8)  # a grey image: H x W.
      data = refs_group.create_dataset(f"{split}{k}", data=image.T)  # MATLAB: transposed.
      data.attrs["MATLAB_class"] = np.bytes_("uint8")
      refs[0, k] = data.ref
      shapes[k] = np.concatenate([points[:, 0] + 1, points[:, 1] + 1, occluded])
      lo, hi = points.min(0) + 1, points.max(0) + 1
      boxes[k] = [lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]]
    if split == "train":
      shapes[3, 2 * N + 5] = 2.0  # malformed: an occlusion flag of 2.
    else:
      shapes[2, 3] = np.nan  # malformed: a NaN coordinate.
    cell = f.create_dataset(images_key, data=refs)
    cell.attrs["MATLAB_class"] = np.bytes_("cell")
    for key, value in ((shapes_key, shapes), (boxes_key, boxes)):
      dataset = f.create_dataset(key, data=value.T)  # N x 87 stored as 87 x N.
      dataset.attrs["MATLAB_class"] = np.bytes_("double")
  with open(path, "r+b") as f:
    f.write(matlab_header())


def main() -> None:
  for split, (name, *_) in FILES.items():
    write_mat(os.path.join(HERE, name), split)


if __name__ == "__main__":
  main()
