"""The exported network's interface, shared by its StableHLO and ONNX forms.

Both take `images` float32 (B, S, S, 3), RGB in [0, 1], NHWC, with any batch size
B (a symbolic dimension in StableHLO, the dynamic dimension "batch" in ONNX), and
return
  landmarks float32 (B, n, 2): normalised crop coordinates, x then y, with
    x_norm = (x_px + 0.5) / S - 0.5 for a pixel-centre coordinate x_px in the S x S
    input (crop edges at -0.5 and +0.5; `asmnet_jax.data.augment`);
  pose float32 (B, 3): yaw, pitch, roll in degrees (the network's output already
    multiplied by the training config's pose_scale_deg; signs as in
    `asmnet_jax.core.rotation`).
The crop to feed is the face's landmark bounding box plus eval_margin (metadata) of
its width/height on each side, resized to S x S without keeping the aspect ratio;
`asmnet_jax.inference.predictor` does that (and finds the box) for images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

INPUT_NAME = "images"
OUTPUT_NAMES = ("landmarks", "pose")
BATCH = "batch"  # the symbolic / dynamic batch dimension's name.


def image_spec(image_size: int) -> jax.ShapeDtypeStruct:
  """float32 (batch, S, S, 3) with a symbolic batch dimension."""
  batch, = jax.export.symbolic_shape(BATCH)
  return jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.float32)
