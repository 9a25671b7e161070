"""Training and evaluation end to end on the tiny synthetic faces, and the data-parallel step.

The end-to-end tests share one trained work directory (`trained_run` in conftest.py,
the tiny network)
and the persistent compilation cache: every run here keeps the compiled settings of
that run (image size, batch, schedule), so the training step compiles once for a
fresh start and once for a resumed one (a restored step counter is not weak-typed,
which makes a second XLA program), plus once on two devices.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import chex
import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from asmnet_jax.core import asm
from asmnet_jax.core import geometry
from asmnet_jax.core import losses
from asmnet_jax.data import pipeline
from asmnet_jax.data import registry
from asmnet_jax.evaluate import report as eval_lib
from asmnet_jax.inference import predictor as predictor_lib
from asmnet_jax.runtime import allocator
from asmnet_jax.tools import benchmark
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import loop
from asmnet_jax.train import precise_bn
from asmnet_jax.train import state as state_lib
from asmnet_jax.train import step as step_lib
from configs import synthetic
from tests import procfs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The fields `config_flags` passes to train.py: all that the shared run changes.
FLAG_FIELDS = ("model", "dataset", "data_dir", "image_size", "batch_size", "eval_batch_size",
               "num_epochs", "learning_rate", "warmup_steps", "log_every_steps",
               "eval_every_steps", "checkpoint_every_steps", "precise_bn_batches")
# Book-keeping: what a run may change and still compile exactly the shared run's step.
BOOKKEEPING = ("log_every_steps", "eval_every_steps", "checkpoint_every_steps")


def tiny_config(data_dir: str, **overrides) -> ml_collections.ConfigDict:
  """A short run of the tiny network on `synthetic_faces/tiny` at 32 px, with the
  default config's input worker (for test_train_subset.py)."""
  config = synthetic.get_config()
  config.model = "tiny"
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
  return [f"--config.{f}={config[f]}" for f in FLAG_FIELDS]


def _records(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, loop.METRICS_FILE)) as f:
    return [json.loads(line) for line in f]


def _steps(workdir: str, subdir: str = "checkpoints") -> list[int]:
  return sorted(int(n) for n in os.listdir(os.path.join(workdir, subdir)) if n.isdigit())


def _truncate_to(workdir: str, step: int) -> None:
  """Deletes the checkpoints (latest and best) after `step`, as if the run had
  stopped there."""
  for subdir in ("checkpoints", "best"):
    for later in (s for s in _steps(workdir, subdir) if s > step):
      shutil.rmtree(os.path.join(workdir, subdir, str(later)))


def _checkpoint(workdir: str, step: int) -> dict:
  return checkpoints.restore_tree(os.path.join(workdir, "checkpoints", str(step)))


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
    ("validation_split", "test", "validation_split"),
    ("landmark_distance", "l1", "landmark_distance"),
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


@pytest.mark.parametrize("field, value", [("occlusion_probability", 1.5),
                                          ("random_conv_probability", -0.1),
                                          ("occlusion_size", (0.5, 0.2)),
                                          ("occlusion_size", (0.0, 0.2))])
def test_config_validation_names_the_augmentation_field(field, value):
  config = synthetic.get_config()
  config.input[field] = value
  with pytest.raises(ValueError, match=f"config.input.{field}="):
    config_lib.validate_config(config)


@pytest.mark.parametrize("dataset, split", [("ibug_300w", "full"), ("ibug_300w", "common"),
                                            ("wflw", "test"), ("synthetic_faces", "test")])
def test_selecting_on_a_test_split_is_refused(dataset, split):
  config = synthetic.get_config()
  config.dataset, config.validation_split = dataset, split
  with pytest.raises(ValueError, match=f"config.validation_split='{split}': is a test split"):
    config_lib.validate_config(config)


def test_paper_configs_select_on_held_out_training_images():
  # pylint: disable-next=g-import-not-at-top
  from configs import ibug_300w, ibug_300w_plus, wflw, wflw_plus
  assert config_lib.base_config().validation_split == "validation"
  for config in (ibug_300w.get_config(), wflw.get_config()):
    assert config.validation_split == "validation" and config.input.augment_on_device
    assert config.input.flip_probability == config.input.occlusion_probability == 0.0
    config_lib.validate_config(config)
  for plus, paper in ((ibug_300w_plus, ibug_300w), (wflw_plus, wflw)):
    config = plus.get_config()
    config_lib.validate_config(config)
    assert config.input.flip_probability == config.input.occlusion_probability == 0.5
    in_config = config_lib.input_config(config)
    assert (in_config.flip_probability, in_config.occlusion_probability) == (0.5, 0.5)
    config.input.flip_probability = config.input.occlusion_probability = 0.0
    assert config.to_dict() == paper.get_config().to_dict()  # nothing else differs.


