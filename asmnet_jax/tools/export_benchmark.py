"""Milliseconds per face of the exported network forms on this machine's CPU.

    python -m asmnet_jax.tools.export_benchmark [--image_size 224] [--workdir DIR]

Prints one JSON line per form, the median of --runs timed calls after --warmup:
  jax_jit          the BN-folded Flax module under jax.jit (depthwise "auto",
                   `compile_options.inference_options()`);
  jax_export       model.stablehlo.bin reloaded by `convert.load_stablehlo`;
  onnxruntime      model.onnx in onnxruntime's CPU provider.
Without --workdir the network is untrained (`testing.random_model`): timings
do not depend on the weights, so this runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from asmnet_jax import testing
from asmnet_jax.export import convert
from asmnet_jax.inference import predictor
from asmnet_jax.runtime import compile_options
from asmnet_jax.runtime import machine


def median_ms(fn: Callable[[], Any], runs: int, warmup: int) -> float:
  """Median wall time of fn() in milliseconds (fn must block until done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def benchmark(model: predictor.InferenceModel, batch_size: int = 1, runs: int = 50,
              warmup: int = 5, forms: Sequence[str] = ("jax_jit", "jax_export", "onnxruntime"),
              onnx_threads: int = 0) -> list[dict[str, Any]]:
  """One result dict per form (ms_per_face = median ms per call / batch_size)."""
  s = model.image_size
  images = np.random.default_rng(0).random((batch_size, s, s, 3), dtype=np.float32)
  runners: dict[str, Callable[[], Any]] = {}
  with tempfile.TemporaryDirectory() as tmp:
    formats = [f for f, form in (("stablehlo", "jax_export"), ("onnx", "onnxruntime"))
               if form in forms]
    convert.write_exports(model, tmp, formats)
    if "jax_jit" in forms:
      fn = compile_options.jit_inference(model.forward)
      runners["jax_jit"] = lambda: jax.block_until_ready(fn(model.variables, images))
    if "jax_export" in forms:
      loaded = convert.load_stablehlo(os.path.join(tmp, convert.STABLEHLO_FILE))
      runners["jax_export"] = lambda: jax.block_until_ready(loaded(images))
    if "onnxruntime" in forms:
      import onnxruntime as ort  # pylint: disable=g-import-not-at-top
      options = ort.SessionOptions()
      options.intra_op_num_threads = onnx_threads  # 0: onnxruntime's default.
      session = ort.InferenceSession(os.path.join(tmp, convert.ONNX_FILE), options,
                                     providers=["CPUExecutionProvider"])
      runners["onnxruntime"] = lambda: session.run(None, {"images": images})
    results = []
    for form, run in runners.items():
      ms = median_ms(run, runs, warmup)
      results.append({
          "form": form, "model": model.model_name, "image_size": s,
          "num_landmarks": model.num_landmarks, "batch_size": batch_size,
          "ms_per_face": round(ms / batch_size, 3), "ms_per_call": round(ms, 3),
          "runs": runs, "statistic": "median", **machine.machine_record()})
  return results


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
  parser = argparse.ArgumentParser(prog="python -m asmnet_jax.tools.export_benchmark",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default=None,
                      help="a train.py work directory (default: an untrained network)")
  parser.add_argument("--checkpoint", default="best", choices=("best", "latest"))
  parser.add_argument("--model", default="asmnet", choices=("asmnet", "mnv2"))
  parser.add_argument("--num_landmarks", type=int, default=68)
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--batch_size", type=int, default=1)
  parser.add_argument("--runs", type=int, default=50)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--forms", default="jax_jit,jax_export,onnxruntime")
  parser.add_argument("--onnx_threads", type=int, default=0,
                      help="onnxruntime intra-op threads (0: its default)")
  args = parser.parse_args(argv)
  if args.workdir:
    model = predictor.load_workdir(args.workdir, args.checkpoint)
  else:
    model = testing.random_model(args.model, args.num_landmarks, args.image_size)
  results = benchmark(model, args.batch_size, args.runs, args.warmup,
                      [f.strip() for f in args.forms.split(",") if f.strip()],
                      args.onnx_threads)
  for result in results:
    print(json.dumps(result), flush=True)
  return results


if __name__ == "__main__":
  main()
