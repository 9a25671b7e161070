"""The folded network as serialized StableHLO (`jax.export`), and loading it back.

The serialization runs with JAX alone, without the model code:

  exported = jax.export.deserialize(bytearray(open(path, "rb").read()))
  landmarks, pose = exported.call(images)

(signature: `asmnet_jax.export.signature`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np

from asmnet_jax.export import signature
from asmnet_jax.inference.model import InferenceModel
from asmnet_jax.runtime import compile_options


def export_stablehlo(model: InferenceModel,
                     platforms: Sequence[str] | None = None) -> jax.export.Exported:
  """`jax.export` of images -> (landmarks, pose in degrees), batch symbolic.

  platforms: e.g. ("cpu",) or ("cpu", "cuda"); default the current backend. With
  several, the depthwise convolution is picked per platform at run time (nine
  shifted multiply-adds on CPU, XLA's grouped convolution elsewhere:
  `kernels.depthwise_conv`).
  """
  platforms = tuple(platforms) if platforms else (jax.default_backend(),)
  if len(platforms) == 1:
    impl = "shift" if platforms[0] == "cpu" else "lax"
    fn = model.with_depthwise_impl(impl).apply
  else:
    cpu_fn = model.with_depthwise_impl("shift").apply
    other_fn = model.with_depthwise_impl("lax").apply

    def fn(images):
      return jax.lax.platform_dependent(images, cpu=cpu_fn, default=other_fn)
  return jax.export.export(jax.jit(fn), platforms=platforms)(
      signature.image_spec(model.image_size))


def load_stablehlo(path: str) -> Callable[[np.ndarray], tuple[jax.Array, jax.Array]]:
  """A jitted callable images -> (landmarks, pose) from a serialized export
  (compiled with `compile_options.inference_options()`)."""
  with open(path, "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  return compile_options.jit_inference(exported.call)
