"""Landmarks and head pose of the faces in any image, from a trained work directory.

    predictor = Predictor.from_workdir("workdirs/synthetic")     # the best checkpoint
    faces = predictor(["a.jpg", pil_image, array])               # one list per image
    faces[0][0].landmarks   # float32 (n, 2), pixels of the (EXIF-upright) image
    faces[0][0].pose        # float32 (3,), yaw, pitch, roll in degrees
    faces = predictor("a.jpg", boxes=[[x0, y0, x1, y1]])          # given face boxes

Coordinates are 0-based pixel-centre coordinates of the image as displayed (EXIF
orientation applied), x right, y down; pose angles follow `asmnet_jax.rotation`.

The network was trained on crops of the landmark bounding box plus `eval_margin`
per side, resized to S x S without keeping the aspect ratio (`asmnet_jax.augment`).
A face box from a detector is not that box, so each face takes two passes:
  1. the face box is mapped to an estimated landmark box
     (`face_detection.DetectorBoxMapping`; skipped for `landmark_boxes=True`),
     cropped with the eval margin, and the network run on it;
  2. the crop is redone around the bounding box of the landmarks pass 1 predicted,
     with the same margin, i.e. exactly the evaluation crop, and the network run
     again. Its landmarks and pose are returned.
`refine_passes` is the number of such re-crops (default 1; 0 returns pass 1).

The network runs BN-folded (`models.fold_batch_norm`) and jitted, with all the faces
of a call in one batch padded up to one of `batch_sizes`, so a handful of shapes
is compiled once each.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image, ImageOps

from asmnet_jax import augment, checkpoints, compile_options, face_detection, models
from asmnet_jax.face_crop import ImageLoadError

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
# A re-crop box may grow or shrink by at most this factor per pass, and its centre
# stays inside the previous crop: a guard against a diverging prediction (a sane one
# never comes near it).
MAX_BOX_CHANGE = 2.0


# ----------------------------------------------------------------------------------
# The BN-folded network.


@dataclasses.dataclass(frozen=True, eq=False)
class InferenceModel:
  """A BN-folded network and what its inputs and outputs mean.

  `forward(variables, images)`: images float32 (B, S, S, 3) RGB in [0, 1], S =
  image_size -> (landmarks float32 (B, n, 2) normalised crop coordinates
  (x_norm = (x_px + 0.5) / S - 0.5, crop edges at -0.5 and +0.5), pose float32
  (B, 3) yaw, pitch, roll in degrees).
  """
  module: nn.Module  # BN-folded (`models.fold_batch_norm`).
  variables: dict[str, Any]  # {"params": ...} of the folded module.
  image_size: int
  num_landmarks: int
  model_name: str = "asmnet"
  pose_scale_deg: float = 90.0  # the network regresses pose / this.
  eval_margin: float = 0.05  # per-side crop margin, fraction of the landmark box.
  step: int | None = None  # the checkpoint's step, when loaded from one.
  source: str = ""  # where the weights came from.

  def forward(self, variables: dict[str, Any], images: jax.Array) -> tuple[jax.Array, jax.Array]:
    landmarks, pose = self.module.apply(variables, images)
    return landmarks, pose * jnp.float32(self.pose_scale_deg)

  def apply(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`forward` with this model's variables closed over (for tracing and export)."""
    return self.forward(self.variables, images)

  def with_depthwise_impl(self, impl: str) -> InferenceModel:
    """The same network with another depthwise convolution ("shift", "lax", "auto")."""
    return dataclasses.replace(self, module=self.module.clone(depthwise_impl=impl))


def _fold(model_name: str, params: Any, batch_stats: Any, **fields) -> InferenceModel:
  num_landmarks = int(params["heads"]["landmarks"]["kernel"].shape[-1]) // 2
  # float32 whatever the training compute dtype: inference here is on the host.
  model = models.create_model(model_name, num_landmarks)
  module, variables = models.fold_batch_norm(
      model, {"params": params, "batch_stats": batch_stats})
  return InferenceModel(module, variables, num_landmarks=num_landmarks,
                        model_name=model_name, **fields)


