"""Multi-host start-up: `jax.distributed.initialize()` where a cluster is described."""

from __future__ import annotations

import os

import jax

# A peer silent this long is declared dead and every process stops with a message
# (JAX's default is 100 s); a peer that dies mid-collective fails it at once.
HEARTBEAT_TIMEOUT_S = 60

# Variables by which JAX's cluster auto-detection (or the user) describes a job.
_CLUSTER_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE",
                      "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS")


def initialize_if_available() -> bool:
  """Joins the multi-host job when the environment describes one; True if it did.

  A single-task Slurm or MPI job is left alone (one process needs no coordinator).
  """
  if not any(v in os.environ for v in _CLUSTER_VARIABLES):
    return False
  tasks = os.environ.get("SLURM_NTASKS") or os.environ.get("OMPI_COMM_WORLD_SIZE")
  if tasks == "1" and "JAX_COORDINATOR_ADDRESS" not in os.environ:
    return False
  initialize()
  return True


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None,
               heartbeat_timeout_s: int = HEARTBEAT_TIMEOUT_S) -> None:
  """`jax.distributed.initialize` (None: auto-detected) with a bounded wait for a
  dead peer: a process killed mid-run makes the others' next collective fail with
  the connection error, and the coordination service then ends them, saying that
  another task died, within `heartbeat_timeout_s` (never a silent hang).
  """
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             heartbeat_timeout_seconds=heartbeat_timeout_s,
                             shutdown_timeout_seconds=heartbeat_timeout_s)
