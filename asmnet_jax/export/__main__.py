"""Exports the BN-folded network as serialized StableHLO (`jax.export`) and ONNX.

    python -m asmnet_jax.export --workdir DIR --out OUT [--checkpoint best|latest]
        [--formats stablehlo,onnx] [--platforms cpu,cuda] [--no_check]

writes into OUT (`asmnet_jax.export.bundle`):
  model.stablehlo.bin  `jax.export` serialization; runs with JAX alone, no model code:
                           exported = jax.export.deserialize(open(path, "rb").read())
                           landmarks, pose = exported.call(images)
  model.onnx           the same network as an ONNX graph (opset 17), e.g. for
                       onnxruntime.InferenceSession(path).run(None, {"images": images})
  model.json           metadata: image size, landmark count, conventions, units.
Inputs and outputs: `asmnet_jax.export.signature`. Unless --no_check, the exports
are compared with JAX on random images (the largest differences go into model.json
as check_max_abs_error) and the command fails (exit status 1) beyond 1e-4 (pose:
1e-4 * pose_scale_deg degrees). Prints {"out": OUT, "<format>": "<file>", ...}.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Sequence

from absl import flags

from asmnet_jax import cli
from asmnet_jax.export import bundle
from asmnet_jax.inference import model as model_lib

TOLERANCE = 1e-4  # float32 agreement, on landmarks and on pose / pose_scale_deg.


def define_flags(fv: flags.FlagValues) -> None:
  """The export command's flags."""
  flags.DEFINE_string("workdir", None, "A train.py work directory.", required=True,
                      flag_values=fv)
  flags.DEFINE_string("out", None, "Directory for the exported files.", required=True,
                      flag_values=fv)
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to export.",
                    flag_values=fv)
  flags.DEFINE_list("formats", list(bundle.FORMATS), "Comma-separated: stablehlo, onnx.",
                    flag_values=fv)
  flags.DEFINE_list("platforms", None, "StableHLO platforms, comma-separated (cpu, cuda, "
                    "rocm, tpu); default the current backend.", flag_values=fv)
  flags.DEFINE_boolean("no_check", False,
                       "Skip comparing the exports with JAX on random images.", flag_values=fv)


def _run(fv: flags.FlagValues) -> None:
  formats = [f.strip() for f in fv.formats if f.strip()]
  unknown = sorted(set(formats) - set(bundle.FORMATS))
  if unknown or not formats:
    raise cli.UsageError(f"--formats: unknown {unknown or formats}; use stablehlo and/or onnx")
  needed = ["onnx"] + ([] if fv.no_check else ["onnxruntime"]) if "onnx" in formats else []
  missing = [name for name in needed if importlib.util.find_spec(name) is None]
  if missing:
    raise cli.UsageError(f"--formats onnx needs {' and '.join(missing)}: "
                         "pip install 'asmnet-jax[export]' (or --formats stablehlo)")
  # Not a work directory, a bad config.json, no (readable) checkpoint.
  with cli.reported(FileNotFoundError, ValueError):
    model = model_lib.load_workdir(fv.workdir, fv.checkpoint)
  meta = bundle.write_exports(model, fv.out, formats, fv.platforms)
  if not fv.no_check:
    errors = bundle.check_exports(model, fv.out)
    meta["check_max_abs_error"] = errors
    with open(os.path.join(fv.out, bundle.METADATA_FILE), "w") as f:
      json.dump(meta, f, indent=2)
    limits = {"landmarks": TOLERANCE, "pose_deg": TOLERANCE * model.pose_scale_deg}
    bad = {name: err for name, err in errors.items()
           if not all(err[key] <= limit for key, limit in limits.items())}
    print(f"max |export - JAX|: {errors}", file=sys.stderr)
    if bad:
      raise cli.CommandError(f"exports differ from JAX beyond {limits}: {bad}")
  print(json.dumps({"out": os.path.abspath(fv.out), **meta["files"]}))


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command on `argv` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, _run, argv)


if __name__ == "__main__":
  sys.exit(main())