def test_unknown_dataset_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown dataset 'celeba'"):
    registry.get_builder("celeba")


_TWO_DEVICE_SCRIPT = textwrap.dedent("""
    import functools
    import os
    import sys
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=2")
    import jax, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec
    from asmnet_jax.core import asm
    from asmnet_jax.train import config as config_lib
    from asmnet_jax.train import loop
    from asmnet_jax.train import state as state_lib
    from asmnet_jax.train import step as step_lib

    workdir, inputs, outputs = sys.argv[1:]
    assert jax.device_count() == 2, jax.devices()
    config = config_lib.load_config(workdir)
    with np.load(inputs) as f:
      data = dict(f)
    steps_per_epoch = int(data.pop("steps_per_epoch"))
    # The state's structure only (tracing, no compile); its values are the inputs'.
    abstract = jax.eval_shape(functools.partial(
        state_lib.create_train_state, config, state_lib.create_model(config, 68),
        num_steps=steps_per_epoch * config.num_epochs), jax.random.key(0))
    leaves = [data[f"state_{i}"] for i in range(len(jax.tree.leaves(abstract)))]
    mesh = step_lib.make_mesh()
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(jax.tree.unflatten(jax.tree.structure(abstract), leaves), replicated)
    shape_model = asm.ShapeModel.load(os.path.join(workdir, loop.SHAPE_MODEL_FILE))
    step = step_lib.make_train_step(config, steps_per_epoch, mesh)
    state, metrics = step(
        state, step_lib.global_batch({k: data[k] for k in ("image", "landmarks", "pose")}, mesh),
        jax.device_put(shape_model, replicated),
        jax.device_put(jax.random.wrap_key_data(data["rng"]), replicated))
    assert len(state.params["heads"]["landmarks"]["kernel"].sharding.device_set) == 2
    out = jax.device_get((metrics["loss"], state.params, state.batch_stats,
                          state.opt_state[0].mu))
    np.savez(outputs, *jax.tree.leaves(out))
""")


def _max_abs_diff(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x) - y))) for x, y in zip(a, b))


def test_two_devices_match_one_device(trained_run, tmp_path):
  """The same global batch gives the same update on 1 and on 2 (fake CPU) devices.

  The first step of the shared run: here on this process's one device (the shared
  run's compiled step, a cache hit), and in a subprocess with two, from the same
  state, batch and dropout key.
  """
  config = trained_run.config
  source = registry.open_splits(registry.get_builder(config.dataset, config.data_dir),
                                ["train"])["train"]
  steps_per_epoch = pipeline.steps_per_epoch(len(source), config.batch_size)
  batch = next(pipeline.create_train_iterator(
      source, batch_size=config.batch_size, config=config_lib.input_config(config),
      seed=config.seed))
  mesh = step_lib.make_mesh()
  replicated = NamedSharding(mesh, PartitionSpec())
  init_rng, dropout_rng = jax.random.split(jax.random.key(config.seed))  # as the loop.
  state = jax.jit(functools.partial(
      state_lib.create_train_state, config, state_lib.create_model(config, 68),
      num_steps=steps_per_epoch * config.num_epochs), out_shardings=replicated)(init_rng)
  np.savez(tmp_path / "inputs.npz", steps_per_epoch=steps_per_epoch,
           rng=jax.random.key_data(dropout_rng),
           **{k: batch[k] for k in ("image", "landmarks", "pose")},
           **{f"state_{i}": leaf for i, leaf in enumerate(jax.device_get(jax.tree.leaves(state)))})
  result = subprocess.run(
      [sys.executable, "-c", _TWO_DEVICE_SCRIPT, trained_run.workdir,
       str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, "PYTHONPATH": REPO})
  assert result.returncode == 0, result.stdout + result.stderr

  shape_model = asm.ShapeModel.load(os.path.join(trained_run.workdir, loop.SHAPE_MODEL_FILE))
  step = step_lib.make_train_step(config, steps_per_epoch, mesh)
  state, metrics = step(state, step_lib.global_batch(batch, mesh),
                        jax.device_put(shape_model, replicated),
                        jax.device_put(dropout_rng, replicated))
  one = jax.device_get((metrics["loss"], state.params, state.batch_stats,
                        state.opt_state[0].mu))
  with np.load(tmp_path / "outputs.npz") as f:
    two = jax.tree.unflatten(jax.tree.structure(one), [f[f"arr_{i}"] for i in range(len(f))])
  (loss_1, params_1, stats_1, mu_1), (loss_2, params_2, stats_2, mu_2) = one, two
  leaves = jax.tree.leaves
  # Round-off only (measured ~3e-7 for the loss and the BN statistics).
  assert abs(float(loss_1) - float(loss_2)) < 1e-5 * abs(float(loss_1))
  assert _max_abs_diff(leaves(stats_1), leaves(stats_2)) < 1e-6
  # Adam's first moment is linear in the gradient: the gradients agree up to float32
  # round-off, which sixteen BatchNorm layers amplify (measured ~3e-5 of the largest).
  largest = max(float(np.max(np.abs(x))) for x in leaves(mu_1))
  assert _max_abs_diff(leaves(mu_1), leaves(mu_2)) < 5e-3 * largest
  # Adam's first step moves a weight by about lr * sign(gradient), so a weight whose
  # gradient is round-off may move either way; all the others must agree.
  lr = float(metrics["learning_rate"])
  weight_diffs = np.concatenate([np.abs(np.asarray(x) - y).ravel()
                                 for x, y in zip(leaves(params_1), leaves(params_2))])
  assert np.mean(weight_diffs < 0.01 * lr) > 0.998
  assert weight_diffs.max() <= 2.001 * lr


