"""Head-pose fit on faces of exactly known pose, and the pose-override CSV reader."""

from __future__ import annotations

import numpy as np
import pytest

from asmnet_jax.core import pose
from asmnet_jax.core import rotation

# Yaw +-60, pitch +-30, roll +-30 grid (45 poses).
GRID = np.array(
    np.meshgrid([-60, -30, 0, 30, 60], [-30, 0, 30], [-30, 0, 30], indexing="ij")
).reshape(3, -1).T.astype(np.float64)


def _rotated_faces(angles: np.ndarray) -> np.ndarray:
  """Mean face rotated by each (yaw, pitch, roll): (batch, 68, 3), camera frame."""
  r = rotation.euler_to_rotation(*angles.T)
  return np.einsum("bjk,ik->bij", r, rotation.load_mean_face())


def _weak_perspective(faces: np.ndarray, scale=150.0, offset=(320.0, 240.0)) -> np.ndarray:
  return scale * faces[..., :2] + np.asarray(offset)


def _mae(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
  return np.abs(estimate - truth).mean(axis=0)


def test_exact_under_weak_perspective():
  est = pose.pose_from_landmarks(_weak_perspective(_rotated_faces(GRID)))
  assert est.shape == (len(GRID), 3)
  np.testing.assert_allclose(est, GRID, atol=1e-6)


def test_noise():
  faces = _rotated_faces(GRID)
  points = _weak_perspective(faces)
  iod = 150.0 * np.linalg.norm(rotation.load_mean_face()[36] - rotation.load_mean_face()[45])
  rng = np.random.default_rng(0)
  noisy = points + rng.normal(0.0, 0.02 * iod, points.shape)  # 2% of the eye distance.
  mae = _mae(pose.pose_from_landmarks(noisy), GRID)
  print(f"noise sigma 2% IOD: MAE yaw/pitch/roll = {mae.round(2)} deg")
  assert np.all(mae < 1.5), mae


@pytest.mark.parametrize("distance, yaw_bound", [(6.0, 3.0), (10.0, 2.0)])
def test_perspective(distance, yaw_bound):
  # Camera at `distance` mean-face units (outer eye corners ~1.1 apart, so 6 ~ 50 cm).
  faces = _rotated_faces(GRID)
  depth = faces[..., 2] + distance
  points = 800.0 * faces[..., :2] / depth[..., None] + [320.0, 240.0]
  mae = _mae(pose.pose_from_landmarks(points), GRID)
  print(f"perspective at {distance}: MAE yaw/pitch/roll = {mae.round(2)} deg")
  assert mae[0] < yaw_bound and mae[1] < 1.0 and mae[2] < 1.0, mae


def test_invariant_to_image_translation_and_scale():
  rng = np.random.default_rng(1)
  points = _weak_perspective(_rotated_faces(GRID)) + rng.normal(0.0, 2.0, (len(GRID), 68, 2))
  base = pose.pose_from_landmarks(points)
  moved = pose.pose_from_landmarks(points * 0.37 + [1000.0, -55.0])
  np.testing.assert_allclose(moved, base, atol=1e-8)


def test_signs_match_the_image():
  # Yaw > 0 moves the nose to +x; pitch > 0 moves it up (-y); roll > 0 turns the
  # eye line clockwise on screen (the image-right eye moves down, +y).
  angles = np.array([[30.0, 0, 0], [0, 20.0, 0], [0, 0, 20.0]])
  points = _weak_perspective(_rotated_faces(angles))
  frontal = _weak_perspective(_rotated_faces(np.zeros((1, 3))))[0]
  nose, eye_r = 30, 45
  nose_shift = points[0, nose, 0] - points[0, 27:36, 0].mean()
  assert nose_shift > frontal[nose, 0] - frontal[27:36, 0].mean()
  assert points[1, nose, 1] - points[1, :, 1].mean() < frontal[nose, 1] - frontal[:, 1].mean()
  assert points[2, eye_r, 1] - points[2, 36, 1] > 0
  np.testing.assert_allclose(pose.pose_from_landmarks(points), angles, atol=1e-6)


def test_single_face_and_98_points():
  angles = np.array([25.0, -10.0, 5.0])
  points68 = _weak_perspective(_rotated_faces(angles[None]))[0]
  np.testing.assert_allclose(pose.pose_from_landmarks(points68), angles, atol=1e-6)
  rng = np.random.default_rng(2)
  points98 = rng.uniform(0, 500, (98, 2))  # points outside the subset must not matter.
  points98[pose.WFLW_TO_300W] = points68
  np.testing.assert_allclose(pose.pose_from_landmarks(points98), angles, atol=1e-6)
  np.testing.assert_array_equal(pose.to_68_points(points98), points68)


def test_wflw_mapping_is_a_valid_subset():
  assert pose.WFLW_TO_300W.shape == (68,)
  assert len(set(pose.WFLW_TO_300W.tolist())) == 68
  assert pose.WFLW_TO_300W.min() >= 0 and pose.WFLW_TO_300W.max() < 96
  # Outer eye corners: 300-W 36 and 45 are WFLW 60 and 72.
  assert pose.WFLW_TO_300W[36] == 60 and pose.WFLW_TO_300W[45] == 72


def test_bad_inputs():
  with pytest.raises(ValueError, match="68 or 98"):
    pose.pose_from_landmarks(np.zeros((2, 67, 2)))
  points = _weak_perspective(_rotated_faces(GRID[:3]))
  points[1, 5, 0] = np.nan
  points[2] = 7.0  # all points coincide.
  est = pose.pose_from_landmarks(points)
  np.testing.assert_allclose(est[0], GRID[0], atol=1e-6)
  assert np.isnan(est[1:]).all()


def test_fit_returns_the_camera():
  points = _weak_perspective(_rotated_faces(GRID[:4]), scale=80.0, offset=(10.0, 20.0))
  fit = pose.fit_weak_perspective(points)
  np.testing.assert_allclose(fit.scale, 80.0, rtol=1e-9)
  projected = fit.scale[:, None, None] * np.einsum(
      "bjk,ik->bij", fit.rotation[:, :2], rotation.load_mean_face()) + fit.translation[:, None]
  np.testing.assert_allclose(projected, points, atol=1e-8)
  np.testing.assert_allclose(fit.rms_error, 0.0, atol=1e-8)


def test_load_pose_overrides(tmp_path):
  path = tmp_path / "poses.csv"
  path.write_text(
      "filename,yaw,pitch,roll\n"
      "# HopeNet labels\n"
      "afw/1_1.jpg, 10.5, -3, 2\n"
      "\n"
      ".\\helen\\trainset\\2_1.jpg,-40,0,0.25\n"
  )
  assert pose.load_pose_overrides(path) == {
      "afw/1_1.jpg": (10.5, -3.0, 2.0),
      "helen/trainset/2_1.jpg": (-40.0, 0.0, 0.25),
  }


@pytest.mark.parametrize("bad_line, message", [
    ("afw/2.jpg,1,2", "expected 4 columns"),
    ("afw/2.jpg,1,two,3", "must be numbers"),
    ("afw/2.jpg,1,nan,3", "must be finite"),
    (",1,2,3", "empty filename"),
    ("afw/1.jpg,4,5,6", "duplicate filename"),
])
def test_load_pose_overrides_errors_name_file_and_line(tmp_path, bad_line, message):
  path = tmp_path / "poses.csv"
  path.write_text(f"afw/1.jpg,1,2,3\n{bad_line}\n")
  with pytest.raises(ValueError, match=message) as info:
    pose.load_pose_overrides(path)
  assert f"{path}, line 2" in str(info.value)
