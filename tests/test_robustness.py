"""Nothing lost when things go wrong: damaged checkpoints, two writers on one work
directory, a full disk, a failed start. Every case on a copy of the shared
`trained_run` (checkpoints at steps 30 and 60, best 60); none trains."""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import eval as eval_cli
import train as train_cli
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import workdir_lock
from tests import test_train

pytestmark = pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")

# Each kind of file of a step folder that a restore needs, and how it is damaged.
DAMAGE = [
    ("default/ocdbt.process_0/d/*", "truncate", "OUT_OF_RANGE: Error reading"),
    ("default/d/*", "truncate", "OUT_OF_RANGE"),
    ("default/manifest.ocdbt", "truncate", 'default/manifest.ocdbt": Error decoding manifest'),
    ("default/_METADATA", "truncate", "default/_METADATA is not valid JSON"),
    ("default/_METADATA", "delete", "default/_METADATA is missing"),
    ("default/_sharding", "truncate", "default/_sharding is not valid JSON"),
    ("default/array_metadatas/*", "truncate", "array_metadatas/process_0 is not valid JSON"),
    ("_CHECKPOINT_METADATA", "truncate", "_CHECKPOINT_METADATA is not valid JSON"),
]


def _damage(step_dir: str, pattern: str, how: str) -> str:
  """Truncates to half (or deletes) every file matching `pattern`; the largest's path.

  Every one, since a restore reads only some of a step's data files, and which ones
  varies from save to save."""
  paths = sorted(glob.glob(os.path.join(step_dir, pattern)), key=os.path.getsize)
  assert paths, f"nothing matches {pattern} in {step_dir}"
  for path in paths:
    if how == "delete":
      os.remove(path)
    else:
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
  return paths[-1]


def _error_line(capsys) -> str:
  """stderr's last line, checked to be `error: ...` with no traceback before it."""
  err = capsys.readouterr().err
  assert "Traceback" not in err and "Event loop is closed" not in err, err[-3000:]
  line = err.strip().splitlines()[-1]
  assert line.startswith("error: "), err[-3000:]
  return line


def _listing(workdir: str) -> dict[str, float]:
  """Every file under `workdir` with its modification time, but the lock file."""
  listing = {os.path.relpath(os.path.join(d, n), workdir): os.path.getmtime(os.path.join(d, n))
             for d, _, names in os.walk(workdir) for n in names}
  listing.pop(workdir_lock.LOCK_FILE, None)
  return listing


@pytest.mark.parametrize("pattern, how, reason", DAMAGE)
def test_each_damaged_file_is_named_in_one_line(trained_run, tmp_path, pattern, how, reason):
  step_dir = shutil.copytree(os.path.join(trained_run.workdir, "checkpoints", "60"),
                             tmp_path / "checkpoints" / "60")
  _damage(str(step_dir), pattern, how)
  with pytest.raises(checkpoints.CheckpointError, match="cannot be read") as info:
    checkpoints.restore_tree(str(step_dir))
  message = str(info.value)
  assert "\n" not in message and reason in message and str(step_dir) in message
  assert "tensorstore_spec" not in message  # TensorStore's pages of spec are cut off.
  assert os.path.isdir(step_dir)  # a single named step is never moved.


def test_evaluation_falls_back_past_damaged_best_and_latest(trained_run, tmp_path, caplog):
  workdir = trained_run.copy_to(tmp_path / "w")
  best_file = _damage(os.path.join(workdir, "best", "60"), "default/d/*", "truncate")
  latest_file = _damage(os.path.join(workdir, "checkpoints", "60"), "default/_METADATA",
                        "delete")
  caplog.set_level(logging.WARNING)
  path, tree = checkpoints.restore_workdir(workdir, "best")
  assert path == os.path.join(workdir, "checkpoints", "30") and int(tree["step"]) == 30
  expected = test_train._checkpoint(trained_run.workdir, 30)["params"]
  np.testing.assert_array_equal(tree["params"]["heads"]["landmarks"]["kernel"],
                                expected["heads"]["landmarks"]["kernel"])
  # Moved aside, not deleted, with the damage still there to inspect.
  assert sorted(os.listdir(os.path.join(workdir, "best"))) == ["damaged"]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["30", "damaged"]
  moved = os.path.join(workdir, "best", "damaged", "60", os.path.relpath(
      best_file, os.path.join(workdir, "best", "60")))
  assert os.path.getsize(moved) * 2 <= os.path.getsize(
      best_file.replace(workdir, trained_run.workdir)) + 1
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "damaged", "60"))
  assert not os.path.exists(latest_file)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
              and r.name == "root"]
  assert [w.split(" is damaged")[0] for w in warnings[:2]] == [
      f"checkpoint {workdir}/best/60", f"checkpoint {workdir}/checkpoints/60"]
  assert "OUT_OF_RANGE" in warnings[0] and "default/_METADATA is missing" in warnings[1]
  assert all("\n" not in w for w in warnings)
  # Asked for again: the damaged ones are out of the way and a named step still works.
  assert checkpoints.step_dir(workdir, "latest") == os.path.join(workdir, "checkpoints", "30")
  assert checkpoints.step_dir(workdir, "30") == os.path.join(workdir, "checkpoints", "30")
  with pytest.raises(FileNotFoundError, match="no checkpoint of step 60"):
    checkpoints.step_dir(workdir, "60")


