"""Multi-host start-up: `jax.distributed.initialize()` where a cluster is described."""

from __future__ import annotations

import os

import jax

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
  jax.distributed.initialize()
  return True
