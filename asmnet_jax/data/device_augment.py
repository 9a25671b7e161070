"""Training augmentation on the accelerator, inside the jitted step.

The host then only slices fixed-size uint8 crops (`asmnet_jax.data.crop_cache`), and
the device draws, per example, the same random crop as the host pipeline
(`asmnet_jax.data.pipeline`: per-side margin, rotation, zoom, optional flip) and
applies it as one bilinear warp (a gather), then the photometric terms of
`augment.Photometric` and an optional occlusion patch. The landmarks follow the
crop, the roll the rotation, and a flip renumbers the points and negates yaw and
roll. Randomness comes from a key (the step's, in the training step), so a resumed
run sees the same batches.

Differences from the host path, none of which changes the distributions the test
compares: the warp samples the cached crop directly (the host box-filters first when
it shrinks the source 2x or more; the cache is sized so that it rarely does); the
pixels are not rounded to uint8 before the photometric terms; salt and pepper marks
each pixel with the drawn probability instead of drawing that many pixels.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from asmnet_jax.core import geometry, mirror
from asmnet_jax.core import rotation as rotation_lib
from asmnet_jax.data import augment

_LUMA = augment._LUMA.astype(np.float32)  # pylint: disable=protected-access


def crop_matrix(landmarks: jax.Array, margins: jax.Array, rotation_deg: jax.Array,
                scale: jax.Array) -> jax.Array:
  """`geometry.crop_matrix` for one example in jnp: float32 (2, 3), source pixels ->
  normalised crop coordinates (the zoom clamped so that no landmark leaves the crop).

  Args:
    landmarks: (n, 2) source pixel-centre coordinates.
    margins: (4,) left, top, right, bottom, fractions of the rotated landmark box.
    rotation_deg: () content rotation, degrees, positive clockwise as displayed.
    scale: () zoom, > 1 enlarges the face.
  """
  lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
  centre = 0.5 * (lo + hi)
  t = jnp.deg2rad(rotation_deg)
  c, s = jnp.cos(t), jnp.sin(t)
  rot = jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])
  rotated = (landmarks - centre) @ rot.T
  r_lo, r_hi = rotated.min(axis=0), rotated.max(axis=0)
  size = jnp.maximum(r_hi - r_lo, 1.0)
  box_lo = r_lo - margins[:2] * size
  box_hi = r_hi + margins[2:] * size
  box_centre = 0.5 * (box_lo + box_hi)
  half = 0.5 * (box_hi - box_lo)
  reach = jnp.max(jnp.abs(rotated - box_centre), axis=0)
  limit = jnp.min(half / jnp.maximum(reach, 1e-9))
  scale = jnp.where(scale > 1.0, jnp.minimum(scale, jnp.maximum(limit, 1.0)), scale)
  half = half / scale
  lin = rot / (2.0 * half)[:, None]
  offset = -lin @ centre - box_centre / (2.0 * half)
  return jnp.concatenate([lin, offset[:, None]], axis=1)


def _apply(matrix: jax.Array, points: jax.Array) -> jax.Array:
  return points @ matrix[:, :2].T + matrix[:, 2]


def _invert(matrix: jax.Array) -> jax.Array:
  # The 2 x 2 inverse in closed form: jnp.linalg.inv is an LU solve, slow to compile.
  (a, b), (c, d) = matrix[0, :2], matrix[1, :2]
  a_inv = jnp.stack([jnp.stack([d, -b]), jnp.stack([-c, a])]) / (a * d - b * c)
  return jnp.concatenate([a_inv, -a_inv @ matrix[:, 2:]], axis=1)


def warp(image: jax.Array, crop_to_image: jax.Array, size: int) -> jax.Array:
  """Bilinear resample of `image` (H, W, C) onto a (size, size, C) float32 crop.

  `crop_to_image` (2, 3) maps crop pixel-centre coordinates to source ones; outside
  the source is 0 (black), as in `augment.warp_image`. Values keep the source's scale.
  """
  h, w = image.shape[:2]
  grid = jnp.arange(size, dtype=jnp.float32)
  gx, gy = jnp.meshgrid(grid, grid)  # gx varies along columns (x).
  sx = crop_to_image[0, 0] * gx + crop_to_image[0, 1] * gy + crop_to_image[0, 2]
  sy = crop_to_image[1, 0] * gx + crop_to_image[1, 1] * gy + crop_to_image[1, 2]
  x0, y0 = jnp.floor(sx), jnp.floor(sy)
  fx, fy = sx - x0, sy - y0
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  flat = image.reshape(h * w, -1)

  def tap(yi, xi, weight):
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    index = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
    return flat[index].astype(jnp.float32) * jnp.where(inside, weight, 0.0)[..., None]

  return (tap(y0, x0, (1 - fx) * (1 - fy)) + tap(y0, x0 + 1, fx * (1 - fy)) +
          tap(y0 + 1, x0, (1 - fx) * fy) + tap(y0 + 1, x0 + 1, fx * fy))


# Every random number of a batch comes from two draws, scalars per example and (with
# noise or salt and pepper) one per-pixel field: each `jax.random` call site adds
# compilation time. Layout of an example's scalars:
_GEOMETRY = slice(0, 7)      # margins (4), rotation, zoom, flip.
_PHOTOMETRIC = slice(7, 15)  # saturation, channel gains (3), contrast, brightness,
                             # noise sigma, salt-and-pepper share.
_OCCLUSION = slice(15, 23)   # apply, sides (2), centre (2), colour (3).
_RANDOM_CONV = slice(23, 26)  # apply, kernel side, weight of the original.
NUM_SCALARS = 26
FIELD_CHANNELS = 5           # noise (3), salt-and-pepper hit, white or black.
# Side of the random convolution's weights (smaller kernels are windows of it).
KERNEL_SIDE = max(augment.RANDOM_CONV_KERNELS)


def _between(u: jax.Array, lo: float, hi: float) -> jax.Array:
  """U(0, 1) draws -> U(lo, hi)."""
  return lo + (hi - lo) * u


def photometric(u: jax.Array, field: jax.Array | None, image: jax.Array,
                p: augment.Photometric) -> jax.Array:
  """`augment.to_float_image`'s random terms on a float (S, S, 3) image in [0, 1].

  u: (8,) U(0, 1) draws; field: (S, S, 5) U(0, 1) draws, needed for noise or salt
  and pepper.
  """
  mat = jnp.eye(3)
  bias = jnp.zeros(3)
  if p.colour > 0:
    sat = 1.0 + _between(u[0], -p.colour, p.colour)
    mat = sat * jnp.eye(3) + (1.0 - sat) * jnp.outer(_LUMA, jnp.ones(3))
    mat = mat * (1.0 + _between(u[1:4], -0.5 * p.colour, 0.5 * p.colour))[None, :]
  if p.contrast > 0:
    factor = 1.0 + _between(u[4], -p.contrast, p.contrast)
    mean_luma = image.mean(axis=(0, 1)) @ mat @ _LUMA + bias @ _LUMA
    mat = mat * factor
    bias = bias * factor + (1.0 - factor) * mean_luma
  if p.brightness > 0:
    bias = bias + _between(u[5], -p.brightness, p.brightness)
  out = image @ mat + bias
  if p.noise > 0:
    sigma = u[6] * p.noise
    out = out + (field[..., :3] - 0.5) * (sigma * math.sqrt(12.0))
  if p.salt_pepper > 0:
    hit = field[..., 3:4] < u[7] * p.salt_pepper
    out = jnp.where(hit, (field[..., 4:5] < 0.5).astype(out.dtype), out)
  return jnp.clip(out, 0.0, 1.0)


def occlude(u: jax.Array, image: jax.Array, probability: float,
            size_range: tuple[float, float]) -> jax.Array:
  """With `probability`, one rectangle of uniform random colour pasted over the
  (S, S, 3) image: sides U(lo, hi) x S, centre uniform over the crop (it may be cut
  by the border). Random erasing (Zhong et al. 2020), a stand-in for occluders.

  u: (8,) U(0, 1) draws.
  """
  s = image.shape[0]
  apply = u[0] < probability
  sides = _between(u[1:3], size_range[0], size_range[1]) * s
  centre = u[3:5] * s
  grid = jnp.arange(s, dtype=jnp.float32) + 0.5
  inside_x = jnp.abs(grid - centre[0]) < 0.5 * sides[0]
  inside_y = jnp.abs(grid - centre[1]) < 0.5 * sides[1]
  patch = apply & inside_y[:, None] & inside_x[None, :]
  return jnp.where(patch[..., None], u[5:8], image)


def random_convolution(u: jax.Array, normal: jax.Array, image: jax.Array,
                       probability: float) -> jax.Array:
  """`augment.random_convolution` on a float (S, S, 3) image in [0, 1].

  u: (3,) U(0, 1) draws; normal: (K, K, 3, 3) standard normal draws, K =
  `KERNEL_SIDE`. Every kernel side is a window of one K x K convolution, so that
  examples of a batch share one compiled shape.
  """
  sides = jnp.asarray(augment.RANDOM_CONV_KERNELS, jnp.float32)
  side = sides[jnp.minimum((u[1] * len(sides)).astype(jnp.int32), len(sides) - 1)]
  kernel = augment.random_conv_kernel(normal, side)
  pad = (KERNEL_SIDE - 1) // 2
  padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
  convolved = jax.lax.conv_general_dilated(
      padded[None], kernel.astype(image.dtype), (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
  mixed = augment.mix_convolved(image, convolved, u[2])
  return jnp.where(u[0] < probability, mixed, image)


def augment_example(u: jax.Array, field: jax.Array | None, image: jax.Array,
                    landmarks: jax.Array, pose: jax.Array, config,
                    flip_perm: np.ndarray | None, conv_normal: jax.Array | None = None
                    ) -> dict:
  """One cached crop -> one training example (the `pipeline` module's layout).

  Args:
    u: (NUM_SCALARS,) U(0, 1) draws.
    field: (S, S, FIELD_CHANNELS) U(0, 1) draws, or None without noise and salt
      and pepper.
    image: uint8 (C, C, 3) cached crop.
    landmarks: float32 (n, 2) pixel-centre coordinates in it.
    pose: float32 (3,) yaw, pitch, roll in degrees.
    config: `pipeline.InputConfig` (static).
    flip_perm: int (n,) mirror map, or None when flips are off.
    conv_normal: (K, K, 3, 3) standard normal draws for the random convolution, or
      None when it is off.

  Returns:
    image float32 (S, S, 3) in [0, 1], landmarks float32 (n, 2) normalised, pose
    float32 (3,) degrees.
  """
  c = config
  size = c.image_size
  g = u[_GEOMETRY]
  margins = _between(g[:4], *c.margin_range)
  rotation = _between(g[4], -c.rotation_deg, c.rotation_deg)
  scale = _between(g[5], *c.scale_range)
  landmarks = landmarks.astype(jnp.float32)
  image_to_norm = crop_matrix(landmarks, margins, rotation, scale)
  flip = g[6] < c.flip_probability if flip_perm is not None else None
  if flip is not None:
    # Normalised crop coordinates are centred on the crop: mirroring negates x.
    image_to_norm = jnp.where(flip, image_to_norm * jnp.array([[-1.0], [1.0]]), image_to_norm)
  norm_to_pixel = jnp.asarray(geometry.norm_to_pixel_matrix(size), jnp.float32)
  image_to_crop = jnp.concatenate(
      [norm_to_pixel[:, :2] @ image_to_norm[:, :2],
       norm_to_pixel[:, :2] @ image_to_norm[:, 2:] + norm_to_pixel[:, 2:]], axis=1)
  pixels = warp(image, _invert(image_to_crop), size) * (1.0 / 255.0)
  out_landmarks = _apply(image_to_norm, landmarks)
  pose = pose.astype(jnp.float32)
  # A content rotation by theta adds theta to the roll; keep it in (-180, 180].
  pose = pose.at[2].set(rotation_lib.wrap_degrees(pose[2] + rotation))
  if flip is not None:
    out_landmarks = jnp.where(flip, out_landmarks[jnp.asarray(flip_perm)], out_landmarks)
    pose = jnp.where(flip, mirror.flip_pose(pose), pose)
  pixels = photometric(u[_PHOTOMETRIC], field, pixels, c.photometric)
  if c.random_conv_probability > 0:
    pixels = random_convolution(u[_RANDOM_CONV], conv_normal, pixels, c.random_conv_probability)
  if c.occlusion_probability > 0:
    pixels = occlude(u[_OCCLUSION], pixels, c.occlusion_probability, c.occlusion_size)
  return {"image": pixels, "landmarks": out_landmarks, "pose": pose}


def make_augment(config, num_landmarks: int) -> Callable[[jax.Array, dict], dict]:
  """(key, batch) -> batch: `augment_example` over a batch of cached crops.

  `batch` holds image uint8 (B, C, C, 3), landmarks (B, n, 2) cache pixels and pose
  (B, 3); the result replaces them with the augmented image float32 (B, S, S, 3),
  normalised landmarks and pose. The draws are a function of the key and B alone.
  Traceable: call it inside a jitted function.
  """
  flip_perm = config.mirror_permutation(num_landmarks) if config.flip_probability > 0 else None
  p = config.photometric
  with_field = p.noise > 0 or p.salt_pepper > 0
  size = config.image_size

  with_conv = config.random_conv_probability > 0

  def one(u, field, conv_normal, image, landmarks, pose):
    return augment_example(u, field, image, landmarks, pose, config, flip_perm, conv_normal)

  def augment_batch(key: jax.Array, batch: dict) -> dict:
    count = batch["image"].shape[0]
    # XLA's RngBitGenerator: threefry over per-pixel fields compiles for seconds on
    # a CPU, and runs slower on a GPU.
    key = jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")
    scalar_key, field_key = jax.random.split(key)
    conv_key = jax.random.fold_in(key, 2)  # Not a third split: the others' draws stay.
    u = jax.random.uniform(scalar_key, (count, NUM_SCALARS))
    field = (jax.random.uniform(field_key, (count, size, size, FIELD_CHANNELS))
             if with_field else None)
    conv_normal = (jax.random.normal(conv_key, (count, KERNEL_SIDE, KERNEL_SIDE, 3, 3))
                   if with_conv else None)
    # None draws are not mapped over (vmap's in_axes None for them).
    out = jax.vmap(one, in_axes=(0, None if field is None else 0,
                                 None if conv_normal is None else 0, 0, 0, 0))(
        u, field, conv_normal, batch["image"], batch["landmarks"], batch["pose"])
    # Keeps XLA from fusing the warp into the network's layers, which recomputed
    # it: +12-25 % per CPU step at 224 px without the barrier, -2 to +5 % with.
    out["image"] = jax.lax.optimization_barrier(out["image"])
    return {**batch, **out}

  return augment_batch