def test_trained_run_learns_and_writes_its_records(trained_run):
  workdir, config, results = trained_run.workdir, trained_run.config, trained_run.results
  records = _records(workdir)
  logged = [r for r in records if "loss" in r]
  validated = [r for r in records if "val_nme" in r]
  assert {"loss", "alpha", "images_per_s", "learning_rate", "step"} <= set(logged[0])
  assert [r["step"] for r in logged] == list(range(5, 61, 5))
  assert [r["step"] for r in validated] == [30, 60]
  # Flat keys ("val_pose_mae_yaw") of the nested results, the last of them returned.
  assert {f"val_{k}" for k in ("nme", "count", "auc", "failure_rate", "pose_mae_yaw",
                               "pose_mae_mean")} <= set(validated[-1])
  assert validated[-1]["val_nme"] == results["nme"]
  validation = registry.get_builder(config.dataset, config.data_dir).info.splits["validation"]
  assert results["count"] == validation.num_examples == 16
  # NME is a fraction of the face size: below 1 and better than half-way through.
  assert results["nme"] < min(1.0, validated[0]["val_nme"])
  assert np.isfinite(results["pose_mae"]["mean"])
  assert _steps(workdir) == [30, 60]
  best = min(validated, key=lambda r: r["val_nme"])["step"]
  assert _steps(workdir, "best") == [best]
  for name in ("training_curves.png", loop.SHAPE_MODEL_FILE, config_lib.CONFIG_FILE):
    assert os.path.getsize(os.path.join(workdir, name)) > 0


def test_checkpoint_holds_precise_bn_statistics(trained_run):
  # Those of its final weights over the first `precise_bn_batches` batches of the
  # seed + 1 training stream.
  config = trained_run.config
  model = state_lib.create_model(config, 68)
  state = checkpoints.restore_tree(checkpoints.step_dir(trained_run.workdir, "latest"))
  source = registry.open_splits(registry.get_builder(config.dataset, config.data_dir),
                                ["train"])["train"]
  stream = pipeline.create_train_iterator(
      source, batch_size=config.batch_size, config=config_lib.input_config(config),
      seed=config.seed + 1)
  expected = precise_bn.precise_batch_stats(
      model, {"params": state["params"], "batch_stats": state["batch_stats"]},
      [next(stream)["image"] for _ in range(config.precise_bn_batches)],
      mesh=step_lib.make_mesh())  # the training loop's program: a cache hit.
  chex.assert_trees_all_close(state["batch_stats"], expected, rtol=1e-4, atol=1e-5)


