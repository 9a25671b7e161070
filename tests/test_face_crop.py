"""Image loading (modes, errors), crop geometry, padding, resizing and encoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from asmnet_jax.data import crops, images


def _rgb(h=40, w=60, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "CMYK", "1"])
def test_load_rgb_image_converts_modes(tmp_path, mode):
  source = Image.fromarray(_rgb()).convert(mode)
  path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
  source.save(path)
  image = images.load_rgb_image(path)
  assert image.dtype == np.uint8 and image.shape == (40, 60, 3)
  if mode != "CMYK":  # lossless: the stored colours, alpha dropped.
    np.testing.assert_array_equal(image, np.asarray(Image.open(path).convert("RGB")))


def test_load_rgb_image_palette_with_transparency(tmp_path):
  source = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
  source.info["transparency"] = 0
  source.save(tmp_path / "p.png", transparency=0)
  image = images.load_rgb_image(tmp_path / "p.png")
  assert image.shape == (40, 60, 3)


def test_load_rgb_image_16_bit(tmp_path):
  gray16 = (np.arange(40 * 60, dtype=np.uint16).reshape(40, 60) * 27).astype(np.uint16)
  Image.fromarray(gray16).save(tmp_path / "g16.png")
  image = images.load_rgb_image(tmp_path / "g16.png")
  assert image.shape == (40, 60, 3)
  np.testing.assert_array_equal(image[..., 0], np.round(gray16 / 257.0).astype(np.uint8))


def test_load_rgb_image_errors_name_the_file(tmp_path):
  with pytest.raises(images.ImageLoadError, match="image not found: .*missing.jpg"):
    images.load_rgb_image(tmp_path / "missing.jpg")
  (tmp_path / "junk.png").write_bytes(b"not an image")
  with pytest.raises(images.ImageLoadError, match="cannot read image .*junk.png"):
    images.load_rgb_image(tmp_path / "junk.png")
  buffer = io.BytesIO()
  Image.fromarray(_rgb(200, 200)).save(buffer, format="JPEG")
  (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:400])
  with pytest.raises(images.ImageLoadError, match="cut.jpg"):
    images.load_rgb_image(tmp_path / "cut.jpg")


def test_crop_box_is_a_square_with_margin_around_the_landmarks():
  rng = np.random.default_rng(0)
  points = rng.uniform([100, 50], [180, 170], (68, 2))  # taller than wide.
  box = crops.crop_box_for_landmarks(points, margin=0.3)
  assert box.dtype == np.float32 and (box == np.round(box)).all()
  side = box[2] - box[0]
  assert side == box[3] - box[1]
  extent = np.ptp(points, axis=0).max()
  assert extent * 1.6 <= side <= extent * 1.6 + 1
  centre = (box[:2] + box[2:] - 1) / 2
  np.testing.assert_allclose(centre, (points.min(0) + points.max(0)) / 2, atol=0.5)
  assert (points >= box[:2]).all() and (points <= box[2:] - 1).all()


def test_crop_box_contains_landmarks_even_without_margin():
  points = np.array([[3.2, 4.9], [7.7, 4.1]])
  box = crops.crop_box_for_landmarks(points, margin=0.0)
  assert (points >= box[:2]).all() and (points <= box[2:] - 1).all()


def test_cut_padded():
  image = _rgb(10, 12)
  inside = crops.cut_padded(image, [2, 3, 7, 9])
  np.testing.assert_array_equal(inside, image[3:9, 2:7])
  out = crops.cut_padded(image, [-3, -2, 5, 6])
  assert out.shape == (8, 8, 3)
  np.testing.assert_array_equal(out[2:, 3:], image[:6, :5])
  assert (out[:2] == 0).all() and (out[:, :3] == 0).all()
  edge = crops.cut_padded(image, [8, 7, 15, 14], pad="edge")
  np.testing.assert_array_equal(edge[:3, :4], image[7:10, 8:12])
  np.testing.assert_array_equal(edge[5, 6], image[9, 11])
  assert (crops.cut_padded(image, [20, 20, 25, 26]) == 0).all()
  assert crops.cut_padded(image, [20, 20, 25, 26]).shape == (6, 5, 3)


def test_crop_face_without_resize_is_a_translation():
  image = _rgb(120, 160)
  points = np.array([[40.0, 30.0], [90.0, 35.0], [65.0, 80.0], [2.0, 100.0]])
  crop = crops.crop_face(image, points, margin=0.3, max_size=None)
  np.testing.assert_allclose(crop.landmarks + crop.crop_box[:2], points, atol=1e-5)
  assert crop.landmarks.dtype == np.float32 and crop.image.dtype == np.uint8
  for (x, y), (u, v) in zip(points.astype(int), crop.landmarks.astype(int)):
    np.testing.assert_array_equal(crop.image[v, u], image[y, x])
  assert crop.crop_box[0] < 0 and (crop.image[:, 0] == 0).all()  # zero-padded left.


def test_crop_face_with_resize_maps_pixel_centres():
  image = np.zeros((400, 400, 3), np.uint8)
  points = np.array([[100.0, 100.0], [300.0, 120.0], [200.0, 300.0]])
  for x, y in points.astype(int):
    image[y - 2:y + 3, x - 2:x + 3] = 255  # bright 5x5 dots on the landmarks.
  crop = crops.crop_face(image, points, margin=0.3, max_size=64)
  assert crop.image.shape == (64, 64, 3)
  side = crop.crop_box[2] - crop.crop_box[0]
  assert side > 64
  np.testing.assert_allclose(
      crops.crop_to_original(crop.landmarks, crop.crop_box, 64), points, atol=1e-3)
  for u, v in crop.landmarks:  # the dots land on the mapped landmarks.
    patch = crop.image[int(round(v)) - 1:int(round(v)) + 2, int(round(u)) - 1:int(round(u)) + 2]
    assert patch.max() > 100


def test_original_crop_round_trip():
  box = np.array([-10, 5, 290, 305], np.float32)
  points = np.random.default_rng(0).uniform(0, 300, (5, 2))
  there = crops.original_to_crop(points, box, 128)
  np.testing.assert_allclose(crops.crop_to_original(there, box, 128), points, atol=1e-9)
  # The crop's outer pixel edges map to the box's outer pixel edges.
  np.testing.assert_allclose(crops.original_to_crop([[-10.5, 4.5]], box, 128), [[-0.5, -0.5]])


def test_encode_image():
  image = _rgb(30, 20)
  png = crops.encode_image(image, "png")
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), image)
  smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 32, 0)
  smooth = np.repeat(smooth, 3, 2)
  jpeg = crops.encode_image(smooth, "jpeg")
  assert jpeg[:2] == b"\xff\xd8"
  decoded = np.asarray(Image.open(io.BytesIO(jpeg))).astype(int)
  assert np.abs(decoded - smooth).max() <= 4
  with pytest.raises(ValueError, match="png' or 'jpeg"):
    crops.encode_image(image, "webp")
