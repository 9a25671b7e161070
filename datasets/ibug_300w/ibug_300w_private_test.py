"""The 300-W private test set (300W/01_Indoor, 300W/02_Outdoor) as extra splits of
ibug_300w, built from the dummy_data fixture plus two private faces written here."""

from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

from asmnet_jax import testing
from asmnet_jax.data import builders
from asmnet_jax_datasets.ibug_300w import ibug_300w_dataset_builder as ibug

DUMMY = os.path.join(os.path.dirname(__file__), "dummy_data")



def test_private_splits_when_their_folders_are_present(tmp_path):
  fixture = testing.dummy_data_module(__file__)
  manual = tmp_path / "300W_download"
  shutil.copytree(DUMMY, manual)
  faces = {"300W/01_Indoor/indoor_001": (15.0, 0.0, 5.0),
           "300W/02_Outdoor/outdoor_001": (-25.0, 5.0, -8.0),
           "300W/02_Outdoor/outdoor_002": (0.0, -10.0, 0.0)}
  for stem, (yaw, pitch, roll) in faces.items():
    os.makedirs(manual / os.path.dirname(stem), exist_ok=True)
    points = fixture.project(yaw, pitch, roll, 30.0, (48, 48))
    image = Image.new("RGB", (96, 96), (90, 110, 130))
    fixture.draw_face(image, points)
    image.save(manual / f"{stem}.png")  # the challenge's images are PNGs.
    fixture.write_pts(str(manual / f"{stem}.pts"), points)
  builder = ibug.Builder(data_dir=str(tmp_path / "tfds"))
  builders.prepare_reporting_skips(builder, str(manual))
  sizes = {s: builder.info.splits[s].num_examples
           for s in ("private", "private_indoor", "private_outdoor")}
  assert sizes == {"private": 3, "private_indoor": 1, "private_outdoor": 2}
  for r in builders.read_split(builder, "private"):
    stem = os.path.splitext(r["filename"].decode())[0]
    expected = builders.parse_pts(manual / f"{stem}.pts") - 1.0
    np.testing.assert_allclose(r["landmarks"] + r["crop_box"][:2], expected, atol=2e-3)
    np.testing.assert_allclose(r["pose"], faces[stem], atol=0.2)
  # Without the folders, the published splits only.
  plain = ibug.Builder(data_dir=str(tmp_path / "tfds_plain"))
  builders.prepare_reporting_skips(plain, DUMMY)
  assert "private" not in plain.info.splits
