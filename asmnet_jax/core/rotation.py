"""Head-rotation conventions shared by the pose fit and the synthetic renderer.

Frame: a right-handed camera frame with x to the image right, y down the image and
z into the scene (away from the camera). A head point X (3,) in that frame, rotated
by R = Rz(roll) @ Rx(pitch) @ Ry(yaw), lands at R @ X.

Angles are in degrees, and their signs describe what the image shows:
  * yaw   > 0: the face turns toward the image's right (the nose moves to +x);
               the subject looks to their own left.
  * pitch > 0: the face tilts up (the nose moves up the image, to -y).
  * roll  > 0: the face rotates clockwise as the image is displayed (y down).

The 3D mean face (`load_mean_face`) is returned in this same frame: its stored z
(toward the camera) is negated on load, so the nose tip has the most negative z.
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np

MEAN_FACE_FILE = "mean_face_68_3d.txt"


@functools.cache
def load_mean_face() -> np.ndarray:
  """The 68-point (iBUG 300-W order) 3D mean face, float64 (68, 3), camera frame.

  Source: the mean shape shipped by the MIT-licensed `insightface` package
  (`insightface/data/objects/meanshape_68.pkl`); units are arbitrary (the outer eye
  corners are about 1.1 apart), centred near the origin.
  """
  text = importlib.resources.files("asmnet_jax").joinpath("assets", MEAN_FACE_FILE)
  points = np.loadtxt(str(text), comments="#", dtype=np.float64)
  if points.shape != (68, 3):
    raise ValueError(f"{text}: expected 68 rows of x y z, got {points.shape}")
  points = points * np.array([1.0, 1.0, -1.0])  # stored z points toward the camera.
  points.setflags(write=False)
  return points


def euler_to_rotation(yaw, pitch, roll) -> np.ndarray:
  """Rotation matrices (..., 3, 3) from yaw, pitch, roll in degrees (see module doc)."""
  y, p, r = (np.deg2rad(np.asarray(a, dtype=np.float64)) for a in (yaw, pitch, roll))
  y, p, r = np.broadcast_arrays(y, p, r)
  cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
  zero, one = np.zeros_like(y), np.ones_like(y)

  def stack(rows):
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)

  r_yaw = stack([[cy, zero, -sy], [zero, one, zero], [sy, zero, cy]])
  r_pitch = stack([[one, zero, zero], [zero, cp, sp], [zero, -sp, cp]])
  r_roll = stack([[cr, -sr, zero], [sr, cr, zero], [zero, zero, one]])
  return r_roll @ r_pitch @ r_yaw


def rotation_to_euler(rotation: np.ndarray) -> np.ndarray:
  """Yaw, pitch, roll in degrees (..., 3) of rotation matrices (..., 3, 3).

  Inverse of `euler_to_rotation` for |pitch| < 90 degrees.
  """
  rotation = np.asarray(rotation, dtype=np.float64)
  pitch = np.arcsin(np.clip(-rotation[..., 2, 1], -1.0, 1.0))
  yaw = np.arctan2(rotation[..., 2, 0], rotation[..., 2, 2])
  roll = np.arctan2(-rotation[..., 0, 1], rotation[..., 1, 1])
  return np.rad2deg(np.stack([yaw, pitch, roll], axis=-1))


def wrap_degrees(angles):
  """Angles in degrees (floats, NumPy or JAX arrays of any shape, in their own
  dtype) taken into (-180, 180]; traceable under `jax.jit`."""
  return 180.0 - (180.0 - angles) % 360.0
