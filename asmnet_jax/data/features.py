"""The TFDS feature layout every face-landmark builder in `datasets/` shares.

One example is one face:
  * image:     uint8 (H, W, 3) RGB face crop, stored as encoded bytes (PNG or JPEG)
               so that building and reading need no TensorFlow.
  * landmarks: float32 (n, 2), 0-based pixel coordinates (x, y) in the crop.
  * crop_box:  float32 (4,), x0 y0 x1 y1 of the crop in the original image, so that
               `landmarks + (x0, y0)` gives 0-based coordinates in the original.
  * pose:      float32 (3,), yaw, pitch, roll in degrees (`asmnet_jax.core.rotation`).
  * filename:  the source image path, relative to the manual directory.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow_datasets as tfds


def face_features(
    num_landmarks: int,
    image_format: str = "png",
    extra: Mapping[str, tfds.features.FeatureConnector] | None = None,
) -> tfds.features.FeaturesDict:
  """The shared `FeaturesDict`; `extra` adds dataset-specific features."""
  features = {
      "image": tfds.features.Image(shape=(None, None, 3), encoding_format=image_format),
      "landmarks": tfds.features.Tensor(shape=(num_landmarks, 2), dtype=np.float32),
      "crop_box": tfds.features.Tensor(shape=(4,), dtype=np.float32),
      "pose": tfds.features.Tensor(shape=(3,), dtype=np.float32),
      "filename": tfds.features.Text(),
  }
  features.update(extra or {})
  return tfds.features.FeaturesDict(features)
