"""Convolution kernels for ASMNet / MobileNetV2, tuned for XLA on CPU.

All tensors are NHWC: images and feature maps are (batch, height, width, channels).

Why not plain `nn.Conv`: on the 2-core CPU this project trains on, XLA's grouped
(depthwise) convolution is 10-30x slower than nine shifted multiply-adds, and a 1x1
convolution is 2-6x faster as a `jnp.dot` over the channel axis (see
`/work/shared/PERF_NOTES.md`). GPUs and TPUs have good native kernels, so the
depthwise implementation is picked per backend (`depthwise_conv`, `impl="auto"`).

Training on CPU also needs hand-written gradients (`jax.custom_vjp`), each for a
measured reason given where it is defined:
  * depthwise (`depthwise_conv_vjp`): autodiff of the shifted form keeps nine
    shifted copies of the input; here both gradients are shifted multiply-adds too,
    the stride-2 input gradient by 2x2 phases, the kernel gradient one fused pass;
  * 1x1 (`pointwise_conv`): the operand order of the kernel-gradient dot decides
    which operand XLA:CPU copies into a transposed layout;
  * stem (`conv3x3`): XLA's convolution forward, an im2col dot for its kernel
    gradient.
Every custom gradient is tested against autodiff of `lax.conv_general_dilated`.

Padding follows TensorFlow's "SAME" rule (`same_padding`), which the authors' Keras
graph uses: at stride 2 and an even size it pads 0 before and 1 after.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array
DType = Any
DepthwiseImpl = Literal["auto", "shift_vjp", "shift", "lax"]

def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow "SAME" padding (before, after) of one spatial axis.

  The output has ceil(size / stride) positions; the total padding is split with the
  extra pixel, if any, after (so stride 2 at an even size gives (0, 1)).
  """
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def relu6(x: Array) -> Array:
  return jnp.clip(x, 0, 6)


# ------------------------------------------------------------------------------
# Depthwise 3x3 convolution.


def _taps(xp: Array, kernel: Array, stride: int, out_hw: tuple[int, int]) -> Array:
  """sum_ij xp[:, s*h + i, s*w + j, :] * kernel[i, j]: a depthwise correlation.

  xp: (N, Hp, Wp, C) already padded; kernel: (kh, kw, C); returns (N, oh, ow, C).
  Strided slices read only the needed pixels (no stride-1 pass, then subsample).
  """
  oh, ow = out_hw
  kh, kw, _ = kernel.shape
  out = None
  for i in range(kh):
    for j in range(kw):
      tap = lax.slice(
          xp, (0, i, j, 0),
          (xp.shape[0], i + stride * (oh - 1) + 1, j + stride * (ow - 1) + 1, xp.shape[3]),
          (1, stride, stride, 1))
      term = tap * kernel[i, j]
      out = term if out is None else out + term
  return out


def _pads(x_shape, kernel_shape, stride):
  _, h, w, _ = x_shape
  kh, kw, _ = kernel_shape
  return same_padding(h, kh, stride), same_padding(w, kw, stride)


