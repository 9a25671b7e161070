"""The benchmark times train.py's step and counts FLOPs right, at a tiny setting."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax import testing
from asmnet_jax.core import losses
from asmnet_jax.nn import models
from asmnet_jax.runtime import allocator
from asmnet_jax.runtime import machine
from asmnet_jax.tools import benchmark

KEYS = {"model", "num_landmarks", "params_trainable", "params_bn_stats", "flops_b1",
        "train_img_per_s", "infer_ms_b1", "infer_img_per_s_b64", "device", "image_size",
        "batch_size", "dtype", "glibc_tunables", "train_cpu_s_per_step", "infer_ms_b1_best",
        "infer_ms_b1_default_options", "inference_options", "cpu", "cpu_count", "jax",
        "train_step", "train_loss", "train_config", "asm_components", "train_loss_first_step"}
# The smallest run: the tiny network (the benchmark's code is the point; ASMNet's own
# sizes and numerics are test_models') at the smallest input, one timed step. Batch 4,
# not 2: BatchNorm over 2 images amplifies rounding (the losses below then differ by 2e-4).
TINY = {"num_landmarks": 98, "image_size": 32, "batch_size": 4}
TINY_ARGS = ["--models", "tiny", "--steps", "1", "--infer_batch", "2",
             *[arg for k, v in TINY.items() for arg in (f"--{k}", str(v))]]


def test_machine_record_names_the_cpu():
  record = machine.machine_record()
  assert record["cpu"] and record["cpu_count"] >= 1 and record["jax"]
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      families = {line.split(":")[1].strip() for line in f if line.startswith("cpu family")}
    if families:
      assert f"family {families.pop()}," in record["cpu"]


def test_flags_reach_the_benchmark(monkeypatch, capsys):
  calls = []

  def fake_benchmark_model(name, num_landmarks, **kwargs):
    calls.append((name, num_landmarks, kwargs))
    return {"model": name}

  monkeypatch.setattr(benchmark, "benchmark_model", fake_benchmark_model)
  status = benchmark.main(["--models", "mnv2,asmnet", "--num_landmarks", "98",
                           "--batch_size", "4", "--image_size", "64", "--steps", "2",
                           "--dtype", "bfloat16", "--depthwise_impl", "lax"])
  assert status == 0
  assert [c[:2] for c in calls] == [("mnv2", 98), ("asmnet", 98)]
  assert calls[0][2] == {"batch_size": 4, "image_size": 64, "steps": 2, "infer_batch": 64,
                         "dtype": "bfloat16", "depthwise_impl": "lax"}
  lines = capsys.readouterr().out.strip().splitlines()
  assert [json.loads(line)["model"] for line in lines] == ["mnv2", "asmnet"]


@pytest.mark.parametrize("args, message", [
    (["--models", "asmnet,resnet"], "--models=asmnet,resnet"),
    (["--models", "asmnet", "--image_size", "30"], "config.image_size=30"),
    (["--dtype", "float16"], "float16"),
])
def test_bad_values_stop_before_any_compile(monkeypatch, capsys, args, message):
  monkeypatch.setattr(benchmark, "benchmark_model", lambda *a, **k: pytest.fail("ran"))
  assert benchmark.main(args) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err


@pytest.fixture(scope="module")
def tiny_record() -> dict:
  """The one JSON line of the real command line at the tiny setting."""
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  out = subprocess.run([sys.executable, "-m", "asmnet_jax.tools.benchmark", *TINY_ARGS],
                       check=True, capture_output=True, text=True, env=env).stdout
  lines = out.strip().splitlines()
  assert len(lines) == 1
  return json.loads(lines[0])


@pytest.mark.slow
def test_command_line_prints_the_record(tiny_record):
  assert KEYS <= set(tiny_record)
  assert (tiny_record["model"], tiny_record["num_landmarks"]) == ("tiny", 98)
  variables = _abstract_variables(models.create_model("tiny", TINY["num_landmarks"]),
                                  TINY["image_size"])
  assert (tiny_record["params_trainable"] + tiny_record["params_bn_stats"]
          == sum(leaf.size for leaf in jax.tree.leaves(variables)))
  assert tiny_record["train_img_per_s"] > 0 and tiny_record["infer_ms_b1"] > 0
  # The command re-executed itself with the recommended allocator settings.
  assert tiny_record["glibc_tunables"] == allocator.RECOMMENDED_GLIBC_TUNABLES


def _abstract_variables(model, size: int):
  """The shapes of `model.init`'s variables for (1, size, size, 3) images, traced only."""
  image = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), image)