def _read_config(path: str) -> ml_collections.ConfigDict:
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is this a train.py work directory?")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def checkpoint_dir(workdir: str, checkpoint: str = "best") -> str:
  """DIR/best/<step> (lowest validation NME) or DIR/checkpoints/<step> (latest).

  "best" falls back to the latest checkpoint when no best one was saved.
  """
  if checkpoint not in ("best", "latest"):
    raise ValueError(f"checkpoint must be 'best' or 'latest', got {checkpoint!r}")
  _read_config(os.path.join(workdir, "config.json"))  # a clear error for a wrong dir.
  manager = checkpoints.CheckpointManager(workdir)
  try:
    best = manager.best_step() if checkpoint == "best" else None
    latest = manager.latest_step()
  finally:
    manager.close()
  if best is not None:
    return os.path.join(os.path.abspath(workdir), "best", str(best))
  if latest is None:
    raise FileNotFoundError(f"no checkpoint under {workdir}: train it first")
  return os.path.join(os.path.abspath(workdir), "checkpoints", str(latest))


def _restore_tree(step_dir: str) -> dict[str, Any]:
  """The saved train state of an Orbax step directory as nested dicts of arrays."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  step_dir = os.path.abspath(step_dir.rstrip("/"))
  if os.path.basename(step_dir) == "default":  # the item folder inside a step.
    step_dir = os.path.dirname(step_dir)
  parent, name = os.path.split(step_dir)
  if not name.isdigit():
    raise ValueError(f"{step_dir} is not a checkpoint step directory (…/<step>)")
  # No target: the tree comes back as saved (no optimiser or init to rebuild).
  with ocp.CheckpointManager(parent) as manager:
    return manager.restore(int(name), args=ocp.args.StandardRestore())


def load_checkpoint(path: str, config: ml_collections.ConfigDict | str | None = None
                    ) -> InferenceModel:
  """The folded network of a checkpoint step directory (DIR/best/<step> etc.).

  config: the run's config (a ConfigDict or a config.json path); default the
  config.json of the work directory two levels above `path`.
  """
  path = os.path.abspath(path.rstrip("/"))
  if os.path.basename(path) == "default":
    path = os.path.dirname(path)
  if config is None:
    config = os.path.join(os.path.dirname(os.path.dirname(path)), "config.json")
  if isinstance(config, str):
    config = _read_config(config)
  tree = _restore_tree(path)
  return _fold(config.model, tree["params"], tree["batch_stats"],
               image_size=int(config.image_size),
               pose_scale_deg=float(config.pose_scale_deg),
               eval_margin=float(config.input.eval_margin),
               step=int(os.path.basename(path)), source=path)


def load_workdir(workdir: str, checkpoint: str = "best") -> InferenceModel:
  """The folded network of a train.py work directory's best or latest checkpoint."""
  return load_checkpoint(checkpoint_dir(workdir, checkpoint),
                         os.path.join(workdir, "config.json"))


