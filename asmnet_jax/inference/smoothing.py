"""The One Euro filter (Casiez, Roussel and Vogel, CHI 2012): an adaptive low-pass
filter for noisy signals that must also follow fast motion.

Per element of the signal, with time step dt (seconds) between samples:
    alpha(fc) = 1 / (1 + tau / dt),  tau = 1 / (2 pi fc)
    dx_hat    = alpha(d_cutoff) (x - x_hat_prev) / dt + (1 - alpha(d_cutoff)) dx_hat_prev
    fc        = min_cutoff + beta |dx_hat| / speed_scale
    x_hat     = alpha(fc) x + (1 - alpha(fc)) x_hat_prev
A still signal is filtered at `min_cutoff` Hz (less jitter); the faster it moves, the
higher the cut-off (less lag). `speed_scale` divides the speed before `beta` sees it,
so one `beta` fits faces of any size (the tracker passes the face's size in pixels).
The first sample passes through unchanged. Pure NumPy, vectorised over the elements.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


def smoothing_factor(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray:
  """alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi cutoff): the exponential filter's weight
  of the new sample for a first-order low pass at `cutoff_hz` sampled every `dt` s."""
  tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz, np.float64))
  return 1.0 / (1.0 + tau / dt)


@dataclasses.dataclass
class OneEuroFilter:
  """One Euro filter over arrays of a fixed shape (module doc).

  Args:
    min_cutoff: cut-off frequency in Hz for a still signal (lower: smoother, more lag).
    beta: how fast the cut-off rises with speed (per unit of speed / speed_scale;
      0: a fixed low pass at min_cutoff).
    d_cutoff: cut-off in Hz of the speed estimate's own low pass (the paper's 1 Hz).
  """
  min_cutoff: float = 1.0
  beta: float = 0.0
  d_cutoff: float = 1.0

  def __post_init__(self):
    if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
      raise ValueError(f"OneEuroFilter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, "
                       f"got {self.min_cutoff}, {self.d_cutoff}, {self.beta}")
    self.reset()

  def reset(self) -> None:
    """Forgets the history: the next sample passes through unchanged."""
    self._x: np.ndarray | None = None
    self._dx: np.ndarray | None = None
    self._t: float | None = None

  def __call__(self, x: np.ndarray, timestamp: float, speed_scale: float = 1.0) -> np.ndarray:
    """The filtered value (float64, the shape of `x`) of sample `x` taken at `timestamp` s.

    A time stamp not after the previous one (a repeated frame) returns the previous
    output unchanged.
    """
    x = np.asarray(x, np.float64)
    if self._x is None:
      self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(timestamp)
      return x.copy()
    if x.shape != self._x.shape:
      raise ValueError(f"OneEuroFilter got shape {x.shape} after {self._x.shape} "
                       "(reset it for a new signal)")
    dt = float(timestamp) - self._t
    if dt <= 0:
      return self._x.copy()
    a_d = smoothing_factor(self.d_cutoff, dt)
    self._dx = a_d * (x - self._x) / dt + (1.0 - a_d) * self._dx
    cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / speed_scale
    a = smoothing_factor(cutoff, dt)
    self._x = a * x + (1.0 - a) * self._x
    self._t = float(timestamp)
    return self._x.copy()
