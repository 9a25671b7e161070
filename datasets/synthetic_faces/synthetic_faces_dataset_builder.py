"""Synthetic faces (68 landmarks, head pose), rendered by `asmnet_jax.synthetic.faces`.

Nothing to download: every example is rendered from its seed while building. See
README.md in this folder.
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import os
import warnings
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from asmnet_jax.data import builders
from asmnet_jax.data import features as face_features
from asmnet_jax.synthetic import faces as synthetic_faces

NUM_LANDMARKS = synthetic_faces.NUM_LANDMARKS
# Seeds of split s are SEED_BASE[s] + index: disjoint for up to 2**30 faces a split.
SEED_BASE = {"train": 0, "test": 1 << 30, "validation": 2 << 30}
# Below this many faces a split renders in-process (a worker pool costs ~1 s to start).
_MIN_PARALLEL = 256


@dataclasses.dataclass(eq=False)
class SyntheticFacesConfig(tfds.core.BuilderConfig):
  """Sizes of a synthetic build.

  Attributes:
    num_train, num_validation, num_test: faces in the `train`, `validation` and
      `test` splits (validation: for choosing checkpoints and settings, so that
      the test split stays unseen).
    image_size: side of the square renders in pixels.
    workers: rendering processes (0: one per CPU core, 1: in-process).
    render: the `synthetic_faces.PRESETS` name of the render config ("cartoon":
      `DEFAULT_CONFIG`, "photo": `PHOTO_CONFIG`), or several joined by "+", which
      face i of a split takes in turn (i modulo their number); by name, as jobs
      cross processes.
  """
  num_train: int = 5000
  num_validation: int = 500
  num_test: int = 500
  image_size: int = 192
  workers: int = 0
  render: str = "cartoon"


def render_jobs(split: str, count: int, size: int, render: str) -> list[tuple[int, int, str]]:
  """(seed, image side, preset name) of faces 0..count-1 of `split`; `render` is one
  preset name or several joined by "+", taken in turn."""
  presets = render.split("+")
  unknown = [name for name in presets if name not in synthetic_faces.PRESETS]
  if unknown:
    raise ValueError(f"synthetic_faces: unknown render preset {unknown[0]!r} in "
                     f"{render!r} (expected one of {sorted(synthetic_faces.PRESETS)}, "
                     "joined by '+')")
  return [(SEED_BASE[split] + i, size, presets[i % len(presets)]) for i in range(count)]


def _render(args: tuple[int, int, str]) -> tuple[bytes, np.ndarray, np.ndarray]:
  seed, size, preset = args
  out = synthetic_faces.render_face(seed, size, synthetic_faces.PRESETS[preset])
  return out["jpeg"], out["landmarks"], out["pose"]


class Builder(builders.ArrayRecordBuilder):
  """Synthetic faces: `train`, `validation` and `test`, with disjoint seeds."""

  VERSION = tfds.core.Version("1.8.0")
  TEST_SPLITS = ("test",)  # What eval.py reports.
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "1.1.0": "A `validation` split (seeds 2**31 + i); train and test unchanged.",
      "1.2.0": ("`photo` and `mixed`: faces in the eye and nose proportions of "
                "photographed faces (`RenderConfig.real_proportions`); `mixed` "
                "alternates `cartoon_real` and `photo`. The cartoon configs unchanged."),
      "1.3.0": ("`photo` and `mixed`: jaw points evenly spaced along the outline "
                "(`RenderConfig.jaw_even_spacing`) and brows in the proportions of "
                "photographed faces. The cartoon configs unchanged."),
      "1.4.0": ("`photo` and `mixed`: brows drawn below their landmarks, which run "
                "along the brow's upper edge as in 300-W (`RenderConfig.brows_below_labels`). "
                "The cartoon configs unchanged."),
      "1.5.0": ("`photo` and `mixed`: poses drawn from normals cut to the same ranges "
                "(`RenderConfig.pose_sd`), mostly near-frontal as in photographs. The "
                "cartoon configs unchanged."),
      "1.6.0": ("`photo` and `mixed`: the jaw outline, nose base and lips of the "
                "calibrated mean face moved to the 300-W labelling of photographed "
                "faces (`shape.OUTLINE_SHIFT`). The cartoon configs unchanged."),
      "1.7.0": ("`photo` and `mixed`: 30 % of faces grin over parted lips "
                "(`RenderConfig.grin_prob`), and photo-style frames are exposed for the "
                "face (`RenderConfig.face_metering`). The cartoon configs unchanged."),
      "1.8.0": ("`photo` and `mixed`: the nose tip stands 10 mm further forward "
                "(`shape.NOSE_PROTRUSION`), as far in front of the subnasale as a "
                "photographed adult's, and the nose base 3-6 mm "
                "(`shape.NOSE_BASE_PROTRUSION`). The cartoon configs unchanged."),
  }
  BUILDER_CONFIGS = [
      SyntheticFacesConfig(
          name="default", description="5000 train + 500 validation + 500 test faces, 192 px."),
      SyntheticFacesConfig(
          name="tiny", description="48 train + 16 validation + 16 test faces, for tests.",
          num_train=48, num_validation=16, num_test=16, workers=1),
      SyntheticFacesConfig(
          name="photo",
          description=("30000 train + 1000 validation + 1000 test photo-style faces "
                       "(per-pixel shading, skin texture, natural backgrounds, camera "
                       "effects, jaw on the visible silhouette), 128 px."),
          num_train=30000, num_validation=1000, num_test=1000, image_size=128,
          render="photo"),
      SyntheticFacesConfig(
          name="photo_tiny", description="12 train + 4 validation + 4 test photo-style "
          "faces, 64 px, for tests.", num_train=12, num_validation=4, num_test=4,
          image_size=64, workers=1, render="photo"),
      SyntheticFacesConfig(
          name="mixed",
          description=("30000 train + 1000 validation + 1000 test faces, 128 px, "
                       "alternately in the cartoon and the photo style, both in the "
                       "proportions of photographed faces."),
          num_train=30000, num_validation=1000, num_test=1000, image_size=128,
          render="cartoon_real+photo"),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "Procedurally rendered faces (asmnet_jax.synthetic.faces; the photo configs in "
            "the photo style of asmnet_jax.synthetic.photo): random identity, "
            "expression, head pose (yaw +-60, pitch +-30, roll +-30 degrees), lighting, hair, "
            "background clutter, occluders, blur, noise and JPEG artefacts, with the exact "
            "68 landmarks (iBUG 300-W order, 0-based pixels) and pose (yaw, pitch, roll in "
            "degrees, asmnet_jax.core.rotation conventions). The whole render is the crop."),
        features=face_features.face_features(NUM_LANDMARKS, image_format="jpeg"),
        homepage="https://github.com/",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    return {
        "train": self._generate_examples("train", config.num_train),
        "validation": self._generate_examples("validation", config.num_validation),
        "test": self._generate_examples("test", config.num_test),
    }

  def _generate_examples(self, split: str, count: int) -> Iterator[tuple[str, dict]]:
    config = self.builder_config
    size = config.image_size
    jobs = render_jobs(split, count, size, config.render)
    workers = config.workers or os.cpu_count() or 1
    if workers > 1 and count >= _MIN_PARALLEL:
      # "fork", not "spawn": spawn re-runs the caller's main script in each worker,
      # which breaks scripts without a __main__ guard. The workers only run NumPy and
      # PIL, so JAX's warning about forking its threads does not apply to them.
      with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        pool = multiprocessing.get_context("fork").Pool(workers)
      with pool:
        yield from self._examples(split, pool.imap(_render, jobs, chunksize=16), size)
    else:
      yield from self._examples(split, map(_render, jobs), size)

  def _examples(self, split: str, renders, size: int) -> Iterator[tuple[str, dict]]:
    crop_box = np.array([0.0, 0.0, size, size], dtype=np.float32)
    for i, (jpeg, landmarks, pose) in enumerate(renders):
      filename = f"synthetic/{split}/{i:06d}.jpg"
      yield filename, {
          # A file object: TFDS stores its bytes as they are (no re-encoding, no TF).
          "image": io.BytesIO(jpeg),
          "landmarks": landmarks,
          "crop_box": crop_box,
          "pose": pose,
          "filename": filename,
      }
