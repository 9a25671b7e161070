"""Milliseconds per face of the exported network forms on this machine's CPU.

    python -m asmnet_jax.tools.export_benchmark [--image_size 224] [--workdir DIR]

Prints one JSON line per form, the median of --runs timed calls after --warmup:
  jax_jit          the BN-folded Flax module under jax.jit (depthwise "auto",
                   `compile_options.inference_options()`);
  jax_export       model.stablehlo.bin reloaded by `export.load_stablehlo`;
  onnxruntime      model.onnx in onnxruntime's CPU provider.
Without --workdir the network is untrained (`testing.random_model`): timings
do not depend on the weights, so this runs anywhere.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np
from absl import flags

from asmnet_jax import cli
from asmnet_jax import export
from asmnet_jax import testing
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
    export.write_exports(model, tmp, formats)
    if "jax_jit" in forms:
      fn = compile_options.jit_inference(model.forward)
      runners["jax_jit"] = lambda: jax.block_until_ready(fn(model.variables, images))
    if "jax_export" in forms:
      loaded = export.load_stablehlo(os.path.join(tmp, export.STABLEHLO_FILE))
      runners["jax_export"] = lambda: jax.block_until_ready(loaded(images))
    if "onnxruntime" in forms:
      import onnxruntime as ort  # pylint: disable=g-import-not-at-top
      options = ort.SessionOptions()
      options.intra_op_num_threads = onnx_threads  # 0: onnxruntime's default.
      session = ort.InferenceSession(os.path.join(tmp, export.ONNX_FILE), options,
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


FORMS = ("jax_jit", "jax_export", "onnxruntime")


def define_flags(fv: flags.FlagValues) -> None:
  """The benchmark's flags."""
  flags.DEFINE_string("workdir", None,
                      "A train.py work directory (default: an untrained network).",
                      flag_values=fv)
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "With --workdir: which one.",
                    flag_values=fv)
  flags.DEFINE_enum("model", "asmnet", ["asmnet", "mnv2"], "Without --workdir: the network.",
                    flag_values=fv)
  flags.DEFINE_integer("num_landmarks", 68, "Without --workdir: landmarks.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("image_size", 224, "Without --workdir: input side S in pixels.",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("batch_size", 1, "Faces per call.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("runs", 50, "Timed calls per form.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("warmup", 5, "Untimed calls before them.", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_list("forms", list(FORMS), f"Comma-separated forms to time: {', '.join(FORMS)}.",
                    flag_values=fv)
  flags.register_validator("forms", lambda forms: set(forms) <= set(FORMS),
                           f"--forms takes {', '.join(FORMS)}", flag_values=fv)
  flags.DEFINE_integer("onnx_threads", 0, "onnxruntime intra-op threads (0: its default).",
                       lower_bound=0, flag_values=fv)


def _run(fv: flags.FlagValues) -> None:
  if fv.workdir:
    with cli.reported(FileNotFoundError):  # not a work directory, no checkpoint yet.
      model = predictor.load_workdir(fv.workdir, fv.checkpoint)
  else:
    model = testing.random_model(fv.model, fv.num_landmarks, fv.image_size)
  results = benchmark(model, fv.batch_size, fv.runs, fv.warmup, fv.forms, fv.onnx_threads)
  for result in results:
    print(json.dumps(result), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the benchmark on `argv` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, _run, argv)


if __name__ == "__main__":
  sys.exit(main())