def random_variables(model: nn.Module, image_size: int = 64, seed: int = 0) -> dict[str, Any]:
  """Untrained variables shaped like `model.init`'s, drawn with NumPy.

  For benchmarks and tests: `model.init` compiles the whole network (10-30 s on two
  busy cores), `jax.eval_shape` only traces it. He-normal kernels (0.2 / sqrt(fan-in)
  for the heads, so outputs are O(1)), BN scale
  U(0.8, 1.2), small biases, running mean N(0, 0.1), variance U(0.5, 1.5).
  """
  abstract = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0),
      jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    names = [str(getattr(k, "key", k)) for k in path]
    shape, name = leaf.shape, names[-1]
    if names[0] == "batch_stats":
      value = (rng.normal(0.0, 0.1, shape) if name == "mean"
               else rng.uniform(0.5, 1.5, shape))
    elif name == "kernel":
      # Depthwise kernels (3, 3, C) have 9 inputs per output channel. Smaller heads
      # keep the untrained outputs O(1), like a trained network's.
      fan_in = shape[0] * shape[1] if len(shape) == 3 else int(np.prod(shape[:-1]))
      gain = 0.2 if names[1] == "heads" else np.sqrt(2.0)
      value = rng.normal(0.0, gain / np.sqrt(fan_in), shape)
    elif name == "scale":
      value = rng.uniform(0.8, 1.2, shape)
    else:
      value = rng.normal(0.0, 0.05, shape)
    return np.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, abstract)


def random_model(model_name: str = "asmnet", num_landmarks: int = 68, image_size: int = 224,
                 seed: int = 0, **fields) -> InferenceModel:
  """An untrained folded network (`random_variables`), for benchmarks and tests."""
  model = models.create_model(model_name, num_landmarks)
  variables = random_variables(model, image_size, seed)
  return _fold(model_name, variables["params"], variables["batch_stats"],
               image_size=image_size, source=f"random (seed {seed})", **fields)


def save_untrained_workdir(workdir: str, config: ml_collections.ConfigDict,
                           num_landmarks: int = 68, seed: int = 0, step: int = 1) -> str:
  """Writes a work directory holding an untrained network, as train.py lays it out.

  config.json plus a checkpoint (saved as both latest and best) whose weights are
  `random_variables`: for trying predict.py and the exports without training, and
  for tests. Returns `workdir`.
  """
  # Local imports: the training state pulls in optax and the input pipeline.
  from asmnet_jax import train_state  # pylint: disable=g-import-not-at-top

  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  model = train_state.create_model(config, num_landmarks)
  abstract = jax.eval_shape(functools.partial(train_state.create_train_state, config, model),
                            jax.random.key(0))
  variables = random_variables(model, config.image_size, seed)
  zeros = lambda tree: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), tree)  # noqa: E731
  state = abstract.replace(step=np.zeros((), abstract.step.dtype), params=variables["params"],
                           batch_stats=variables["batch_stats"],
                           opt_state=zeros(abstract.opt_state))
  manager = checkpoints.CheckpointManager(workdir)
  try:
    manager.save(step, state, nme=1.0)
    manager.wait()
  finally:
    manager.close()
  return workdir


