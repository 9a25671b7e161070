"""Orbax checkpoints of the training state: the latest few and the best.

`DIR/checkpoints/<step>` keeps the last `keep` saves; `DIR/best/<step>` keeps the one
with the lowest validation NME. Orbax writes each save into a temporary folder and
renames it when complete, so a run killed mid-save (SIGKILL included) leaves only
an unfinished temporary folder, which is never restored and is cleaned up on the
next start.

Damage: restoring tries the newest checkpoint first and, when one cannot be read
(a missing or truncated file, bad metadata, a tree that does not fit), the next
older one. Once one is read, each unreadable newer one is reported in one line
(step and file) and moved aside to `<parent>/damaged/<step>`, never deleted. When
none can be read nothing is moved and `CheckpointError` says why for each, rather
than letting a run start again from scratch over them.

A save that fails (no space, a read-only or over-quota disk) raises
`CheckpointSaveError` naming the directory; the earlier checkpoints stay intact.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import re
import sys
from typing import Any, Callable, Iterator, Sequence, TypeVar

import jax
import orbax.checkpoint as ocp

DAMAGED_DIR = "damaged"
CHECKPOINT_CHOICES = ("best", "latest")
# Orbax's files of a step folder that must be there (the data files are checked by
# reading them), and the JSON ones that must parse when present.
_REQUIRED_FILES = ("default/_METADATA", "default/manifest.ocdbt")
_JSON_FILES = ("_CHECKPOINT_METADATA", "default/_METADATA", "default/_sharding",
               "default/array_metadatas/*")
# A TensorStore status inside Orbax's message: "OUT_OF_RANGE: Error reading ...".
_STATUS = re.compile(r"\b([A-Z][A-Z_]{3,}[A-Z]): (.*?)(?: \[tensorstore_spec=|\n|$)")
# What a full, read-only or over-quota disk (or a failing one) raises.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)

T = TypeVar("T")


class CheckpointError(ValueError):
  """No checkpoint of a work directory can be read; the message says why for each.

  A ValueError: the commands report it in one line like other bad input."""


class CheckpointSaveError(RuntimeError):
  """Saving a checkpoint failed (disk full, read-only, quota); earlier ones are kept."""


class DamagedCheckpoint(ValueError):
  """One step folder that cannot be read; the message names the file."""


def _abstract(state: Any) -> Any:
  """Shapes, dtypes and shardings of `state`, to restore into the same layout."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def check_step_files(path: str) -> None:
  """Raises DamagedCheckpoint naming a missing required file or a JSON file of the
  step folder `path` that does not parse (cheap; the data is checked by reading)."""
  for name in _REQUIRED_FILES:
    if not os.path.isfile(os.path.join(path, name)):
      raise DamagedCheckpoint(f"{os.path.join(path, name)} is missing")
  for pattern in _JSON_FILES:
    for name in sorted(glob.glob(os.path.join(path, pattern))):
      try:
        with open(name, encoding="utf-8") as f:
          json.load(f)
      except (ValueError, UnicodeDecodeError) as e:
        raise DamagedCheckpoint(f"{name} is not valid JSON ({e})") from None


def damage_reason(error: BaseException) -> str:
  """One line on why a checkpoint could not be read, from Orbax's or TensorStore's
  (often pages-long) message: the status line that names the file, when there is one."""
  if isinstance(error, DamagedCheckpoint):
    return str(error)
  texts, seen = [], error
  while seen is not None and len(texts) < 10:
    texts.append(str(seen))
    seen = seen.__cause__ or seen.__context__
  for text in texts:
    match = _STATUS.search(text)
    if match:
      return f"{match.group(1)}: {match.group(2)}"
  first = next((line.strip() for line in texts[0].splitlines() if line.strip()), "")
  return f"{type(error).__name__}: {first[:300]}"


def _drop_failed_read_noise(hook: Callable[[Any], None]) -> Callable[[Any], None]:
  """An unraisable hook that drops what a failed Orbax read leaves behind (TensorStore's
  late callbacks into Orbax's closed event loop, `RuntimeError: Event loop is closed`,
  printed by the hundred, and its abandoned reads of the other arrays) and hands
  every other unraisable exception to `hook`."""

  def filtered(unraisable):
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
      return
    if str(value).startswith("Encountered error while reading array index") and \
        "orbax" in getattr(getattr(unraisable.object, "cr_code", None), "co_filename", ""):
      return
    hook(unraisable)

  filtered.drops_failed_read_noise = True
  return filtered


