"""The command lines: `asmnet_jax.cli.run` (private absl flags, one-line errors, exit
statuses), every command's flags and usage errors in-process, and train.py, eval.py
and predict.py end to end as processes started in a directory that is not the
repository."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags
from PIL import Image

from asmnet_jax import cli
from asmnet_jax.runtime import allocator

# config_flags loads config files with the loader API Python 3.12 removes.
pytestmark = pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every command, by module.
COMMANDS = ["train", "eval", "predict", "asmnet_jax.export.__main__", "asmnet_jax.data.build",
            "asmnet_jax.synthetic.faces", "asmnet_jax.tools.ablation",
            "asmnet_jax.tools.export_benchmark", "asmnet_jax.tools.input_benchmark",
            "asmnet_jax.tools.detector_benchmark", "asmnet_jax.inference.pretrained",
            "asmnet_jax.evaluate.photos"]

_TOY_CONFIG = """
import ml_collections

def get_config():
  return ml_collections.ConfigDict({"batch_size": 32, "name": "toy"})
"""


@pytest.fixture
def toy(tmp_path):
  """(define_flags, main, calls): a command with --workdir, --n and a config file;
  `calls` collects what main saw."""
  path = tmp_path / "toy_config.py"
  path.write_text(_TOY_CONFIG)
  calls = []

  def define_flags(fv):
    flags.DEFINE_string("workdir", None, "Work directory.", required=True, flag_values=fv)
    flags.DEFINE_integer("n", 1, "A count.", lower_bound=0, flag_values=fv)
    config_flags.DEFINE_config_file("config", str(path), "Config.", flag_values=fv)

  def main(fv, args=None):
    calls.append((fv.workdir, fv.n, fv.config.batch_size, args))
    if fv.n == 7:
      with cli.reported(ValueError):
        raise ValueError("seven is\nnot allowed")
    if fv.n == 8:
      raise cli.CommandError("eight failed", status=1)
    if fv.n == 9:
      raise RuntimeError("a bug")
    return 3 if fv.n == 3 else None

  return define_flags, main, calls


def _error_line(capsys) -> str:
  """stderr's one line, checked to be the only one."""
  err = capsys.readouterr().err
  assert err.endswith("\n") and err.count("\n") == 1, err
  return err.strip()


def test_run_parses_flags_and_config_overrides_of_its_argv(toy, capsys):
  define_flags, main, calls = toy
  argv_before = list(sys.argv)
  assert cli.run(define_flags, main, ["--workdir=w", "--n", "2", "--config.batch_size=4"]) == 0
  assert calls == [("w", 2, 4, None)]  # overrides from argv, not from pytest's sys.argv.
  assert sys.argv == argv_before
  # Fresh flags each call: nothing is left defined from the last one.
  assert cli.run(define_flags, main, ["--workdir=v"]) == 0
  assert calls[-1] == ("v", 1, 32, None)
  assert capsys.readouterr().err == ""


def test_run_returns_mains_status_and_positional_arguments(toy):
  define_flags, main, calls = toy
  assert cli.run(define_flags, main, ["--workdir=w", "--n=3"]) == 3
  assert cli.run(define_flags, main, ["a.jpg", "--workdir=w", "b.jpg", "--", "--c"],
                 positional="IMAGE ...") == 0
  assert calls[-1][3] == ["a.jpg", "b.jpg", "--c"]


