"""Procedurally rendered synthetic faces with exact 68-point landmarks and head pose.

The embedded default data set: a new user without 300W/WFLW trains on these.

A face is the 68-point 3D mean face (`rotation.load_mean_face`) deformed by a small
hand-made identity model and expression model, wrapped in a coarse head (a face mesh
through the landmarks and extra skin points, an ellipsoid skull with hair, ears, neck,
torso), rotated by `rotation.euler_to_rotation(yaw, pitch, roll)` and projected with
a pinhole camera looking at the head centre. The labels are the projections of the
68 deformed 3D points, so they are exact; the pose label is the rotation's angles.

Drawing uses the painter's algorithm (back-face culling, then far to near), so the
far side of a turned face hides behind the nose and cheek while its landmarks stay at
their projected positions (as 300W annotates self-occluded points). Each landmark
chain is drawn as a visible feature: jaw = face outline, brows = hair bands, eyes =
lid contours around sclera and iris, nose = ridge shading, nostrils and base
shadow, lips = filled outer/inner lip contours.

`render_face(seed)` is deterministic: all randomness comes from
`np.random.default_rng(seed)`. The building blocks live in `asmnet_jax.synthetic`.

`render_face(seed, config=PHOTO_CONFIG)` draws the same kind of scene in the photo
style (`asmnet_jax.synthetic.photo`: a z-buffered, per-pixel shaded head with skin
texture, natural backgrounds and camera effects) and labels the jaw on the visible
outline, as 300-W annotators do (`render.label_points`).

  python -m asmnet_jax.synthetic.faces [--grid PNG] [--n 24] [--cols 6] [--first-seed 0]
      [--size 192] [--scale 1] [--no-landmarks] [--style cartoon|photo]
      [--supersample K] [--benchmark N]

writes a grid of faces to --grid (default: the checkout's docs/synthetic_samples.png);
with --benchmark N it renders N faces instead and prints images/s on one core.
`--style photo` selects `PHOTO_CONFIG` (`asmnet_jax.synthetic.photo`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Sequence

import numpy as np
from absl import flags
from PIL import Image, ImageDraw

from asmnet_jax import cli
from asmnet_jax.core import rotation
from asmnet_jax.synthetic import draw as _draw
from asmnet_jax.synthetic import photo as _photo
from asmnet_jax.synthetic import render as _render
from asmnet_jax.synthetic.config import CLEAN_FRONTAL_CONFIG, DEFAULT_CONFIG, PHOTO_CONFIG
from asmnet_jax.synthetic.config import PRESETS, RenderConfig
from asmnet_jax.synthetic.shape import BROWS, EYES, JAW, LIPS_INNER, LIPS_OUTER, NOSE_BASE
from asmnet_jax.synthetic.shape import NOSE_RIDGE, NUM_LANDMARKS

__all__ = [
    "CLEAN_FRONTAL_CONFIG", "DEFAULT_CONFIG", "NUM_LANDMARKS", "PHOTO_CONFIG", "PRESETS",
    "RenderConfig",
    "draw_landmarks",
    "project_points", "render_face", "sample_grid",
    "BROWS", "EYES", "JAW", "LIPS_INNER", "LIPS_OUTER", "NOSE_BASE", "NOSE_RIDGE",
]


def render_face(seed: int, image_size: int = 192,
                config: RenderConfig = DEFAULT_CONFIG) -> dict[str, Any]:
  """Renders one synthetic face.

  Args:
    seed: the only source of randomness (same seed, same pixels).
    image_size: output side H = W in pixels.
    config: what to sample (`RenderConfig`).

  Returns:
    dict with
      image:     uint8 (H, W, 3) RGB, after the JPEG round trip (equals decoding `jpeg`).
      jpeg:      the JPEG bytes of `image`.
      landmarks: float32 (68, 2), 0-based pixel x, y (pixel centres at integers), all
                 at least `config.margin` px inside the image.
      pose:      float32 (3,), yaw, pitch, roll in degrees (`asmnet_jax.core.rotation`).
      points3d:  float64 (68, 3), the labelled points in the head frame (mean-face
                 units): the deformed face; with `config.jaw_silhouette`, jaw points
                 hidden by the turned face are moved onto its visible outline.
      camera:    dict(distance, scale, offset (2,)) such that
                 `project_points(points3d, pose, **camera) == landmarks` (float32).
  """
  scene = _render.sample_scene(seed, image_size, config)
  if config.style == "photo":
    return _photo.render_scene(scene)
  if config.style != "cartoon":
    raise ValueError(f"RenderConfig.style: unknown style {config.style!r} "
                     "(expected 'cartoon' or 'photo')")
  return _render.render_scene(scene)


def project_points(points: np.ndarray, pose: np.ndarray, distance: float,
                   scale: float, offset: np.ndarray) -> np.ndarray:
  """The renderer's projection of head-frame points (N, 3) to pixels (N, 2).

  `pose` is (yaw, pitch, roll) in degrees: rotation by `rotation.euler_to_rotation`,
  the head centre put at `distance` on the optical axis, pinhole projection with
  `scale` px per unit at that distance, then `offset` (2,) pixels added. 0-based
  pixel coordinates, pixel centres at integers.
  """
  rot = rotation.euler_to_rotation(*np.asarray(pose, dtype=np.float64))
  camera = _draw.Camera(rot, distance, scale, np.asarray(offset, np.float64))
  return camera.project(np.asarray(points, dtype=np.float64))


# ----------------------------------------------------------------------------------
# Sample grid.


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, scale: int = 2) -> Image.Image:
  """The image (H, W, 3) upscaled by `scale` with the 68 landmarks drawn as dots."""
  img = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale),
                                      Image.NEAREST)
  draw = ImageDraw.Draw(img)
  groups = [(JAW, (255, 255, 0)), (np.arange(17, 27), (255, 128, 0)),
            (np.arange(27, 36), (0, 255, 255)), (np.arange(36, 48), (0, 255, 0)),
            (np.arange(48, 68), (255, 0, 255))]
  for idx, col in groups:
    for x, y in landmarks[idx]:
      cx, cy = (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5
      draw.ellipse([cx - 1.5, cy - 1.5, cx + 1.5, cy + 1.5], fill=col)
  return img


def sample_grid(seeds, image_size: int = 192, config: RenderConfig = DEFAULT_CONFIG,
                cols: int = 6, with_landmarks: bool = True, scale: int = 1) -> Image.Image:
  """A grid of rendered faces (optionally with their landmarks drawn)."""
  tiles = []
  for seed in seeds:
    out = render_face(int(seed), image_size, config)
    if with_landmarks:
      tiles.append(draw_landmarks(out["image"], out["landmarks"], scale))
    else:
      tiles.append(Image.fromarray(out["image"]).resize(
          (image_size * scale, image_size * scale), Image.NEAREST))
  t = image_size * scale
  rows = math.ceil(len(tiles) / cols)
  grid = Image.new("RGB", (cols * t, rows * t), (255, 255, 255))
  for i, tile in enumerate(tiles):
    grid.paste(tile, ((i % cols) * t, (i // cols) * t))
  return grid


# ----------------------------------------------------------------------------------
# Command line.


def define_flags(fv: flags.FlagValues) -> None:
  """The sample-grid command's flags."""
  flags.DEFINE_string("grid", os.path.join(cli.REPOSITORY, "docs", "synthetic_samples.png"),
                      "Output PNG.", flag_values=fv)
  flags.DEFINE_integer("n", 24, "Number of faces.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("cols", 6, "Faces per row.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("first-seed", 0, "Seed of the first face (then +1 each).",
                       flag_values=fv)
  flags.DEFINE_integer("size", 192, "Face image side in pixels.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("scale", 1, "Tile upscaling.", lower_bound=1, flag_values=fv)
  flags.DEFINE_boolean("no-landmarks", False, "Leave the landmarks out.", flag_values=fv)
  flags.DEFINE_enum("style", "cartoon", list(PRESETS), "Render preset.", flag_values=fv)
  flags.DEFINE_integer("supersample", None, "Override the preset's supersampling factor.",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("benchmark", 0, "Instead of a grid: render this many faces "
                       "(seeds from --first-seed) in this process and print images/s.",
                       lower_bound=0, flag_values=fv)


def benchmark(n: int, image_size: int, config: RenderConfig, first_seed: int = 0) -> float:
  """Renders n faces in this process (one core) after a warm-up; returns images/s."""
  render_face(first_seed + n, image_size, config)  # Caches (template, noise tiles).
  start = time.perf_counter()
  for seed in range(first_seed, first_seed + n):
    render_face(seed, image_size, config)
  return n / (time.perf_counter() - start)


def _run(fv: flags.FlagValues) -> None:
  first = fv["first-seed"].value
  config = PRESETS[fv.style]
  if fv.supersample:
    config = dataclasses.replace(config, supersample=fv.supersample)
  if fv.benchmark:
    # Imported here: it imports jax, which rendering (and its worker processes) never need.
    from asmnet_jax.runtime import machine  # pylint: disable=g-import-not-at-top
    rate = benchmark(fv.benchmark, fv.size, config, first)
    print(f"{fv.style} style, {fv.size} px, supersample {config.supersample}: "
          f"{rate:.1f} images/s on one core ({fv.benchmark} faces; "
          f"{machine.cpu_description()})")
    return
  grid = sample_grid(range(first, first + fv.n), fv.size, config=config, cols=fv.cols,
                     with_landmarks=not fv["no-landmarks"].value, scale=fv.scale)
  with cli.reported(FileNotFoundError):  # --grid in a missing directory.
    grid.save(fv.grid)
  print(f"wrote {fv.grid} ({grid.size[0]}x{grid.size[1]})")


def main(argv: Sequence[str] | None = None) -> int:
  """Writes the sample grid per `argv` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, _run, argv)


if __name__ == "__main__":
  sys.exit(main())