def test_evaluate_workdir_and_the_predictor_agree(trained_run, tmp_path):
  workdir = trained_run.copy_to(tmp_path / "run")
  results = eval_lib.evaluate_workdir(workdir)
  with open(os.path.join(workdir, "eval", "results.json")) as f:
    report = json.load(f)
  assert report["step"] == _steps(trained_run.workdir, "best")[0]
  split = report["splits"]["test"]
  assert set(split) == {"count", "nme", "failure_rate", "auc", "pose_mae"}
  assert set(split["pose_mae"]) >= {"yaw", "pitch", "roll"}
  assert split == results["test"] and split["count"] == 16
  for name in ("results.md", "ced.png", "samples_test.png"):
    assert os.path.getsize(os.path.join(workdir, "eval", name)) > 0

  # The predictor's crop of a given landmark box is the evaluation crop, and its
  # BN-folded network the evaluated one: same landmarks and pose.
  with np.load(eval_lib.prediction_file(workdir, "test")) as saved:
    saved = dict(saved)
  np.testing.assert_allclose(split["nme"], saved["nme"].mean(), rtol=1e-6)
  config = trained_run.config
  source = registry.open_splits(registry.get_builder(config.dataset, config.data_dir),
                                ["test"])["test"]
  predictor = predictor_lib.Predictor.from_workdir(workdir, refine_passes=0)
  for row in (0, 7, 15):
    record = source[int(saved["index"][row])]
    np.testing.assert_allclose(saved["gt_landmarks"][row], record["landmarks"], atol=1e-3)
    (face,), = predictor(record["image"], boxes=[geometry.landmark_box(record["landmarks"])],
                         landmark_boxes=True)
    np.testing.assert_allclose(face.landmarks, saved["landmarks"][row], atol=0.02)
    np.testing.assert_allclose(face.pose, saved["pose"][row], atol=0.02)


class _PoisonedLabels:
  """A training stream whose landmarks are NaN from its `first_bad`-th batch on
  (a corrupt annotation)."""

  def __init__(self, stream, first_bad: int):
    self._stream, self._first_bad, self._count = stream, first_bad, 0

  def __iter__(self):
    return self

  def __next__(self):
    batch = next(self._stream)
    self._count += 1
    if self._count >= self._first_bad:
      batch = dict(batch, landmarks=np.full_like(batch["landmarks"], np.nan))
    return batch

  def close(self):
    self._stream.close()


def test_eval_reports_the_best_on_validation_and_the_last_checkpoint(trained_run, tmp_path,
                                                                     capsys):
  import eval as eval_main  # pylint: disable=g-import-not-at-top
  workdir = trained_run.copy_to(tmp_path / "run")
  # Validation NME fell from step 30 to 60 in the shared run, so 60 is the best too;
  # dropping the latest checkpoint 60 leaves best 60 and last 30.
  best, latest = _steps(workdir, "best")[0], _steps(workdir)[-1]
  assert (best, latest) == (60, 60)
  shutil.rmtree(os.path.join(workdir, "checkpoints", "60"))
  assert eval_main.main(["--workdir", workdir, "--split", "test"]) == 0
  out = capsys.readouterr().out
  assert f"{workdir}: best checkpoint on the validation split (best/60)" in out
  assert f"{workdir}: last checkpoint (checkpoints/30)" in out
  for sub, step in (("eval", 60), ("eval/latest", 30)):
    with open(os.path.join(workdir, sub, "results.json")) as f:
      assert json.load(f)["step"] == step
  assert not os.path.exists(os.path.join(workdir, "eval", "latest", "latest"))


def test_non_finite_loss_stops_and_keeps_the_good_checkpoints(trained_run, tmp_path,
                                                              monkeypatch):
  """Resumed at step 30 and saving every 2 steps: the labels of step 34 make the
  loss NaN, so training stops before saving anything of it; 30 and 32 are kept."""
  workdir = trained_run.copy_to(tmp_path / "run")
  _truncate_to(workdir, 30)
  config = trained_run.config.copy_and_resolve_references()
  config.log_every_steps, config.checkpoint_every_steps = 1, 2  # the same compiled step.
  create_train_iterator = pipeline.create_train_iterator

  def poisoned(source, *, seed=None, **kwargs):
    stream = create_train_iterator(source, seed=seed, **kwargs)
    # The training stream (not precise BN's, seed + 1); it yields steps 31, 32, ...
    return _PoisonedLabels(stream, first_bad=4) if seed == config.seed else stream

  monkeypatch.setattr(pipeline, "create_train_iterator", poisoned)
  managers = []

  class RecordedManager(checkpoints.CheckpointManager):
    def __init__(self, *args, **kwargs):
      super().__init__(*args, **kwargs)
      managers.append(self)

  monkeypatch.setattr(checkpoints, "CheckpointManager", RecordedManager)
  with pytest.raises(loop.NonFiniteLossError,
                     match="NaN or infinite between steps 33 and 34; the last good checkpoint"):
    loop.train_and_evaluate(config, workdir)
  # Step 32's save is asynchronous: let it finish (as train.py's exit would).
  (loop_manager,) = managers
  try:
    loop_manager.wait()
    assert loop_manager.latest_step() == 32
  finally:
    loop_manager.close()
  assert _steps(workdir) == [30, 32]
  kept = _checkpoint(workdir, 32)
  assert int(kept["step"]) == 32
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(kept["params"]))
  records = _records(workdir)
  assert max(r["step"] for r in records) == 33  # step 34's NaN loss is not logged.


