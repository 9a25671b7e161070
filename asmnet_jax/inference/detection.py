"""Offline face detection for inference: OpenCV's bundled Haar cascade.

Why Haar: it ships inside the `opencv-python-headless` wheel (`cv2.data.haarcascades`,
OpenCV 4.x; OpenCV 5 dropped the files), so nothing is downloaded at run time.
It finds near-frontal, upright faces (roughly |yaw| < 30-40 degrees, |roll| < 15);
the predictor's second pass (`asmnet_jax.inference.predictor`) re-crops around the predicted
landmarks, so a rough box is enough. Any callable with the `FaceDetector` signature
can replace it (e.g. a DNN detector whose weights the caller provides).

Boxes are (x0, y0, x1, y1) in the pixel-centre coordinates of the landmarks
(`asmnet_jax.data.augment`): a box covering pixel columns i..j has x0 = i - 0.5 and
x1 = j + 0.5.

A detector box is not the 68/98-point landmark box the network was trained on: a
Haar box includes the forehead and stops near the chin. `DetectorBoxMapping` turns
one into an estimate of the other; its defaults were measured on clean frontal
synthetic renderings (`synthetic_faces.CLEAN_FRONTAL_CONFIG`, 31 faces): landmark
box centre = box centre + (0.00, 0.15) * box size (std 0.01, 0.02), landmark box
size = (0.83, 0.77) * box size (std 0.05, 0.04).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import numpy as np

DEFAULT_CASCADE = "haarcascade_frontalface_alt2.xml"


class Detections(NamedTuple):
  boxes: np.ndarray  # float32 (k, 4), x0 y0 x1 y1 (module doc), best first.
  scores: np.ndarray  # float32 (k,), detector confidence (higher is surer).


# image uint8 (H, W, 3) RGB -> Detections.
FaceDetector = Callable[[np.ndarray], Detections]


def no_detections() -> Detections:
  return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


@dataclasses.dataclass(frozen=True)
class DetectorBoxMapping:
  """Detector face box -> estimated landmark bounding box (see module doc).

  centre_shift: landmark box centre minus box centre, in box widths / heights.
  scale: landmark box width / box width, landmark box height / box height.
  """
  centre_shift: tuple[float, float] = (0.0, 0.15)
  scale: tuple[float, float] = (0.83, 0.77)

  def __call__(self, boxes: np.ndarray) -> np.ndarray:
    """(k, 4) x0 y0 x1 y1 -> (k, 4) float64 estimated landmark boxes."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:]) + np.asarray(self.centre_shift) * size
    half = 0.5 * np.asarray(self.scale) * size
    return np.concatenate([centre - half, centre + half], axis=1)


IDENTITY_MAPPING = DetectorBoxMapping((0.0, 0.0), (1.0, 1.0))


class HaarFaceDetector:
  """OpenCV Haar-cascade face detector, usable as a `FaceDetector`.

  Args:
    cascade: a file name in `cv2.data.haarcascades` or a path to a cascade XML.
    scale_factor, min_neighbors: `CascadeClassifier.detectMultiScale` settings
      (higher min_neighbors: fewer false positives, more misses).
    min_face_fraction: smallest face side searched, as a fraction of the image's
      shorter side (never below the cascade's 20-24 px window).
    max_side: larger images are downscaled to this longer side before detecting
      (Haar cost grows with the pixel count; faces this small are found anyway).
  """

  def __init__(self, cascade: str = DEFAULT_CASCADE, *, scale_factor: float = 1.1,
               min_neighbors: int = 3, min_face_fraction: float = 0.08,
               max_side: int = 800):
    try:
      import cv2  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(
          "face detection needs OpenCV: pip install 'opencv-python-headless>=4.8,<5' "
          "(or pass face boxes explicitly)") from e
    self._cv2 = cv2
    path = cascade
    if not any(sep in cascade for sep in ("/", "\\")):
      path = cv2.data.haarcascades + cascade
    self._classifier = cv2.CascadeClassifier(path)
    if self._classifier.empty():
      raise FileNotFoundError(
          f"cannot load the Haar cascade {path!r} (OpenCV {cv2.__version__}; OpenCV 5 "
          "no longer bundles cascades: use opencv-python-headless<5)")
    self.scale_factor = scale_factor
    self.min_neighbors = min_neighbors
    self.min_face_fraction = min_face_fraction
    self.max_side = max_side

  def __call__(self, image: np.ndarray) -> Detections:
    """Faces in `image` uint8 (H, W, 3) RGB (or (H, W) grey), best first."""
    cv2 = self._cv2
    image = np.asarray(image)
    grey = image if image.ndim == 2 else cv2.cvtColor(
        np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    factor = min(1.0, self.max_side / max(h, w))
    if factor < 1.0:
      grey = cv2.resize(grey, (max(1, round(w * factor)), max(1, round(h * factor))),
                        interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)  # Haar features assume normalised contrast.
    min_side = max(20, int(self.min_face_fraction * min(grey.shape)))
    rects, _, weights = self._classifier.detectMultiScale3(
        grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
        minSize=(min_side, min_side), outputRejectLevels=True)
    if len(rects) == 0:
      return no_detections()
    rects = np.asarray(rects, np.float64).reshape(-1, 4)
    scores = np.asarray(weights, np.float64).reshape(-1)
    # Columns x..x+w-1 of the detected (maybe downscaled) image span its edge
    # coordinates [x, x + w]; edge e there is e / factor - 0.5 in original pixel centres.
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / factor - 0.5
    order = np.argsort(-scores, kind="stable")
    return Detections(boxes[order].astype(np.float32), scores[order].astype(np.float32))
