"""The exported files in one directory: writing them, their metadata, checking them.

  model.stablehlo.bin  `jax.export` serialization (`asmnet_jax.export.stablehlo`).
  model.onnx           the same network as an ONNX graph, opset 17
                       (`asmnet_jax.export.onnx`; needs the `export` extra).
  model.json           `metadata`: image size, landmark count, conventions, units.

Both network forms have the signature of `asmnet_jax.export.signature`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import jax
import numpy as np

from asmnet_jax.export import onnx as onnx_export  # the translator; onnx itself is lazy.
from asmnet_jax.export import signature
from asmnet_jax.export import stablehlo
from asmnet_jax.inference.model import InferenceModel

STABLEHLO_FILE = "model.stablehlo.bin"
ONNX_FILE = "model.onnx"
METADATA_FILE = "model.json"
FORMATS = ("stablehlo", "onnx")


def metadata(model: InferenceModel, files: dict[str, str],
             platforms: Sequence[str]) -> dict[str, Any]:
  """What a user of the exported files needs to know (`signature`'s doc)."""
  s, n, batch = model.image_size, model.num_landmarks, signature.BATCH
  return {
      "format": "asmnet_jax export", "version": 1,
      "model": model.model_name, "num_landmarks": n, "image_size": s,
      "checkpoint": model.source, "step": model.step,
      "files": files,
      "input": {"name": signature.INPUT_NAME, "shape": [batch, s, s, 3], "dtype": "float32",
                "layout": "NHWC", "colour": "RGB", "range": [0.0, 1.0]},
      "outputs": {
          "landmarks": {
              "shape": [batch, n, 2], "dtype": "float32", "order": ["x", "y"],
              "units": "normalised crop coordinates",
              "convention": "x_norm = (x_px + 0.5) / S - 0.5 with x_px a 0-based "
                            "pixel-centre coordinate in the S x S input; the crop's "
                            "edges are at -0.5 and +0.5, its centre at 0"},
          "pose": {
              "shape": [batch, 3], "dtype": "float32", "order": ["yaw", "pitch", "roll"],
              "units": "degrees",
              "convention": "R = Rz(roll) Rx(pitch) Ry(yaw), camera x right, y down, z "
                            "into the scene; yaw > 0 turns the face to the image right, "
                            "pitch > 0 tilts it up, roll > 0 turns it clockwise"},
      },
      "crop": {
          "eval_margin": model.eval_margin,
          "description": "landmark bounding box plus eval_margin of its width (height) "
                         "on the left and right (top and bottom), resized to S x S "
                         "without keeping the aspect ratio (bilinear)"},
      "pose_scale_deg": model.pose_scale_deg,
      "stablehlo_platforms": list(platforms),
      "onnx_opset": onnx_export.ONNX_OPSET,
      "jax_version": jax.__version__,
  }


def write_exports(model: InferenceModel, out_dir: str,
                  formats: Sequence[str] = FORMATS,
                  platforms: Sequence[str] | None = None) -> dict[str, Any]:
  """Writes the chosen formats and the metadata JSON; returns the metadata.

  Raises:
    ValueError: for a format not in `FORMATS`.
  """
  unknown = set(formats) - set(FORMATS)
  if unknown:
    raise ValueError(f"unknown formats {sorted(unknown)}; use stablehlo and/or onnx")
  os.makedirs(out_dir, exist_ok=True)
  platforms = tuple(platforms) if platforms else (jax.default_backend(),)
  files = {}
  if "stablehlo" in formats:
    with open(os.path.join(out_dir, STABLEHLO_FILE), "wb") as f:
      f.write(stablehlo.export_stablehlo(model, platforms).serialize())
    files["stablehlo"] = STABLEHLO_FILE
  if "onnx" in formats:
    with open(os.path.join(out_dir, ONNX_FILE), "wb") as f:
      f.write(onnx_export.to_onnx(model).SerializeToString())
    files["onnx"] = ONNX_FILE
  meta = metadata(model, files, platforms)
  with open(os.path.join(out_dir, METADATA_FILE), "w") as f:
    json.dump(meta, f, indent=2)
  return meta


def check_exports(model: InferenceModel, out_dir: str,
                  batch_sizes: Sequence[int] = (1, 3), seed: int = 0
                  ) -> dict[str, dict[str, float]]:
  """Largest |exported - JAX| per written format and output, on random images.

  Pose errors are in degrees; compare them with tolerance * pose_scale_deg.
  """
  with open(os.path.join(out_dir, METADATA_FILE)) as f:
    files = json.load(f)["files"]
  rng = np.random.default_rng(seed)
  s = model.image_size
  images = rng.random((sum(batch_sizes), s, s, 3), dtype=np.float32)
  reference = [np.asarray(a) for a in jax.jit(model.apply)(images)]
  runners = {}
  if "stablehlo" in files:
    runners["stablehlo"] = stablehlo.load_stablehlo(os.path.join(out_dir, files["stablehlo"]))
  if "onnx" in files:
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top
    session = ort.InferenceSession(os.path.join(out_dir, files["onnx"]),
                                   providers=["CPUExecutionProvider"])
    runners["onnx"] = lambda x: session.run(None, {signature.INPUT_NAME: x})
  errors = {}
  for name, run in runners.items():
    worst = {"landmarks": 0.0, "pose_deg": 0.0}
    start = 0
    for b in batch_sizes:
      outs = run(images[start:start + b])
      for key, got, want in zip(worst, outs, reference):
        err = float(np.max(np.abs(np.asarray(got) - want[start:start + b])))
        worst[key] = max(worst[key], err)
      start += b
    errors[name] = worst
  return errors