@pytest.mark.slow
def test_killed_run_resumes_and_repeats_the_uninterrupted_one(trained_run, tmp_path, caplog):
  """SIGKILL mid-run: its input worker ends too, no unfinished checkpoint is left,
  and training resumes from the last one to the very losses and weights of the
  shared run, which was never interrupted. (The second run is in-process: a
  subprocess would import and trace everything again.)"""
  workdir = str(tmp_path / "killed")
  config = trained_run.config.copy_and_resolve_references()
  # Few saves: each also plots the curves (seconds on busy cores).
  config.checkpoint_every_steps, config.eval_every_steps = 20, 1000
  command = [sys.executable, os.path.join(REPO, "train.py"), f"--workdir={workdir}",
             *config_flags(config), "--config.input.worker_count=1"]
  # With the allocator train.py would re-execute itself with (one start, not two).
  env = {**os.environ, "PYTHONPATH": REPO,
         "GLIBC_TUNABLES": allocator.RECOMMENDED_GLIBC_TUNABLES}
  process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  deadline = time.time() + 300
  while time.time() < deadline and process.poll() is None:
    if os.path.isdir(checkpoint_dir) and _steps(workdir):
      break
    time.sleep(0.05)
  assert process.poll() is None, "training ended before it could be killed"
  # The grain worker and multiprocessing's resource tracker.
  helpers = procfs.children(process.pid) if procfs.AVAILABLE else []
  assert helpers or not procfs.AVAILABLE, "expected an input worker process"
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not procfs.wait_until_ended(helpers, 30), "processes outlived the killed training run"
  killed_at = max(_steps(workdir))
  assert 20 <= killed_at < 60
  # Only finished checkpoints (orbax renames each when complete) and shared settings.
  assert all(n.isdigit() or ".orbax-checkpoint-tmp" in n for n in os.listdir(checkpoint_dir))
  ours, shared = (config_lib.load_config(d).to_dict() for d in (workdir, trained_run.workdir))
  for name in BOOKKEEPING:
    del ours[name], shared[name]
  assert ours["input"].pop("worker_count") == 1
  del shared["input"]["worker_count"]
  assert ours == shared  # the shared run's compiled step, so cache hits.

  caplog.set_level(logging.INFO)
  results = loop.train_and_evaluate(config, workdir)
  assert f"Resumed from step {killed_at}" in caplog.text  # Not from scratch.
  assert not any(".orbax-checkpoint-tmp" in n for n in os.listdir(checkpoint_dir))
  assert _steps(workdir)[-1] == 60
  # The losses logged after the checkpoint were dropped and logged again: each step
  # once, with the uninterrupted run's values (windows of 5 steps in both).
  logged = {r["step"]: r["loss"] for r in _records(workdir) if "loss" in r}
  expected = {r["step"]: r["loss"] for r in _records(trained_run.workdir) if "loss" in r}
  assert [r["step"] for r in _records(workdir) if "loss" in r] == sorted(expected)
  for step, loss in expected.items():
    assert logged[step] == pytest.approx(loss, rel=1e-4), step
  assert results["nme"] == pytest.approx(trained_run.results["nme"], rel=1e-4)
  chex.assert_trees_all_close(_checkpoint(workdir, 60)["params"],
                              _checkpoint(trained_run.workdir, 60)["params"],
                              rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("distance", ["euclidean", "wing"])
def test_train_step_measures_landmarks_with_the_configured_distance(distance):
  setup = benchmark.train_setup("tiny", 68, batch_size=4, image_size=32)
  config = ml_collections.ConfigDict(setup.config.to_dict())
  config.landmark_distance = distance
  state = setup.state

  @jax.jit
  def forward(variables, image):
    (landmarks, _), _ = state.apply_fn(variables, image, train=True,
                                       rngs={"dropout": jax.random.fold_in(setup.rng, 0)},
                                       mutable=["batch_stats"])
    return landmarks

  landmarks = forward({"params": state.params, "batch_stats": state.batch_stats},
                      setup.batch["image"])
  expected = {d: float(losses.landmark_loss(landmarks, setup.batch["landmarks"], d))
              for d in ("squared", distance)}
  step = step_lib.make_train_step(config, benchmark.STEPS_PER_EPOCH, step_lib.make_mesh())
  _, metrics = step(state, setup.batch, setup.shape_model, setup.rng)
  assert float(metrics["landmark_loss"]) == pytest.approx(expected[distance], rel=1e-5)
  assert abs(expected[distance] - expected["squared"]) > 0.1 * expected["squared"]
