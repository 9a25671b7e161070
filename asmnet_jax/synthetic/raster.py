"""A z-buffered triangle rasteriser in NumPy, vectorised over all pixels of all triangles.

Used by the "photo" style (`asmnet_jax.synthetic.photo`). Coordinates are canvas pixels
with pixel (i, j) covering [j, j + 1) x [i, i + 1), so it is sampled at its centre
(j + 0.5, i + 0.5), as PIL fills it (see `draw.canvas_camera`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

_DEPTH_BITS = 24  # Depth resolution within a layer (2**-24 of the depth range).
_INDEX_BITS = 26  # Candidate (triangle, pixel) pairs per render: up to 64 M.


@dataclasses.dataclass
class Fragments:
  """The visible surface: one fragment per covered canvas pixel.

  Attributes:
    pixel: int64 (M,) flat canvas index y * width + x of each covered pixel.
    triangle: int64 (M,) the winning triangle (an index into the triangles given).
    bary: float32 (M, 3) barycentric weights of its three vertices at the pixel centre.
    depth: float32 (M,) interpolated camera depth.
  """
  pixel: np.ndarray
  triangle: np.ndarray
  bary: np.ndarray
  depth: np.ndarray

  def interpolate(self, values: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per-vertex values (V, C) -> (M, C) at the fragments (linear in screen space)."""
    corners = values.astype(np.float32)[triangles[self.triangle]]  # (M, 3, C)
    return np.einsum("mk,mkc->mc", self.bary, corners, dtype=np.float32)


def rasterize(points: np.ndarray, depth: np.ndarray, triangles: np.ndarray,
              layer: np.ndarray, height: int, width: int) -> Fragments:
  """Finds the nearest triangle at every pixel centre, higher layers winning first.

  Args:
    points: (V, 2) canvas pixel positions of the vertices.
    depth: (V,) camera depth (larger: farther) of the vertices.
    triangles: int (T, 3) vertex indices, either winding (cull back faces first).
    layer: int (T,) in [0, 7]: a triangle of a higher layer hides every lower-layer
      one whatever the depths (as a painter's layer would); depth decides within one.
    height, width: the canvas size.

  Returns:
    The `Fragments` of the covered pixels, sorted by pixel.
  """
  tri = np.asarray(triangles, np.int64)
  pa, pb, pc = (points[tri[:, k]].astype(np.float64) for k in range(3))
  ab, ac = pb - pa, pc - pa
  area = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]  # Twice the signed area.
  corners = np.stack([pa, pb, pc], axis=1)
  lo = np.ceil(corners.min(axis=1) - 0.5).astype(np.int64)
  hi = np.floor(corners.max(axis=1) - 0.5).astype(np.int64)
  lo = np.maximum(lo, 0)
  hi = np.minimum(hi, [width - 1, height - 1])
  ok = (np.abs(area) > 1e-9) & np.all(hi >= lo, axis=1)
  keep = np.flatnonzero(ok)
  if len(keep) == 0:
    empty = np.zeros(0, np.int64)
    return Fragments(empty, empty, np.zeros((0, 3), np.float32), np.zeros(0, np.float32))
  box_w = hi[keep, 0] - lo[keep, 0] + 1
  counts = box_w * (hi[keep, 1] - lo[keep, 1] + 1)
  total = int(counts.sum())
  # Enumerate the pixels of every bounding box at once: candidate k belongs to
  # triangle cand_tri[k] and is pixel `local` of its box (row-major).
  cand = np.repeat(np.arange(len(keep)), counts)
  starts = np.cumsum(counts) - counts
  local = np.arange(total, dtype=np.int64) - starts[cand]
  bw = box_w[cand]
  x = lo[keep, 0][cand] + local % bw
  y = lo[keep, 1][cand] + local // bw
  t = keep[cand]
  # Edge functions at pixel centres, divided by the signed area: barycentrics.
  fx, fy = (x + 0.5).astype(np.float32), (y + 0.5).astype(np.float32)
  a32, b32, c32 = pa.astype(np.float32), pb.astype(np.float32), pc.astype(np.float32)
  inv = (1.0 / np.where(ok, area, 1.0)).astype(np.float32)
  w0 = ((b32[t, 0] - fx) * (c32[t, 1] - fy) - (b32[t, 1] - fy) * (c32[t, 0] - fx)) * inv[t]
  w1 = ((c32[t, 0] - fx) * (a32[t, 1] - fy) - (c32[t, 1] - fy) * (a32[t, 0] - fx)) * inv[t]
  w2 = 1.0 - w0 - w1
  inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
  w0, w1, w2, t = w0[inside], w1[inside], w2[inside], t[inside]
  pix = y[inside] * width + x[inside]
  d = depth.astype(np.float32)
  z = w0 * d[tri[t, 0]] + w1 * d[tri[t, 1]] + w2 * d[tri[t, 2]]
  # One int64 key per candidate: (7 - layer, quantised depth, candidate index); the
  # smallest key of a pixel is its visible fragment.
  z_lo, z_hi = float(d.min()), float(d.max())
  q = ((z - z_lo) * ((2 ** _DEPTH_BITS - 1) / max(z_hi - z_lo, 1e-9))).astype(np.int64)
  q = np.clip(q, 0, 2 ** _DEPTH_BITS - 1)
  n = len(t)
  key = (((7 - np.asarray(layer, np.int64)[t]) << _DEPTH_BITS | q) << _INDEX_BITS) | np.arange(n)
  best = np.full(height * width, np.iinfo(np.int64).max, np.int64)
  np.minimum.at(best, pix, key)
  covered = np.flatnonzero(best != np.iinfo(np.int64).max)
  win = best[covered] & ((1 << _INDEX_BITS) - 1)
  bary = np.stack([w0[win], w1[win], w2[win]], axis=1)
  return Fragments(covered, t[win], bary, z[win])
