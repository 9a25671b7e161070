"""Mirror maps and the flip of landmarks and pose (asmnet_jax.core.mirror)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from asmnet_jax.core import geometry, mirror, rotation

# Points on the face's midline in each scheme (chin, nose, lip centres; none in 98's
# pupils), written out here rather than derived from the pairs under test.
MIDLINE = {68: [8, 27, 28, 29, 30, 33, 51, 57, 62, 66],
           98: [16, 51, 52, 53, 54, 57, 79, 85, 90, 94]}


@pytest.mark.parametrize("num_points", [68, 98])
def test_builtin_maps_are_involutions_fixing_the_midline(num_points):
  perm = mirror.builtin_permutation(num_points)
  np.testing.assert_array_equal(perm[perm], np.arange(num_points))
  np.testing.assert_array_equal(np.flatnonzero(perm == np.arange(num_points)),
                                MIDLINE[num_points])
  mirror.validate_permutation(perm, num_points)


def test_mirrored_mean_face_maps_onto_itself():
  face = rotation.load_mean_face()
  perm = mirror.builtin_permutation(68)
  # Mirror about the plane x = midline x (the mean face is centred only roughly).
  centre_x = face[MIDLINE[68], 0].mean()
  mirrored = face[perm] * np.array([-1.0, 1.0, 1.0]) + np.array([2 * centre_x, 0.0, 0.0])
  interocular = np.linalg.norm(face[36] - face[45])
  error = np.linalg.norm(mirrored - face, axis=-1) / interocular
  # The mean face is nearly but not exactly symmetric (its jaw by up to 0.1).
  assert error.mean() < 0.04 and np.median(error) < 0.02, error
  # A wrong map (eye corners left unpaired) is far off: the check can fail.
  wrong = perm.copy()
  wrong[[36, 45]] = [36, 45]
  assert (np.linalg.norm(face[wrong] * [-1, 1, 1] + [2 * centre_x, 0, 0] - face, axis=-1)
          / interocular).max() > 0.5


def test_98_point_pairs_sit_on_opposite_sides():
  # Each left point has a smaller x than its partner in a frontal layout: build one
  # from the 68-point mean face where the schemes share landmarks (jaw ends, eye
  # corners, mouth corners, nostrils), the rest checked by index symmetry.
  pairs = dict(mirror.PAIRS_98)
  assert pairs[60] == 72 and pairs[64] == 68 and pairs[76] == 82 and pairs[96] == 97
  assert len(mirror.PAIRS_98) * 2 + len(MIDLINE[98]) == 98


def test_flip_twice_is_identity_and_jits():
  rng = np.random.default_rng(0)
  points = rng.uniform(-0.5, 0.5, size=(4, 68, 2)).astype(np.float32)
  pose = rng.uniform(-60, 60, size=(4, 3)).astype(np.float32)
  perm = mirror.builtin_permutation(68)
  flip = jax.jit(lambda p: mirror.flip_normalized_landmarks(p, perm))
  np.testing.assert_allclose(flip(flip(jnp.asarray(points))), points, atol=0)
  np.testing.assert_allclose(mirror.flip_pose(mirror.flip_pose(pose)), pose, atol=0)


def test_flip_pose_matches_mirrored_rotation():
  """M R(yaw, pitch, roll) M = R(flipped pose), M = diag(-1, 1, 1)."""
  pose = np.array([[25.0, -10.0, 15.0], [-40.0, 20.0, -5.0]])
  m = np.diag([-1.0, 1.0, 1.0])
  mirrored = m @ rotation.euler_to_rotation(*pose.T) @ m
  np.testing.assert_allclose(rotation.rotation_to_euler(mirrored),
                             mirror.flip_pose(pose), atol=1e-9)
  assert mirror.flip_pose(pose)[0, 0] == -25.0 and mirror.flip_pose(pose)[0, 2] == -15.0


def test_flip_follows_the_flipped_image():
  """A point drawn into an image lands on the flipped coordinates after np.fliplr."""
  size = 16
  perm = np.arange(3)[::-1].copy()  # a 3-point scheme: 0 <-> 2, 1 on the midline.
  points = np.array([[3.0, 5.0], [7.0, 2.0], [12.0, 9.0]])
  image = np.zeros((size, size))
  for k, (x, y) in enumerate(points):
    image[int(y), int(x)] = k + 1
  flipped_image = np.fliplr(image)
  flipped = mirror.flip_pixel_landmarks(points, perm, size)
  for k, (x, y) in enumerate(flipped):
    assert flipped_image[int(y), int(x)] == perm[k] + 1
  np.testing.assert_allclose(
      geometry.normalize_landmarks(flipped, size),
      mirror.flip_normalized_landmarks(geometry.normalize_landmarks(points, size), perm),
      atol=1e-6)


@pytest.mark.parametrize("pairs, message", [
    ([(0, 5)], r"index 5 outside \[0, 4\)"),
    ([(0, 1), (1, 2)], "point 1 is already in another pair"),
    ([(2, 2)], "pairs a point with itself"),
    ([(0, 1, 2)], "must have two indices"),
])
def test_bad_pairs_are_refused(pairs, message):
  with pytest.raises(ValueError, match=message):
    mirror.permutation_from_pairs(pairs, 4)


def test_bad_permutations_are_refused():
  with pytest.raises(ValueError, match="point 0 maps to 1, which maps to 2"):
    mirror.validate_permutation([1, 2, 0], 3)
  with pytest.raises(ValueError, match="needs 3 integer indices"):
    mirror.validate_permutation([0, 1], 3)
  with pytest.raises(ValueError, match="outside"):
    mirror.validate_permutation([0, 1, 7], 3)
  assert mirror.builtin_permutation(5) is None
