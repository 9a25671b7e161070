"""The pretrained model shipped inside the package, and the command that makes one.

A bundle is one `.npz` file (no pickle): the BN-folded parameters, flattened with
"/"-joined names, stored as float16 (half the size; the folded network's outputs move
by far less than a pixel, `tests/test_pretrained.py`), plus a JSON entry
`__metadata__` with what `InferenceModel` needs (model name, landmark count, input
size, pose scale, crop margin, and the re-crop scale and test-time views where they
are not the plain ones) and where the weights came from (the training config, its
step, the command that reproduces it).

    python -m asmnet_jax.inference.pretrained --workdir workdirs/photo \\
        --out asmnet_jax/assets/pretrained/asmnet_68.npz [--recrop_scale 1.04,1.04] \\
        [--tta_scales 0.925,1.075,1.225]

`load_bundle()` with no argument reads the bundled file; `Predictor.pretrained()`
wraps it. A damaged file gives a `BundleError` that names it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from flax import traverse_util

from asmnet_jax import cli
from asmnet_jax.core import mirror
from asmnet_jax.inference.model import (InferenceModel, load_checkpoint, load_workdir,
                                        validate_recrop_scale, validate_tta)
from asmnet_jax.nn import models
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib

BUNDLE_FORMAT = "asmnet_jax pretrained"
BUNDLE_VERSION = 1
METADATA_KEY = "__metadata__"
PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets",
                              "pretrained")
DEFAULT_BUNDLE = os.path.join(PRETRAINED_DIR, "asmnet_68.npz")


class BundleError(ValueError):
  """A pretrained bundle that cannot be read (the message names the file)."""


def save_bundle(model: InferenceModel, path: str, provenance: dict[str, Any] | None = None,
                dtype: Any = np.float16) -> dict[str, Any]:
  """Writes `model` (BN-folded) to `path` as a bundle; returns its metadata."""
  flat = traverse_util.flatten_dict(jax.device_get(model.variables["params"]), sep="/")
  arrays = {name: np.asarray(value).astype(dtype) for name, value in flat.items()}
  meta = {
      "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
      "model": model.model_name, "num_landmarks": model.num_landmarks,
      "image_size": model.image_size, "pose_scale_deg": model.pose_scale_deg,
      "eval_margin": model.eval_margin, "step": model.step,
      "dtype": np.dtype(dtype).name, "provenance": provenance or {},
  }
  if model.mirror_map is not None:
    meta["mirror_map"] = [int(i) for i in model.mirror_map]
  if tuple(model.recrop_scale) != (1.0, 1.0):
    meta["recrop_scale"] = [float(v) for v in model.recrop_scale]
  if (tuple(model.tta_scales), tuple(model.tta_rotations)) != ((1.0,), (0.0,)):
    meta["tta_scales"] = [float(v) for v in model.tta_scales]
    meta["tta_rotations"] = [float(v) for v in model.tta_rotations]
  arrays[METADATA_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez_compressed(tmp, **arrays)
  os.replace(tmp, path)  # never a half-written bundle under the real name.
  return meta


def read_metadata(path: str = DEFAULT_BUNDLE) -> dict[str, Any]:
  """The JSON metadata of a bundle (without loading the weights)."""
  return _read(path, weights=False)[0]


def _read(path: str, weights: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  if not os.path.isfile(path):
    raise BundleError(f"{path}: no pretrained bundle here (reinstall asmnet-jax, or train "
                      "one and pass --workdir)")
  try:
    with np.load(path, allow_pickle=False) as data:
      meta = json.loads(bytes(data[METADATA_KEY]).decode())
      arrays = {k: data[k] for k in data.files if k != METADATA_KEY} if weights else {}
  except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, UnicodeDecodeError) as e:
    raise BundleError(f"{path}: corrupt pretrained bundle ({type(e).__name__}: {e}); "
                      "reinstall asmnet-jax or rebuild it") from e
  if meta.get("format") != BUNDLE_FORMAT or meta.get("version") != BUNDLE_VERSION:
    raise BundleError(f"{path}: not a version-{BUNDLE_VERSION} asmnet_jax bundle "
                      f"(format {meta.get('format')!r}, version {meta.get('version')!r})")
  return meta, arrays


def load_bundle(path: str = DEFAULT_BUNDLE) -> InferenceModel:
  """The BN-folded float32 network of a bundle (default: the one in the package)."""
  meta, arrays = _read(path)
  module = models.create_model(meta["model"], int(meta["num_landmarks"])).clone(folded=True)
  size = int(meta["image_size"])
  expected = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, size, size, 3)))
  expected = traverse_util.flatten_dict(expected["params"], sep="/")
  problems = sorted(set(expected) ^ set(arrays))
  problems += [f"{k}: {arrays[k].shape} != {v.shape}" for k, v in expected.items()
               if k in arrays and arrays[k].shape != v.shape]
  if problems:
    raise BundleError(f"{path}: the weights do not fit a {meta['model']} network with "
                      f"{meta['num_landmarks']} landmarks: {', '.join(problems[:5])}")
  params = traverse_util.unflatten_dict(
      {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()}, sep="/")
  return InferenceModel(module, {"params": params}, image_size=size,
                        num_landmarks=int(meta["num_landmarks"]), model_name=meta["model"],
                        pose_scale_deg=float(meta["pose_scale_deg"]),
                        eval_margin=float(meta["eval_margin"]), step=meta["step"],
                        source=os.path.abspath(path), mirror_map=_mirror_map(meta, path),
                        recrop_scale=_recrop_scale(meta, path), **_tta(meta, path))


def _recrop_scale(meta: dict[str, Any], path: str) -> tuple[float, float]:
  """The bundle's re-crop scale (width, height), checked; (1, 1) when it has none."""
  scale = meta.get("recrop_scale", (1.0, 1.0))
  try:
    return validate_recrop_scale(scale)
  except ValueError as e:
    raise BundleError(f"{path}: bad recrop_scale ({e})") from e


