"""The folded network as an ONNX graph: a translator of its jaxpr to ONNX nodes.

Why a converter of our own: jax2onnx 0.17, the maintained JAX->ONNX exporter,
requires orbax-checkpoint < 0.11.37 while this project pins >= 0.12.8 (and it pulls
in equinox, huggingface-hub and netron). The folded network's jaxpr uses a dozen
primitives, so `to_onnx` translates them itself with the `onnx` package (the
`export` extra; imported only when a graph is built): constant sub-computations
are evaluated at export time, depthwise convolutions become grouped `Conv` nodes,
and a primitive it does not know raises NotImplementedError naming it. The result
is checked against JAX with onnxruntime (`asmnet_jax.export.bundle.check_exports`,
by `python -m asmnet_jax.export` unless --no_check, and by tests/test_export.py).

    onnxruntime.InferenceSession(path).run(None, {"images": images})

(signature: `asmnet_jax.export.signature`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np

from asmnet_jax.export import signature
from asmnet_jax.inference.model import InferenceModel

ONNX_OPSET = 17
# The depthwise convolution for ONNX: a grouped Conv, which onnxruntime runs with
# its own depthwise kernels (nine shifted multiply-adds are slower there).
ONNX_DEPTHWISE = "lax"

# The primitives of the folded network and their ONNX translations.
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "max": "Max",
           "min": "Min", "pow": "Pow"}
_UNARY = {"neg": "Neg", "exp": "Exp", "log": "Log", "tanh": "Tanh", "logistic": "Sigmoid",
          "sqrt": "Sqrt", "abs": "Abs"}
_CALLS = ("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
          "remat", "checkpoint")


def _is_static(shape) -> bool:
  return all(isinstance(d, (int, np.integer)) for d in shape)


class _OnnxGraph:
  """Accumulates ONNX nodes and initializers while a jaxpr is walked.

  A jaxpr value is either an np.ndarray (known at export time) or the name of an
  ONNX tensor. `dim_sources` maps a symbolic dimension's name to (input, axis).
  """

  def __init__(self):
    from onnx import helper  # pylint: disable=g-import-not-at-top
    self.helper = helper
    self.nodes: list[Any] = []
    self.initializers: list[Any] = []
    self.dim_sources: dict[str, tuple[str, int]] = {}
    self.producers: dict[str, Any] = {}  # tensor name -> the node computing it.
    self._count = 0
    self._const_names: dict[int, tuple[np.ndarray, str]] = {}

  def name(self, prefix: str) -> str:
    self._count += 1
    return f"{prefix}_{self._count}"

  def node(self, op: str, inputs: Sequence[str], **attrs) -> str:
    out = self.name(op.lower())
    node = self.helper.make_node(op, list(inputs), [out], **attrs)
    self.nodes.append(node)
    self.producers[out] = node
    return out

  def prune(self, outputs: Sequence[str]) -> None:
    """Drops nodes and initializers that no output depends on (e.g. a Max merged
    into a Clip)."""
    needed, kept = set(outputs), []
    for node in reversed(self.nodes):
      if any(o in needed for o in node.output):
        kept.append(node)
        needed.update(i for i in node.input if i)
    self.nodes = kept[::-1]
    self.initializers = [t for t in self.initializers if t.name in needed]

  def tensor(self, value: np.ndarray | str) -> str:
    """An ONNX tensor name for a value; constants become (shared) initializers."""
    if isinstance(value, str):
      return value
    key = id(value)
    if key not in self._const_names:
      from onnx import numpy_helper  # pylint: disable=g-import-not-at-top
      name = self.name("const")
      self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
      self._const_names[key] = (value, name)  # keeps `value` alive: ids stay unique.
    return self._const_names[key][1]

  def int64(self, values: Sequence[int]) -> str:
    return self.tensor(np.asarray(values, np.int64))

  def shape_tensor(self, shape: Sequence[Any], allow_infer: bool) -> str:
    """A 1-D int64 tensor holding `shape`, whose dimensions may be symbolic."""
    symbolic = [i for i, d in enumerate(shape) if not isinstance(d, (int, np.integer))]
    if not symbolic:
      return self.int64(shape)
    if allow_infer and len(symbolic) == 1:  # Reshape infers one -1 dimension.
      return self.int64([-1 if i in symbolic else d for i, d in enumerate(shape)])
    parts = []
    for d in shape:
      if isinstance(d, (int, np.integer)):
        parts.append(self.int64([d]))
      elif str(d) in self.dim_sources:
        source, axis = self.dim_sources[str(d)]
        parts.append(self.node("Shape", [source], start=axis, end=axis + 1))
      else:
        raise NotImplementedError(f"ONNX export: dimension expression {d} in {shape}")
    return self.node("Concat", parts, axis=0)


def _sub_jaxpr(eqn) -> Any:
  if eqn.primitive.name not in _CALLS:
    return None
  for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
    if key in eqn.params:
      return eqn.params[key]
  return None


def _convert_jaxpr(g: _OnnxGraph, jaxpr, consts: Sequence[Any], args: Sequence[Any]) -> list:
  from jax.extend import core as jcore  # pylint: disable=g-import-not-at-top
  env: dict[Any, Any] = {}

  def read(v):
    if isinstance(v, jcore.Literal):
      return np.asarray(v.val, dtype=v.aval.dtype)
    return env[v]

  for var, value in zip(jaxpr.constvars, consts):
    env[var] = np.asarray(value)
  for var, value in zip(jaxpr.invars, args):
    env[var] = value
  for eqn in jaxpr.eqns:
    ins = [read(v) for v in eqn.invars]
    sub = _sub_jaxpr(eqn)
    if sub is not None:
      inner, inner_consts = (sub.jaxpr, sub.consts) if hasattr(sub, "consts") else (sub, ())
      outs = _convert_jaxpr(g, inner, inner_consts, ins)
    elif all(isinstance(x, np.ndarray) for x in ins) and all(
        _is_static(v.aval.shape) for v in eqn.outvars):
      # Constant folding: evaluate with JAX now (e.g. kernel reshapes, bias broadcasts).
      result = eqn.primitive.bind(*ins, **eqn.params)
      outs = [np.asarray(r) for r in (result if eqn.primitive.multiple_results else [result])]
    else:
      handler = _HANDLERS.get(eqn.primitive.name)
      if handler is None:
        raise NotImplementedError(
            f"ONNX export: no translation for the JAX primitive {eqn.primitive.name!r}")
      outs = handler(g, eqn, ins)
    for var, value in zip(eqn.outvars, outs):
      env[var] = value
  return [read(v) for v in jaxpr.outvars]


def _onnx_dtype(dtype) -> int:
  from onnx import helper  # pylint: disable=g-import-not-at-top
  return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _binary(g, eqn, ins):
  return [g.node(_BINARY[eqn.primitive.name], [g.tensor(x) for x in ins])]


def _min_max(g, eqn, ins):
  """max/min with a scalar constant -> Clip, merged with a Clip before it (relu6
  becomes one Clip, which onnxruntime fuses into the convolution before it)."""
  scalars = [x for x in ins if isinstance(x, np.ndarray) and x.size == 1]
  tensors = [x for x in ins if isinstance(x, str)]
  dtype = eqn.outvars[0].aval.dtype
  if len(scalars) != 1 or len(tensors) != 1 or not np.issubdtype(dtype, np.floating):
    return _binary(g, eqn, ins)
  x, bound = tensors[0], np.asarray(scalars[0], dtype).reshape(())
  lo, hi = "", ""
  previous = g.producers.get(x)
  if previous is not None and previous.op_type == "Clip":
    x, lo, hi = (list(previous.input) + ["", ""])[:3]
  if eqn.primitive.name == "max":
    lo = g.tensor(bound) if not lo else g.node("Max", [lo, g.tensor(bound)])
  else:
    hi = g.tensor(bound) if not hi else g.node("Min", [hi, g.tensor(bound)])
  return [g.node("Clip", [x, lo, hi])]


def _unary(g, eqn, ins):
  return [g.node(_UNARY[eqn.primitive.name], [g.tensor(ins[0])])]


def _rsqrt(g, eqn, ins):
  return [g.node("Reciprocal", [g.node("Sqrt", [g.tensor(ins[0])])])]


def _square(g, eqn, ins):
  x = g.tensor(ins[0])
  return [g.node("Mul", [x, x])]


def _integer_pow(g, eqn, ins):
  exponent = np.asarray(eqn.params["y"], eqn.outvars[0].aval.dtype)
  return [g.node("Pow", [g.tensor(ins[0]), g.tensor(exponent)])]


def _clamp(g, eqn, ins):
  lo, x, hi = (g.tensor(v) for v in ins)
  return [g.node("Min", [g.node("Max", [x, lo]), hi])]


def _convert_element_type(g, eqn, ins):
  if np.dtype(eqn.invars[0].aval.dtype) == np.dtype(eqn.params["new_dtype"]):
    return [ins[0]]
  return [g.node("Cast", [g.tensor(ins[0])], to=_onnx_dtype(eqn.params["new_dtype"]))]


def _identity(g, eqn, ins):
  return [ins[0]]


def _broadcast_in_dim(g, eqn, ins):
  x = g.tensor(ins[0])
  in_shape = eqn.invars[0].aval.shape
  target = eqn.params["shape"]
  aligned = [1] * len(target)
  for src, dst in enumerate(eqn.params["broadcast_dimensions"]):
    aligned[dst] = in_shape[src]
  if tuple(aligned) != tuple(in_shape):
    x = g.node("Reshape", [x, g.shape_tensor(aligned, allow_infer=True)])
  if any(a is not t and a != t for a, t in zip(aligned, target)):
    x = g.node("Expand", [x, g.shape_tensor(target, allow_infer=False)])
  return [x]


def _reshape(g, eqn, ins):
  if eqn.params.get("dimensions") is not None:
    raise NotImplementedError("ONNX export: reshape with `dimensions`")
  return [g.node("Reshape", [g.tensor(ins[0]),
                             g.shape_tensor(eqn.params["new_sizes"], allow_infer=True)])]


def _squeeze(g, eqn, ins):
  return [g.node("Squeeze", [g.tensor(ins[0]), g.int64(eqn.params["dimensions"])])]


def _transpose(g, eqn, ins):
  return [g.node("Transpose", [g.tensor(ins[0])], perm=list(eqn.params["permutation"]))]


def _concatenate(g, eqn, ins):
  return [g.node("Concat", [g.tensor(x) for x in ins], axis=int(eqn.params["dimension"]))]


def _pad(g, eqn, ins):
  config = eqn.params["padding_config"]
  if any(interior or lo < 0 or hi < 0 for lo, hi, interior in config):
    raise NotImplementedError(f"ONNX export: pad with interior or negative padding {config}")
  pads = [lo for lo, _, _ in config] + [hi for _, hi, _ in config]
  return [g.node("Pad", [g.tensor(ins[0]), g.int64(pads), g.tensor(ins[1])], mode="constant")]


def _slice(g, eqn, ins):
  shape = eqn.invars[0].aval.shape
  strides = eqn.params["strides"] or (1,) * len(shape)
  axes, starts, ends, steps = [], [], [], []
  for axis, (start, limit, stride) in enumerate(
      zip(eqn.params["start_indices"], eqn.params["limit_indices"], strides)):
    if start == 0 and stride == 1 and (limit is shape[axis] or limit == shape[axis]):
      continue  # the whole axis, possibly the symbolic batch.
    if not all(isinstance(v, (int, np.integer)) for v in (start, limit, stride)):
      raise NotImplementedError(f"ONNX export: slice of a symbolic axis {eqn.params}")
    axes.append(axis)
    starts.append(start)
    ends.append(limit)
    steps.append(stride)
  if not axes:
    return [ins[0]]
  return [g.node("Slice", [g.tensor(ins[0]), g.int64(starts), g.int64(ends), g.int64(axes),
                           g.int64(steps)])]


def _dot_general(g, eqn, ins):
  (lhs_c, rhs_c), (lhs_b, rhs_b) = eqn.params["dimension_numbers"]
  lhs_rank, rhs_rank = len(eqn.invars[0].aval.shape), len(eqn.invars[1].aval.shape)
  lhs, rhs = ins
  if (not lhs_b and not rhs_b and lhs_rank >= 3 and tuple(lhs_c) == (lhs_rank - 1,)
      and tuple(rhs_c) == (0,) and rhs_rank == 2 and isinstance(rhs, np.ndarray)):
    # A 1x1 convolution over channels-last maps: as ONNX Conv (channels first), so
    # that onnxruntime fuses bias and activation and drops the paired Transposes.
    to_first = [0, lhs_rank - 1] + list(range(1, lhs_rank - 1))
    x = g.node("Transpose", [g.tensor(lhs)], perm=to_first)
    kernel = np.ascontiguousarray(rhs.T.reshape(rhs.shape[::-1] + (1,) * (lhs_rank - 2)))
    y = g.node("Conv", [x, g.tensor(kernel)])
    out = g.node("Transpose", [y], perm=[int(i) for i in np.argsort(to_first)])
    return _cast_to(g, out, eqn)
  if not lhs_b and not rhs_b and tuple(lhs_c) == (lhs_rank - 1,) and rhs_rank == 2:
    if tuple(rhs_c) == (1,):
      rhs = rhs.T if isinstance(rhs, np.ndarray) else g.node("Transpose", [rhs], perm=[1, 0])
    if tuple(rhs_c) in ((0,), (1,)):
      out = g.node("MatMul", [g.tensor(lhs), g.tensor(rhs)])
      return _cast_to(g, out, eqn)
  # Anything else: an Einsum with jax's output order (batch, lhs free, rhs free).
  letters = iter("abcdefghijklmnopqrstuvwxyz")
  lhs_sub = [next(letters) for _ in range(lhs_rank)]
  rhs_sub = [None] * rhs_rank
  for lc, rc in zip(lhs_c, rhs_c):
    rhs_sub[rc] = lhs_sub[lc]
  for lb, rb in zip(lhs_b, rhs_b):
    rhs_sub[rb] = lhs_sub[lb]
  rhs_sub = [s or next(letters) for s in rhs_sub]
  out_sub = ([lhs_sub[i] for i in lhs_b]
             + [s for i, s in enumerate(lhs_sub) if i not in lhs_c and i not in lhs_b]
             + [s for i, s in enumerate(rhs_sub) if i not in rhs_c and i not in rhs_b])
  equation = f"{''.join(lhs_sub)},{''.join(rhs_sub)}->{''.join(out_sub)}"
  out = g.node("Einsum", [g.tensor(lhs), g.tensor(rhs)], equation=equation)
  return _cast_to(g, out, eqn)


def _cast_to(g, out, eqn):
  want = eqn.outvars[0].aval.dtype
  if np.dtype(want) != np.dtype(eqn.invars[0].aval.dtype):
    out = g.node("Cast", [out], to=_onnx_dtype(want))
  return [out]


def _conv_general_dilated(g, eqn, ins):
  p = eqn.params
  if any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
    raise NotImplementedError("ONNX export: transposed or batch-grouped convolution")
  lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
  x = g.tensor(ins[0])
  if tuple(lhs_spec) != tuple(range(len(lhs_spec))):  # to ONNX's (N, C, spatial...).
    x = g.node("Transpose", [x], perm=list(lhs_spec))
  kernel = ins[1]
  if isinstance(kernel, np.ndarray):  # to ONNX's (O, I / group, spatial...).
    kernel = np.ascontiguousarray(np.transpose(kernel, rhs_spec))
  else:
    kernel = g.node("Transpose", [kernel], perm=list(rhs_spec))
  padding = p["padding"]
  y = g.node("Conv", [x, g.tensor(kernel)], strides=list(p["window_strides"]),
             pads=[lo for lo, _ in padding] + [hi for _, hi in padding],
             dilations=list(p["rhs_dilation"]), group=int(p["feature_group_count"]))
  if tuple(out_spec) != tuple(range(len(out_spec))):
    y = g.node("Transpose", [y], perm=[int(i) for i in np.argsort(out_spec)])
  return [y]


def _reduce(op):
  def handler(g, eqn, ins):
    axes = [int(a) for a in eqn.params["axes"]]
    if op == "ReduceSum":  # axes is an input from opset 13, an attribute for the others.
      return [g.node(op, [g.tensor(ins[0]), g.int64(axes)], keepdims=0)]
    return [g.node(op, [g.tensor(ins[0])], axes=axes, keepdims=0)]
  return handler


_HANDLERS: dict[str, Callable] = {
    **{name: _binary for name in _BINARY}, "max": _min_max, "min": _min_max,
    **{name: _unary for name in _UNARY},
    "rsqrt": _rsqrt, "square": _square, "integer_pow": _integer_pow, "clamp": _clamp,
    "convert_element_type": _convert_element_type, "copy": _identity, "copy_p": _identity,
    "broadcast_in_dim": _broadcast_in_dim, "reshape": _reshape, "squeeze": _squeeze,
    "transpose": _transpose, "concatenate": _concatenate, "pad": _pad, "slice": _slice,
    "dot_general": _dot_general, "conv_general_dilated": _conv_general_dilated,
    "reduce_sum": _reduce("ReduceSum"), "reduce_max": _reduce("ReduceMax"),
    "reduce_min": _reduce("ReduceMin"),
}


def jaxpr_to_onnx(fn: Callable, input_spec: jax.ShapeDtypeStruct, input_name: str,
                  output_names: Sequence[str], opset: int = ONNX_OPSET):
  """An onnx.ModelProto computing `fn` (one array in, a tuple of arrays out).

  Symbolic dimensions of `input_spec` become dynamic ONNX dimensions of that name.
  """
  import onnx  # pylint: disable=g-import-not-at-top
  from onnx import helper  # pylint: disable=g-import-not-at-top

  closed = jax.make_jaxpr(fn)(input_spec)
  g = _OnnxGraph()
  for axis, d in enumerate(input_spec.shape):
    if not isinstance(d, (int, np.integer)):
      g.dim_sources.setdefault(str(d), (input_name, axis))
  outs = _convert_jaxpr(g, closed.jaxpr, closed.consts, [input_name])
  if len(outs) != len(output_names):
    raise ValueError(f"{len(outs)} outputs, {len(output_names)} names")

  def dims(shape):
    return [int(d) if isinstance(d, (int, np.integer)) else str(d) for d in shape]

  outputs = []
  for value, name, aval in zip(outs, output_names, closed.out_avals):
    g.nodes.append(helper.make_node("Identity", [g.tensor(value)], [name]))
    outputs.append(helper.make_tensor_value_info(name, _onnx_dtype(aval.dtype), dims(aval.shape)))
  g.prune(output_names)
  graph = helper.make_graph(
      g.nodes, "asmnet", [helper.make_tensor_value_info(
          input_name, _onnx_dtype(input_spec.dtype), dims(input_spec.shape))],
      outputs, initializer=g.initializers)
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                            producer_name="asmnet_jax.export")
  model.ir_version = min(model.ir_version, 8)  # readable by older runtimes too.
  onnx.checker.check_model(model)
  return model


def to_onnx(model: InferenceModel, depthwise_impl: str = ONNX_DEPTHWISE):
  """The folded network as an onnx.ModelProto: images -> (landmarks, pose degrees)."""
  fn = model.with_depthwise_impl(depthwise_impl).apply
  return jaxpr_to_onnx(fn, signature.image_spec(model.image_size), signature.INPUT_NAME,
                       signature.OUTPUT_NAMES)
