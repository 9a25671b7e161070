"""The One Euro filter against a hand computation and in its limits."""

import math

import numpy as np
import pytest

from asmnet_jax.inference.smoothing import OneEuroFilter


def test_matches_hand_computation():
  # min_cutoff 1 Hz, beta 0.5, d_cutoff 1 Hz; alpha(f, dt) = 1 / (1 + 1 / (2 pi f dt)).
  # t = 0.1: alpha_d = 1 / (1 + 1.591549) = 0.385870, dx = 0.385870 * 1 / 0.1 = 3.858695,
  #   f = 1 + 0.5 * 3.858695 = 2.929348, alpha = 1 / (1 + 0.543310) = 0.647957 = x_hat.
  # t = 0.2: dx = 0.385870 * (1 - 0.647957) / 0.1 + 0.614130 * 3.858695 = 3.728168,
  #   f = 2.864084, alpha = 0.642801, x_hat = 0.647957 + 0.642801 * 0.352043 = 0.874251.
  # t = 0.35 (dt 0.15): alpha_d = 0.485194, dx = 8.795285, f = 5.397643,
  #   alpha = 0.835720, x_hat = 2.650781.
  f = OneEuroFilter(min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
  out = [float(f(x, t)) for x, t in zip([0.0, 1.0, 1.0, 3.0], [0.0, 0.1, 0.2, 0.35])]
  np.testing.assert_allclose(out, [0.0, 0.647957, 0.874251, 2.650781], atol=2e-6)


def test_fixed_cutoff_is_an_exponential_low_pass():
  # beta 0: a unit step decays as 1 - (1 - alpha)^n with alpha = 1 / (1 + 30 / (2 pi 2)).
  f = OneEuroFilter(min_cutoff=2.0, beta=0.0)
  f(0.0, 0.0)
  alpha = 1.0 / (1.0 + 30.0 / (2.0 * math.pi * 2.0))
  out = [float(f(1.0, n / 30.0)) for n in range(1, 11)]
  np.testing.assert_allclose(out, [1 - (1 - alpha) ** n for n in range(1, 11)], rtol=1e-12)


def test_limits():
  # A constant signal stays put; a huge cut-off passes the signal through.
  still = OneEuroFilter(min_cutoff=0.5, beta=2.0)
  assert all(float(still(4.0, t / 30)) == 4.0 for t in range(20))
  wide = OneEuroFilter(min_cutoff=1e9, beta=0.0)
  signal = np.sin(np.arange(30) * 0.7)
  np.testing.assert_allclose([float(wide(x, t / 30)) for t, x in enumerate(signal)], signal,
                             atol=1e-6)
  # A larger beta follows a ramp with less lag.
  lags = []
  for beta in (0.0, 10.0):
    f = OneEuroFilter(min_cutoff=1.0, beta=beta)
    for n in range(60):
      y = float(f(n / 30.0, n / 30.0))  # moves 1 unit per second.
    lags.append(59 / 30.0 - y)
  assert lags[1] < 0.5 * lags[0]


def test_vectorised_equals_per_element_and_repeated_timestamp():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(8, 5, 2))
  together = OneEuroFilter(1.0, 0.3)
  alone = [OneEuroFilter(1.0, 0.3) for _ in range(10)]
  for t, frame in enumerate(points):
    out = together(frame, t / 25, speed_scale=2.0)
    single = [alone[k](frame.reshape(-1)[k], t / 25, speed_scale=2.0) for k in range(10)]
    np.testing.assert_allclose(out.reshape(-1), single, rtol=1e-12)
  before = together(points[-1], 7 / 25)  # same time stamp again: unchanged output.
  np.testing.assert_array_equal(together(points[0] + 5.0, 7 / 25), before)


def test_bad_arguments():
  with pytest.raises(ValueError, match="min_cutoff > 0"):
    OneEuroFilter(min_cutoff=0.0)
  f = OneEuroFilter()
  f(np.zeros(3), 0.0)
  with pytest.raises(ValueError, match="got shape"):
    f(np.zeros(4), 0.1)
