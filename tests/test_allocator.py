"""The allocator re-execution used by the command-line entry points."""

from __future__ import annotations

import os
import sys

import pytest

from asmnet_jax.runtime import allocator


class _Execve(Exception):
  pass


def _fake_execve(path, args, env):
  raise _Execve(path, args, env)


def test_reexec_sets_tunables_and_keeps_the_command_line(monkeypatch):
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  monkeypatch.setattr(sys, "platform", "linux")
  monkeypatch.setattr(os, "execve", _fake_execve)
  with pytest.raises(_Execve) as raised:
    allocator.reexec_with_tuned_malloc(["train.py", "--workdir", "w"])
  path, args, env = raised.value.args
  assert path == sys.executable
  assert args == [sys.executable, "train.py", "--workdir", "w"]
  assert env["GLIBC_TUNABLES"] == allocator.RECOMMENDED_GLIBC_TUNABLES


@pytest.mark.parametrize("tunables", ["", "glibc.malloc.arena_max=2"])
def test_a_set_variable_turns_it_off(monkeypatch, tunables):
  monkeypatch.setenv("GLIBC_TUNABLES", tunables)
  monkeypatch.setattr(os, "execve", _fake_execve)
  allocator.reexec_with_tuned_malloc(["train.py"])  # Returns: no restart.