def test_predictor_falls_back_past_a_damaged_best(trained_run, tmp_path):
  from asmnet_jax.inference import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  workdir = trained_run.copy_to(tmp_path / "w")
  _damage(os.path.join(workdir, "best", "60"), "default/_sharding", "truncate")
  predictor = predictor_lib.Predictor.from_workdir(workdir, refine_passes=0)
  assert predictor.model.source == os.path.join(workdir, "checkpoints", "60")
  assert predictor.model.step == 60
  assert os.listdir(os.path.join(workdir, "best", "damaged")) == ["60"]


def test_training_resumes_from_the_previous_good_checkpoint(trained_run, tmp_path):
  """The training manager, with the state's own layout as the target."""
  import jax  # pylint: disable=g-import-not-at-top
  workdir = trained_run.copy_to(tmp_path / "w")
  _damage(os.path.join(workdir, "checkpoints", "60"), "default/manifest.ocdbt", "truncate")
  tree = test_train._checkpoint(trained_run.workdir, 30)
  target = jax.tree.map(np.zeros_like, tree)  # the run's tree with other values.
  manager = checkpoints.CheckpointManager(workdir)
  try:
    restored = manager.restore_latest(target)
    assert int(restored["step"]) == 30 and manager.latest_step() == 30
    np.testing.assert_array_equal(restored["opt_state"][0]["mu"]["heads"]["pose"]["bias"],
                                  tree["opt_state"][0]["mu"]["heads"]["pose"]["bias"])
    # Trained on, the run saves step 60 again; best/60 (saved before) stays.
    manager.save(60, restored, nme=0.5)
    assert manager.latest_step() == 60 and manager.best_step() == 60
  finally:
    manager.close()
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["30", "60", "damaged"]


def test_train_stops_when_no_checkpoint_is_readable_and_changes_nothing(
    trained_run, tmp_path, capsys):
  """Not from scratch over damaged checkpoints: one line, exit 2, nothing moved."""
  workdir = trained_run.copy_to(tmp_path / "w")
  for step_dir in glob.glob(os.path.join(workdir, "checkpoints", "*")):
    _damage(step_dir, "default/_sharding", "truncate")
  before = _listing(workdir)
  argv = [f"--workdir={workdir}", *test_train.config_flags(trained_run.config),
          "--config.input.worker_count=0"]
  assert train_cli.main(argv) == 2
  line = _error_line(capsys)
  assert line.startswith(f"error: no readable checkpoint in {workdir}/checkpoints "
                         "(nothing was moved or deleted)")
  assert "checkpoints/60: " in line and "checkpoints/30: " in line
  assert _listing(workdir) == before  # config.json and every checkpoint untouched.


@pytest.mark.parametrize("text, message", [
    ("{garbage", "config.json is not valid JSON (Expecting property name"),
    ('{"model": "asmnet", "image_size": "big"}', "config.json: config.image_size='big': must "
     "be of type int"),
])
def test_garbage_config_json_is_one_line_naming_the_file(trained_run, tmp_path, capsys,
                                                         text, message):
  workdir = trained_run.copy_to(tmp_path / "w")
  path = os.path.join(workdir, config_lib.CONFIG_FILE)
  with open(path, "w") as f:
    f.write(text)
  before = _listing(workdir)
  assert eval_cli.main([f"--workdir={workdir}"]) == 2
  assert _error_line(capsys).startswith(f"error: {workdir}/{message}")
  assert train_cli.main([f"--workdir={workdir}",
                         *test_train.config_flags(trained_run.config)]) == 2
  assert _error_line(capsys).startswith(f"error: {workdir}/{message}")
  assert _listing(workdir) == before


@pytest.mark.parametrize("overrides, message", [
    (["--config.model=mnv2", "--config.image_size=64"],
     "holds a run with another model/image_size (model 'tiny' -> 'mnv2', image_size 32 "
     "-> 64); its checkpoints would not fit. Use a new --workdir, or "
     "--config.allow_changed=model,image_size"),
    (["--config.dataset=nonexistent"], "unknown dataset 'nonexistent'"),
    (["--config.allow_changed=batch_size"], "config.allow_changed='batch_size': names "
     "batch_size"),
])
def test_a_failed_start_changes_nothing(trained_run, tmp_path, capsys, overrides, message):
  workdir = trained_run.copy_to(tmp_path / "w")
  before = _listing(workdir)
  argv = [f"--workdir={workdir}", *test_train.config_flags(trained_run.config), *overrides]
  assert train_cli.main(argv) == 2
  assert message in _error_line(capsys)
  assert _listing(workdir) == before