class _DropUnretrievedTensorStoreErrors(logging.Filter):
  """Drops asyncio's "Task exception was never retrieved" records (each with a
  traceback) of the TensorStore errors of a failed Orbax write or read, whose first
  error the caller reports."""

  def filter(self, record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return not (error is not None and "exception was never retrieved" in str(record.msg)
                and _STATUS.search(str(error)) is not None)


_ASYNCIO_FILTER = _DropUnretrievedTensorStoreErrors()


def _quiet_failed_reads() -> None:
  """Installs `_drop_failed_read_noise` and `_DropUnretrievedTensorStoreErrors` once,
  for good: their noise arrives during and after the failed read or write."""
  if not getattr(sys.unraisablehook, "drops_failed_read_noise", False):
    sys.unraisablehook = _drop_failed_read_noise(sys.unraisablehook)
  if _ASYNCIO_FILTER not in logging.getLogger("asyncio").filters:
    logging.getLogger("asyncio").addFilter(_ASYNCIO_FILTER)


class _DropTracebacks(logging.Filter):
  """Keeps Orbax's own log lines but not the tracebacks it logs for a failure that
  the caller reports itself."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.exc_info and "orbax" in (record.pathname or ""):
      record.exc_info, record.exc_text = None, None
    return True


@contextlib.contextmanager
def _orbax_tracebacks_dropped() -> Iterator[None]:
  handler_filter = _DropTracebacks()
  loggers = [logging.getLogger(), logging.getLogger("absl")]
  handlers = [h for logger in loggers for h in logger.handlers]
  for handler in handlers:
    handler.addFilter(handler_filter)
  try:
    yield
  finally:
    for handler in handlers:
      handler.removeFilter(handler_filter)


def move_aside(path: str) -> str:
  """Moves the step folder `path` to `<parent>/damaged/<step>` (a numbered suffix if
  that exists already) and returns where it went; never deletes anything."""
  parent, name = os.path.split(os.path.abspath(path))
  damaged = os.path.join(parent, DAMAGED_DIR)
  os.makedirs(damaged, exist_ok=True)
  target, n = os.path.join(damaged, name), 1
  while os.path.exists(target):
    target, n = os.path.join(damaged, f"{name}.{n}"), n + 1
  os.rename(path, target)
  return target


def restore_first_readable(paths: Sequence[str], restore: Callable[[str], T],
                           what: str) -> tuple[str, T]:
  """`restore(path)` of the first step folder of `paths` (newest first) that reads.

  The unreadable ones before it are reported (one warning line each, naming the
  step and the file) and moved aside (`move_aside`).

  Args:
    paths: step folders, in the order to try them.
    restore: reads one; any exception counts as "unreadable".
    what: the checkpoints' owner for the messages, e.g. the work directory.

  Returns:
    (the path read, what `restore` returned).

  Raises:
    CheckpointError: none could be read (nothing is moved then), or `paths` is empty.
  """
  failures = []
  _quiet_failed_reads()
  for path in paths:
    try:
      check_step_files(path)
      with _orbax_tracebacks_dropped():
        value = restore(path)
    except Exception as e:  # pylint: disable=broad-exception-caught
      failures.append((path, damage_reason(e)))
      continue
    for bad, reason in failures:
      try:
        moved = f"moved to {move_aside(bad)}"
      except OSError as e:
        moved = f"could not be moved aside ({e.strerror})"
      logging.warning("checkpoint %s is damaged and %s: %s", bad, moved, reason)
    if failures:
      logging.warning("using checkpoint %s", path)
    return path, value
  if not paths:
    raise CheckpointError(f"no checkpoint under {what}: train it first")
  if len(failures) == 1:
    raise CheckpointError(f"checkpoint {failures[0][0]} cannot be read (nothing was moved "
                          f"or deleted): {failures[0][1]}")
  listed = "; ".join(f"{path}: {reason}" for path, reason in failures)
  raise CheckpointError(
      f"no readable checkpoint in {what} (nothing was moved or deleted): {listed}")


def _disk_problem(error: BaseException) -> str | None:
  """One line on a full, read-only or over-quota disk behind `error`, else None: an
  OSError in its chain, or TensorStore's status saying so."""
  texts, seen = [], error
  while seen is not None and len(texts) < 10:
    if isinstance(seen, OSError) and seen.errno in DISK_ERRNOS:
      return f"{seen.strerror} ({seen.filename})" if seen.filename else seen.strerror
    texts.append(str(seen))
    seen = seen.__cause__ or seen.__context__
  for text in texts:
    if any(os.strerror(code) in text for code in DISK_ERRNOS):
      match = _STATUS.search(text)
      return f"{match.group(1)}: {match.group(2)}" if match else text.splitlines()[0][:300]
  return None


def step_folders(directory: str) -> list[str]:
  """The finished step folders of `directory` (`<step>`; no temporary or damaged
  ones), newest first; [] when it does not exist. Reads only."""
  try:
    names = os.listdir(directory)
  except FileNotFoundError:
    return []
  steps = sorted((int(n) for n in names if n.isdigit()), reverse=True)
  return [os.path.join(directory, str(step)) for step in steps]


def damaged_folders(directory: str) -> list[str]:
  """What `move_aside` put under `directory`/damaged."""
  path = os.path.join(directory, DAMAGED_DIR)
  return sorted(os.path.join(path, n) for n in os.listdir(path)) if os.path.isdir(path) else []


class CheckpointManager:
  """Saves and restores a training state under a work directory."""

  def __init__(self, workdir: str, keep: int = 3):
    workdir = os.path.abspath(workdir)
    self.directory = os.path.join(workdir, "checkpoints")
    self.best_directory = os.path.join(workdir, "best")
    self._latest = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, cleanup_tmp_directories=True))
    self._best = ocp.CheckpointManager(
        self.best_directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda metrics: metrics["nme"], best_mode="min",
            keep_checkpoints_without_metrics=False, cleanup_tmp_directories=True))

  def save(self, step: int, state: Any, nme: float | None = None) -> None:
    """Saves `state` as the latest; also as the best when `nme` is the lowest yet.

    Waits until it is on disk, so that a failed save stops the caller at this step.

    Raises:
      CheckpointSaveError: the disk is full, read-only or over quota; the earlier
        checkpoints are intact and the unfinished one is cleaned up on the next start.
    """
    _quiet_failed_reads()  # a failed write leaves the same noise as a failed read.
    try:
      with _orbax_tracebacks_dropped():
        try:
          self._latest.save(step, args=ocp.args.StandardSave(state), force=True)
          # A run resumed before a damaged checkpoint meets the steps it saved as the
          # best before: that one stays (the same weights, as resuming is exact).
          if nme is not None and step not in self._best.all_steps():
            self._best.save(step, args=ocp.args.StandardSave(state),
                            metrics={"nme": float(nme)}, force=True)
        finally:
          self.wait()  # also when the other save failed: nothing is left half-written.
    except Exception as e:  # pylint: disable=broad-exception-caught
      disk = _disk_problem(e)
      if disk is None:
        raise
      kept = [p for p in step_folders(self.directory) if p != os.path.join(self.directory,
                                                                            str(step))]
      kept = f"the last good checkpoint, {kept[0]}, is kept" if kept else "none was saved before"
      raise CheckpointSaveError(
          f"saving checkpoint step {step} under {os.path.dirname(self.directory)} "
          f"failed: {disk}; {kept}. Free "
          "space, then run the same command to resume") from e

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def best_step(self) -> int | None:
    return self._best.best_step()

  def restore_latest(self, state: Any) -> Any:
    """The newest readable saved state laid out like `state`, or `state` when none
    was ever saved (`restore_first_readable` for damage).

    Raises:
      CheckpointError: no checkpoint is readable, or all were moved aside as damaged.
    """
    paths = step_folders(self.directory)
    if not paths:
      damaged = damaged_folders(self.directory)
      if damaged:
        raise CheckpointError(
            f"every checkpoint of {self.directory} was moved aside as damaged "
            f"({', '.join(damaged)}); not starting from scratch over them: move "
            f"{os.path.join(self.directory, DAMAGED_DIR)} away to do so, or use a new "
            "--workdir")
      return state
    target = ocp.args.StandardRestore(_abstract(state))
    path, restored = restore_first_readable(
        paths, lambda p: self._latest.restore(int(os.path.basename(p)), args=target),
        self.directory)
    self._latest.reload()
    logging.info("Restored %s", path)
    return restored

  def wait(self) -> None:
    """Blocks until asynchronous saves are on disk."""
    self._latest.wait_until_finished()
    self._best.wait_until_finished()

  def close(self) -> None:
    self._latest.close()
    self._best.close()


