"""`tools.device_check` at its tiny CPU size: the JSON it prints and the run it times."""

from __future__ import annotations

import json
import os

import numpy as np

from asmnet_jax.nn import models
from asmnet_jax.tools import device_check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tiny_run_trains_with_on_device_augmentation():
  # A tiny network: what is checked is the loop around it (ASMNet's step compiles
  # for tens of seconds on a CPU; the benchmark section times train.py's step, which
  # tests/test_benchmark.py covers).
  run = device_check.run_section(32, train_images=16, epochs=2, batch_size=4,
                                 model=models.TinyNetwork(68, dropout_rate=0.0))
  assert (run["steps"], run["train_images"], run["distinct_images"]) == (8, 16, 16)
  assert run["finite"] and np.isfinite(run["final_loss"])
  assert run["images_per_s"] > 0 and run["step_only_images_per_s"] > 0
  assert 0.0 <= run["input_wait_share"] < 1.0
  assert run["cache_size"] == 50  # 32 px * 1.7 / 1.1, even.


def test_command_prints_one_json_object(tmp_path, capsys):
  out = tmp_path / "check.json"
  assert device_check.main(["--tiny", "--sections=input", f"--out={out}"]) == 0
  report = json.loads(capsys.readouterr().out)
  assert report == json.loads(out.read_text())
  assert report["tiny"] and set(report) == {"machine", "tiny", "input", "seconds"}
  assert [r["pipeline"] for r in report["input"]] == ["train_on_device", "train"]
  assert all(r["images_per_s"] > 0 and r["images"] == 100 for r in report["input"])
  assert report["input"][0]["device_augment_images_per_s"] > 0


def test_unknown_section_is_a_usage_error(capsys):
  assert device_check.main(["--tiny", "--sections=run,gpu"]) == 2
  assert "error: --sections: unknown gpu" in capsys.readouterr().err


def test_shell_wrapper_runs_the_module():
  script = os.path.join(REPO, "tools", "device_check.sh")
  assert os.access(script, os.X_OK)
  with open(script) as f:
    assert '"${PYTHON:-python}" -m asmnet_jax.tools.device_check' in f.read()
