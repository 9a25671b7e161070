"""XLA compiler options for the inference graph, chosen per backend.

On XLA:CPU (jaxlib 0.10) dots and the stem convolution run as YNNPACK fusions by
default. For the BN-folded inference network XLA's own (Eigen) kernels are faster,
while the training step is faster with the defaults, so only inference uses these
options (measurements: docs/experiments.md). Measure them on your machine with
`python -m asmnet_jax.tools.benchmark`, which reports `infer_ms_b1` with them and
`infer_ms_b1_default_options` without.

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
