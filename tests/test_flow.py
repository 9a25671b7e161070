"""The flow smoother: motion found from pixels, landmarks carried by it, and the fusion
with the network's landmarks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from asmnet_jax.inference import flow


def _texture(seed: int = 0, size: int = 240) -> np.ndarray:
  """Grey uint8 (size, size) blobs with corners everywhere."""
  noise = np.random.default_rng(seed).random((size, size)).astype(np.float32)
  image = cv2.GaussianBlur(noise, (0, 0), 2.0)
  image = (image - image.min()) / (image.max() - image.min())
  return (255 * image).astype(np.uint8)


def _warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_REFLECT)


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float],
                centre: tuple[float, float] = (120.0, 120.0)) -> np.ndarray:
  matrix = cv2.getRotationMatrix2D(centre, angle_deg, scale)
  matrix[:, 2] += shift
  return matrix


def _face_points(n: int = 68, seed: int = 1) -> np.ndarray:
  """(n, 2) points spread over the middle of a 240 px frame."""
  return np.random.default_rng(seed).uniform(80.0, 160.0, (n, 2))


def test_face_motion_finds_a_known_similarity():
  frame = _texture()
  matrix = _similarity(3.0, 1.04, (2.5, -1.5))
  motion = flow.face_motion(frame, _warp(frame, matrix), np.array([70.0, 70.0, 170.0, 170.0]))
  assert motion is not None and len(motion.sources) >= 20
  points = _face_points()
  expected = points @ matrix[:, :2].T + matrix[:, 2]
  found = points @ motion.similarity[:, :2].T + motion.similarity[:, 2]
  # Sub-pixel: the shift is 2.9 px, the points move up to 6 px.
  np.testing.assert_allclose(found, expected, atol=0.2)
  np.testing.assert_allclose(flow.carry(points, motion), expected, atol=0.2)


def test_carry_reproduces_an_exact_similarity():
  """Features that follow one similarity exactly: every local affine fit is that
  similarity, whatever the weights."""
  matrix = _similarity(-5.0, 0.97, (4.0, 1.0))
  sources = np.random.default_rng(2).uniform(60.0, 180.0, (40, 2))
  motion = flow.FaceMotion(matrix, sources, sources @ matrix[:, :2].T + matrix[:, 2])
  points = _face_points()
  np.testing.assert_allclose(flow.carry(points, motion), points @ matrix[:, :2].T + matrix[:, 2],
                             atol=1e-6)


def test_carry_follows_local_motion_that_a_similarity_cannot():
  """Left half of the features moves right by 3 px, right half left by 3 px (a turning
  head's sides); the global similarity is the identity."""
  rng = np.random.default_rng(3)
  sources = rng.uniform(60.0, 180.0, (200, 2))
  step = np.where(sources[:, :1] < 120.0, 3.0, -3.0) * np.array([[1.0, 0.0]])
  motion = flow.FaceMotion(np.array([[1.0, 0, 0], [0, 1.0, 0]]), sources, sources + step)
  points = np.array([[70.0, 100.0], [170.0, 140.0], [120.0, 120.0]])
  moved = flow.carry(points, motion) - points
  assert moved[0, 0] > 2.0 and moved[1, 0] < -2.0  # each side moves its own way.
  assert abs(moved[2, 0]) < 1.0  # the middle, between them.
  np.testing.assert_allclose(moved[:, 1], 0.0, atol=0.2)


def test_fuse_gain_is_floor_when_close_and_one_when_far():
  carried = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
  size = 100.0  # sqrt(w h) of the network's landmark box below, within 1e-9.
  network = carried.copy()
  network[0] += [0.5, 0.0]  # disagreement 0.005 sizes: gain 0.1 + 0.9 * 0.1.
  network[1] += [0.0, 20.0]  # 0.2 sizes, beyond the tolerance: the network's point.
  network[3] -= [0.0, 20.0]  # keeps the box 100 x 100.
  fused = flow.fuse(carried, network, floor=0.1, tolerance=0.05)
  disagreement = np.array([0.5, 20.0, 0.0, 20.0]) / size
  gain = 0.1 + 0.9 * np.minimum(1.0, disagreement / 0.05)
  np.testing.assert_allclose(fused, carried + gain[:, None] * (network - carried), atol=1e-9)
  np.testing.assert_allclose(fused[0], [0.095, 0.0], atol=1e-9)
  np.testing.assert_allclose(fused[1], network[1])


def test_smoother_averages_network_noise_on_a_still_face_and_follows_a_moving_one():
  frame = _texture()
  truth = _face_points()
  rng = np.random.default_rng(4)
  smoother = flow.FlowSmoother(floor=0.05, tolerance=0.05)
  previous, raw_steps, smooth_steps = None, [], []
  last_raw = last_smooth = None
  shift = np.zeros(2)
  for t in range(40):
    if t >= 20:  # the face moves 1.5 px a frame to the right from frame 20 on.
      shift += [1.5, 0.0]
    current = _warp(frame, _similarity(0.0, 1.0, tuple(shift)))
    raw = truth + shift + rng.normal(0.0, 0.5, truth.shape)
    smooth = smoother(previous, current, raw).copy()
    if t > 0:
      true_step = [1.5, 0.0] if t >= 20 else [0.0, 0.0]
      raw_steps.append(np.linalg.norm(raw - last_raw - true_step, axis=-1).mean())
      smooth_steps.append(np.linalg.norm(smooth - last_smooth - true_step, axis=-1).mean())
    previous, last_raw, last_smooth = current, raw, smooth
  assert np.mean(smooth_steps) < 0.25 * np.mean(raw_steps)
  # No lag: at the end the output sits on the moving face, within the noise.
  assert np.linalg.norm(smooth - truth - shift, axis=-1).mean() < 0.4


def test_predict_carries_the_last_output_and_is_computed_once_per_frame(monkeypatch):
  frame = _texture()
  network = _face_points()
  smoother = flow.FlowSmoother()
  assert smoother.predict(None, frame) is None  # nothing to carry yet.
  smoother(None, frame, network)
  moved = _warp(frame, _similarity(0.0, 1.0, (4.0, -2.0)))
  calls = []
  original = flow.face_motion
  monkeypatch.setattr(flow, "face_motion", lambda *a, **k: calls.append(1) or original(*a, **k))
  carried = smoother.predict(frame, moved)
  np.testing.assert_allclose(carried, network + [4.0, -2.0], atol=0.3)
  assert smoother.predict(frame, moved) is carried  # the same frame: no second flow.
  # This frame's fusion starts from the same carried points.
  expected = flow.fuse(carried, network + [4.5, -2.0])
  np.testing.assert_allclose(smoother(frame, moved, network + [4.5, -2.0]), expected)
  assert len(calls) == 1


def test_no_texture_or_first_frame_passes_the_network_through():
  smoother = flow.FlowSmoother()
  network = _face_points()
  flat = np.full((240, 240), 128, np.uint8)
  np.testing.assert_array_equal(smoother(None, flat, network), network)
  moved = network + 3.0
  np.testing.assert_array_equal(smoother(flat, flat, moved), moved)
  assert flow.face_motion(flat, flat, np.array([300.0, 300.0, 400.0, 400.0])) is None


@pytest.mark.parametrize("args", [(0.0, 0.05), (1.5, 0.05), (0.05, 0.0)])
def test_bad_parameters_are_named(args):
  with pytest.raises(ValueError, match="FlowSmoother"):
    flow.FlowSmoother(*args)


def test_next_grey_pair_rolls_the_previous_frame_along():
  rng = np.random.default_rng(0)
  first, second = (rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(2))
  grey = lambda f: np.round(f @ [0.299, 0.587, 0.114]).astype(np.uint8)  # pylint: disable=unnecessary-lambda-assignment
  pair = flow.next_grey_pair(None, first)
  assert pair[0] is None
  np.testing.assert_allclose(pair[1], grey(first), atol=1)
  pair = flow.next_grey_pair(pair, second)
  np.testing.assert_allclose(pair[0], grey(first), atol=1)
  np.testing.assert_allclose(pair[1], grey(second), atol=1)
