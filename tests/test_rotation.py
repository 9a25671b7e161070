"""Pose conventions: the rotation matrices move the mean face as documented."""

from __future__ import annotations

import numpy as np
import pytest

from asmnet_jax.core import rotation

NOSE_TIP, CHIN, LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 30, 8, 36, 45


def test_mean_face_frame():
  face = rotation.load_mean_face()
  assert face.shape == (68, 3)
  assert face[NOSE_TIP, 2] == face[:, 2].min()  # Nearest the camera: most negative z.
  assert face[CHIN, 1] > face[NOSE_TIP, 1]  # y grows down the image.
  assert face[LEFT_EYE_OUTER, 0] < face[RIGHT_EYE_OUTER, 0]  # Point 36 is on the image left.


def test_signs_describe_the_image():
  face = rotation.load_mean_face()
  nose = face[NOSE_TIP] - face.mean(0)
  assert (rotation.euler_to_rotation(30, 0, 0) @ nose)[0] > nose[0] + 0.1   # yaw: nose right.
  assert (rotation.euler_to_rotation(0, 20, 0) @ nose)[1] < nose[1] - 0.05  # pitch: nose up.
  eye_line = face[RIGHT_EYE_OUTER] - face[LEFT_EYE_OUTER]
  rolled = rotation.euler_to_rotation(0, 0, 20) @ eye_line
  assert rolled[1] > 0.1  # roll: clockwise on screen, the right eye goes down.


def test_round_trip_and_orthonormal():
  rng = np.random.default_rng(0)
  angles = rng.uniform([-90, -80, -180], [90, 80, 180], size=(200, 3))
  matrices = rotation.euler_to_rotation(*angles.T)
  assert matrices.shape == (200, 3, 3)
  np.testing.assert_allclose(matrices @ np.swapaxes(matrices, -1, -2),
                             np.broadcast_to(np.eye(3), (200, 3, 3)), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-12)
  np.testing.assert_allclose(rotation.rotation_to_euler(matrices), angles, atol=1e-9)


def test_wrap_degrees_matches_the_angle_of_the_unit_complex_number():
  angles = np.array([-540.0, -181.0, -180.0, -10.0, 0.0, 179.5, 180.0, 181.0, 725.0])
  expected = np.degrees(np.angle(np.exp(1j * np.radians(angles))))  # (-180, 180]
  expected[np.isclose(expected, -180.0)] = 180.0  # float rounding at the seam.
  np.testing.assert_allclose(rotation.wrap_degrees(angles), expected, atol=1e-9)
  assert rotation.wrap_degrees(-180.0) == 180.0


def test_wrap_degrees_under_jit_matches_numpy():
  jax = pytest.importorskip("jax")
  angles = np.array([-540.0, -181.0, -180.0, -10.0, 179.5, 180.0, 181.0, 725.0], np.float32)
  np.testing.assert_allclose(np.asarray(jax.jit(rotation.wrap_degrees)(angles)),
                             rotation.wrap_degrees(angles.astype(np.float64)), atol=1e-4)
