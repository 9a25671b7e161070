"""Flax building blocks of ASMNet / MobileNetV2: BatchNorm, conv + BN + ReLU6, the
inverted-residual block. Tensors are NHWC; the convolutions are `asmnet_jax.nn.kernels`'.
"""

from __future__ import annotations

import functools
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from asmnet_jax.nn.kernels import (Array, DType, DepthwiseImpl, conv3x3, depthwise_conv,
                                   pointwise_conv, relu6)

# Keras defaults, used by the authors' graph (flax momentum = Keras momentum).
BN_MOMENTUM = 0.999
BN_EPSILON = 1e-3


def _depthwise_init(key, shape, dtype=jnp.float32):
  """Keras' glorot_uniform on the (kh, kw, C, 1) depthwise kernel, stored (kh, kw, C)."""
  return nn.initializers.glorot_uniform()(key, shape + (1,), dtype).reshape(shape)


class BatchNorm(nn.Module):
  """Keras-style BatchNorm over the last axis (momentum 0.999, epsilon 1e-3).

  Params "scale" (gamma) and "bias" (beta); batch_stats "mean" and "var" (biased
  batch variance, as Keras 3 and flax). Statistics are computed in float32 whatever
  the compute dtype, in one pass (E[y^2] - E[y]^2), and applied as a per-channel
  affine y * a + b so that XLA fuses it with the activation that follows.
  Not flax.linen.BatchNorm: CPU train steps 1.23x (64 px, batch 32), 1.29x (224, 50) slower.
  """
  momentum: float = BN_MOMENTUM
  epsilon: float = BN_EPSILON

  @nn.compact
  def __call__(self, y: Array, train: bool) -> Array:
    c = y.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
    ra_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
    if train:
      axes = tuple(range(y.ndim - 1))
      y32 = y.astype(jnp.float32)
      mean = jnp.mean(y32, axes)
      var = jnp.maximum(jnp.mean(jnp.square(y32), axes) - jnp.square(mean), 0.0)
      if not self.is_initializing():
        m = self.momentum
        ra_mean.value = m * ra_mean.value + (1 - m) * lax.stop_gradient(mean)
        ra_var.value = m * ra_var.value + (1 - m) * lax.stop_gradient(var)
    else:
      mean, var = ra_mean.value, ra_var.value
    a = scale * lax.rsqrt(var + self.epsilon)
    b = bias - mean * a
    return y * a.astype(y.dtype) + b.astype(y.dtype)


ConvKind = Literal["pointwise", "depthwise", "stem"]


class ConvBN(nn.Module):
  """Convolution (no bias) + BatchNorm + optional ReLU6, or its BN-folded form.

  kind: "pointwise" (1x1, kernel (Cin, Cout)), "depthwise" (3x3, kernel (3, 3, C),
  `features` must equal C) or "stem" (dense 3x3, kernel (3, 3, Cin, Cout)).
  folded: the inference form from `models.fold_batch_norm`: the same kernel (BN
  scale folded in) plus a "bias" param, and no BatchNorm.
  Input (N, H, W, Cin) -> (N, ceil(H/stride), ceil(W/stride), features), in `dtype`.
  """
  features: int
  kind: ConvKind = "pointwise"
  stride: int = 1
  activation: bool = True
  folded: bool = False
  dtype: DType = jnp.float32
  depthwise_impl: DepthwiseImpl = "auto"
  bn_momentum: float = BN_MOMENTUM

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    x = x.astype(self.dtype)
    cin = x.shape[-1]
    if self.kind == "pointwise":
      kernel = self.param("kernel", nn.initializers.glorot_uniform(), (cin, self.features))
      y = pointwise_conv(x, kernel, custom_grad=not self.folded)
    elif self.kind == "depthwise":
      if cin != self.features:
        raise ValueError(f"depthwise conv keeps channels: {cin} in, {self.features} asked")
      kernel = self.param("kernel", _depthwise_init, (3, 3, cin))
      impl = self.depthwise_impl
      if self.folded:  # inference only: the plain graph, no custom gradient.
        auto = "shift" if jax.default_backend() == "cpu" else "lax"
        impl = {"auto": auto, "shift_vjp": "shift"}.get(impl, impl)
      y = depthwise_conv(x, kernel, self.stride, impl)
    elif self.kind == "stem":
      kernel = self.param("kernel", nn.initializers.glorot_uniform(), (3, 3, cin, self.features))
      custom_grad = not self.folded and jax.default_backend() == "cpu"
      y = conv3x3(x, kernel, self.stride, custom_grad=custom_grad)
    else:
      raise ValueError(f"unknown conv kind {self.kind!r}")
    if self.folded:
      if train:
        raise ValueError("a BN-folded module is for inference only (train=False)")
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
    else:
      y = BatchNorm(momentum=self.bn_momentum, name="bn")(y, train)
    return relu6(y) if self.activation else y


class InvertedResidual(nn.Module):
  """MobileNetV2 block: [1x1 expand + BN + ReLU6] -> 3x3 depthwise (stride) + BN +
  ReLU6 -> 1x1 projection + BN, plus the input when stride 1 and channels match.

  (N, H, W, Cin) -> (N, ceil(H/stride), ceil(W/stride), out_channels).
  """
  expansion: int
  out_channels: int
  stride: int = 1
  folded: bool = False
  dtype: DType = jnp.float32
  depthwise_impl: DepthwiseImpl = "auto"
  bn_momentum: float = BN_MOMENTUM

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    cin = x.shape[-1]
    conv = functools.partial(ConvBN, folded=self.folded, dtype=self.dtype,
                             bn_momentum=self.bn_momentum)
    y = x
    if self.expansion != 1:
      y = conv(cin * self.expansion, "pointwise", name="expand")(y, train)
    y = conv(y.shape[-1], "depthwise", self.stride, depthwise_impl=self.depthwise_impl,
             name="depthwise")(y, train)
    y = conv(self.out_channels, "pointwise", activation=False, name="project")(y, train)
    if self.stride == 1 and cin == self.out_channels:
      y = y + x.astype(y.dtype)
    return y