def _tta(meta: dict[str, Any], path: str) -> dict[str, tuple[float, ...]]:
  """The bundle's test-time augmentation, checked; none (one plain view) when it has none."""
  try:
    scales, rotations = validate_tta(meta.get("tta_scales", (1.0,)),
                                     meta.get("tta_rotations", (0.0,)))
  except ValueError as e:
    raise BundleError(f"{path}: bad test-time augmentation ({e})") from e
  return {"tta_scales": scales, "tta_rotations": rotations}


def _mirror_map(meta: dict[str, Any], path: str) -> tuple[int, ...] | None:
  """The bundle's own mirror map (a model of a declared scheme), checked; None: the
  built-in one of its point count applies."""
  if meta.get("mirror_map") is None:
    return None
  try:
    perm = mirror.validate_permutation(np.asarray(meta["mirror_map"]), int(meta["num_landmarks"]))
  except ValueError as e:
    raise BundleError(f"{path}: bad mirror_map ({e})") from e
  return tuple(int(i) for i in perm)


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", None, "train.py work directory to bundle.", required=True,
                      flag_values=fv)
  flags.DEFINE_string("checkpoint", "best", '"best", "latest", or a step directory.',
                      flag_values=fv)
  flags.DEFINE_string("out", DEFAULT_BUNDLE, "The bundle file to write.", flag_values=fv)
  flags.DEFINE_string("command", "", "The command that trained the work directory "
                      "(recorded in the bundle).", flag_values=fv)
  flags.DEFINE_list("recrop_scale", ["1", "1"], "Width and height factors of the "
                    "re-crop box (`InferenceModel.recrop_scale`), measured on real "
                    "development photos (docs/scoring_photos.md).", flag_values=fv)
  flags.DEFINE_list("tta_scales", ["1"], "Test-time augmentation: box factors of the "
                    "crops averaged per face (`InferenceModel.tta_scales`).", flag_values=fv)
  flags.DEFINE_list("tta_rotations", ["0"], "Test-time augmentation: rotations "
                    "(degrees) of the crops averaged per face.", flag_values=fv)


def _run(fv: flags.FlagValues) -> None:
  with cli.reported(FileNotFoundError, ValueError):
    config = config_lib.load_config(fv.workdir)
    if fv.checkpoint in checkpoints.CHECKPOINT_CHOICES:  # past damaged ones.
      model = load_workdir(fv.workdir, fv.checkpoint)
    else:
      model = load_checkpoint(fv.checkpoint, config)
    step_dir = model.source
    scales, rotations = validate_tta(fv.tta_scales, fv.tta_rotations)
    model = dataclasses.replace(
        model, recrop_scale=validate_recrop_scale(fv.recrop_scale), tta_scales=scales,
        tta_rotations=rotations)
  provenance = {"config": json.loads(config.to_json_best_effort()), "command": fv.command,
                "checkpoint": os.path.relpath(step_dir, fv.workdir)}
  meta = save_bundle(model, fv.out, provenance)
  size_mb = os.path.getsize(fv.out) / 2**20
  print(f"wrote {fv.out} ({size_mb:.1f} MiB): {meta['model']}, {meta['num_landmarks']} "
        f"landmarks, {meta['image_size']} px, step {meta['step']}")


def main(argv: Sequence[str] | None = None) -> int:
  return cli.run(define_flags, _run, argv)


if __name__ == "__main__":
  raise SystemExit(main())
