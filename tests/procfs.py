"""Process checks for the tests that kill processes (Linux /proc)."""

from __future__ import annotations

import os

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
