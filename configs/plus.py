"""What the "plus" recipes add to the paper's (configs/ibug_300w_plus.py, wflw_plus.py)."""

from __future__ import annotations

import ml_collections

FLIP_PROBABILITY = 0.5
OCCLUSION_PROBABILITY = 0.5
OCCLUSION_SIZE = (0.1, 0.4)


def add_flip_and_occlusion(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` with horizontal flips and random-erasing patches on half the crops."""
  config.input.flip_probability = FLIP_PROBABILITY
  config.input.occlusion_probability = OCCLUSION_PROBABILITY
  config.input.occlusion_size = OCCLUSION_SIZE
  return config
