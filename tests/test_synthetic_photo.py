"""Tests for the photo style of the synthetic renderer (`asmnet_jax.synthetic.photo`)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import os
import sys

import numpy as np
import pytest

from asmnet_jax.synthetic import faces as sf
from asmnet_jax.synthetic import raster
from asmnet_jax.synthetic import render
from asmnet_jax.synthetic import shape

SIZE = 64
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# sha256 of `render_face(seed, 64)["jpeg"]` (default config), recorded before the photo
# style was added: the cartoon style must stay byte-identical.
_DEFAULT_64_SHA256 = {
    0: "4e80bf5b99d5113733cddd8789f22316be067c2e4a3e77277d859589122f68bc",
    1: "1b5748623fb950b559978f3a34d6e97ddc1c1d4c221d1647d0330622a3495dda",
    2: "6a842692b0c7e214972a0f8fcc218650a710c2825f949010545f78ab4fb95392",
}
# The same, at 96 px with an occluder on every face (glasses, hand, mask, object).
_OCCLUDED_96_SHA256 = {
    0: "9d58e70d1ec7bcee2132d4309e853069a4b89e3b13c5b8313d086dd2c8b5cf0c",
    3: "2f6f744e3814d621a289df322a5bede14a9daf27d09221d3bbf35d3dd1d0089f",
}


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("seed", sorted(_DEFAULT_64_SHA256))
def test_default_style_is_unchanged(seed):
  assert _sha(sf.render_face(seed, SIZE)["jpeg"]) == _DEFAULT_64_SHA256[seed]


@pytest.mark.parametrize("seed", sorted(_OCCLUDED_96_SHA256))
def test_default_style_with_occluders_is_unchanged(seed):
  cfg = dataclasses.replace(sf.DEFAULT_CONFIG, occluder_prob=1.0)
  assert _sha(sf.render_face(seed, 96, cfg)["jpeg"]) == _OCCLUDED_96_SHA256[seed]


@pytest.fixture(scope="module")
def photos():
  """Photo-style renders of a few seeds (shared: rendering is the slow part)."""
  return {seed: sf.render_face(seed, SIZE, sf.PHOTO_CONFIG) for seed in range(4)}


def test_photo_same_seed_same_bytes(photos):
  again = sf.render_face(1, SIZE, sf.PHOTO_CONFIG)
  assert again["jpeg"] == photos[1]["jpeg"]
  np.testing.assert_array_equal(again["landmarks"], photos[1]["landmarks"])
  assert photos[1]["jpeg"] != photos[2]["jpeg"]


def test_photo_outputs(photos):
  for out in photos.values():
    assert out["image"].shape == (SIZE, SIZE, 3) and out["image"].dtype == np.uint8
    assert out["jpeg"][:2] == b"\xff\xd8"
    assert out["landmarks"].shape == (68, 2) and out["landmarks"].dtype == np.float32
    margin = sf.PHOTO_CONFIG.margin
    assert np.all(out["landmarks"] >= margin - 1e-3)
    assert np.all(out["landmarks"] <= SIZE - 1 - margin + 1e-3)


def test_photo_pose_and_shape_are_sampled_as_in_the_cartoon_style(photos):
  """Same seed: same pose and same 3D face (the extra draws come after)."""
  for seed, out in photos.items():
    cartoon = render.sample_scene(seed, SIZE, sf.PHOTO_CONFIG)
    np.testing.assert_array_equal(out["pose"], cartoon.pose.astype(np.float32))
    np.testing.assert_array_equal(out["points3d"][17:], cartoon.vertices[17:68])


def test_photo_landmarks_are_the_projection_of_points3d(photos):
  for out in photos.values():
    np.testing.assert_allclose(
        sf.project_points(out["points3d"], out["pose"], **out["camera"]), out["landmarks"],
        atol=2e-3)


def _scene(yaw: float, seed: int = 5, even_spacing: bool = False):
  cfg = dataclasses.replace(sf.PHOTO_CONFIG, yaw=(yaw, yaw), pitch=(0.0, 0.0), roll=(0.0, 0.0),
                            jaw_even_spacing=even_spacing)
  return render.sample_scene(seed, 96, cfg)


def test_jaw_stays_put_when_frontal():
  scene = _scene(0.0)
  np.testing.assert_allclose(scene.points, scene.vertices[:68], atol=1e-12)


@pytest.mark.parametrize("yaw", [-50.0, 50.0])
def test_hidden_jaw_slides_to_the_silhouette(yaw):
  """At yaw the far jaw points move out onto the cheek's outline; the near ones stay."""
  scene = _scene(yaw)
  cam = scene.camera
  true = cam.project(scene.vertices[:68])
  label = cam.project(scene.points)
  far = np.arange(9, 17) if yaw > 0 else np.arange(0, 8)  # Yaw > 0 turns the +x side away.
  near = np.arange(0, 8) if yaw > 0 else np.arange(9, 17)
  np.testing.assert_allclose(label[near], true[near], atol=1e-9)
  np.testing.assert_allclose(label[17:], true[17:], atol=1e-9)
  outward = np.sign(yaw)
  moved = outward * (label[far, 0] - true[far, 0])
  assert np.all(moved >= -1e-9) and moved.max() > 3.0
  # Every label is the outermost projected point of a dense sampling of its row of the
  # deformed, curved face surface (found here with matplotlib's own point location).
  import matplotlib.tri  # pylint: disable=g-import-not-at-top

  tpl = shape.template().vertices
  used = np.array([i for i in range(len(tpl)) if not 60 <= i < 68])
  triang = matplotlib.tri.Triangulation(tpl[used, 0], tpl[used, 1])
  finder = triang.get_trifinder()
  normals = shape.face_normals(scene.vertices)
  for j in far:
    xs = np.linspace(tpl[j, 0], 0.35 * tpl[j, 0], 200)
    ys = np.full_like(xs, tpl[j, 1])
    k = finder(xs, ys)
    idx, w = [np.array([j, 0, 0])], [np.array([1.0, 0.0, 0.0])]
    for x, y, t in zip(xs, ys, k):
      if t < 0:
        continue
      a, b, c = used[triang.triangles[t]]
      m = np.array([[tpl[b, 0] - tpl[a, 0], tpl[c, 0] - tpl[a, 0]],
                    [tpl[b, 1] - tpl[a, 1], tpl[c, 1] - tpl[a, 1]]])
      l1, l2 = np.linalg.solve(m, [x - tpl[a, 0], y - tpl[a, 1]])
      idx.append(np.array([a, b, c]))
      w.append(np.array([1 - l1 - l2, l1, l2]))
    pts = shape.curved_surface_points(scene.vertices, normals, np.array(idx), np.array(w))
    dense = cam.project(pts)
    # The label is within a sample spacing (of 14) of the densely found silhouette.
    best = (outward * dense[:, 0]).max()
    assert best - 0.6 <= outward * label[j, 0] <= best + 0.05