def depthwise_conv_lax(x: Array, kernel: Array, stride: int = 1) -> Array:
  """Reference / accelerator form: XLA grouped convolution with TF SAME padding.

  x: (N, H, W, C); kernel: (kh, kw, C); returns (N, ceil(H/s), ceil(W/s), C).
  """
  ph, pw = _pads(x.shape, kernel.shape, stride)
  c = x.shape[-1]
  return lax.conv_general_dilated(
      x, kernel[:, :, None, :].astype(x.dtype), (stride, stride), (ph, pw),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


def depthwise_conv_shift(x: Array, kernel: Array, stride: int = 1) -> Array:
  """CPU form: nine shifted multiply-adds; gradients by plain autodiff.

  Same contract as `depthwise_conv_lax`.
  """
  (pt, pb), (pl, pr) = _pads(x.shape, kernel.shape, stride)
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  out_hw = (-(-x.shape[1] // stride), -(-x.shape[2] // stride))
  return _taps(xp, kernel.astype(x.dtype), stride, out_hw)


def _phase_taps(kernel_size: int, phase: int) -> list[tuple[int, int]]:
  """(tap i, offset d) with s*m' + i = 2*m + phase and m' = m - d, for stride 2."""
  return [(i, (i - phase) // 2) for i in range(kernel_size) if (i - phase) % 2 == 0]


def _grad_padding(stride: int, kernel_shape, padded_hw, out_hw):
  """(before, after) rows and columns by which `_depthwise_padded_input_grad` pads g."""
  kh, kw, _ = kernel_shape
  (hp, wp), (oh, ow) = padded_hw, out_hw
  if stride == 1:
    return ((kh - 1, hp - oh), (kw - 1, wp - ow))
  if stride != 2:
    raise NotImplementedError("stride must be 1 or 2")
  mh, mw = -(-hp // 2), -(-wp // 2)
  return (((kh - 1) // 2, mh - oh), ((kw - 1) // 2, mw - ow))


def _depthwise_padded_input_grad(gp: Array, kernel: Array, stride: int,
                                 padded_hw: tuple[int, int]) -> Array:
  """Gradient wrt the padded input xp of `_taps(xp, kernel, stride, ...)`.

  gp: the (N, oh, ow, C) output gradient padded by `_grad_padding` -> (N, Hp, Wp, C),
  by shifted adds. Stride 1: a correlation of g with the flipped kernel. Stride 2:
  the padded grid splits into 2x2 phases (even/odd rows and columns); each phase
  is a small correlation of g with the kernel taps of that parity (4, 2, 2 and 1
  taps), and the phases are interleaved. That is 9 multiply-adds per 4 pixels,
  against 36 for the zero-dilated transposed convolution autodiff builds.
  """
  hp, wp = padded_hw
  kh, kw, _ = kernel.shape
  n, _, _, c = gp.shape
  if stride == 1:
    # dxp[p] = sum_i g[p - i] k[i] = sum_i' gp[p + i'] k[kh - 1 - i'], gp = g shifted by kh-1.
    return _taps(gp, kernel[::-1, ::-1], 1, (hp, wp))
  # Rows p = 2m + a, m in [0, mh): dxp[p] = sum_(i, d) g[m - d] k[i] over taps i of parity a.
  mh, mw = -(-hp // 2), -(-wp // 2)
  dh, dw = (kh - 1) // 2, (kw - 1) // 2  # largest offsets d (gp = g shifted by them)
  rows = []
  for a in range(2):
    cols = []
    for b in range(2):
      acc = None
      for i, di in _phase_taps(kh, a):
        for j, dj in _phase_taps(kw, b):
          tap = lax.slice(gp, (0, dh - di, dw - dj, 0), (n, dh - di + mh, dw - dj + mw, c))
          term = tap * kernel[i, j]
          acc = term if acc is None else acc + term
      cols.append(acc)
    rows.append(jnp.stack(cols, axis=3))  # (n, mh, mw, 2, c)
  dxp = jnp.stack(rows, axis=2).reshape(n, 2 * mh, 2 * mw, c)  # (n, mh, 2, mw, 2, c)
  return dxp[:, :hp, :wp, :]


def _depthwise_kernel_grad(xp: Array, g: Array, stride: int, kernel_shape) -> Array:
  """d(loss)/dkernel (kh, kw, C) from the padded input: per tap, sum of xp_tap * g.

  One variadic reduce makes a single pass over xp and g with the nine products
  fused, adding up R batch groups elementwise (a vectorisable loop; R about 8)
  before small reductions finish. On XLA:CPU that is 3-5x faster than nine plain
  reductions (each materialises its product for a library kernel) and 1.5x faster
  than reducing over the width axis; with no divisor of the batch in 4..16 it
  falls back to the latter.
  """
  kh, kw, c = kernel_shape
  n, oh, ow, _ = g.shape
  g32 = g.astype(jnp.float32)
  products = []
  for i in range(kh):
    for j in range(kw):
      tap = lax.slice(xp, (0, i, j, 0),
                      (n, i + stride * (oh - 1) + 1, j + stride * (ow - 1) + 1, c),
                      (1, stride, stride, 1))
      products.append(tap.astype(jnp.float32) * g32)
  groups = next((r for r in (8, 10, 5, 16, 4, 6, 12) if n % r == 0), None)
  if groups is None:
    products, axis = tuple(products), 2
  else:
    products, axis = tuple(p.reshape(groups, n // groups, oh, ow, c) for p in products), 0
  zero = np.float32(0)
  partial = lax.reduce(products, (zero,) * len(products),
                       lambda a, b: tuple(u + v for u, v in zip(a, b)), (axis,))
  sums = [jnp.sum(p.reshape(-1, c), axis=0) for p in partial]
  return jnp.stack(sums).reshape(kh, kw, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise_padded(xp: Array, kernel: Array, stride: int, out_hw: tuple[int, int]):
  return _taps(xp, kernel, stride, out_hw)


def _dw_fwd(xp, kernel, stride, out_hw):
  # The padded input is materialised for the forward taps anyway: keep it for the
  # backward rather than padding again.
  return _taps(xp, kernel, stride, out_hw), (xp, kernel)


def _dw_bwd(stride, out_hw, residuals, g):
  # The barrier keeps XLA from CSE-ing the kernel-gradient slices of xp with the
  # forward's: shared, the nine slices get materialised instead of fused.
  xp, kernel = lax.optimization_barrier(residuals)
  (bt, at), (bl, al) = _grad_padding(stride, kernel.shape, xp.shape[1:3], out_hw)
  gp = jnp.pad(g, ((0, 0), (bt, at), (bl, al), (0, 0)))
  dxp = _depthwise_padded_input_grad(gp, kernel.astype(g.dtype), stride, xp.shape[1:3])
  dk = _depthwise_kernel_grad(xp, g, stride, kernel.shape)
  return dxp.astype(xp.dtype), dk.astype(kernel.dtype)


_depthwise_padded.defvjp(_dw_fwd, _dw_bwd)


def depthwise_conv_vjp(x: Array, kernel: Array, stride: int = 1) -> Array:
  """CPU form with a hand-written backward pass; same contract as the others.

  Autodiff of the shifted form keeps all nine shifted input slices alive for the
  kernel gradient (nine copies of the input); this keeps only the padded input,
  and computes both gradients with shifted multiply-adds too.
  """
  (pt, pb), (pl, pr) = _pads(x.shape, kernel.shape, stride)
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  out_hw = (-(-x.shape[1] // stride), -(-x.shape[2] // stride))
  return _depthwise_padded(xp, kernel.astype(x.dtype), stride, out_hw)


def depthwise_conv(
    x: Array, kernel: Array, stride: int = 1, impl: DepthwiseImpl = "auto") -> Array:
  """Depthwise convolution with TF "SAME" padding, no bias.

  Args:
    x: (N, H, W, C) input.
    kernel: (kh, kw, C) one filter per channel (Keras `depth_multiplier=1`).
    stride: 1 or 2, both spatial axes.
    impl: "shift_vjp" (nine shifted multiply-adds with a hand-written backward
      pass: fastest on CPU for training), "shift" (the same forward, plain
      autodiff: simplest graph, for inference/export), "lax" (grouped
      `conv_general_dilated`: fast on GPU/TPU) or "auto" ("shift_vjp" when the
      default backend is CPU, else "lax").
  Returns:
    (N, ceil(H / stride), ceil(W / stride), C), the dtype of x.
  """
  if impl == "auto":
    impl = "shift_vjp" if jax.default_backend() == "cpu" else "lax"
  if impl == "shift_vjp":
    return depthwise_conv_vjp(x, kernel, stride)
  if impl == "shift":
    return depthwise_conv_shift(x, kernel, stride)
  if impl == "lax":
    return depthwise_conv_lax(x, kernel, stride)
  raise ValueError(f"unknown depthwise impl {impl!r}; use 'auto', 'shift' or 'lax'")


# ------------------------------------------------------------------------------
# Dense convolutions.


@jax.custom_vjp
def _pointwise(x: Array, kernel: Array) -> Array:
  return jnp.dot(x, kernel.astype(x.dtype))


def _pointwise_fwd(x, kernel):
  return _pointwise(x, kernel), (x, kernel)


def _pointwise_bwd(residuals, g):
  x, kernel = residuals
  dx = jnp.dot(g, kernel.astype(g.dtype).T)
  # dkernel = x^T g contracts over all N*H*W pixels. XLA:CPU feeds such a dot its
  # left operand transposed in place but copies the right one into a transposed
  # layout (fusing the BN backward into a cache-hostile strided write), so the
  # operand with fewer channels goes on the right: 3x less work for the expand convs.
  x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
  contract = (((0,), (0,)), ((), ()))
  if x2.shape[1] < g2.shape[1]:
    dkernel = lax.dot_general(g2, x2, contract, preferred_element_type=jnp.float32).T
  else:
    dkernel = lax.dot_general(x2, g2, contract, preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), dkernel.astype(kernel.dtype)


_pointwise.defvjp(_pointwise_fwd, _pointwise_bwd)


def pointwise_conv(x: Array, kernel: Array, custom_grad: bool = True) -> Array:
  """1x1 convolution as a dot over the channel axis: (N, H, W, Cin) @ (Cin, Cout).

  custom_grad: use the hand-written backward pass (`_pointwise_bwd`, faster on
  CPU); False gives a plain `jnp.dot` (simplest graph, for inference export).
  """
  if custom_grad:
    return _pointwise(x, kernel)  # kernel gradient in the kernel's dtype.
  return jnp.dot(x, kernel.astype(x.dtype))


def _conv3x3_lax(x: Array, kernel: Array, stride: int) -> Array:
  (pt, pb), (pl, pr) = _pads(x.shape, kernel.shape[:2] + (0,), stride)
  return lax.conv_general_dilated(
      x, kernel, (stride, stride), ((pt, pb), (pl, pr)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3x3_vjp(x: Array, kernel: Array, stride: int) -> Array:
  return _conv3x3_lax(x, kernel, stride)


def _conv3x3_fwd(x, kernel, stride):
  return _conv3x3_lax(x, kernel, stride), (x, kernel)


def _conv3x3_bwd(stride, residuals, g):
  x, kernel = residuals
  kh, kw, cin, cout = kernel.shape
  (pt, pb), (pl, pr) = _pads(x.shape, kernel.shape[:2] + (0,), stride)
  n, oh, ow, _ = g.shape
  # dkernel[(i, j, c), o] = sum_m P[(i, j, c), m] g[m, o], with the patches P built
  # channel-major, (kh*kw*cin, N*oh*ow): a plain (27, M) @ (M, Cout) dot that XLA:CPU
  # runs without copying either operand into a transposed layout, and strided
  # slices along the spatial axes of a (C, N, H, W) image, not across 3 channels.
  xt = jnp.pad(jnp.transpose(x, (3, 0, 1, 2)), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
  rows = [
      lax.slice(xt[c], (0, i, j), (n, i + stride * (oh - 1) + 1, j + stride * (ow - 1) + 1),
                (1, stride, stride)).reshape(-1)
      for i in range(kh) for j in range(kw) for c in range(cin)]
  dkernel = jnp.dot(jnp.stack(rows), g.reshape(-1, cout))
  # The input gradient (unused for images; XLA drops it) by XLA's own transpose.
  dx = jax.vjp(lambda x: _conv3x3_lax(x, kernel, stride), x)[1](g)[0]
  return dx, dkernel.reshape(kernel.shape).astype(kernel.dtype)


_conv3x3_vjp.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def conv3x3(x: Array, kernel: Array, stride: int = 1, custom_grad: bool = True) -> Array:
  """Dense 3x3 convolution, TF SAME padding; kernel (3, 3, Cin, Cout) (HWIO).

  For the stem (Cin = 3). XLA's convolution is the fastest forward here (2-3x an
  im2col dot), but its kernel gradient is slow on CPU (a 3-channel image against a
  full-resolution gradient), so custom_grad computes that one as an im2col dot
  (about 2.5x faster). custom_grad=False: plain autodiff (inference, export).
  x: (N, H, W, Cin) -> (N, ceil(H/stride), ceil(W/stride), Cout).
  """
  kernel = kernel.astype(x.dtype)
  if custom_grad:
    return _conv3x3_vjp(x, kernel, stride)
  return _conv3x3_lax(x, kernel, stride)