def _best_first(directory: str) -> list[str]:
  """`directory`'s step folders, lowest stored validation NME first (then newest)."""

  def nme(path):
    try:
      with open(os.path.join(path, "_CHECKPOINT_METADATA"), encoding="utf-8") as f:
        return float(json.load(f)["metrics"]["nme"])
    except (OSError, ValueError, KeyError, TypeError):
      return float("inf")

  return sorted(step_folders(directory), key=nme)  # stable: newest first on ties.


def step_candidates(workdir: str, checkpoint: str = "best") -> list[str]:
  """The step folders to try for `checkpoint`, in order. Reads only.

  checkpoint: "best" (DIR/best, then the latest ones), "latest" (DIR/checkpoints,
  newest first) or a step number (that step in DIR/checkpoints or DIR/best).
  """
  workdir = os.path.abspath(workdir)
  latest = step_folders(os.path.join(workdir, "checkpoints"))
  if checkpoint == "latest":
    return latest
  if checkpoint == "best":
    return _best_first(os.path.join(workdir, "best")) + latest
  if checkpoint.isdigit():
    step = str(int(checkpoint))
    return [p for p in latest + step_folders(os.path.join(workdir, "best"))
            if os.path.basename(p) == step][:1]
  raise ValueError(f"checkpoint must be one of {CHECKPOINT_CHOICES} or a step number, "
                   f"got {checkpoint!r}")


