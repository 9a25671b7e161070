"""ASMNet and the MobileNetV2 baseline (METHOD.md section 4), Flax linen.

Both map images (batch, H, W, 3), float RGB in [0, 1], to
  * landmarks (batch, num_landmarks, 2): normalised crop coordinates (x, y), from a
    Dense(2n) whose outputs are ordered x1, y1, x2, y2, ...;
  * pose (batch, 3): yaw, pitch, roll in the units of the training labels (degrees).
Both outputs are float32 whatever the compute `dtype`.

Use:
  model = create_model("asmnet", 68)
  variables = model.init(rng, images, train=False)        # {"params", "batch_stats"}
  landmarks, pose = model.apply(variables, images)         # eval: running BN stats
  (landmarks, pose), updates = model.apply(
      variables, images, train=True, rngs={"dropout": key}, mutable=["batch_stats"])
  infer_model, infer_vars = fold_batch_norm(model, variables)   # BN folded, for export
  landmarks, pose = infer_model.apply(infer_vars, images)

H and W may be any size (>= 32 is sensible); stride-2 layers use TF "SAME" padding.
Parameter counts match the authors' Keras graphs exactly (see `count_parameters`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from asmnet_jax.nn.layers import BN_EPSILON, BN_MOMENTUM, ConvBN, DepthwiseImpl, InvertedResidual

Array = jax.Array
DType = Any

# MobileNetV2 (width 1.0) inverted-residual stages: (expansion, channels, repeats,
# first stride). Blocks are numbered 0..16 through the stages, as in Keras.
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32
ASMNET_NUM_BLOCKS = 16  # blocks 0..15; block 16 and the final 1x1 conv are dropped.
ASMNET_TAPS = (1, 3, 6, 10, 13, 15)  # block outputs pooled into 536 features.
MOBILENET_V2_HEAD_CHANNELS = 1280
DROPOUT_RATE = 0.3


def block_settings(num_blocks: int) -> list[tuple[int, int, int]]:
  """(expansion, out_channels, stride) of MobileNetV2 blocks 0..num_blocks-1."""
  blocks = []
  for expansion, channels, repeats, stride in MOBILENET_V2_STAGES:
    for r in range(repeats):
      blocks.append((expansion, channels, stride if r == 0 else 1))
  return blocks[:num_blocks]


class MobileNetV2Backbone(nn.Module):
  """Stem conv 3x3/2 (32) + BN + ReLU6 and inverted-residual blocks 0..num_blocks-1.

  Returns the last block's output (N, H', W', C) and the outputs of the blocks in
  `taps` (a list, in block order).
  """
  num_blocks: int = 17
  taps: Sequence[int] = ()
  folded: bool = False
  dtype: DType = jnp.float32
  depthwise_impl: DepthwiseImpl = "auto"
  bn_momentum: float = BN_MOMENTUM

  @nn.compact
  def __call__(self, images: Array, train: bool = False) -> tuple[Array, list[Array]]:
    x = ConvBN(STEM_CHANNELS, "stem", stride=2, folded=self.folded, dtype=self.dtype,
               bn_momentum=self.bn_momentum, name="stem")(images, train)
    tapped = []
    for i, (expansion, channels, stride) in enumerate(block_settings(self.num_blocks)):
      x = InvertedResidual(expansion, channels, stride, folded=self.folded, dtype=self.dtype,
                           depthwise_impl=self.depthwise_impl, bn_momentum=self.bn_momentum,
                           name=f"block_{i}")(x, train)
      if i in self.taps:
        tapped.append(x)
    return x, tapped


def _global_avg_pool(x: Array) -> Array:
  """(N, H, W, C) -> (N, C) float32.

  As a batched dot with a 1/(H*W) vector: on XLA:CPU 4x faster than a mean at
  batch 1 (which is overhead-bound) and a little faster in training too.
  """
  n, h, w, c = x.shape
  weights = jnp.full((n, h * w), 1.0 / (h * w), jnp.float32)
  return jnp.einsum("np,npc->nc", weights, x.astype(jnp.float32).reshape(n, h * w, c))


class _Heads(nn.Module):
  """Dropout (training only) then the two linear heads: Dense(2n) and Dense(3)."""
  num_landmarks: int
  dropout_rate: float = DROPOUT_RATE
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, features: Array, train: bool) -> tuple[Array, Array]:
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    x = x.astype(self.dtype)
    dense = lambda n, name: nn.Dense(  # noqa: E731
        n, dtype=self.dtype, param_dtype=jnp.float32, name=name)
    landmarks = dense(2 * self.num_landmarks, "landmarks")(x)
    pose = dense(3, "pose")(x)
    landmarks = landmarks.astype(jnp.float32).reshape(x.shape[0], self.num_landmarks, 2)
    return landmarks, pose.astype(jnp.float32)


class _Network(nn.Module):
  """The attributes ASMNet and MobileNetV2 share.

  Attributes:
    num_landmarks: n (68 for 300W, 98 for WFLW).
    dtype: compute dtype (e.g. jnp.bfloat16 on accelerators); params, BatchNorm
      statistics and the outputs stay float32.
    depthwise_impl: "auto" (by backend), "shift_vjp", "shift" or "lax"; see
      `kernels.depthwise_conv`.
    dropout_rate: dropout on the pooled features, training only.
    folded: BN-folded inference form; build it with `fold_batch_norm`.
    bn_momentum: running-statistics momentum (Keras' MobileNetV2: 0.999; lower it
      for short runs, whose running averages would otherwise lag the weights).
  """
  num_landmarks: int
  dtype: DType = jnp.float32
  depthwise_impl: DepthwiseImpl = "auto"
  dropout_rate: float = DROPOUT_RATE
  folded: bool = False
  bn_momentum: float = BN_MOMENTUM


class ASMNet(_Network):
  """ASMNet: MobileNetV2 blocks 0..15, six pooled taps (536 features), two heads."""

  @nn.compact
  def __call__(self, images: Array, train: bool = False) -> tuple[Array, Array]:
    """images (N, H, W, 3) in [0, 1] -> landmarks (N, n, 2), pose (N, 3)."""
    _, tapped = MobileNetV2Backbone(
        ASMNET_NUM_BLOCKS, ASMNET_TAPS, folded=self.folded, dtype=self.dtype,
        depthwise_impl=self.depthwise_impl, bn_momentum=self.bn_momentum,
        name="backbone")(images, train)
    features = jnp.concatenate([_global_avg_pool(t) for t in tapped], axis=-1)
    return _Heads(self.num_landmarks, self.dropout_rate, self.dtype, name="heads")(
        features, train)


class MobileNetV2(_Network):
  """Baseline: full MobileNetV2 (blocks 0..16, 1x1 conv to 1280 + BN + ReLU6),
  global average pool, then the same heads as ASMNet."""

  @nn.compact
  def __call__(self, images: Array, train: bool = False) -> tuple[Array, Array]:
    """images (N, H, W, 3) in [0, 1] -> landmarks (N, n, 2), pose (N, 3)."""
    x, _ = MobileNetV2Backbone(
        17, folded=self.folded, dtype=self.dtype, depthwise_impl=self.depthwise_impl,
        bn_momentum=self.bn_momentum, name="backbone")(images, train)
    x = ConvBN(MOBILENET_V2_HEAD_CHANNELS, "pointwise", folded=self.folded,
               dtype=self.dtype, bn_momentum=self.bn_momentum, name="head_conv")(x, train)
    return _Heads(self.num_landmarks, self.dropout_rate, self.dtype, name="heads")(
        _global_avg_pool(x), train)


class TinyNetwork(_Network):
  """A smoke-test stand-in, not a landmark model: a stem convolution, a pointwise
  one and ASMNet's heads. It has ASMNet's interface (landmarks (N, n, 2), pose (N, 3),
  BatchNorm statistics, dropout, BN folding) at a fraction of its compile time, for
  checking a pipeline (a new dataset, a cluster, the tests) without the full network."""

  @nn.compact
  def __call__(self, images: Array, train: bool = False) -> tuple[Array, Array]:
    """images (N, H, W, 3) in [0, 1] -> landmarks (N, n, 2), pose (N, 3)."""
    x = ConvBN(8, "stem", stride=4, folded=self.folded, dtype=self.dtype,
               bn_momentum=self.bn_momentum, name="stem")(images, train)
    x = ConvBN(16, "pointwise", folded=self.folded, dtype=self.dtype,
               bn_momentum=self.bn_momentum, name="pointwise")(x, train)
    return _Heads(self.num_landmarks, self.dropout_rate, self.dtype, name="heads")(
        _global_avg_pool(x), train)


# The networks by the names configs use.
MODELS = {"asmnet": ASMNet, "mnv2": MobileNetV2, "tiny": TinyNetwork}


def create_model(
    name: str,
    num_landmarks: int,
    *,
    dtype: DType = jnp.float32,
    depthwise_impl: DepthwiseImpl = "auto",
    dropout_rate: float = DROPOUT_RATE,
    bn_momentum: float = BN_MOMENTUM,
) -> nn.Module:
  """The network called `name` ("asmnet", "mnv2" or "tiny") for `num_landmarks` points.

  dtype is the compute dtype (params stay float32); depthwise_impl picks the
  depthwise convolution ("auto": shifted multiply-adds with a hand-written gradient
  on CPU, XLA's grouped convolution on GPU/TPU); bn_momentum is the BatchNorm
  running-statistics momentum, flax convention (0.999: Keras', the authors').
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
  if num_landmarks < 1:
    raise ValueError(f"num_landmarks must be positive, got {num_landmarks}")
  return MODELS[name](num_landmarks, dtype=dtype, depthwise_impl=depthwise_impl,
                       dropout_rate=dropout_rate, bn_momentum=bn_momentum)


def count_parameters(variables: Mapping[str, Any]) -> tuple[int, int]:
  """(trainable params, BatchNorm moving statistics) in `variables`.

  Works on arrays or `jax.ShapeDtypeStruct`s (e.g. from `jax.eval_shape`).
  """
  def count(tree):
    return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in jax.tree.leaves(tree)))
  return count(variables.get("params", {})), count(variables.get("batch_stats", {}))


