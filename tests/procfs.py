"""Process checks for the tests that kill processes (Linux /proc)."""

from __future__ import annotations

import os
import time

AVAILABLE = os.path.isdir("/proc/self")


def _stat_fields(pid: int) -> list[str]:
  """/proc/PID/stat after "(comm)": state, ppid, ... (raises if there is no such pid)."""
  with open(f"/proc/{pid}/stat") as f:
    return f.read().rsplit(")", 1)[1].split()


def running(pid: int) -> bool:
  """Alive and not a zombie (an orphan's exit is reaped by whoever adopted it)."""
  try:
    return _stat_fields(pid)[0] != "Z"
  except (FileNotFoundError, ProcessLookupError):
    return False


def children(pid: int) -> list[int]:
  """The processes whose parent is `pid`."""
  found = []
  for entry in filter(str.isdigit, os.listdir("/proc")):
    try:
      if int(_stat_fields(int(entry))[1]) == pid:
        found.append(int(entry))
    except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
      continue
  return found


def wait_until_ended(pids: list[int], timeout_s: float) -> list[int]:
  """Polls until none of `pids` is running or `timeout_s` passes; returns those still running."""
  deadline = time.time() + timeout_s
  while time.time() < deadline and any(map(running, pids)):
    time.sleep(0.05)
  return [pid for pid in pids if running(pid)]