def _counted_flops(model, size: int) -> int:
  """`_multiply_add_flops` of `model`'s inference on one (size, size) image."""
  image = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  jaxpr = jax.make_jaxpr(functools.partial(model.apply, train=False))(
      _abstract_variables(model, size), image)
  return _multiply_add_flops(jaxpr.jaxpr)


def _multiply_add_flops(jaxpr) -> int:
  """2 x the multiply-adds of every convolution and dot in a jaxpr, sub-jaxprs included."""
  total = 0
  for eqn in jaxpr.eqns:
    out = eqn.outvars[0].aval.shape
    if eqn.primitive.name == "conv_general_dilated":
      rhs = eqn.invars[1].aval.shape
      spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, spatial...) axes.
      total += 2 * int(np.prod(out)) * int(np.prod([rhs[d] for d in spec[1:]]))
    elif eqn.primitive.name == "dot_general":
      (contracting, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2 * int(np.prod(out)) * int(np.prod([lhs[d] for d in contracting]))
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else [value]:
        sub = getattr(sub, "jaxpr", sub)
        if hasattr(sub, "eqns"):
          total += _multiply_add_flops(sub)
  return total


@pytest.mark.slow
def test_flops_agree_with_a_count_of_multiply_adds(tiny_record):
  expected = _counted_flops(models.create_model("tiny", TINY["num_landmarks"]),
                           TINY["image_size"])
  # By hand: 3x3 stem (3 -> 8 channels, stride 4: 8 x 8 outputs), 1x1 (8 -> 16), the
  # pooling dot, Dense(16 -> 2 x 98) and Dense(16 -> 3).
  assert expected == 2 * (8 * 8 * 8 * 27 + 8 * 8 * 16 * 8 + 8 * 8 * 16 + 16 * 196 + 16 * 3)
  # XLA also counts the bias and ReLU6 work: on so small a network, about 6 % more.
  assert expected <= tiny_record["flops_b1"] <= 1.1 * expected


@pytest.mark.slow
def test_asmnet_flops_as_deployed_agree_with_a_count_of_multiply_adds():
  """The figure the benchmark reports for ASMNet: XLA's count of the BN-folded network
  as run on this backend (the CPU's depthwise as shifted multiply-adds, not a
  convolution primitive) against the multiply-adds of XLA's grouped convolution."""
  size = 32
  expected = _counted_flops(models.create_model("asmnet", 98, depthwise_impl="lax"), size)
  assert expected > 10_000_000  # the count found the network's convolutions.
  model = models.create_model("asmnet", 98)
  folded_model, folded = models.fold_batch_norm(model, testing.random_variables(model, size))
  flops = benchmark.flops_of(folded_model.apply, folded, jnp.zeros((1, size, size, 3)))
  # XLA also counts the bias and ReLU6 work, a few per cent more.
  assert expected <= flops <= 1.05 * expected


@pytest.mark.slow
def test_timed_step_is_the_trained_step(tiny_record):
  assert tiny_record["train_step"] == "asmnet_jax.train.step.make_train_step"
  assert tiny_record["train_loss"] == tiny_record["train_config"]["loss"] == "asm"
  assert tiny_record["asm_components"] >= 1
  assert tiny_record["train_alpha"] == losses.ALPHA_STAGES[0]
  # The same state and batch in this process: the Eq. 12 loss of its first step.
  setup = benchmark.train_setup("tiny", **TINY)
  state, config = setup.state, setup.config

  @jax.jit
  def reference(variables, batch, shape_model):
    (landmarks, pose), _ = state.apply_fn(
        variables, batch["image"], train=True,
        rngs={"dropout": jax.random.fold_in(setup.rng, 0)}, mutable=["batch_stats"])
    target_pose = batch["pose"] / config.pose_scale_deg
    with_asm, _ = losses.total_loss(landmarks, pose, batch["landmarks"], target_pose,
                                    shape_model, tiny_record["train_alpha"],
                                    config.pose_weight)
    without_asm, _ = losses.total_loss(landmarks, pose, batch["landmarks"], target_pose,
                                       None, 0.0, config.pose_weight)
    return with_asm, without_asm

  variables = {"params": state.params, "batch_stats": state.batch_stats}
  with_asm, without_asm = map(float, reference(variables, setup.batch, setup.shape_model))
  # Only XLA's fusions differ from the step's forward pass.
  assert tiny_record["train_loss_first_step"] == pytest.approx(with_asm, rel=1e-5)
  # The ASM term moves the loss far more than that, so the match tells them apart.
  assert abs(with_asm - without_asm) > 0.1 * with_asm
