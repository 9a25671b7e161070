"""Active Shape Model: a PCA shape model and the clipped projection onto it.

A shape of n landmarks (n, 2) is flattened to s in R^{2n} in (x1, y1, x2, y2, ...)
order. With the mean s̄, components P (2n, t) and eigenvalues λ (t,) of the
training shapes (METHOD.md, section 2):

    b = Pᵀ (s − s̄),   b̃_i = clip(b_i, −3√λ_i, +3√λ_i),   ASM(s) = s̄ + P b̃.

`fit_shape_model` runs on the host (NumPy: the number of components depends on the
data); `project` is pure JAX: jittable, vmappable and differentiable.
"""

from __future__ import annotations

import os

import flax.struct
import jax.numpy as jnp
import numpy as np

from asmnet_jax.core.numerics import compute_dtype

# Coefficients are clipped to this many standard deviations (the paper's ±3√λ).
CLIP_STDDEVS = 3.0


@flax.struct.dataclass
class ShapeModel:
  """A PCA shape model; a JAX pytree of three arrays.

  Attributes:
    mean: (2n,) mean flattened shape s̄.
    components: (2n, t) orthonormal principal axes P, strongest first.
    eigenvalues: (t,) sample variances (ddof=1) of the shapes along each axis.
  """

  mean: jnp.ndarray
  components: jnp.ndarray
  eigenvalues: jnp.ndarray

  @property
  def num_points(self) -> int:
    return self.mean.shape[-1] // 2

  @property
  def num_components(self) -> int:
    return self.components.shape[-1]

  def save(self, path: str | os.PathLike) -> None:
    """Writes the model to an `.npz` file (NumPy's own format, no pickling)."""
    with open(path, "wb") as f:
      np.savez(f, mean=np.asarray(self.mean), components=np.asarray(self.components),
               eigenvalues=np.asarray(self.eigenvalues))

  @classmethod
  def load(cls, path: str | os.PathLike) -> ShapeModel:
    """Reads a model written by `save`, checking that its arrays agree."""
    with np.load(path, allow_pickle=False) as data:
      missing = {"mean", "components", "eigenvalues"} - set(data.files)
      if missing:
        raise ValueError(f"{path}: not a shape model file, missing {sorted(missing)}")
      mean, components, eigenvalues = (
          data["mean"], data["components"], data["eigenvalues"])
    if (mean.ndim != 1 or components.ndim != 2 or eigenvalues.ndim != 1
        or components.shape != (mean.shape[0], eigenvalues.shape[0])
        or mean.shape[0] % 2):
      raise ValueError(
          f"{path}: inconsistent shape model arrays: mean {mean.shape}, "
          f"components {components.shape}, eigenvalues {eigenvalues.shape}")
    return cls(mean=jnp.asarray(mean), components=jnp.asarray(components),
               eigenvalues=jnp.asarray(eigenvalues))


def fit_shape_model(shapes, variance_kept: float = 0.9) -> ShapeModel:
  """Fits a PCA shape model to training shapes.

  Args:
    shapes: (K, n, 2) shapes, all in the same coordinates (e.g. normalised crops).
    variance_kept: the fraction of the total variance the kept components must
      explain, in (0, 1]; the smallest such number of components is kept.

  Returns:
    A float32 `ShapeModel` with t components.

  Raises:
    ValueError: for fewer than 2 shapes, a shape that is not (K, n, 2),
      non-finite values, or `variance_kept` outside (0, 1].
  """
  shapes = np.asarray(shapes, dtype=np.float64)
  if shapes.ndim != 3 or shapes.shape[-1] != 2:
    raise ValueError(f"shapes must be (K, n, 2), got {shapes.shape}")
  if shapes.shape[0] < 2:
    raise ValueError(f"need at least 2 shapes to fit a shape model, got {shapes.shape[0]}")
  if not np.all(np.isfinite(shapes)):
    bad = np.unique(np.nonzero(~np.isfinite(shapes))[0])
    raise ValueError(f"shapes contain NaN or infinite values (shape indices {bad[:10].tolist()})")
  if not 0.0 < variance_kept <= 1.0:
    raise ValueError(f"variance_kept must be in (0, 1], got {variance_kept}")

  flat = shapes.reshape(shapes.shape[0], -1)
  mean = flat.mean(axis=0)
  centred = flat - mean
  # SVD of the centred data gives the covariance eigenvectors without forming the
  # (2n, 2n) covariance, and is better conditioned.
  _, singular_values, vt = np.linalg.svd(centred, full_matrices=False)
  eigenvalues = singular_values**2 / (flat.shape[0] - 1)
  total = eigenvalues.sum()
  if total <= 0.0:
    num_kept = 0  # All shapes equal: the model is the mean alone.
  else:
    explained = np.cumsum(eigenvalues) / total
    # A relative tolerance keeps variance_kept=1.0 from depending on round-off.
    num_kept = int(np.searchsorted(explained, variance_kept - 1e-9) + 1)
    num_kept = min(num_kept, int(np.sum(eigenvalues > total * 1e-12)) or 1)
  components = vt[:num_kept].T
  # A deterministic sign: each axis's largest-magnitude entry is positive.
  rows = np.argmax(np.abs(components), axis=0)
  components = components * np.sign(components[rows, np.arange(num_kept)])
  return ShapeModel(
      mean=jnp.asarray(mean, jnp.float32),
      components=jnp.asarray(components, jnp.float32),
      eigenvalues=jnp.asarray(eigenvalues[:num_kept], jnp.float32))


def coefficients(model: ShapeModel, shapes: jnp.ndarray) -> jnp.ndarray:
  """Unclipped shape coefficients b = Pᵀ(s − s̄): (..., n, 2) -> (..., t)."""
  _check_points(model, shapes)
  dtype = compute_dtype(shapes.dtype)
  flat = shapes.astype(dtype).reshape(*shapes.shape[:-2], -1)
  return (flat - model.mean.astype(dtype)) @ model.components.astype(dtype)


def project(model: ShapeModel, shapes: jnp.ndarray) -> jnp.ndarray:
  """The ASM operator: projects shapes onto the model with clipped coefficients.

  Args:
    model: the shape model (n points, t components).
    shapes: (..., n, 2) shapes in the model's coordinates; any leading dims.

  Returns:
    s̄ + P clip(b, ±3√λ), shaped and typed like `shapes` (computed in float32 at
    least).
  """
  dtype = compute_dtype(shapes.dtype)
  b = coefficients(model, shapes)
  limit = CLIP_STDDEVS * jnp.sqrt(model.eigenvalues.astype(dtype))
  b = jnp.clip(b, -limit, limit)
  flat = model.mean.astype(dtype) + b @ model.components.astype(dtype).T
  return flat.reshape(shapes.shape).astype(shapes.dtype)


def _check_points(model: ShapeModel, shapes) -> None:
  if shapes.ndim < 2 or shapes.shape[-1] != 2 or shapes.shape[-2] != model.num_points:
    raise ValueError(
        f"shapes must be (..., {model.num_points}, 2) for this shape model, "
        f"got {shapes.shape}")