def fold_batch_norm(
    model: nn.Module | str,
    variables: Mapping[str, Any],
    *,
    num_landmarks: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
  """Folds every BatchNorm into the conv before it, for inference and export.

  Args:
    model: the trained module (from `create_model`), or its name (a `MODELS` key),
      in which case num_landmarks defaults to the one `variables` were made for.
    variables: {"params", "batch_stats"} of that model.
  Returns:
    (inference_module, inference_variables): `inference_module.apply(
    inference_variables, images)` equals `model.apply(variables, images,
    train=False)` within float32 rounding. inference_variables = {"params": ...},
    no batch_stats: each conv kernel is scaled by gamma / sqrt(var + eps) on its
    output channel and gets a bias beta - mean * gamma / sqrt(var + eps).
    The folded module is inference-only (train=True raises) and traces to plain
    primitives (no custom gradients; on CPU the "shift" depthwise form), which
    suits export; `inference_module.clone(depthwise_impl="lax")` gives the form
    for GPU/TPU. Its dtype is the trained model's.
  """
  if isinstance(model, str):
    if num_landmarks is None:
      num_landmarks = variables["params"]["heads"]["landmarks"]["kernel"].shape[-1] // 2
    model = create_model(model, num_landmarks)
  if model.folded:
    raise ValueError("the model is already BN-folded")

  def fold(params, stats):
    out = {}
    for key, value in params.items():
      if key == "bn":
        continue
      if isinstance(value, Mapping):
        out[key] = fold(value, stats.get(key, {}))
      else:
        out[key] = value
    if "bn" in params:
      bn, moments = params["bn"], stats["bn"]
      a = bn["scale"] * xp.reciprocal(xp.sqrt(moments["var"] + BN_EPSILON))
      out["kernel"] = params["kernel"] * a.astype(params["kernel"].dtype)
      out["bias"] = (bn["bias"] - moments["mean"] * a).astype(params["kernel"].dtype)
    return out

  # NumPy on concrete arrays: eager jnp would compile each of ~60 tiny ops (~5 s).
  concrete = not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(variables))
  xp = np if concrete else jnp
  if concrete:
    variables = jax.tree.map(np.asarray, jax.device_get(dict(variables)))

  folded_params = fold(variables["params"], variables.get("batch_stats", {}))
  return model.clone(folded=True), {"params": folded_params}

