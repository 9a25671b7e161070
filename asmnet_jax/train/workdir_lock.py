"""One writer per work directory: an exclusive OS lock on DIR/train.lock.

train.py holds it for the whole run; the OS releases it when the process ends,
however it ends (SIGKILL included), so a stale lock never blocks a restart. The file
says who holds it (pid, host, start time) for the message a second writer prints.
eval.py and predict.py only read and never take it.

`fcntl.flock` works on local filesystems and on NFS v4; on some shared filesystems
(older NFS, SMB/CIFS, Lustre without `-o flock`) locks may be refused or only seen by
the processes of one machine (docs/training.md).
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
from typing import Any

LOCK_FILE = "train.lock"


class WorkdirBusyError(RuntimeError):
  """Another process is training in this work directory."""


class WorkdirLock:
  """`with WorkdirLock(workdir):` holds DIR/train.lock exclusively, or raises
  WorkdirBusyError naming the holder (creates DIR if needed)."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd: int | None = None

  def __enter__(self) -> WorkdirLock:
    os.makedirs(self.workdir, exist_ok=True)
    # Not truncated on open: the holder's record stays readable to a second writer.
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        os.close(fd)  # e.g. ENOLCK: a filesystem without locks.
        logging.warning("cannot lock %s (%s): nothing stops a second train.py on this "
                        "work directory", self.path, e.strerror)
        return self
      holder = _read_holder(fd)
      os.close(fd)
      raise WorkdirBusyError(
          f"{self.workdir} is in use by another train.py ({_describe(holder)}); wait "
          "for it to end or stop it, or use another --workdir") from None
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                  timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    self._fd = fd
    return self

  def __exit__(self, *exc_info: Any) -> None:
    if self._fd is not None:
      os.close(self._fd)  # releases the lock; the file stays for the next run.
      self._fd = None


def _read_holder(fd: int) -> dict[str, Any]:
  try:
    record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    return record if isinstance(record, dict) else {}
  except (OSError, ValueError):
    return {}


def _describe(holder: dict[str, Any]) -> str:
  if not holder:
    return "its pid was not recorded yet"
  return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started "
          f"{holder.get('started', '?')}")
