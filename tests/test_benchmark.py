"""The benchmark CLI runs at a tiny setting and prints one JSON line per model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from asmnet_jax.runtime import allocator
from asmnet_jax.runtime import machine
from asmnet_jax.tools import benchmark

KEYS = {"model", "num_landmarks", "params_trainable", "params_bn_stats", "flops_b1",
        "train_img_per_s", "infer_ms_b1", "infer_img_per_s_b64", "device", "image_size",
        "batch_size", "dtype", "glibc_tunables", "train_cpu_s_per_step", "infer_ms_b1_best",
        "infer_ms_b1_default_options", "inference_options", "cpu", "cpu_count", "jax"}
TINY = ["--image_size", "32", "--batch_size", "2", "--steps", "1", "--infer_batch", "2"]


def test_machine_record_names_the_cpu():
  record = machine.machine_record()
  assert record["cpu"] and record["cpu_count"] >= 1 and record["jax"]
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      families = {line.split(":")[1].strip() for line in f if line.startswith("cpu family")}
    if families:
      assert f"family {families.pop()}," in record["cpu"]


def test_parse_args_defaults():
  args = benchmark._parse_args([])
  assert (args.batch_size, args.image_size, args.models) == (50, 224, "asmnet,mnv2")
  assert args.malloc == "tuned"


@pytest.mark.slow
def test_main_prints_json_records(capsys):
  benchmark.main(["--models", "asmnet", "--num_landmarks", "98", *TINY])
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 1
  record = json.loads(lines[0])
  assert KEYS <= set(record)
  assert (record["model"], record["num_landmarks"]) == ("asmnet", 98)
  assert record["params_trainable"] + record["params_bn_stats"] == 1_471_727
  assert record["flops_b1"] is None or record["flops_b1"] > 0
  assert record["train_img_per_s"] > 0 and record["infer_ms_b1"] > 0


@pytest.mark.slow
def test_command_line_runs_both_models():
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  out = subprocess.run([sys.executable, "-m", "asmnet_jax.tools.benchmark", *TINY],
                       check=True, capture_output=True, text=True, env=env).stdout
  records = [json.loads(line) for line in out.strip().splitlines()]
  assert [r["model"] for r in records] == ["asmnet", "mnv2"]
  for record in records:
    assert KEYS <= set(record)
  # The command re-executed itself with the recommended allocator settings.
  assert records[0]["glibc_tunables"] == allocator.RECOMMENDED_GLIBC_TUNABLES
