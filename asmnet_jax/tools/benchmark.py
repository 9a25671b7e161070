"""Speed and size benchmark of the networks: `python -m asmnet_jax.tools.benchmark`.

Prints one JSON line per model with:
  model, num_landmarks, image_size, batch_size, dtype,
  params_trainable, params_bn_stats: `models.count_parameters`;
  flops_b1: XLA's cost analysis of the compiled eval forward pass at batch 1 and
    image_size (a multiply-add counts as 2 FLOPs, so it compares with the paper's
    516,345,794 for ASMNet-68 at 224x224; elementwise BN/ReLU6 work is included);
  train_img_per_s: images/s of one full jitted training step (forward, loss,
    backward, Adam update; MSE on landmarks + 0.5 MSE on pose) at batch_size,
    median over `steps` timed steps after a warm-up; train_img_per_s_best from the
    fastest step; train_cpu_s_per_step: median process CPU seconds per step (all
    threads, thread-pool spinning included);
  infer_ms_b1: median ms of one eval forward pass at batch 1 (BN folded, compiled
    with `compile_options.inference_options()`), over max(10 * steps, 50) calls;
    infer_ms_b1_best: the fastest call; infer_ms_b1_default_options: the same graph
    compiled with XLA's default options, timed in alternating rounds with the other
    so that both see the same machine load;
  infer_img_per_s_b64: images/s of the eval forward pass at batch 64 (BN folded,
    inference options);
  cpu, cpu_count, load_avg_1min, device, jax: the machine (`machine.machine_record`);
  glibc_tunables: the allocator settings the process ran with (below).

Allocator: the command re-executes itself with `allocator.RECOMMENDED_GLIBC_TUNABLES`
(unless --malloc=default or GLIBC_TUNABLES is set); see asmnet_jax/runtime/allocator.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from asmnet_jax.nn import models
from asmnet_jax.runtime import allocator
from asmnet_jax.runtime import compile_options
from asmnet_jax.runtime import machine


def _alternating_latencies(fns: Sequence[Callable[[], Any]], calls: int,
                           rounds: int = 10) -> list[tuple[float, float]]:
  """(median, min) wall seconds of each blocking `fn()`, timed in `rounds` alternating
  rounds of about calls / rounds calls each, after one warm-up call apiece."""
  times: list[list[float]] = [[] for _ in fns]
  for fn in fns:
    fn()
  for _ in range(rounds):
    for fn, out in zip(fns, times):
      for _ in range(max(calls // rounds, 1)):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
  return [(statistics.median(t), min(t)) for t in times]


def _timings(fn: Callable[[], Any], steps: int) -> tuple[float, float, float]:
  """(median, min) wall seconds and median process CPU seconds of `fn()` (which
  must block) over `steps` calls, after one warm-up call."""
  fn()
  wall, cpu = [], []
  for _ in range(max(steps, 1)):
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    wall.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
  return statistics.median(wall), min(wall), statistics.median(cpu)


def make_train_step(model, tx: optax.GradientTransformation) -> Callable:
  """Jitted (params, batch_stats, opt_state, images, landmarks, pose, key) ->
  (params, batch_stats, opt_state, loss); the state arguments are donated."""

  def loss_fn(params, batch_stats, images, landmarks, pose, key):
    (pred_landmarks, pred_pose), updates = model.apply(
        {"params": params, "batch_stats": batch_stats}, images, train=True,
        rngs={"dropout": key}, mutable=["batch_stats"])
    loss = (jnp.mean(jnp.square(pred_landmarks - landmarks))
            + 0.5 * jnp.mean(jnp.square(pred_pose - pose)))
    return loss, updates["batch_stats"]

  def step(params, batch_stats, opt_state, images, landmarks, pose, key):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, images, landmarks, pose, key)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  return jax.jit(step, donate_argnums=(0, 1, 2))


def flops_of(fn: Callable, *args) -> float | None:
  """XLA's FLOP estimate of the compiled `fn(*args)`, or None if unavailable."""
  try:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  except Exception:  # pylint: disable=broad-except  # backend without cost analysis
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost["flops"]) if cost and "flops" in cost else None