def test_allowed_change_passes_the_check(trained_run):
  config = trained_run.config.copy_and_resolve_references()
  config.image_size, config.allow_changed = 64, "image_size"
  assert config_lib.check_resume_compatible(config, trained_run.workdir) == ["image_size"]


def test_eval_without_checkpoint_stops_before_any_work(tmp_path, capsys):
  workdir = tmp_path / "w"
  workdir.mkdir()
  config = test_train.tiny_config("/nonexistent")  # no dataset needed: never opened.
  config_lib.save_config(config, str(workdir))
  assert eval_cli.main([f"--workdir={workdir}", "--checkpoint=latest"]) == 2
  assert _error_line(capsys) == f"error: no checkpoint under {workdir}: train it first"
  assert os.listdir(workdir) == [config_lib.CONFIG_FILE]  # no checkpoints/ or eval/.


_HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from asmnet_jax.train import workdir_lock
with workdir_lock.WorkdirLock(sys.argv[1]):
  print("locked", flush=True)
  time.sleep(120)
"""


def test_second_writer_is_refused_at_once_naming_the_first(trained_run, tmp_path, capsys):
  workdir = trained_run.copy_to(tmp_path / "w")
  holder = subprocess.Popen([sys.executable, "-c", _HOLDER, workdir, test_train.REPO],
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline() == "locked\n"
    before = _listing(workdir)
    start = time.monotonic()
    argv = [f"--workdir={workdir}", *test_train.config_flags(trained_run.config)]
    assert train_cli.main(argv) == 1
    assert time.monotonic() - start < 20  # (a few seconds: the checks, no JAX work.)
    line = _error_line(capsys)
    assert line.startswith(f"error: {workdir} is in use by another train.py (pid "
                           f"{holder.pid} on host ")
    assert _listing(workdir) == before
  finally:
    holder.kill()  # SIGKILL: the OS releases its lock.
    holder.wait()
  with workdir_lock.WorkdirLock(workdir):
    with open(os.path.join(workdir, workdir_lock.LOCK_FILE)) as f:
      assert json.load(f)["pid"] == os.getpid()
    with pytest.raises(workdir_lock.WorkdirBusyError, match=f"pid {os.getpid()}"):
      with workdir_lock.WorkdirLock(workdir):
        pass


def _small_state(seed: int) -> dict:
  """1.2 MB of incompressible float32 and a step counter."""
  return {"w": np.random.default_rng(seed).random(300_000, dtype=np.float32),
          "step": np.int32(seed)}


def _check_full_disk_stop(workdir: str, save_second, caplog) -> None:
  """Saves step 1, then step 2 with `save_second` (which makes the disk fail)."""
  manager = checkpoints.CheckpointManager(workdir)
  try:
    manager.save(1, _small_state(1))
    caplog.set_level(logging.INFO)
    with pytest.raises(checkpoints.CheckpointSaveError) as info:
      save_second(manager)
  finally:
    manager.close()
  message = str(info.value)
  assert message.startswith(f"saving checkpoint step 2 under {workdir} failed: ")
  assert "No space left on device" in message and "\n" not in message
  assert f"the last good checkpoint, {workdir}/checkpoints/1, is kept" in message
  assert not [r for r in caplog.records if r.exc_info]  # no traceback in the log.
  assert checkpoints.step_folders(os.path.join(workdir, "checkpoints")) == [
      os.path.join(workdir, "checkpoints", "1")]
  restored = checkpoints.restore_tree(os.path.join(workdir, "checkpoints", "1"))
  np.testing.assert_array_equal(restored["w"], _small_state(1)["w"])


def test_failed_save_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, caplog):
  """ENOSPC when Orbax renames the finished save into place; space back: it saves."""
  workdir = str(tmp_path / "w")
  rename = os.rename

  def full_disk_rename(src, dst, *args, **kwargs):
    if "orbax-checkpoint-tmp" in os.fspath(src):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(src))
    return rename(src, dst, *args, **kwargs)

  def save_second(manager):
    monkeypatch.setattr(os, "rename", full_disk_rename)
    try:
      manager.save(2, _small_state(2))
    finally:
      monkeypatch.setattr(os, "rename", rename)

  _check_full_disk_stop(workdir, save_second, caplog)
  manager = checkpoints.CheckpointManager(workdir)  # the next run: cleans up and saves.
  try:
    manager.save(2, _small_state(2))
  finally:
    manager.close()
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2"]


def test_full_tmpfs_stops_the_save(tmp_path, caplog):
  """A real full disk: a 2 MiB tmpfs holds one 1.2 MB checkpoint, not two."""
  if shutil.which("mount") is None:
    pytest.skip("no mount command here")
  mount_point = tmp_path / "small"
  mount_point.mkdir()
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
  if result.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
  try:
    _check_full_disk_stop(str(mount_point / "w"), lambda m: m.save(2, _small_state(2)), caplog)
  finally:
    subprocess.run(["umount", str(mount_point)], check=True)
