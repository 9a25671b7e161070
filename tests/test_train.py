"""Training and evaluation end to end on the tiny synthetic faces, and the data-parallel step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import chex
import ml_collections
import numpy as np
import pytest

from asmnet_jax.data import pipeline
from asmnet_jax.data import registry
from asmnet_jax.evaluate import report as eval_lib
from asmnet_jax.train import loop
from asmnet_jax.train import precise_bn
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib
from configs import synthetic
from tests import procfs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """`synthetic_faces/tiny` built once for the session."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  registry.prepare("synthetic_faces/tiny", data_dir)
  return data_dir


def tiny_config(data_dir: str, **overrides) -> ml_collections.ConfigDict:
  config = synthetic.get_config()
  config.dataset = "synthetic_faces/tiny"
  config.data_dir = data_dir
  config.image_size = 32
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_epochs = 2
  config.log_every_steps = 1
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 2
  config.warmup_steps = 0
  config.precise_bn_batches = 2
  config.update(overrides)
  return config


def config_flags(config: ml_collections.ConfigDict) -> list[str]:
  fields = ("dataset", "data_dir", "image_size", "batch_size", "eval_batch_size",
            "num_epochs", "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
            "warmup_steps", "precise_bn_batches")
  return [f"--config.{f}={config[f]}" for f in fields]


@pytest.mark.parametrize("field, value, message", [
    ("model", "resnet", "model"),
    ("loss", "l1", "loss"),
    ("variance_kept", 0.0, "variance_kept"),
    ("num_epochs", 0, "num_epochs"),
    ("batch_size", -2, "batch_size"),
    ("image_size", 16, "image_size"),
    ("learning_rate", 0.0, "learning_rate"),
    ("compute_dtype", "float16", "compute_dtype"),
    ("max_train_examples", 0, "max_train_examples"),
    ("bn_momentum", 1.0, "bn_momentum"),
    ("dropout_rate", -0.1, "dropout_rate"),
    ("precise_bn_batches", -1, "precise_bn_batches"),
])
def test_config_validation_names_the_field(field, value, message):
  config = synthetic.get_config()
  config[field] = value
  with pytest.raises(ValueError, match=f"config.{message}"):
    config_lib.validate_config(config)


def test_config_validation_names_input_worker_count():
  config = synthetic.get_config()
  config.input.worker_count = -1
  with pytest.raises(ValueError, match="config.input.worker_count"):
    config_lib.validate_config(config)


def test_unknown_dataset_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown dataset 'celeba'"):
    registry.get_builder("celeba")


_EQUIVALENCE_SCRIPT = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec
    from asmnet_jax.core import asm
    from asmnet_jax.train import loop
    from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib
    from configs import synthetic

    assert jax.device_count() == 2, jax.devices()
    config = synthetic.get_config()
    # 64 px and 8 images keep the last BatchNorm layers' statistics well conditioned,
    # so float32 reduction order changes the results by round-off only.
    config.image_size, config.batch_size, config.warmup_steps = 64, 8, 0
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(size=(8, 64, 64, 3)).astype(np.float32),
             "landmarks": rng.uniform(-0.4, 0.4, size=(8, 68, 2)).astype(np.float32),
             "pose": rng.uniform(-30, 30, size=(8, 3)).astype(np.float32)}
    shape_model = asm.fit_shape_model(rng.uniform(-0.4, 0.4, size=(20, 68, 2)), 0.9)
    model = train_state.create_model(config, 68)
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
      mesh = train_state.make_mesh(devices)
      replicated = NamedSharding(mesh, PartitionSpec())
      state = jax.device_put(
          train_state.create_train_state(config, model, jax.random.key(0)), replicated)
      step = loop.make_train_step(config, steps_per_epoch=10, mesh=mesh)
      key = jax.device_put(jax.random.key(1), replicated)
      state, metrics = step(state, loop.global_batch(batch, mesh),
                            jax.device_put(shape_model, replicated), key)
      assert len(state.params["heads"]["landmarks"]["kernel"].sharding.device_set) == len(devices)
      results.append(jax.device_get({"loss": metrics["loss"], "params": state.params,
                                     "batch_stats": state.batch_stats,
                                     "adam_mu": state.opt_state[0].mu}))
    one, two = results
    def max_abs_diff(a, b):
      return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))
    def max_abs(a):
      return max(float(np.max(np.abs(x))) for x in jax.tree.leaves(a))
    loss_diff = abs(float(one["loss"]) - float(two["loss"])) / abs(float(one["loss"]))
    stats_diff = max_abs_diff(one["batch_stats"], two["batch_stats"])
    # Adam's first moment is linear in the gradient: the gradients agree up to
    # float32 round-off, which sixteen BatchNorm layers amplify to ~1e-3 of the largest.
    grad_diff = max_abs_diff(one["adam_mu"], two["adam_mu"]) / max_abs(one["adam_mu"])
    # Adam's first step moves a weight by about lr * sign(gradient), so a weight whose
    # gradient is round-off may move either way; all the others must agree.
    lr = config.learning_rate
    weight_diffs = np.concatenate([np.abs(x - y).ravel() for x, y in zip(
        jax.tree.leaves(one["params"]), jax.tree.leaves(two["params"]))])
    agreeing = float(np.mean(weight_diffs < 0.01 * lr))
    print("max difference", loss_diff, stats_diff, grad_diff, agreeing)
    assert loss_diff < 1e-5 and stats_diff < 1e-6 and grad_diff < 5e-3
    assert agreeing > 0.998 and weight_diffs.max() <= 2.001 * lr