@pytest.mark.parametrize("argv, message", [
    (["--workdir=w", "--bogus"], "error: Unknown command line flag 'bogus'"),
    ([], "error: flag --workdir=None: Flag --workdir must have a value other than None."),
    (["--workdir=w", "--n=-1"], "error: flag --n=-1: -1 is not a non-negative integer"),
    (["--workdir=w", "--n=x"], "error: flag --n=x: invalid literal for int()"),
    (["--workdir=w", "extra"], "error: unexpected arguments: extra"),
    (["--workdir=w", "--config.batch_sise=3"],
     "error: --config.batch_sise: 'batch_sise' is not a field of the config (closest: "
     "batch_size)"),
    (["--workdir=w", "--config.foo=1", "--config.nme=2"],
     "error: --config.foo: 'foo' is not a field of the config; --config.nme: 'nme' is not "
     "a field of the config (closest: name)"),
    (["--workdir=w", "--config=/no/such/config.py"], "error: Configuration is not available"),
    (["--workdir=w", "--n=7"], "error: seven is not allowed"),
])
def test_usage_errors_are_one_line_with_status_2(toy, capsys, argv, message):
  define_flags, main, _ = toy
  assert cli.run(define_flags, main, argv) == cli.EXIT_USAGE
  assert _error_line(capsys).startswith(message)


def test_command_errors_keep_their_status_and_verbose_adds_the_traceback(toy, capsys):
  define_flags, main, _ = toy
  assert cli.run(define_flags, main, ["--workdir=w", "--n=8"]) == 1
  assert _error_line(capsys) == "error: eight failed"
  assert cli.run(define_flags, main, ["--workdir=w", "--n=7", "--verbose"]) == 2
  err = capsys.readouterr().err
  assert "Traceback" in err and "ValueError: seven is" in err
  assert err.splitlines()[-1] == "error: seven is not allowed"


def test_bugs_keep_their_exception(toy):
  define_flags, main, _ = toy
  with pytest.raises(RuntimeError, match="a bug"):
    cli.run(define_flags, main, ["--workdir=w", "--n=9"])


def test_help_prints_the_doc_and_flags_without_running(toy, capsys):
  define_flags, main, calls = toy
  assert cli.run(define_flags, main, ["--help"], positional="IMAGE [IMAGE ...]") == 0
  out = capsys.readouterr().out
  assert out.startswith(__doc__.strip().splitlines()[0])  # main's module docstring.
  for text in ("positional arguments: IMAGE [IMAGE ...]", "--workdir: Work directory.",
               "--n: A count.", "--[no]verbose"):
    assert text in out
  assert not calls


def test_tuned_malloc_restarts_only_the_real_command_line(toy, monkeypatch):
  define_flags, main, calls = toy
  restarts = []
  monkeypatch.setattr(allocator, "reexec_with_tuned_malloc", restarts.append)
  assert cli.run(define_flags, main, ["--workdir=w"], tuned_malloc=True) == 0
  assert not restarts  # in-process calls never re-execute.
  monkeypatch.setattr(sys, "argv", ["toy.py", "--workdir=w", "--n=2"])
  assert cli.run(define_flags, main, tuned_malloc=True) == 0
  assert restarts == [sys.orig_argv[1:]]
  seen = []
  assert cli.run(define_flags, main, tuned_malloc=lambda fv: seen.append(fv.n)) == 0
  assert seen == [2] and len(restarts) == 1  # the predicate said no.
  assert calls[-1] == ("w", 2, 32, None)


def test_default_config_is_in_the_checkout():
  path = cli.config_file("synthetic")
  assert os.path.isabs(path) and path == os.path.join(REPO, "configs", "synthetic.py")


# ----------------------------------------------------------------------------------
# The commands, in-process.


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_has_help(module, capsys):
  command = importlib.import_module(module)
  assert command.main(["--help"]) == 0
  out = capsys.readouterr().out
  assert out.startswith(command.__doc__.strip().splitlines()[0])
  assert "flags:" in out and "--[no]verbose" in out


