"""What a benchmark ran on, for its JSON records (figures mean little without it)."""

from __future__ import annotations

import os
import platform
from typing import Any

import jax


def cpu_description() -> str:
  """The CPU, e.g. "AMD EPYC (family 26, model 2)".

  Cloud machines often report only a brand name, so Linux's CPU family and model
  numbers are added: they tell processor generations apart (AMD family 25 is Zen 3
  and 4, family 26 Zen 5).
  """
  fields: dict[str, str] = {}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if not line.strip():
          break  # the first processor is enough.
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
  except OSError:
    pass
  name = fields.get("model name") or platform.processor() or platform.machine()
  if "cpu family" in fields and "model" in fields:
    name += f" (family {fields['cpu family']}, model {fields['model']})"
  return name


def machine_record() -> dict[str, Any]:
  """cpu, cpu_count, load_avg_1min (other work on the machine slows wall times),
  the accelerator and the JAX version."""
  return {
      "cpu": cpu_description(),
      "cpu_count": os.cpu_count(),
      "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
      "device": str(jax.devices()[0].device_kind),
      "jax": jax.__version__,
  }