@pytest.mark.parametrize("yaw", [0.0, 40.0])
def test_even_spacing_keeps_the_jaw_on_its_outline_at_equal_steps(yaw):
  """Evenly spaced jaw labels: the ends and the chin stay, the other points stay on
  the outline through the silhouette labels, and the neighbours on each side of the
  chin are equally far apart on screen."""
  plain, even = _scene(yaw), _scene(yaw, even_spacing=True)
  np.testing.assert_allclose(even.points[17:], plain.points[17:], atol=0)
  np.testing.assert_allclose(even.points[[0, 8, 16]], plain.points[[0, 8, 16]], atol=1e-12)
  cam = plain.camera
  before, after = cam.project(plain.points[:17]), cam.project(even.points[:17])
  # Independently: scipy's natural cubic spline through the silhouette labels, densely
  # sampled, stands for the outline (the two curves differ by well under a pixel).
  from scipy import interpolate  # pylint: disable=g-import-not-at-top

  spline = interpolate.CubicSpline(np.arange(17), before, axis=0)
  dense = spline(np.linspace(0.0, 16.0, 3201))
  gaps = np.linalg.norm(after[:, None] - dense[None], axis=-1).min(axis=1)
  assert gaps.max() < 0.3  # Pixels, on a face about 55 px wide.
  steps = np.linalg.norm(np.diff(after, axis=0), axis=1)
  for side in (steps[:8], steps[8:]):
    assert side.std() / side.mean() < 0.03
  # The stored mean face's spacing is far from even, so the test has something to move.
  plain_steps = np.linalg.norm(np.diff(before, axis=0), axis=1)
  assert plain_steps.std() / plain_steps.mean() > 0.1


