"""Untrained networks and work directories, for tests, benchmarks and trying the tools;
the builders' dummy-data scripts as modules.

`model.init` compiles the whole network (10-30 s on two busy cores); these draw
variables of the same shapes with NumPy after `jax.eval_shape`, which only traces.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import types
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from asmnet_jax.inference.model import InferenceModel, fold
from asmnet_jax.nn import models
from asmnet_jax.train import checkpoints
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import state as state_lib


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
  return fold(model_name, variables["params"], variables["batch_stats"],
               image_size=image_size, source=f"random (seed {seed})", **fields)


def save_untrained_workdir(workdir: str, config: ml_collections.ConfigDict,
                           num_landmarks: int = 68, seed: int = 0, step: int = 1) -> str:
  """Writes a work directory holding an untrained network, as train.py lays it out.

  config.json plus a checkpoint (saved as both latest and best) whose weights are
  `random_variables`: for trying predict.py and the exports without training, and
  for tests. Returns `workdir`.
  """
  os.makedirs(workdir, exist_ok=True)
  config_lib.save_config(config, workdir)
  model = state_lib.create_model(config, num_landmarks)
  abstract = jax.eval_shape(functools.partial(state_lib.create_train_state, config, model),
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
# Labelled folders of drawn faces with 5 or 19 points (`landmark_folder` tests, docs).

# 19 points from the 68-point mean face: brows 17 19 21 | 22 24 26, eye corners 36 39 |
# 42 45, the two eye centres (means of 36-41 and 42-47), nose 31 33 35, mouth 48 51 54,
# chin 8. Negative entries are the eye centres.
_SUBSET_19 = (17, 19, 21, 22, 24, 26, 36, 39, 42, 45, -1, -2, 31, 33, 35, 48, 51, 54, 8)
# 5 points: eye centres, nose tip, mouth corners (the common detector layout).
_SUBSET_5 = (-1, -2, 30, 48, 54)
# 29 points placed like COFW's (brows, eye corners and lids, pupils, nose, lips, chin;
# its mirror pairs map onto the 68-point scheme's), for fixtures only.
_SUBSET_29 = (17, 26, 21, 22, 19, 20, 24, 23, 36, 45, 39, 42, 37, 41, 44, 46, -1, -2,
              31, 35, 30, 33, 48, 54, 51, 62, 66, 57, 8)
# Their mirror declarations (`dataset.json`), image-left point first.
FOLDER_SCHEMES = {
    5: {"eye_corners": [0, 1], "mirror_pairs": [[0, 1], [3, 4]], "midline_points": [2]},
    19: {"mirror_pairs": [[0, 5], [1, 4], [2, 3], [6, 9], [7, 8], [10, 11], [12, 14],
                          [15, 17]],
         "midline_points": [13, 16, 18]},
}


def drawn_face_points(num_points: int, yaw: float, pitch: float, roll: float,
                      scale: float, centre) -> np.ndarray:
  """float64 (num_points, 2) 0-based pixels of the mean face at a pose (5, 19 or 29
  points, or 68: the whole face), weak-perspective projection."""
  from asmnet_jax.core import rotation  # pylint: disable=g-import-not-at-top
  face = rotation.load_mean_face() @ rotation.euler_to_rotation(yaw, pitch, roll).T
  return subset_of_68(scale * face[:, :2] + np.asarray(centre, np.float64), num_points)


def subset_of_68(points: np.ndarray, num_points: int) -> np.ndarray:
  """The 5-, 19- or 29-point layout (or all 68) taken from 68-point landmarks (68, 2)."""
  if num_points == 68:
    return points
  subset = {5: _SUBSET_5, 19: _SUBSET_19, 29: _SUBSET_29}[num_points]
  centres = {-1: points[36:42].mean(0), -2: points[42:48].mean(0)}
  return np.stack([centres[i] if i < 0 else points[i] for i in subset])


def draw_face_image(size: tuple[int, int], faces: list[np.ndarray], seed: int) -> np.ndarray:
  """uint8 (H, W, 3): smooth noise with a skin ellipse and dark dots for each face."""
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  width, height = size
  noise = rng.integers(0, 256, (max(height // 8, 1), max(width // 8, 1), 3), dtype=np.uint8)
  image = Image.fromarray(noise).resize((width, height), Image.Resampling.BILINEAR)
  draw = ImageDraw.Draw(image)
  for points in faces:
    lo, hi = points.min(0), points.max(0)
    pad = 0.35 * (hi - lo)
    draw.ellipse([*(lo - pad), *(hi + pad)], fill=(205, 160, 130))
    for x, y in points:
      draw.ellipse([x - 1, y - 1, x + 1, y + 1], fill=(40, 20, 20))
  return np.asarray(image)


def write_landmark_folder(root: str, num_points: int, split_sizes: dict[str, int],
                          image_size: int = 48, seed: int = 0,
                          declare: bool = True) -> dict[str, list[np.ndarray]]:
  """A labelled folder: `<root>/<split>/landmarks.csv` and PNGs, one face an image,
  at random poses; `dataset.json` with the scheme's `FOLDER_SCHEMES` when `declare`.

  Returns {split: [points (n, 2), ...]} in row order.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  written = {}
  for split, count in split_sizes.items():
    folder = os.path.join(root, split)
    os.makedirs(folder, exist_ok=True)
    rows, written[split] = [], []
    for i in range(count):
      yaw, pitch, roll = rng.uniform(-30, 30), rng.uniform(-15, 15), rng.uniform(-20, 20)
      scale = image_size * rng.uniform(0.22, 0.3)
      centre = image_size / 2 + rng.uniform(-3, 3, 2)
      points = drawn_face_points(num_points, yaw, pitch, roll, scale, centre)
      name = f"{split}_{i:03d}.png"
      Image.fromarray(draw_face_image((image_size, image_size), [points],
                                      seed * 1000 + i)).save(os.path.join(folder, name))
      rows.append(name + "," + ",".join(f"{v:.3f}" for v in points.ravel()))
      written[split].append(points)
    with open(os.path.join(folder, "landmarks.csv"), "w") as f:
      f.write("\n".join(rows) + "\n")
  if declare:
    import json  # pylint: disable=g-import-not-at-top
    with open(os.path.join(root, "dataset.json"), "w") as f:
      json.dump(FOLDER_SCHEMES[num_points], f)
  return written


def dummy_data_module(builder_test_file: str) -> types.ModuleType:
  """`dummy_data/make_dummy_data.py` beside a builder test, imported from its path
  (the dummy_data folders are no packages, as in TFDS's own builders)."""
  folder = os.path.dirname(os.path.abspath(builder_test_file))
  name = os.path.splitext(os.path.basename(builder_test_file))[0] + "_dummy_data"
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(folder, "dummy_data", "make_dummy_data.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
