"""Exports: StableHLO reloaded without the model code and ONNX in onnxruntime equal
JAX at batch 1 and 3 (dynamic batch); the ONNX translator; the benchmark CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax import export
from asmnet_jax import testing
from asmnet_jax.export import __main__ as export_cli
from asmnet_jax.inference import predictor
from configs import synthetic

IMAGE_SIZE = 64
ATOL = 1e-4  # float32 tolerance, on landmarks and on pose / pose_scale_deg.


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """(out dir, metadata, model, images (4, S, S, 3), JAX landmarks, JAX pose) of an
  untrained work directory exported with the CLI."""
  pytest.importorskip("onnx")
  config = synthetic.get_config()
  config.image_size = IMAGE_SIZE
  workdir = testing.save_untrained_workdir(
      str(tmp_path_factory.mktemp("workdir")), config, seed=1, step=3)
  out = str(tmp_path_factory.mktemp("export"))
  assert export_cli.main(["--workdir", workdir, "--out", out, "--no_check"]) == 0
  with open(os.path.join(out, export.METADATA_FILE)) as f:
    meta = json.load(f)
  model = predictor.load_workdir(workdir)
  images = np.random.default_rng(0).random((4, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
  landmarks, pose = (np.asarray(a) for a in jax.jit(model.apply)(images))
  assert np.std(landmarks, axis=0).mean() > 1e-2  # outputs depend on the input.
  return out, meta, model, images, landmarks, pose


def _assert_close(model, got_landmarks, got_pose, want_landmarks, want_pose):
  np.testing.assert_allclose(got_landmarks, want_landmarks, atol=ATOL, rtol=0)
  np.testing.assert_allclose(np.asarray(got_pose) / model.pose_scale_deg,
                             want_pose / model.pose_scale_deg, atol=ATOL, rtol=0)


def test_metadata(exported):
  out, meta, model, *_ = exported
  # Both formats by default, for this backend, and nothing else in model.json.
  assert meta == export.metadata(model, {"stablehlo": export.STABLEHLO_FILE,
                                         "onnx": export.ONNX_FILE}, [jax.default_backend()])
  assert (meta["image_size"], meta["num_landmarks"], meta["step"]) == (IMAGE_SIZE, 68, 3)
  assert meta["input"]["shape"] == ["batch", IMAGE_SIZE, IMAGE_SIZE, 3]
  assert meta["outputs"]["landmarks"]["shape"] == ["batch", 68, 2]
  assert meta["outputs"]["pose"]["units"] == "degrees"
  assert meta["crop"]["eval_margin"] == model.eval_margin == 0.05
  for name in meta["files"].values():
    assert os.path.getsize(os.path.join(out, name)) > 1_000_000  # weights inside.


def test_onnx_matches_jax_with_dynamic_batch(exported):
  ort = pytest.importorskip("onnxruntime")
  out, meta, model, images, landmarks, pose = exported
  session = ort.InferenceSession(os.path.join(out, meta["files"]["onnx"]),
                                 providers=["CPUExecutionProvider"])
  (inp,), outs = session.get_inputs(), session.get_outputs()
  assert inp.name == "images" and inp.shape == ["batch", IMAGE_SIZE, IMAGE_SIZE, 3]
  assert [(o.name, o.shape) for o in outs] == [("landmarks", ["batch", 68, 2]),
                                              ("pose", ["batch", 3])]
  for part in (slice(0, 1), slice(1, 4)):
    got_landmarks, got_pose = session.run(None, {"images": images[part]})
    _assert_close(model, got_landmarks, got_pose, landmarks[part], pose[part])


_RELOAD_SCRIPT = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    with open(sys.argv[1], "rb") as f:
      exported = jax.export.deserialize(bytearray(f.read()))
    images = np.load(sys.argv[2])
    outs = {}
    for name, part in (("one", images[:1]), ("three", images[1:])):
      landmarks, pose = exported.call(part)
      outs[name + "_landmarks"], outs[name + "_pose"] = np.asarray(landmarks), np.asarray(pose)
    loaded = [m for m in sys.modules if m.startswith(("asmnet_jax", "flax"))]
    assert not loaded, loaded
    np.savez(sys.argv[3], shape=str(exported.in_avals[0].shape), **outs)
""")