@pytest.mark.parametrize("module, argv, message", [
    ("train", ["--workdir={tmp}/w", "--config.batch_size=0"],
     "error: config.batch_size=0: must be a positive integer"),
    ("train", ["--workdir={tmp}/w", "--config.dataset=nope"], "error: unknown dataset 'nope'"),
    ("train", ["--workdir={tmp}/w", "--bogus"], "error: Unknown command line flag 'bogus'"),
    ("eval", ["--workdir={tmp}"], "error: {tmp}/config.json not found"),
    ("eval", ["--workdir={tmp}", "--checkpoint=newest"], "error: flag --checkpoint=newest"),
    ("predict", ["--workdir={tmp}"], "error: no images given"),
    ("predict", ["--workdir={tmp}", "a.jpg"], "error: {tmp}/config.json not found"),
    ("predict", ["--workdir={tmp}", "--landmark_boxes_json={tmp}/none.json", "a.jpg"],
     "error: [Errno 2] No such file or directory"),
    ("asmnet_jax.export.__main__", ["--workdir={tmp}", "--out={tmp}/out"],
     "error: {tmp}/config.json not found"),
    ("asmnet_jax.export.__main__", ["--workdir={tmp}", "--out={tmp}/out", "--formats=tflite"],
     "error: --formats: unknown ['tflite']"),
    ("asmnet_jax.data.build", ["--manual_dir={tmp}"], "error: expected one dataset name"),
    ("asmnet_jax.data.build", ["nope", "--manual_dir={tmp}"], "error: expected one dataset name"),
    ("asmnet_jax.synthetic.faces", ["--grid={tmp}/no/dir/grid.png", "--n=1", "--size=32"],
     "error: [Errno 2] No such file or directory"),
    ("asmnet_jax.tools.ablation", ["--workdir={tmp}/w", "--variants=mnv2,bogus"],
     "error: flag --variants=['mnv2', 'bogus']: --variants takes one or more of"),
    ("asmnet_jax.tools.ablation", ["--workdir={tmp}/w", "--config.batch_size=0"],
     "error: config.batch_size=0: must be a positive integer"),
    ("asmnet_jax.tools.export_benchmark", ["--forms=tflite"], "error: flag --forms=['tflite']"),
    ("asmnet_jax.tools.input_benchmark", ["--pipelines=test"], "error: flag --pipelines=test"),
    ("asmnet_jax.inference.pretrained", ["--workdir={tmp}", "--out={tmp}/w/b.npz"],
     "error: {tmp}/config.json not found"),
    ("asmnet_jax.tools.detector_benchmark", ["--faces={tmp}"],
     "error: no landmarks.json in {tmp}"),
])
def test_command_usage_errors(module, argv, message, tmp_path, capsys):
  tmp = str(tmp_path)
  command = importlib.import_module(module)
  assert command.main([a.format(tmp=tmp) for a in argv]) == 2
  assert _error_line(capsys).startswith(message.format(tmp=tmp))
  assert not os.path.exists(tmp_path / "w")  # stopped before any work.


def test_sample_grid_command_keeps_its_flag_names(tmp_path, capsys):
  from asmnet_jax.synthetic import faces  # pylint: disable=g-import-not-at-top
  grid = tmp_path / "grid.png"
  assert faces.main([f"--grid={grid}", "--n=3", "--cols=2", "--first-seed=5", "--size=48",
                     "--scale=2", "--no-landmarks"]) == 0
  assert Image.open(grid).size == (2 * 96, 2 * 96)
  assert capsys.readouterr().out == f"wrote {grid} (192x192)\n"


@pytest.mark.slow
def test_export_command_checks_its_exports(tmp_path, monkeypatch, capsys):
  pytest.importorskip("onnxruntime")
  from asmnet_jax import testing  # pylint: disable=g-import-not-at-top
  from asmnet_jax.export import __main__ as export_cli  # pylint: disable=g-import-not-at-top
  from asmnet_jax.export import bundle  # pylint: disable=g-import-not-at-top
  from configs import synthetic  # pylint: disable=g-import-not-at-top
  config = synthetic.get_config()
  config.image_size = 32
  workdir = testing.save_untrained_workdir(str(tmp_path / "w"), config)
  out = tmp_path / "out"
  assert export_cli.main(["--workdir", workdir, "--out", str(out)]) == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed == {"out": str(out), "stablehlo": bundle.STABLEHLO_FILE,
                     "onnx": bundle.ONNX_FILE}
  with open(out / bundle.METADATA_FILE) as f:
    errors = json.load(f)["check_max_abs_error"]
  assert set(errors) == {"stablehlo", "onnx"}
  assert all(0 <= e["landmarks"] <= export_cli.TOLERANCE for e in errors.values())

  def off_by_one(model, out_dir):
    del model, out_dir
    return {"stablehlo": {"landmarks": 1.0, "pose_deg": 0.0}}

  monkeypatch.setattr(bundle, "check_exports", off_by_one)
  assert export_cli.main(["--workdir", workdir, "--out", str(tmp_path / "bad"),
                          "--formats", "stablehlo"]) == 1
  err = capsys.readouterr().err
  assert err.splitlines()[-1].startswith("error: exports differ from JAX beyond")


