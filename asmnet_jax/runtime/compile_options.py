"""XLA compiler options for the inference graph, chosen per backend.

On XLA:CPU (jaxlib 0.10) dots and the stem convolution run as YNNPACK fusions by
default. For the BN-folded inference network, XLA's own (Eigen) kernels are faster:
interleaved in one process on the 2-core CPU machine (2026-11-25), the folded
ASMNet-68 at 224 px took 8.64 vs 9.84 ms (batch 1, median), 6.85 vs 7.65 ms and
7.21 vs 8.17 ms in two other runs, and ran 110 vs 95 images/s at batch 64; on the
Zen 5 machine of 2026-11-29, 3.53 vs 4.26 ms. The training step is the other way
round (13.6 vs 20.6 images/s at batch 50; 34 vs 56 on Zen 5, where no other
YNNPACK fusion set beat the default either), so only inference uses these options.
Measure with `python -m asmnet_jax.tools.benchmark`, which reports `infer_ms_b1` with
them and `infer_ms_b1_default_options` without.

A jaxlib that no longer knows an option would fail to compile; `inference_options`
compiles a trivial function with them once per process (on the default backend)
and falls back to no options, with a warning.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import jax
import numpy as np

# Off: no YNNPACK fusions, so dots and convolutions use XLA's own CPU kernels.
CPU_INFERENCE_OPTIONS: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.lru_cache(maxsize=None)
def _accepted(options: tuple[tuple[str, Any], ...]) -> bool:
  """Whether the default backend compiles a trivial function with `options`."""
  try:
    jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(np.float32(0)).compile()
  except Exception as e:  # pylint: disable=broad-except  # an XLA status error
    logging.warning("XLA options %s not accepted (%s); compiling without them",
                    dict(options), e)
    return False
  return True


def inference_options() -> dict[str, Any]:
  """The compiler options for inference on JAX's default backend.

  `CPU_INFERENCE_OPTIONS` on CPU; {} on GPU/TPU and wherever this jaxlib rejects them.
  """
  if jax.default_backend() != "cpu":
    return {}
  options = tuple(sorted(CPU_INFERENCE_OPTIONS.items()))
  return dict(options) if _accepted(options) else {}


def jit_inference(fn: Callable[..., Any], **jit_kwargs) -> Callable[..., Any]:
  """`jax.jit(fn, **jit_kwargs)` with `inference_options()` for the default backend."""
  return jax.jit(fn, compiler_options=inference_options(), **jit_kwargs)