def benchmark_model(
    name: str,
    num_landmarks: int,
    *,
    batch_size: int = 50,
    image_size: int = 224,
    steps: int = 5,
    infer_batch: int = 64,
    dtype: Any = jnp.float32,
    depthwise_impl: str = "auto",
) -> dict[str, Any]:
  """Measures one model; returns the JSON record described in the module doc."""
  model = models.create_model(name, num_landmarks, dtype=dtype, depthwise_impl=depthwise_impl)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(size=(batch_size, image_size, image_size, 3)),
                       jnp.float32)
  landmarks = jnp.asarray(rng.uniform(-0.5, 0.5, (batch_size, num_landmarks, 2)),
                          jnp.float32)
  pose = jnp.asarray(rng.normal(0, 20, (batch_size, 3)), jnp.float32)
  variables = jax.jit(lambda k, x: model.init(k, x, train=False))(
      jax.random.key(0, impl="rbg"), images[:1])  # rbg: compiles faster than threefry.
  trainable, bn_stats = models.count_parameters(variables)

  # Inference: BN folded, as a deployed predictor would run it.
  infer_model, infer_vars = models.fold_batch_norm(model, variables)
  infer = compile_options.jit_inference(infer_model.apply)
  infer_default_options = jax.jit(infer_model.apply)
  one = images[:1]
  flops = flops_of(infer_model.apply, infer_vars,
                   jnp.zeros((1, image_size, image_size, 3), jnp.float32))
  (infer_s, infer_best_s), (infer_default_s, _) = _alternating_latencies(
      [lambda: jax.block_until_ready(infer(infer_vars, one)),
       lambda: jax.block_until_ready(infer_default_options(infer_vars, one))],
      max(steps * 10, 50))
  many = jnp.tile(images[:1], (infer_batch, 1, 1, 1))
  many_s, _, _ = _timings(lambda: jax.block_until_ready(infer(infer_vars, many)), steps)

  # Training: the full step incl. Adam, state donated as a real loop would.
  tx = optax.adam(1e-3)
  train_step = make_train_step(model, tx)
  state = [variables["params"], variables["batch_stats"], tx.init(variables["params"])]
  key = jax.random.key(1)

  def run_step():
    out = train_step(*state, images, landmarks, pose, key)
    jax.block_until_ready(out)
    state[:3] = out[:3]

  train_s, train_best_s, train_cpu_s = _timings(run_step, steps)
  return {
      "model": name,
      "num_landmarks": num_landmarks,
      "image_size": image_size,
      "batch_size": batch_size,
      "dtype": jnp.dtype(dtype).name,
      "depthwise_impl": depthwise_impl,
      "params_trainable": trainable,
      "params_bn_stats": bn_stats,
      "flops_b1": flops,
      "train_img_per_s": round(batch_size / train_s, 3),
      "train_img_per_s_best": round(batch_size / train_best_s, 3),
      "train_cpu_s_per_step": round(train_cpu_s, 3),
      "infer_ms_b1": round(1e3 * infer_s, 3),
      "infer_ms_b1_best": round(1e3 * infer_best_s, 3),
      "infer_ms_b1_default_options": round(1e3 * infer_default_s, 3),
      "inference_options": compile_options.inference_options(),
      "infer_img_per_s_b64": round(infer_batch / many_s, 3),
      **machine.machine_record(),
      "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
  }


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="asmnet,mnv2",
                      help="comma-separated model names (asmnet, mnv2)")
  parser.add_argument("--num_landmarks", type=int, default=68)
  parser.add_argument("--batch_size", type=int, default=50, help="training batch")
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--steps", type=int, default=5, help="timed repetitions")
  parser.add_argument("--infer_batch", type=int, default=64)
  parser.add_argument("--dtype", default="float32", help="compute dtype, e.g. bfloat16")
  parser.add_argument("--depthwise_impl", default="auto",
                      help="auto, shift_vjp, shift or lax (see kernels.depthwise_conv)")
  parser.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                      help="tuned: re-execute with allocator.RECOMMENDED_GLIBC_TUNABLES unless "
                           "GLIBC_TUNABLES is already set (command line only)")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
  """Runs the benchmark; prints one JSON line per model."""
  args = _parse_args(argv)
  for name in filter(None, args.models.split(",")):
    record = benchmark_model(
        name, args.num_landmarks, batch_size=args.batch_size, image_size=args.image_size,
        steps=args.steps, infer_batch=args.infer_batch, dtype=jnp.dtype(args.dtype),
        depthwise_impl=args.depthwise_impl)
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
  if _parse_args(sys.argv[1:]).malloc == "tuned":
    allocator.reexec_with_tuned_malloc(["-m", "asmnet_jax.tools.benchmark", *sys.argv[1:]])
  main(sys.argv[1:])