# ----------------------------------------------------------------------------------
# Images.


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
  """Any PIL mode -> uint8 (H, W, 3); alpha dropped, 16-bit grey scaled to 8 bits."""
  if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
    grey = np.clip(np.round(np.asarray(img, np.float64) / 257.0), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
  if img.mode == "F":
    grey = np.clip(np.round(np.asarray(img, np.float64)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
  if img.mode == "P" and "transparency" in img.info:
    img = img.convert("RGBA")  # PIL warns when a transparent palette goes to RGB.
  if img.mode != "RGB":
    img = img.convert("RGB")
  return np.asarray(img, np.uint8).copy()


def _array_to_rgb(image: np.ndarray) -> np.ndarray:
  """(H, W), (H, W, 1|2|3|4) of any numeric dtype -> uint8 (H, W, 3).

  Floats are taken as [0, 1] (the network's range), or as [0, 255] when any value
  exceeds 1.5; uint16 as 16-bit. The last channel of 2 or 4 is alpha: dropped.
  """
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] in (1, 2):
    image = image[..., 0]
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] not in (3, 4) or 0 in image.shape:
    raise ValueError(f"an image array must be (H, W), (H, W, 1-4); got {image.shape}")
  image = image[..., :3]
  if image.dtype == np.uint8:
    return np.ascontiguousarray(image)
  if image.dtype == np.bool_:
    return image.astype(np.uint8) * 255
  if image.dtype == np.uint16:
    return np.round(image / 257.0).astype(np.uint8)
  values = image.astype(np.float64)
  if np.issubdtype(image.dtype, np.floating) and not np.nanmax(values) > 1.5:
    values = values * 255.0
  return np.clip(np.round(np.nan_to_num(values)), 0, 255).astype(np.uint8)


def load_image(image: ImageInput) -> np.ndarray:
  """A path, PIL image or array -> uint8 (H, W, 3) RGB, upright by its EXIF tag.

  Paths and PIL images are turned by their EXIF orientation
  (`PIL.ImageOps.exif_transpose`); grayscale, palette, 16-bit and alpha images
  become RGB (alpha dropped). Arrays: see `_array_to_rgb`.

  Raises:
    ImageLoadError: for an unreadable or missing file.
  """
  if isinstance(image, np.ndarray):
    return _array_to_rgb(image)
  if isinstance(image, Image.Image):
    return _pil_to_rgb(ImageOps.exif_transpose(image))
  if isinstance(image, (str, os.PathLike)):
    try:
      with Image.open(image) as img:
        img.load()  # decode now, so that truncated files fail here.
        return _pil_to_rgb(ImageOps.exif_transpose(img))
    except FileNotFoundError:
      raise ImageLoadError(f"image not found: {os.fspath(image)}") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
      raise ImageLoadError(f"cannot read image {os.fspath(image)}: {e}") from None
  if hasattr(image, "__array__"):
    return _array_to_rgb(np.asarray(image))
  raise TypeError(f"unsupported image type {type(image).__name__}")


def _is_single_image(images: Any) -> bool:
  if isinstance(images, np.ndarray):
    return images.ndim in (2, 3)
  return isinstance(images, (str, os.PathLike, Image.Image)) or hasattr(images, "__array__")


# ----------------------------------------------------------------------------------
# Crops.


def crop_transform(landmark_box: np.ndarray, image_size: int, margin: float) -> np.ndarray:
  """Affine (2, 3) from crop pixel-centre to image pixel-centre coordinates.

  The crop is `landmark_box` (x0, y0, x1, y1) plus `margin` of its width (height)
  left and right (top and bottom), resized to image_size square: the evaluation crop
  of `augment.crop_matrix` for landmarks whose bounding box this is.
  """
  corners = np.asarray(landmark_box, np.float64).reshape(2, 2)
  image_to_norm, _ = augment.crop_matrix(corners, (margin,) * 4)
  image_to_crop = augment.compose(augment.norm_to_pixel_matrix(image_size), image_to_norm)
  return augment.invert_affine(image_to_crop)


def crop_to_image_points(landmarks_norm: np.ndarray, crop_to_image: np.ndarray,
                         image_size: int) -> np.ndarray:
  """Normalised crop landmarks (..., n, 2) -> image pixel-centre coordinates (..., n, 2)."""
  pixels = augment.denormalize_landmarks(np.asarray(landmarks_norm, np.float64), image_size)
  return augment.apply_affine(np.asarray(crop_to_image, np.float64), pixels)


def landmark_bounding_box(landmarks: np.ndarray) -> np.ndarray:
  """(..., n, 2) -> (..., 4) x0 y0 x1 y1 of the points."""
  landmarks = np.asarray(landmarks, np.float64)
  return np.concatenate([landmarks.min(axis=-2), landmarks.max(axis=-2)], axis=-1)


def _guarded_box(previous: np.ndarray, landmarks: np.ndarray, margin: float) -> np.ndarray:
  """The landmarks' box, kept within MAX_BOX_CHANGE of `previous` (a landmark box)."""
  if not np.all(np.isfinite(landmarks)):
    return previous
  box = landmark_bounding_box(landmarks)
  prev_size = np.maximum(previous[2:] - previous[:2], 1.0)
  size = np.clip(box[2:] - box[:2], prev_size / MAX_BOX_CHANGE, prev_size * MAX_BOX_CHANGE)
  lo, hi = previous[:2] - margin * prev_size, previous[2:] + margin * prev_size
  centre = np.clip(0.5 * (box[:2] + box[2:]), lo, hi)
  return np.concatenate([centre - 0.5 * size, centre + 0.5 * size])


# ----------------------------------------------------------------------------------
# The predictor.


@dataclasses.dataclass(frozen=True)
class Face:
  """One face: landmarks and pose in the input image's coordinates (module doc).

  landmarks: float32 (n, 2) pixel-centre x, y.
  pose: float32 (3,) yaw, pitch, roll in degrees.
  box: float32 (4,) x0 y0 x1 y1, the face box the search started from (the
    detector's, or the one given).
  score: the detector's confidence (Haar: its final-stage weight; 1.0 for a given box).
  """
  landmarks: np.ndarray
  pose: np.ndarray
  box: np.ndarray
  score: float

  def to_json(self) -> dict[str, Any]:
    yaw, pitch, roll = (float(v) for v in self.pose)
    return {"box": [float(v) for v in self.box], "score": float(self.score),
            "pose_deg": {"yaw": yaw, "pitch": pitch, "roll": roll},
            "landmarks": np.round(self.landmarks.astype(np.float64), 3).tolist()}


class Predictor:
  """Finds faces and predicts their landmarks and head pose (module doc).

  Args:
    model: the BN-folded network (`load_workdir`, `load_checkpoint`, `random_model`).
    detector: a `face_detection.FaceDetector`; default an OpenCV Haar cascade,
      built on first use (explicit boxes need no OpenCV).
    box_mapping: detector box -> estimated landmark box.
    refine_passes: re-crops around the predicted landmarks (>= 0).
    batch_sizes: the padded batch sizes compiled, ascending; larger calls are
      split into chunks of the largest.
  """

  def __init__(self, model: InferenceModel, *,
               detector: face_detection.FaceDetector | None = None,
               box_mapping: face_detection.DetectorBoxMapping = face_detection.DetectorBoxMapping(),
               refine_passes: int = 1,
               batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES):
    if refine_passes < 0:
      raise ValueError(f"refine_passes must be >= 0, got {refine_passes}")
    if not batch_sizes or sorted(batch_sizes) != list(batch_sizes) or batch_sizes[0] < 1:
      raise ValueError(f"batch_sizes must be positive and ascending, got {batch_sizes}")
    self.model = model
    self._detector = detector
    self.box_mapping = box_mapping
    self.refine_passes = refine_passes
    self.batch_sizes = tuple(int(b) for b in batch_sizes)
    self._forward = compile_options.jit_inference(model.forward)

  @classmethod
  def from_workdir(cls, workdir: str, checkpoint: str = "best", **kwargs) -> Predictor:
    """From a train.py work directory ("best" or "latest" checkpoint)."""
    return cls(load_workdir(workdir, checkpoint), **kwargs)

  @classmethod
  def from_checkpoint(cls, path: str, config: ml_collections.ConfigDict | str | None = None,
                      **kwargs) -> Predictor:
    """From a checkpoint step directory such as DIR/checkpoints/1500 (`load_checkpoint`)."""
    return cls(load_checkpoint(path, config), **kwargs)

  @property
  def detector(self) -> face_detection.FaceDetector:
    if self._detector is None:
      self._detector = face_detection.HaarFaceDetector()
    return self._detector

  @property
  def image_size(self) -> int:
    return self.model.image_size

  def __call__(self, images: ImageInput | Sequence[ImageInput], boxes: Any = None, *,
               landmark_boxes: bool = False) -> list[list[Face]]:
    """Faces in each image: a list (one entry per image) of lists of `Face`.

    Args:
      images: one image or a sequence of them (paths, PIL images, arrays of any
        size; see `load_image`). A single image still gives a list of one list.
      boxes: None (detect faces), or per image: None (detect) or face boxes (k, 4)
        x0 y0 x1 y1 in pixel-centre coordinates of the upright image. For a single
        image, its boxes directly.
      landmark_boxes: the given boxes are landmark bounding boxes (skip the
        detector-box mapping).
    Returns:
      Per image, its faces in the order of the boxes (detections: best first); an
      image without faces gives an empty list.
    """
    single = _is_single_image(images)
    image_list = [images] if single else list(images)
    if boxes is None:
      box_list = [None] * len(image_list)
    elif single:
      box_list = [boxes]
    else:
      box_list = list(boxes)
      if len(box_list) != len(image_list):
        raise ValueError(f"{len(box_list)} box lists for {len(image_list)} images")
    arrays = [load_image(image) for image in image_list]

    owners, face_boxes, scores, estimates = [], [], [], []
    for index, (array, given) in enumerate(zip(arrays, box_list)):
      if given is None:
        found = self.detector(array)
        found_boxes, found_scores = np.asarray(found.boxes, np.float64), found.scores
        estimate = self.box_mapping(found_boxes)
      else:
        found_boxes = np.asarray(given, np.float64).reshape(-1, 4)
        found_scores = np.ones(len(found_boxes))
        estimate = found_boxes if landmark_boxes else self.box_mapping(found_boxes)
      owners += [index] * len(found_boxes)
      face_boxes += list(found_boxes)
      scores += [float(s) for s in found_scores]
      estimates += list(estimate)

    results: list[list[Face]] = [[] for _ in arrays]
    if not owners:
      return results
    landmark_box = np.stack(estimates)
    landmarks, pose = self._predict_boxes(arrays, owners, landmark_box)
    for _ in range(self.refine_passes):
      landmark_box = np.stack([_guarded_box(b, l, self.model.eval_margin)
                               for b, l in zip(landmark_box, landmarks)])
      landmarks, pose = self._predict_boxes(arrays, owners, landmark_box)
    for k, owner in enumerate(owners):
      results[owner].append(Face(landmarks[k].astype(np.float32), pose[k].astype(np.float32),
                                 np.asarray(face_boxes[k], np.float32), scores[k]))
    return results

  def _predict_boxes(self, arrays: Sequence[np.ndarray], owners: Sequence[int],
                     landmark_box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crops every (image, landmark box) pair, runs them as one batch.

    Returns landmarks float64 (K, n, 2) in image pixels and pose (K, 3) degrees.
    """
    s = self.image_size
    transforms = np.stack([crop_transform(box, s, self.model.eval_margin)
                           for box in landmark_box])
    crops = np.stack([augment.to_float_image(augment.warp_image(arrays[i], t, s))
                      for i, t in zip(owners, transforms)])
    landmarks_norm, pose = self._predict_crops(crops, transforms)
    return crop_to_image_points(landmarks_norm, transforms, s), np.asarray(pose, np.float64)

  def _predict_crops(self, crops: np.ndarray, crop_to_image: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The network on crops float32 (K, S, S, 3) -> (landmarks_norm (K, n, 2), pose (K, 3)).

    `crop_to_image` (K, 2, 3) is unused here; it lets a test substitute an oracle
    that knows where each crop came from.
    """
    del crop_to_image
    out_landmarks, out_pose = [], []
    largest = self.batch_sizes[-1]
    for start in range(0, len(crops), largest):
      chunk = crops[start:start + largest]
      size = next(b for b in self.batch_sizes if b >= len(chunk))
      padded = np.zeros((size,) + chunk.shape[1:], np.float32)
      padded[:len(chunk)] = chunk
      landmarks, pose = self._forward(self.model.variables, padded)
      out_landmarks.append(np.asarray(landmarks)[:len(chunk)])
      out_pose.append(np.asarray(pose)[:len(chunk)])
    return np.concatenate(out_landmarks), np.concatenate(out_pose)
