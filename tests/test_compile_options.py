"""Inference compiler options: same numbers, no YNNPACK fusions on CPU, safe fallback."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax import testing
from asmnet_jax.nn import models
from asmnet_jax.runtime import compile_options

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU options")


def test_cpu_options_are_accepted_here():
  assert compile_options.inference_options() == compile_options.CPU_INFERENCE_OPTIONS


def test_folded_model_gives_the_same_outputs_without_library_fusions():
  model = models.create_model("asmnet", 68)
  images = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3))
  variables = testing.random_variables(model, 64)  # No compile of model.init.
  infer_model, infer_vars = models.fold_batch_norm(model, variables)
  # The executable that is inspected is the one that runs (a call would compile again).
  tuned = compile_options.jit_inference(infer_model.apply).lower(infer_vars, images).compile()
  default = jax.jit(infer_model.apply)
  assert "__ynn_fusion" not in tuned.as_text()
  for a, b in zip(tuned(infer_vars, images), default(infer_vars, images)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_rejected_options_fall_back_to_none(monkeypatch, caplog):
  monkeypatch.setattr(compile_options, "CPU_INFERENCE_OPTIONS",
                      {"xla_cpu_option_that_does_not_exist": True})
  assert compile_options.inference_options() == {}
  assert "not accepted" in caplog.text
  fn = compile_options.jit_inference(lambda x: 2 * x)
  np.testing.assert_array_equal(fn(jnp.arange(3.0)), [0.0, 2.0, 4.0])
