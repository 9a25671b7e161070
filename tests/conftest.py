"""Session fixtures: a persistent XLA compilation cache, the tiny synthetic dataset
and one tiny trained work directory, each built once per test run.

pytest-xdist runs every worker as its own process with its own session, so what
these build lives in the run's shared temporary root and is built under a file
lock: the first worker to need it builds it, the others wait for it and reuse it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import shutil
from typing import Any, Iterator

# The suite spends most of its time compiling, and LLVM's lowest optimisation level
# compiles 2-8x faster; set before any backend starts, and inherited by subprocesses
# (unless the caller's XLA_FLAGS already chose a level).
FAST_COMPILE_XLA_FLAGS = "--xla_backend_optimization_level=0"
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_XLA_FLAGS}".strip()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import ml_collections
import pytest
from jax.experimental.compilation_cache import compilation_cache

from asmnet_jax.data import registry
from asmnet_jax.train import loop
from configs import synthetic

TINY_DATASET = "synthetic_faces/tiny"  # 48 train, 16 validation, 16 test faces.


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
  """The temporary root all xdist workers of this run share (basetemp without xdist)."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
  """Holds an exclusive lock on `path` (created if missing) across processes."""
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session", autouse=True)
def compilation_cache_dir(tmp_path_factory) -> Iterator[str]:
  """A persistent compilation cache for this run, in-process and for subprocesses.

  Each `train_and_evaluate` (and each train.py process) builds new jitted closures,
  which JAX's in-memory caches never match, so without it every run compiles the
  same training step again (about a minute on two busy cores); with it, a run with
  the same compiled settings loads the executables from disk.
  """
  path = str(_shared_root(tmp_path_factory) / "xla_cache")
  previous = jax.config.jax_compilation_cache_dir
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("JAX_COMPILATION_CACHE_DIR", path)  # inherited by subprocesses.
    compilation_cache.set_cache_dir(path)
    # A compile before this (e.g. while collecting) has already decided "no cache".
    compilation_cache.reset_cache()
    yield path
    compilation_cache.set_cache_dir(previous)
    compilation_cache.reset_cache()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> str:
  """The TFDS data_dir holding `synthetic_faces/tiny`, built once for the run."""
  root = _shared_root(tmp_path_factory)
  data_dir = root / "tfds"
  with _locked(root / "tfds.lock"):
    registry.prepare(TINY_DATASET, str(data_dir))
  return str(data_dir)


def trained_run_config(data_dir: str) -> ml_collections.ConfigDict:
  """The shared run: 60 steps of 8 faces at 32 px, validated and saved at 30 and 60.

  The network is `models.TinyNetwork`: what these tests check is the loop, the
  checkpoints and the tools around the network (tests/test_models.py checks ASMNet
  itself), and ASMNet's steps would compile for most of a minute per process.
  """
  config = synthetic.get_config()
  config.model = "tiny"
  config.dataset = TINY_DATASET
  config.data_dir = data_dir
  config.image_size = 32
  config.batch_size = 8  # 6 steps an epoch.
  config.eval_batch_size = 16  # the 16 validation faces in one batch.
  config.num_epochs = 10
  config.learning_rate = 1e-2
  config.warmup_steps = 6
  config.precise_bn_batches = 2
  config.log_every_steps = 5
  config.eval_every_steps = 30
  config.checkpoint_every_steps = 30
  config.input.worker_count = 0  # no worker process to start.
  return config


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """A finished `train_and_evaluate` work directory, shared by the tests.

  workdir: read-only; `copy_to` a test's own directory to change it.
  config: the run's config (copy it before changing it).
  results: the final validation metrics the run returned.
  """
  workdir: str
  config: ml_collections.ConfigDict
  results: dict[str, Any]

  def copy_to(self, path: os.PathLike | str) -> str:
    shutil.copytree(self.workdir, path)
    return str(path)


@pytest.fixture(scope="session")
def trained_run(tiny_data_dir, tmp_path_factory) -> TrainedRun:
  """`trained_run_config` trained once for the whole run (see the module doc)."""
  root = _shared_root(tmp_path_factory)
  workdir, done = root / "trained_run", root / "trained_run.json"
  config = trained_run_config(tiny_data_dir)
  with _locked(root / "trained_run.lock"):
    if not done.exists():
      shutil.rmtree(workdir, ignore_errors=True)  # left by a worker that failed.
      done.write_text(json.dumps(loop.train_and_evaluate(config, str(workdir))))
  return TrainedRun(str(workdir), config, json.loads(done.read_text()))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups.
def pytest_collection_modifyitems(items) -> None:
  """Groups the tests of the shared run (`--dist loadgroup` sends them to one worker,
  so no other worker waits for the run to be trained)."""
  for item in items:
    if "trained_run" in getattr(item, "fixturenames", ()):
      item.add_marker(pytest.mark.xdist_group("trained_run"))