""")



def test_two_devices_match_one_device():
  """The same global batch gives the same update on 1 and on 2 (fake CPU) devices."""
  result = subprocess.run([sys.executable, "-c", _EQUIVALENCE_SCRIPT], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": REPO})
  assert result.returncode == 0, result.stdout + result.stderr
  assert "max difference" in result.stdout


@pytest.mark.slow
def test_train_resume_and_evaluate(tiny_data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_config(tiny_data_dir)
  results = loop.train_and_evaluate(config, workdir)
  assert 0 < results["nme"] < 10 and results["count"] > 0
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  steps_done = max(r["step"] for r in records)
  assert {"loss", "alpha", "images_per_s", "step"} <= set(records[0])
  assert any("val_nme" in r for r in records)
  assert os.path.exists(os.path.join(workdir, "training_curves.png"))
  assert os.path.exists(os.path.join(workdir, "shape_model.npz"))

  # The checkpoint holds precise BN statistics: those of its final weights over the
  # first `precise_bn_batches` batches of the seed + 1 training stream.
  model = state_lib.create_model(config, 68)
  state = checkpoints.restore_tree(checkpoints.step_dir(workdir, "latest"))
  source = registry.open_splits(registry.get_builder(config.dataset, config.data_dir), ["train"])["train"]
  stream = pipeline.create_train_iterator(
      source, batch_size=config.batch_size, config=config_lib.input_config(config),
      seed=config.seed + 1)
  expected = precise_bn.precise_batch_stats(
      model, {"params": state["params"], "batch_stats": state["batch_stats"]},
      [next(stream)["image"] for _ in range(config.precise_bn_batches)])
  chex.assert_trees_all_close(state["batch_stats"], expected, rtol=1e-4, atol=1e-5)

  # Two more epochs in the same work directory: the step count continues.
  more = tiny_config(tiny_data_dir, num_epochs=4)
  loop.train_and_evaluate(more, workdir)
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  steps = [r["step"] for r in records if "loss" in r]
  assert steps == sorted(set(steps)) and max(steps) == 2 * steps_done

  results = eval_lib.evaluate_workdir(workdir)
  report = json.load(open(os.path.join(workdir, "eval", "results.json")))
  split = report["splits"]["test"]
  assert set(split) == {"count", "nme", "failure_rate", "auc", "pose_mae"}
  assert set(split["pose_mae"]) >= {"yaw", "pitch", "roll"}
  assert split == results["test"]
  for name in ("results.md", "ced.png", "samples_test.png"):
    assert os.path.getsize(os.path.join(workdir, "eval", name)) > 0


def test_nan_loss_stops_and_keeps_good_checkpoint(tiny_data_dir, tmp_path):
  workdir = str(tmp_path / "nan")
  config = tiny_config(tiny_data_dir, learning_rate=1e30, lr_decay=0.0, num_epochs=1,
                       checkpoint_every_steps=1)
  with pytest.raises(loop.NonFiniteLossError, match="last good checkpoint"):
    loop.train_and_evaluate(config, workdir)
  kept = os.listdir(os.path.join(workdir, "checkpoints"))
  assert all(name.isdigit() for name in kept)  # Only finished checkpoints, if any.


@pytest.mark.slow
@pytest.mark.skipif(not procfs.AVAILABLE, reason="reads /proc")
def test_killed_run_resumes_from_last_checkpoint(tiny_data_dir, tmp_path):
  """SIGKILL mid-run: its input worker ends too; the same command then finishes
  from the last checkpoint."""
  workdir = str(tmp_path / "killed")
  config = tiny_config(tiny_data_dir, num_epochs=6, checkpoint_every_steps=1,
                       eval_every_steps=1000)
  command = [sys.executable, os.path.join(REPO, "train.py"), f"--workdir={workdir}",
             *config_flags(config), "--config.input.worker_count=1"]
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  deadline = time.time() + 300
  while time.time() < deadline and process.poll() is None:
    if os.path.isdir(checkpoint_dir) and any(n.isdigit() and int(n) >= 3
                                             for n in os.listdir(checkpoint_dir)):
      break
    time.sleep(0.05)
  assert process.poll() is None, "training ended before it could be killed"
  helpers = procfs.children(process.pid)  # the grain worker, multiprocessing's tracker
  assert helpers, "expected an input worker process"
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not procfs.wait_until_ended(helpers, 30), "processes outlived the killed training run"
  killed_at = max(int(n) for n in os.listdir(checkpoint_dir) if n.isdigit())

  finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert finished.returncode == 0, finished.stderr[-3000:]
  assert f"Resumed from step {killed_at}" in finished.stderr  # Not from scratch.
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  steps = [r["step"] for r in records if "loss" in r]
  assert steps == sorted(set(steps)), "metrics after the checkpoint must not repeat"
  assert max(steps) == max(int(n) for n in os.listdir(checkpoint_dir) if n.isdigit())