def step_dir(workdir: str, checkpoint: str = "best") -> str:
  """DIR/best/<step> (lowest validation NME), DIR/checkpoints/<step> (latest) or the
  given step's folder, without reading it (`restore_workdir` falls back on damage).

  "best" falls back to the latest checkpoint when no best one was saved.

  Raises:
    FileNotFoundError: when the work directory holds no such checkpoint.
  """
  candidates = step_candidates(workdir, checkpoint)
  if not candidates:
    raise FileNotFoundError(_none_found(workdir, checkpoint))
  return candidates[0]


def _none_found(workdir: str, checkpoint: str) -> str:
  if checkpoint.isdigit():
    return f"no checkpoint of step {int(checkpoint)} under {workdir}"
  damaged = damaged_folders(os.path.join(os.path.abspath(workdir), "checkpoints"))
  if damaged:
    return f"no checkpoint under {workdir}, only damaged ones: {', '.join(damaged)}"
  return f"no checkpoint under {workdir}: train it first"


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

  Raises:
    CheckpointError: it cannot be read; one line naming the step and the file.
  """
  path = normalize_step_dir(path)
  _, tree = restore_first_readable([path], _restore_tree_unchecked, path)
  return tree


def _restore_tree_unchecked(path: str) -> dict[str, Any]:
  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(os.path.join(path, "default"))


def restore_workdir(workdir: str, checkpoint: str = "best") -> tuple[str, dict[str, Any]]:
  """(step folder, tree) of the first readable of `step_candidates` (`restore_tree`'s
  tree); damaged newer ones are moved aside and reported (`restore_first_readable`).

  Raises:
    FileNotFoundError: there is no such checkpoint at all.
    CheckpointError: none of them can be read.
  """
  candidates = step_candidates(workdir, checkpoint)
  if not candidates:
    raise FileNotFoundError(_none_found(workdir, checkpoint))
  path, tree = restore_first_readable(candidates, _restore_tree_unchecked, workdir)
  return path, tree