def test_curved_surface_points_are_the_rendered_subdivision():
  """`shape.curved_surface_points` (used by the jaw labels) reproduces the corners,
  edge midpoints and sub-triangle centres of the mesh the photo style rasterises."""
  from asmnet_jax.synthetic import photo  # pylint: disable=g-import-not-at-top

  scene = _scene(35.0)
  v = scene.vertices
  tri = shape.template().triangles[:40]
  n = shape.face_normals(v)
  p, _, _, (sub,) = photo._subdivide(v, n, np.ones(len(v)), [tri])  # pylint: disable=protected-access
  t = len(tri)
  # Quarter q of triangle i is sub[q * t + i]: corners 0, 1, 2 then the middle one.
  probes = {(1.0, 0.0, 0.0): p[sub[:t, 0]], (0.5, 0.5, 0.0): p[sub[:t, 1]],
            (0.0, 0.5, 0.5): p[sub[t:2 * t, 2]], (0.5, 0.0, 0.5): p[sub[:t, 2]],
            (1 / 3, 1 / 3, 1 / 3): p[sub[3 * t:]].mean(axis=1),
            (2 / 3, 1 / 6, 1 / 6): p[sub[:t]].mean(axis=1)}
  for bary, want in probes.items():
    got = shape.curved_surface_points(v, n, tri, np.broadcast_to(bary, tri.shape))
    np.testing.assert_allclose(got, want, atol=1e-12)


def _lit_face(light: np.ndarray, seed: int = 2):
  """A clean frontal face under one key light, no ambient, no fill: the rendered canvas."""
  cfg = dataclasses.replace(sf.PHOTO_CONFIG, yaw=(0.0, 0.0), pitch=(0.0, 0.0), roll=(0.0, 0.0),
                            identity_scale=0.0, expression_scale=0.0, occluder_prob=0.0,
                            shift=0.0)
  scene = render.sample_scene(seed, 96, cfg)
  from asmnet_jax.synthetic import photo  # pylint: disable=g-import-not-at-top

  face = photo._PhotoFace(scene)  # pylint: disable=protected-access
  face.look = dataclasses.replace(face.look, key=light / np.linalg.norm(light), ambient=0.0,
                                  fill_i=0.0, spec=0.0, wrap=0.0, key_i=1.0, beard="none",
                                  hair_style="bald")
  face.iris_r, face.gaze = 0.27, np.zeros(2)
  arrays = face.geometry().arrays()
  pos, tri, layer = arrays[0], arrays[4], arrays[6]
  frag = raster.rasterize(face.cam.project_camera(pos), pos[:, 2], tri, layer, face.side,
                          face.side)
  col, light_px, _, _ = face.shade(frag, arrays)
  image = np.zeros((face.side * face.side, 3), np.float32)
  image[frag.pixel] = col
  return image.reshape(face.side, face.side, 3), face.cam.project(scene.vertices[:68])


def test_shading_follows_the_light():
  """Key light from the image left: the left cheek is brighter than the right; and
  the other way round."""
  for sign in (-1.0, 1.0):
    image, lm = _lit_face(np.array([sign * 1.0, 0.0, -0.6]))
    left = 0.5 * (lm[2] + lm[31])  # Mid cheeks.
    right = 0.5 * (lm[14] + lm[35])
    luma = lambda p: image[int(p[1]), int(p[0])].mean()  # pylint: disable=unnecessary-lambda-assignment
    if sign < 0:
      assert luma(left) > luma(right) + 0.1
    else:
      assert luma(right) > luma(left) + 0.1


def test_rasterizer_matches_an_independent_coverage_and_depth_test():
  """Two overlapping triangles: each pixel centre gets the nearer one that covers it."""
  points = np.array([[1.0, 1.0], [14.0, 2.0], [3.0, 13.0], [2.0, 6.0], [15.0, 6.5], [9.0, 15.0]])
  depth = np.array([1.0, 1.0, 1.0, 0.5, 1.5, 1.5])
  tris = np.array([[0, 1, 2], [3, 4, 5]])
  frag = raster.rasterize(points, depth, tris, np.zeros(2, int), 16, 16)
  got = np.full(256, -1)
  got[frag.pixel] = frag.triangle
  from matplotlib.path import Path  # pylint: disable=g-import-not-at-top

  ys, xs = np.mgrid[:16, :16]
  centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)
  want = np.full(256, -1)
  z = np.full(256, np.inf)
  for t, tri in enumerate(tris):
    inside = Path(points[tri]).contains_points(centres)
    # Depth by solving the plane through the three vertices.
    a = np.c_[points[tri], np.ones(3)]
    coef = np.linalg.solve(a, depth[tri])
    zt = centres @ coef[:2] + coef[2]
    better = inside & (zt < z)
    want[better], z[better] = t, zt[better]
  # Centres exactly on an edge may go either way; none are here.
  np.testing.assert_array_equal(got, want)
  assert (got != -1).sum() > 50
  np.testing.assert_allclose(frag.depth, z[frag.pixel], atol=1e-4)