@pytest.mark.slow
def test_stablehlo_reloads_without_model_code(exported, tmp_path):
  out, meta, model, images, landmarks, pose = exported
  np.save(tmp_path / "images.npy", images)
  # A fresh interpreter outside the repository: no asmnet_jax, no flax.
  subprocess.run([sys.executable, "-c", _RELOAD_SCRIPT,
                  os.path.join(out, meta["files"]["stablehlo"]), str(tmp_path / "images.npy"),
                  str(tmp_path / "outs.npz")], check=True, cwd=tmp_path, timeout=300)
  with np.load(tmp_path / "outs.npz") as outs:
    assert str(outs["shape"]) == f"(batch, {IMAGE_SIZE}, {IMAGE_SIZE}, 3)"
    _assert_close(model, outs["one_landmarks"], outs["one_pose"], landmarks[:1], pose[:1])
    _assert_close(model, outs["three_landmarks"], outs["three_pose"], landmarks[1:], pose[1:])


def test_stablehlo_signature(exported):
  out, meta, *_ = exported
  with open(os.path.join(out, meta["files"]["stablehlo"]), "rb") as f:
    reloaded = jax.export.deserialize(bytearray(f.read()))
  assert reloaded.platforms == (jax.default_backend(),)
  (images,) = reloaded.in_avals
  assert jax.export.is_symbolic_dim(images.shape[0])
  assert images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == jnp.float32
  assert [a.shape[1:] for a in reloaded.out_avals] == [(68, 2), (3,)]


def test_multi_platform_stablehlo_lowers():
  """An export for CPU and CUDA (lowered here without a GPU)."""
  model = testing.random_model(image_size=32)
  multi = export.export_stablehlo(model, platforms=("cpu", "cuda"))
  assert multi.platforms == ("cpu", "cuda")


def test_translator_on_other_primitives():
  """Primitives the network does not use: a general dot (Einsum), transpose, a
  symbolic-batch broadcast (Expand), reductions, powers, clamp and casts."""
  ort = pytest.importorskip("onnxruntime")
  rng = np.random.default_rng(0)
  w = rng.normal(size=(3, 5, 4)).astype(np.float32)

  def fn(x):  # x (b, 4, 5)
    y = jnp.einsum("bij,kji->bk", x, w)  # contracts two axes.
    z = jnp.transpose(x, (0, 2, 1)) ** 2 + jnp.broadcast_to(1.5, x.shape[:1] + (5, 4))
    m = jnp.max(z, axis=(1, 2)) - jnp.min(x, axis=1).sum(-1)
    c = jnp.clip(x, -0.5, 0.7).astype(jnp.float32).reshape(x.shape[0], -1)
    return y, m, jnp.exp(-jnp.abs(c)) * jax.nn.sigmoid(c), jnp.sqrt(jax.lax.rsqrt(z + 1.0))

  spec = jax.ShapeDtypeStruct((jax.export.symbolic_shape("b")[0], 4, 5), jnp.float32)
  proto = export.jaxpr_to_onnx(fn, spec, "x", ("y", "m", "c", "r"))
  session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
  for batch in (1, 3):
    x = rng.normal(size=(batch, 4, 5)).astype(np.float32)
    for got, want in zip(session.run(None, {"x": x}), fn(x)):
      np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-5)


def test_translator_names_an_unknown_primitive():
  pytest.importorskip("onnx")
  spec = jax.ShapeDtypeStruct((3, 4), jnp.float32)
  with pytest.raises(NotImplementedError, match="'sort'"):
    export.jaxpr_to_onnx(lambda x: (jnp.sort(x, axis=1),), spec, "x", ("y",))


@pytest.mark.slow
def test_benchmark_prints_a_line_per_form(capsys):
  pytest.importorskip("onnxruntime")
  from asmnet_jax.tools import export_benchmark  # pylint: disable=g-import-not-at-top
  assert export_benchmark.main(["--image_size", "32", "--runs", "2", "--warmup", "1"]) == 0
  results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [r["form"] for r in results] == ["jax_jit", "jax_export", "onnxruntime"]
  assert all(r["ms_per_face"] > 0 and r["batch_size"] == 1 for r in results)
