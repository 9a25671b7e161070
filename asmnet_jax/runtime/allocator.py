"""glibc allocator settings that make XLA:CPU training steps much faster.

XLA:CPU allocates its temporaries (GBs per training step at 224 px, batch 50) with
glibc malloc, which maps each large buffer with mmap and unmaps it when freed, so
every step page-faults its temporaries in afresh (4 KiB pages, zeroed by the
kernel): about 1.5 M faults and 4 s of system time a step on the 2-core machine.
`RECOMMENDED_GLIBC_TUNABLES` keeps freed memory in one arena for reuse (no faults)
on transparent huge pages. Measured there: the 64 px, batch 32 ASMNet step goes
from 151 to 256 images/s.

glibc reads GLIBC_TUNABLES only when a process starts, so the command-line entry
points (train.py, eval.py, the ablation, `python -m asmnet_jax.tools.benchmark`) re-execute themselves with it set, once.
Setting GLIBC_TUNABLES yourself (even to an empty string) turns this off.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

RECOMMENDED_GLIBC_TUNABLES = ":".join([
    "glibc.malloc.hugetlb=1",  # madvise(MADV_HUGEPAGE) on malloc's mappings.
    "glibc.malloc.arena_max=1",  # big buffers from worker threads: the main heap,
    "glibc.malloc.mmap_max=0",  # not per-call mmap,
    "glibc.malloc.trim_threshold=1000000000000",  # and never handed back to the OS.
])


def reexec_with_tuned_malloc(python_args: Sequence[str]) -> None:
  """Replaces this process by `python *python_args` with GLIBC_TUNABLES set.

  Returns without doing anything off Linux or when GLIBC_TUNABLES is already set
  (which is also what stops the restarted process from restarting again).

  Args:
    python_args: what follows the interpreter on the new command line, e.g.
      `["-m", "asmnet_jax.tools.benchmark", *sys.argv[1:]]` or `sys.argv` for a script.
  """
  if "GLIBC_TUNABLES" in os.environ or not sys.platform.startswith("linux"):
    return
  sys.stdout.flush()
  sys.stderr.flush()
  env = dict(os.environ, GLIBC_TUNABLES=RECOMMENDED_GLIBC_TUNABLES)
  os.execve(sys.executable, [sys.executable, *python_args], env)
