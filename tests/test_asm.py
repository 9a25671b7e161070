"""The shape model against an independent NumPy PCA (covariance + eigh)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax.core import asm


def random_shapes(num_shapes=200, num_points=12, seed=0):
  """Correlated random shapes (K, n, 2): a few latent modes plus small noise."""
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(num_points, 2))
  modes = rng.normal(size=(4, num_points, 2)) * np.array([3.0, 1.5, 0.7, 0.3])[:, None, None]
  weights = rng.normal(size=(num_shapes, 4))
  noise = 0.02 * rng.normal(size=(num_shapes, num_points, 2))
  return base + np.einsum("km,mnd->knd", weights, modes) + noise


def reference_pca(shapes, variance_kept):
  flat = shapes.reshape(len(shapes), -1)
  cov = np.cov(flat, rowvar=False, ddof=1)
  values, vectors = np.linalg.eigh(cov)
  order = np.argsort(values)[::-1]
  values, vectors = values[order], vectors[:, order]
  kept = 0
  while values[:kept].sum() / values.sum() < variance_kept:
    kept += 1
  return flat.mean(0), vectors[:, :kept], values[:kept]


@pytest.mark.parametrize("variance_kept", [0.5, 0.9, 0.95, 0.999])
def test_fit_matches_covariance_eigendecomposition(variance_kept):
  shapes = random_shapes()
  model = asm.fit_shape_model(shapes, variance_kept)
  mean, vectors, values = reference_pca(shapes, variance_kept)
  assert model.num_components == vectors.shape[1]
  np.testing.assert_allclose(model.mean, mean, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(model.eigenvalues, values, rtol=1e-4)
  # Eigenvectors are defined up to sign: compare the projectors.
  np.testing.assert_allclose(model.components @ model.components.T, vectors @ vectors.T,
                             atol=1e-4)
  np.testing.assert_allclose(model.components.T @ model.components,
                             np.eye(model.num_components), atol=1e-5)


def test_fit_keeps_everything_at_variance_one():
  shapes = random_shapes(num_points=5)
  model = asm.fit_shape_model(shapes, 1.0)
  assert model.num_components == 10
  # With every component kept and huge clipping limits, projection is the identity.
  np.testing.assert_allclose(asm.project(model, jnp.asarray(shapes[:3], jnp.float32)),
                             shapes[:3], atol=1e-4)


def reference_project(mean, components, eigenvalues, shape):
  s = shape.reshape(-1)
  out = mean.copy()
  for i in range(components.shape[1]):
    b = float(np.dot(components[:, i], s - mean))
    limit = 3.0 * np.sqrt(eigenvalues[i])
    out += min(max(b, -limit), limit) * components[:, i]
  return out.reshape(shape.shape)


def test_project_matches_reference_loop():
  shapes = random_shapes()
  model = asm.fit_shape_model(shapes[:150], 0.9)
  mean, comps, vals = (np.asarray(a, np.float64) for a in
                       (model.mean, model.components, model.eigenvalues))
  test = np.concatenate([shapes[150:], 5.0 * shapes[150:155]])  # Some far outside.
  expected = np.stack([reference_project(mean, comps, vals, s) for s in test])
  got = asm.project(model, jnp.asarray(test, jnp.float32))
  assert got.shape == test.shape
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_project_is_identity_on_mean_and_inside_box():
  model = asm.fit_shape_model(random_shapes(), 0.9)
  n = model.num_points
  mean_shape = model.mean.reshape(n, 2)
  np.testing.assert_allclose(asm.project(model, mean_shape[None]), mean_shape[None], atol=1e-6)
  rng = np.random.default_rng(1)
  b = rng.uniform(-0.99, 0.99, size=(7, model.num_components)) * 3 * np.sqrt(model.eigenvalues)
  inside = (model.mean + b @ model.components.T).reshape(7, n, 2)
  np.testing.assert_allclose(asm.project(model, inside), inside, atol=1e-5)


def test_clipping_engages_outside_box():
  model = asm.fit_shape_model(random_shapes(), 0.9)
  limit = 3 * np.sqrt(np.asarray(model.eigenvalues))
  b = np.zeros((2, model.num_components))
  b[0, 0] = 10 * limit[0]
  b[1, -1] = -4 * limit[-1]
  outside = (model.mean + b @ model.components.T).reshape(2, -1, 2)
  got_b = asm.coefficients(model, asm.project(model, outside))
  np.testing.assert_allclose(got_b[0, 0], limit[0], rtol=1e-4)
  np.testing.assert_allclose(got_b[1, -1], -limit[-1], rtol=1e-4)
  np.testing.assert_allclose(got_b[0, 1:], 0, atol=1e-4)


def test_project_jit_vmap_grad_and_dtypes():
  model = asm.fit_shape_model(random_shapes(), 0.9)
  shapes = jnp.asarray(random_shapes(num_shapes=6, seed=3), jnp.float32)
  eager = asm.project(model, shapes)
  np.testing.assert_allclose(jax.jit(asm.project)(model, shapes), eager, atol=1e-5)
  vmapped = jax.vmap(asm.project, in_axes=(None, 0))(model, shapes.reshape(2, 3, -1, 2))
  np.testing.assert_allclose(vmapped.reshape(eager.shape), eager, atol=1e-5)
  # Inside the box the map is the orthogonal projector, so d sum(out)/ds = P Pᵀ 1.
  mean_shape = model.mean.reshape(1, -1, 2)
  grad = jax.grad(lambda s: asm.project(model, s).sum())(mean_shape)
  expected = (model.components @ model.components.T).sum(axis=0)
  np.testing.assert_allclose(grad.reshape(-1), expected, atol=1e-5)
  half = asm.project(model, shapes.astype(jnp.bfloat16))
  assert half.dtype == jnp.bfloat16
  np.testing.assert_allclose(half.astype(jnp.float32), eager, atol=0.1)


def test_save_and_load_round_trip(tmp_path):
  model = asm.fit_shape_model(random_shapes(), 0.9)
  path = tmp_path / "shape_model.npz"
  model.save(path)
  loaded = asm.ShapeModel.load(path)
  for field in ("mean", "components", "eigenvalues"):
    np.testing.assert_array_equal(getattr(loaded, field), getattr(model, field))
  np.savez(tmp_path / "bad.npz", mean=np.zeros(4))
  with pytest.raises(ValueError, match="bad.npz.*missing"):
    asm.ShapeModel.load(tmp_path / "bad.npz")


def test_shape_model_is_a_pytree():
  model = asm.fit_shape_model(random_shapes(), 0.9)
  leaves = jax.tree_util.tree_leaves(model)
  assert len(leaves) == 3
  doubled = jax.tree_util.tree_map(lambda x: 2 * x, model)
  np.testing.assert_allclose(doubled.mean, 2 * model.mean)


@pytest.mark.parametrize("shapes, kept, message", [
    (np.zeros((1, 5, 2)), 0.9, "at least 2 shapes"),
    (np.zeros((4, 5, 3)), 0.9, r"\(K, n, 2\)"),
    (np.zeros((4, 10)), 0.9, r"\(K, n, 2\)"),
    (np.full((4, 5, 2), np.nan), 0.9, "NaN"),
    (np.zeros((4, 5, 2)), 0.0, "variance_kept"),
    (np.zeros((4, 5, 2)), 1.5, "variance_kept"),
])
def test_fit_rejects_bad_input(shapes, kept, message):
  with pytest.raises(ValueError, match=message):
    asm.fit_shape_model(shapes, kept)


def test_project_rejects_wrong_point_count():
  model = asm.fit_shape_model(random_shapes(num_points=12), 0.9)
  with pytest.raises(ValueError, match=r"\(\.\.\., 12, 2\)"):
    asm.project(model, jnp.zeros((2, 11, 2)))


def test_identical_shapes_give_mean_only_model():
  model = asm.fit_shape_model(np.ones((5, 4, 2)), 0.9)
  assert model.num_components == 0
  np.testing.assert_allclose(asm.project(model, jnp.zeros((1, 4, 2))), np.ones((1, 4, 2)))