def test_rasterizer_layers_override_depth():
  points = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
  frag = raster.rasterize(np.concatenate([points, points]), np.array([1.0, 1, 1, 2, 2, 2]),
                          np.array([[0, 1, 2], [3, 4, 5]]), np.array([0, 1]), 8, 8)
  assert len(frag.pixel) > 10 and np.all(frag.triangle == 1)


def test_every_photo_occluder_renders_and_labels_stay_exact():
  """Glasses, hands, masks, objects and hats (and every hair style) render; occluded
  landmarks keep their projected positions."""
  from asmnet_jax.synthetic import photo  # pylint: disable=g-import-not-at-top

  cfg = dataclasses.replace(sf.PHOTO_CONFIG, occluder_prob=1.0)
  kinds = set()
  for seed in range(40):
    if kinds == {"glasses", "hand", "mask", "object", "hat"}:
      break
    scene = render.sample_scene(seed, 48, cfg)
    out = photo.render_scene(scene)
    kinds.add(photo._PhotoFace(render.sample_scene(seed, 48, cfg)).occluder)  # pylint: disable=protected-access
    assert out["image"].shape == (48, 48, 3)
    np.testing.assert_allclose(
        sf.project_points(out["points3d"], out["pose"], **out["camera"]), out["landmarks"],
        atol=2e-3)
  assert kinds == {"glasses", "hand", "mask", "object", "hat"}


def test_face_metering_exposes_the_face_to_its_drawn_level():
  """The frame is scaled by one gain so that the mean luma inside the jaw and brows
  is the drawn level, N(0.6, 0.06) of white cut to 0.4-0.8, the gain held to 0.5-3."""
  from asmnet_jax.synthetic import photo  # pylint: disable=g-import-not-at-top

  for seed, level in ((0, 90.0), (1, 160.0), (2, 20.0), (3, 250.0)):
    face = photo._PhotoFace(render.sample_scene(seed, SIZE, sf.PHOTO_CONFIG))  # pylint: disable=protected-access
    image = np.full((SIZE, SIZE, 3), level, np.float32)
    image[:, :, 2] = 0.5 * level
    luma = level * (0.299 + 0.587 + 0.5 * 0.114)
    drawn = 255.0 * np.clip(copy.deepcopy(face.rng).normal(0.6, 0.06), 0.4, 0.8)
    out = face.metered(image)
    gain = float(np.clip(drawn / luma, 0.5, 3.0))
    np.testing.assert_allclose(out, np.minimum(image * gain, 255.0), rtol=1e-5)
    if 0.5 < drawn / luma < 3.0:
      assert out[0, 0] @ [0.299, 0.587, 0.114] == pytest.approx(drawn, rel=1e-5)
    else:  # A frame of level 20 cannot reach 0.4 of white at gain 3: the gain is held.
      assert level == 20.0 and gain == 3.0


def test_unknown_style_is_an_error():
  with pytest.raises(ValueError, match="unknown style 'oil'"):
    sf.render_face(0, SIZE, dataclasses.replace(sf.DEFAULT_CONFIG, style="oil"))


def _checkout_builder():
  """The builder module of this checkout (the installed package may be another copy)."""
  tfds = pytest.importorskip("tensorflow_datasets")
  name = "asmnet_jax_datasets.synthetic_faces.synthetic_faces_dataset_builder"
  module = sys.modules.get(name)
  path = os.path.join(REPO, "datasets", "synthetic_faces", "synthetic_faces_dataset_builder.py")
  if module is not None and os.path.samefile(module.__file__, path):
    return tfds, module
  spec = importlib.util.spec_from_file_location("synthetic_faces_dataset_builder", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # Dataclasses look their module up there.
  with tfds.core.registered.skip_registration():
    spec.loader.exec_module(module)
  return tfds, module


def test_photo_tiny_builds(tmp_path):
  tfds, module = _checkout_builder()
  builder = module.Builder(config="photo_tiny", data_dir=str(tmp_path))
  builder.download_and_prepare()
  config = builder.builder_config
  assert config.render == "photo"
  source = builder.as_data_source("train")
  assert len(source) == config.num_train
  ex = source[2]
  assert ex["image"].shape == (SIZE, SIZE, 3)
  index = int(ex["filename"].decode().split("/")[-1].split(".")[0])
  out = sf.render_face(module.SEED_BASE["train"] + index, SIZE, sf.PHOTO_CONFIG)
  np.testing.assert_array_equal(ex["landmarks"], out["landmarks"])
  assert np.abs(ex["image"].astype(int) - out["image"]).mean() < 1.0
  assert len(builder.as_data_source("test")) == config.num_test
  del tfds
