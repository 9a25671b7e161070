"""The precision rule the losses, metrics and ASM share: compute in float32 at least."""

from __future__ import annotations

import jax.numpy as jnp


def compute_dtype(dtype) -> jnp.dtype:
  """`dtype` promoted to float32 at least: bfloat16 and integers -> float32,
  float64 stays float64."""
  return jnp.promote_types(dtype, jnp.float32)


def at_least_float32(x) -> jnp.ndarray:
  """`x` (any shape) as a JAX array of `compute_dtype(x.dtype)`."""
  x = jnp.asarray(x)
  return x.astype(compute_dtype(x.dtype))
