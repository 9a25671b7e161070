"""Two processes on this machine (`jax.distributed`, a local coordinator, one CPU
device each) train as one process does on the same global batches; a killed peer
stops the other with a message instead of hanging it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np

from tests.conftest import FAST_COMPILE_XLA_FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 3
HEARTBEAT_S = 5

# Shared by the workers and the one-process reference: a tiny network (the data
# path is the point), 32 px, global batch 8 of 16 in-memory synthetic faces.
_SETUP = textwrap.dedent("""
    import jax, numpy as np
    from asmnet_jax.nn import models
    from asmnet_jax.core import asm
    from asmnet_jax.data import pipeline
    from asmnet_jax.tools import input_benchmark
    from asmnet_jax.train import config as config_lib, state as state_lib, step as step_lib
    from configs import synthetic

    def setup(devices):
      config = synthetic.get_config()
      config.image_size, config.batch_size, config.num_epochs = 32, 8, 2
      config.warmup_steps, config.input.worker_count = 0, 0
      records = input_benchmark.synthetic_source(16, size=64)
      shapes = pipeline.eval_normalized_landmarks(records, config.input.eval_margin)
      shape_model = asm.fit_shape_model(shapes, config.variance_kept)
      mesh = step_lib.make_mesh(devices)
      model = models.TinyNetwork(68, dropout_rate=0.0)
      state = state_lib.create_train_state(config, model, jax.random.key(0))
      step = step_lib.make_train_step(config, 2, mesh)
      return config, records, shape_model, mesh, state, step
""")

_WORKER = _SETUP + textwrap.dedent("""
    import os, sys
    from asmnet_jax.runtime import distributed
    process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    distributed.initialize(f"localhost:{port}", 2, process_id,
                           heartbeat_timeout_s=int(sys.argv[4]))
    config, records, shape_model, mesh, state, step = setup(jax.devices())
    # This host's half of each global batch (shards from jax.process_index/count).
    batches = pipeline.create_train_iterator(records, batch_size=8,
                                             config=config_lib.input_config(config), seed=0)
    rng = jax.random.key(1)
    for _ in range(%(steps)d):
      state, metrics = step(state, step_lib.global_batch(next(batches), mesh), shape_model, rng)
    params = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), state.params)
    if process_id == 0:
      np.savez(out, **{"/".join(map(str, k)): v
                       for k, v in jax.tree_util.tree_flatten_with_path(params)[0]})
      print("saved", flush=True)
    else:
      os.kill(os.getpid(), 9)  # killed mid-run: process 0 must not wait for it forever.
    jax.block_until_ready(step(state, step_lib.global_batch(next(batches), mesh), shape_model,
                               rng))
    print("step after the peer died returned", flush=True)
""") % {"steps": STEPS}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _flat(params) -> dict[str, np.ndarray]:
  flat = jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]
  return {"/".join(map(str, k)): np.asarray(v) for k, v in flat}


def _reference_params() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """One process, one device, the global batches the two hosts assemble: the
  initial and the trained parameters."""
  namespace: dict = {}
  exec(_SETUP, namespace)  # pylint: disable=exec-used
  config, records, shape_model, mesh, state, step = namespace["setup"](jax.devices()[:1])
  pipeline, step_lib = namespace["pipeline"], namespace["step_lib"]
  hosts = [pipeline.create_train_iterator(records, batch_size=8, seed=0, shard_index=h,
                                          shard_count=2,
                                          config=namespace["config_lib"].input_config(config))
           for h in range(2)]
  rng = jax.random.key(1)
  initial = _flat(state.params)
  for _ in range(STEPS):
    parts = [next(h) for h in hosts]
    batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    state, _ = step(state, step_lib.global_batch(batch, mesh), shape_model, rng)
  return initial, _flat(state.params)


def test_two_processes_train_as_one_and_a_killed_peer_stops_the_other(tmp_path):
  script, out, port = tmp_path / "worker.py", tmp_path / "params.npz", _free_port()
  script.write_text(_WORKER)
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = FAST_COMPILE_XLA_FLAGS  # one CPU device a process.
  start = time.perf_counter()
  workers = [subprocess.Popen([sys.executable, str(script), str(i), str(port), str(out),
                               str(HEARTBEAT_S)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
  try:
    results = [w.communicate(timeout=120) for w in workers]
  finally:
    for w in workers:
      w.kill()
  elapsed = time.perf_counter() - start
  (out0, err0), (_, err1) = results
  print(f"two processes: {elapsed:.1f} s")
  assert workers[1].returncode == -9, err1[-2000:]
  assert "saved" in out0, err0[-3000:]
  # Process 0's next step fails on the dead connection, and it exits, saying why.
  assert workers[0].returncode != 0 and "returned" not in out0
  assert "Connection closed by peer" in err0 or "another task died" in err0, err0[-3000:]
  assert elapsed < 60 + 2 * HEARTBEAT_S

  initial, reference = _reference_params()
  with np.load(out) as saved:
    assert set(saved.files) == set(reference)
    for name, value in reference.items():
      np.testing.assert_allclose(saved[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
  # Three steps moved the weights: the comparison is not of two initial states.
  moved = [name for name in reference if not np.allclose(initial[name], reference[name])]
  assert len(moved) > len(reference) // 2, moved