# ----------------------------------------------------------------------------------
# Real processes, started outside the repository.


def _run(args, cwd, timeout=300) -> subprocess.CompletedProcess:
  # The tuned allocator set here: the commands then skip re-executing themselves.
  env = dict(os.environ, GLIBC_TUNABLES=allocator.RECOMMENDED_GLIBC_TUNABLES)
  return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout)


@pytest.mark.slow
def test_usage_errors_of_real_processes_are_one_line(tmp_path):
  for args in ([os.path.join(REPO, "train.py"), "--workdir=w", "--config.batch_size=0"],
               ["-m", "asmnet_jax.synthetic.faces", "--bogus"]):
    result = _run(args, tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: "), result.stderr[-3000:]
  assert not os.path.exists(tmp_path / "w")


@pytest.mark.slow
def test_train_eval_predict_from_another_directory(tmp_path):
  """train.py (one step of the tiny network on the tiny synthetic set), eval.py and
  predict.py with relative paths from a directory that holds no configs/."""
  from asmnet_jax.synthetic import faces  # pylint: disable=g-import-not-at-top
  cwd = tmp_path / "elsewhere"
  cwd.mkdir()
  train = _run([os.path.join(REPO, "train.py"), "--workdir", "w",
                "--config.dataset=synthetic_faces/tiny", f"--config.data_dir={tmp_path}/tfds",
                "--config.model=tiny", "--config.image_size=32", "--config.batch_size=8",
                "--config.num_epochs=1",
                "--config.max_train_examples=8", "--config.eval_batch_size=16",
                "--config.log_every_steps=1", "--config.warmup_steps=0",
                "--config.precise_bn_batches=0", "--config.input.worker_count=0"], cwd)
  assert train.returncode == 0, train.stderr[-3000:]
  with open(cwd / "w" / "config.json") as f:
    stored = json.load(f)
  # configs/synthetic.py (its cosine schedule) found from here, then overridden.
  assert (stored["lr_schedule"], stored["image_size"]) == ("cosine", 32)

  evaluation = _run([os.path.join(REPO, "eval.py"), "--workdir", "w"], cwd)
  assert evaluation.returncode == 0, evaluation.stderr[-3000:]
  with open(cwd / "w" / "eval" / "results.json") as f:
    assert list(json.load(f)["splits"]) == ["test"]
  assert "| test | 16 |" in evaluation.stdout  # the results table, 16 test faces.

  face = faces.render_face(3, image_size=96)
  Image.fromarray(face["image"]).save(cwd / "face.png")
  (x0, y0), (x1, y1) = face["landmarks"].min(0), face["landmarks"].max(0)
  (cwd / "boxes.json").write_text(json.dumps({"face.png": [[float(x0), float(y0),
                                                            float(x1), float(y1)]]}))
  predict = _run([os.path.join(REPO, "predict.py"), "--workdir", "w", "face.png",
                  "--landmark_boxes_json", "boxes.json", "--out", "out"], cwd)
  assert predict.returncode == 0, predict.stderr[-3000:]
  with open(cwd / "out" / "predictions.json") as f:
    (entry,) = json.load(f)
  assert entry["image"] == "face.png" and (entry["width"], entry["height"]) == (96, 96)
  assert len(entry["faces"]) == 1 and len(entry["faces"][0]["landmarks"]) == 68
  assert Image.open(cwd / "out" / entry["drawing"]).size == (96, 96)
