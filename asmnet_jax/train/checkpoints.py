"""Orbax checkpoints of the training state: the latest few and the best.

`DIR/checkpoints/<step>` keeps the last `keep` saves; `DIR/best/<step>` keeps the one
with the lowest validation NME. Orbax writes each save into a temporary folder and
renames it when complete, so a run killed mid-save (SIGKILL included) leaves only
an unfinished temporary folder, which is never restored and is cleaned up on the
next start.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def _abstract(state: Any) -> Any:
  """Shapes, dtypes and shardings of `state`, to restore into the same layout."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class CheckpointManager:
  """Saves and restores a training state under a work directory."""

  def __init__(self, workdir: str, keep: int = 3):
    workdir = os.path.abspath(workdir)
    self.directory = os.path.join(workdir, "checkpoints")
    self._latest = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, cleanup_tmp_directories=True))
    self._best = ocp.CheckpointManager(
        os.path.join(workdir, "best"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda metrics: metrics["nme"], best_mode="min",
            keep_checkpoints_without_metrics=False, cleanup_tmp_directories=True))

  def save(self, step: int, state: Any, nme: float | None = None) -> None:
    """Saves `state` as the latest; also as the best when `nme` is the lowest yet."""
    self._latest.save(step, args=ocp.args.StandardSave(state), force=True)
    if nme is not None:
      self._best.save(step, args=ocp.args.StandardSave(state),
                      metrics={"nme": float(nme)}, force=True)

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def best_step(self) -> int | None:
    return self._best.best_step()

  def restore_latest(self, state: Any) -> Any:
    """The latest saved state laid out like `state`, or `state` when none exists."""
    step = self._latest.latest_step()
    if step is None:
      return state
    logging.info("Restoring %s/%d", self.directory, step)
    return self._latest.restore(step, args=ocp.args.StandardRestore(_abstract(state)))

  def restore_best(self, state: Any) -> Any:
    """The best saved state (by validation NME), else the latest, laid out like `state`."""
    step = self._best.best_step()
    if step is None:
      return self.restore_latest(state)
    return self._best.restore(step, args=ocp.args.StandardRestore(_abstract(state)))

  def wait(self) -> None:
    """Blocks until asynchronous saves are on disk."""
    self._latest.wait_until_finished()
    self._best.wait_until_finished()

  def close(self) -> None:
    self._latest.close()
    self._best.close()


CHECKPOINT_CHOICES = ("best", "latest")


def step_dir(workdir: str, checkpoint: str = "best") -> str:
  """DIR/best/<step> (lowest validation NME) or DIR/checkpoints/<step> (latest).

  "best" falls back to the latest checkpoint when no best one was saved.

  Raises:
    FileNotFoundError: when the work directory holds no checkpoint.
  """
  if checkpoint not in CHECKPOINT_CHOICES:
    raise ValueError(f"checkpoint must be one of {CHECKPOINT_CHOICES}, got {checkpoint!r}")
  manager = CheckpointManager(workdir)
  try:
    best = manager.best_step() if checkpoint == "best" else None
    latest = manager.latest_step()
  finally:
    manager.close()
  if best is not None:
    return os.path.join(os.path.abspath(workdir), "best", str(best))
  if latest is None:
    raise FileNotFoundError(f"no checkpoint under {workdir}: train it first")
  return os.path.join(manager.directory, str(latest))


def normalize_step_dir(path: str) -> str:
  """The absolute `.../<step>` directory of a step or of its `default` item folder."""
  path = os.path.abspath(os.fspath(path).rstrip("/"))
  if os.path.basename(path) == "default":
    path = os.path.dirname(path)
  if not os.path.basename(path).isdigit():
    raise ValueError(f"{path} is not a checkpoint step directory (…/<step>)")
  return path


def restore_tree(path: str) -> dict[str, Any]:
  """The train state saved in a step directory, as nested dicts of arrays.

  No target: the tree comes back as saved, so no optimiser or model is rebuilt.
  """
  path = normalize_step_dir(path)
  parent, name = os.path.split(path)
  with ocp.CheckpointManager(parent) as manager:
    return manager.restore(int(name), args=ocp.args.StandardRestore())

