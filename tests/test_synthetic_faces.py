"""Tests for the synthetic face renderer and the `synthetic_faces` TFDS builder."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from asmnet_jax.core import rotation
from asmnet_jax.synthetic import draw
from asmnet_jax.synthetic import faces as sf
from asmnet_jax.synthetic import render
from asmnet_jax.synthetic import shape

SIZE = 192


def test_same_seed_same_pixels_different_seed_differs():
  a, b, c = sf.render_face(11), sf.render_face(11), sf.render_face(12)
  np.testing.assert_array_equal(a["image"], b["image"])
  np.testing.assert_array_equal(a["landmarks"], b["landmarks"])
  np.testing.assert_array_equal(a["pose"], b["pose"])
  assert a["jpeg"] == b["jpeg"]
  assert not np.array_equal(a["image"], c["image"])
  assert not np.allclose(a["landmarks"], c["landmarks"])


def test_output_shapes_and_types():
  out = sf.render_face(0, image_size=128)
  assert out["image"].shape == (128, 128, 3) and out["image"].dtype == np.uint8
  assert out["landmarks"].shape == (68, 2) and out["landmarks"].dtype == np.float32
  assert out["pose"].shape == (3,) and out["pose"].dtype == np.float32
  assert out["jpeg"][:2] == b"\xff\xd8"  # JPEG start-of-image marker.


@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_landmarks_inside_image_and_pose_in_range(seed):
  out = sf.render_face(seed)
  lm = out["landmarks"]
  margin = sf.DEFAULT_CONFIG.margin
  assert np.all(lm >= margin - 1e-3) and np.all(lm <= SIZE - 1 - margin + 1e-3)
  yaw, pitch, roll = out["pose"]
  assert -60 <= yaw <= 60 and -30 <= pitch <= 30 and -30 <= roll <= 30


def test_configured_pose_ranges_are_respected():
  cfg = dataclasses.replace(sf.DEFAULT_CONFIG, yaw=(10.0, 20.0), pitch=(-5.0, 0.0),
                            roll=(3.0, 3.0))
  for seed in range(5):
    yaw, pitch, roll = sf.render_face(seed, config=cfg)["pose"]
    assert 10 <= yaw <= 20 and -5 <= pitch <= 0 and roll == pytest.approx(3.0)


def test_pose_distribution_covers_the_ranges():
  poses = np.array([sf.render_face(s)["pose"] for s in range(40)])
  assert np.abs(poses[:, 0]).max() > 40 and np.abs(poses[:, 1]).max() > 20


@pytest.mark.parametrize("seed", [0, 5, 17])
def test_landmarks_are_the_projection_with_euler_to_rotation(seed):
  """Landmarks = pinhole projection of the 3D points rotated by euler_to_rotation."""
  out = sf.render_face(seed)
  cam = out["camera"]
  rot = rotation.euler_to_rotation(*out["pose"].astype(np.float64))
  # float32 pose label -> the rotation used is recovered to float32 precision.
  p = out["points3d"] @ rot.T + [0.0, 0.0, cam["distance"]]
  expected = cam["scale"] * cam["distance"] * p[:, :2] / p[:, 2:] + cam["offset"]
  np.testing.assert_allclose(out["landmarks"], expected, atol=2e-3)
  np.testing.assert_allclose(
      sf.project_points(out["points3d"], out["pose"], **cam), out["landmarks"], atol=2e-3)


def test_mean_shape_frontal_face_is_the_projected_mean_face():
  out = sf.render_face(3, config=sf.CLEAN_FRONTAL_CONFIG)
  mean = rotation.load_mean_face()
  np.testing.assert_array_equal(out["points3d"], mean)
  np.testing.assert_array_equal(out["pose"], np.zeros(3, np.float32))
  cam = out["camera"]
  p = mean + [0.0, 0.0, cam["distance"]]  # Identity rotation.
  expected = cam["scale"] * cam["distance"] * p[:, :2] / p[:, 2:] + cam["offset"]
  np.testing.assert_allclose(out["landmarks"], expected, atol=1e-3)
  # Centred (shift 0): the landmark box is in the middle of the image.
  centre = 0.5 * (out["landmarks"].min(0) + out["landmarks"].max(0))
  np.testing.assert_allclose(centre, [(SIZE - 1) / 2] * 2, atol=1e-3)


def test_real_proportions_move_only_the_eyes_brows_nose_and_lower_face(monkeypatch):
  from asmnet_jax.synthetic import shape  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(shape, "OUTLINE_SHIFT", {})  # Tested on its own below.
  cfg = dataclasses.replace(sf.CLEAN_FRONTAL_CONFIG, real_proportions=True)
  calibrated = sf.render_face(3, config=cfg)["points3d"]
  mean = rotation.load_mean_face()
  width = lambda p, a, b: abs(p[b, 0] - p[a, 0])  # pylint: disable=unnecessary-lambda-assignment
  for corner_a, corner_b in ((36, 39), (42, 45)):
    assert width(calibrated, corner_a, corner_b) == pytest.approx(
        shape.EYE_SIZE * width(mean, corner_a, corner_b))
  centre_x = lambda p, eye: p[eye, 0].mean()  # pylint: disable=unnecessary-lambda-assignment
  for eye in shape.EYES:
    assert centre_x(calibrated, eye) == pytest.approx(shape.EYE_SPACING * centre_x(mean, eye))
  # The nose base drops by the stretch of the lower face plus its own shift.
  eye_line = mean[36:48, 1].mean()
  expected_y = mean[33, 1] + 0.03 * (mean[33, 1] - eye_line) + shape.NOSE_DROP
  assert shape.LOWER_FACE_STRETCH == 1.03
  assert calibrated[33, 1] == pytest.approx(expected_y)
  assert width(calibrated, 31, 35) == pytest.approx(shape.NOSE_WIDTH * width(mean, 31, 35))
  tip_at = (calibrated[30, 1] - calibrated[27, 1]) / (calibrated[33, 1] - calibrated[27, 1])
  assert tip_at == pytest.approx(shape.NOSE_TIP_AT)
  # Brows: longer about their centres, whose x moves toward the midline, and the ends
  # lower than the middle by the arch (in the calibrated face's inter-ocular units).
  inter_ocular = np.linalg.norm(calibrated[45, :2] - calibrated[36, :2])
  for brow in shape.BROWS:
    outer, middle = brow[0], brow[2]
    assert width(calibrated, brow[0], brow[-1]) == pytest.approx(
        shape.BROW_LENGTH * width(mean, brow[0], brow[-1]))
    assert centre_x(calibrated, brow) == pytest.approx(
        shape.BROW_SPACING * centre_x(mean, brow))
    assert calibrated[outer, 1] - calibrated[middle, 1] == pytest.approx(
        shape.BROW_LENGTH * (mean[outer, 1] - mean[middle, 1])
        + shape.BROW_ARCH * inter_ocular)
  # Depth stays where it was except along the nose: the ridge's tip comes forward by
  # NOSE_PROTRUSION, its root stays, the base comes forward by up to
  # NOSE_BASE_PROTRUSION; the jaw only stretches downward.
  forward = mean[:, 2] - calibrated[:, 2]
  assert forward[30] == pytest.approx(shape.NOSE_PROTRUSION)
  assert forward[27] == 0.0
  assert 0.0 < forward[28] < forward[29] < forward[30]
  np.testing.assert_allclose(forward[31:36],
                             shape.NOSE_BASE_PROTRUSION * np.array([0.5, 1, 1, 1, 0.5]))
  np.testing.assert_array_equal(np.delete(forward, np.arange(28, 36)), 0.0)
  np.testing.assert_array_equal(calibrated[:17, 0], mean[:17, 0])
  assert np.all(calibrated[:17, 1] >= mean[:17, 1])
  # The default config keeps the stored mean face (the cartoon data sets' geometry).
  np.testing.assert_array_equal(sf.render_face(3, config=sf.CLEAN_FRONTAL_CONFIG)["points3d"], mean)


def test_outline_shift_moves_each_listed_point_and_its_mirror_by_its_table_entry(monkeypatch):
  from asmnet_jax.synthetic import shape  # pylint: disable=g-import-not-at-top

  mean = rotation.load_mean_face()
  shifted = mean + shape.real_proportions_displacement(mean)
  table = dict(shape.OUTLINE_SHIFT)
  monkeypatch.setattr(shape, "OUTLINE_SHIFT", {})
  unshifted = mean + shape.real_proportions_displacement(mean)
  inter_ocular = np.linalg.norm(unshifted[45, :2] - unshifted[36, :2])
  mirror = {0: 16, 1: 15, 2: 14, 3: 13, 4: 12, 5: 11, 6: 10, 7: 9, 31: 35, 32: 34,
            48: 54, 49: 53, 50: 52, 58: 56, 59: 55, 60: 64, 61: 63, 67: 65}
  expected = np.zeros((68, 2))
  assert len(table) >= 20
  for point, (out, down) in table.items():
    # Image-left points move outward toward -x, their mirrors toward +x.
    expected[point] = [-out * inter_ocular, down * inter_ocular]
    if point in mirror:
      expected[mirror[point]] = [out * inter_ocular, down * inter_ocular]
    else:
      assert out == 0.0 and abs(unshifted[point, 0]) < 0.01, point  # On the midline.
  np.testing.assert_allclose(shifted[:, :2] - unshifted[:, :2], expected, atol=1e-12)
  np.testing.assert_array_equal(shifted[:, 2], unshifted[:, 2])


@pytest.mark.parametrize("style,seed", [("cartoon", 3), ("photo", 2)])
def test_brows_below_labels_moves_the_drawn_brow_down_not_the_labels(style, seed):
  renders = {flag: sf.render_face(seed, 192, dataclasses.replace(
      sf.CLEAN_FRONTAL_CONFIG, style=style, brows_below_labels=flag)) for flag in (False, True)}
  lm = renders[False]["landmarks"]
  np.testing.assert_array_equal(renders[True]["landmarks"], lm)
  columns = [18, 19, 20, 23, 24, 25]  # Brow points away from the ends.

  def mean_luma(image, rows_from, rows_to):
    grey = image.astype(np.float64).mean(-1)
    return np.mean([grey[int(round(lm[i, 1])) + rows_from:int(round(lm[i, 1])) + rows_to,
                         int(round(lm[i, 0]))].mean() for i in columns])

  # Just under the labels the (dark) brow now covers more of the skin ...
  assert mean_luma(renders[True]["image"], 2, 5) < mean_luma(renders[False]["image"], 2, 5) - 3
  # ... and just above them it covers less (the photo style's hairs reached above).
  above_on, above_off = (mean_luma(renders[flag]["image"], -4, -1) for flag in (True, False))
  assert above_on > above_off + 5 if style == "photo" else above_on >= above_off - 1


@pytest.mark.parametrize("axis,sign_check", [
    ("yaw", lambda lm: lm[30, 0] > 0.5 * (lm[36, 0] + lm[45, 0]) + 5),  # Nose to +x.
    ("pitch", lambda lm: lm[30, 1] < 0.5 * (lm[36, 1] + lm[45, 1]) + 5),  # Nose up.
    ("roll", lambda lm: lm[45, 1] > lm[36, 1] + 10),  # Clockwise on screen.
])
def test_pose_signs_follow_the_rotation_module(axis, sign_check):
  angles = {"yaw": (0.0, 0.0), "pitch": (0.0, 0.0), "roll": (0.0, 0.0)}
  angles[axis] = (30.0, 30.0)
  cfg = dataclasses.replace(sf.CLEAN_FRONTAL_CONFIG, **angles)
  assert sign_check(sf.render_face(0, config=cfg)["landmarks"])


@pytest.mark.parametrize("x,y", [(30.0, 40.0), (30.25, 41.5), (12.75, 20.5)])
def test_supersampled_drawing_is_centred_on_the_projection(x, y):
  """A disc drawn around a projected point is centred on it after downsampling."""
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top

  ss = 2
  cam = draw.Camera(np.eye(3), 10.0, 1.0, np.array([x, y]))
  canvas_cam = draw.canvas_camera(cam, ss)
  ring = draw.circle3d(np.zeros(3), np.array([6.0, 0, 0]), np.array([0, 4.0, 0]), 48)
  img = Image.new("L", (64 * ss, 64 * ss))
  ImageDraw.Draw(img).polygon(canvas_cam.project(ring).reshape(-1).tolist(), fill=255)
  a = np.asarray(img.reduce(ss), np.float64)
  ys, xs = np.mgrid[:64, :64]
  centroid = [(a * xs).sum() / a.sum(), (a * ys).sum() / a.sum()]
  np.testing.assert_allclose(centroid, cam.project(np.zeros((1, 3)))[0], atol=0.05)


def _pixel(image: np.ndarray, p: np.ndarray) -> np.ndarray:
  return image[int(round(p[1])), int(round(p[0]))].astype(np.float64)


@pytest.mark.parametrize("seed", range(8))
def test_landmarks_land_on_drawn_features(seed):
  """Unoccluded frontal faces: eyes, lips and brows differ from the cheek's skin."""
  out = sf.render_face(seed, config=sf.CLEAN_FRONTAL_CONFIG)
  image, lm = out["image"], out["landmarks"]
  skin = _pixel(image, 0.5 * (lm[31] + lm[2]))  # Mid cheek.
  dist = lambda p: np.linalg.norm(_pixel(image, p) - skin)  # pylint: disable=unnecessary-lambda-assignment
  assert dist(lm[36:42].mean(0)) > 35  # Iris / pupil at the eye centres.
  assert dist(lm[42:48].mean(0)) > 35
  assert dist(0.5 * (lm[51] + lm[62])) > 15  # Upper lip.
  assert dist(0.5 * (lm[57] + lm[66])) > 15  # Lower lip.
  assert dist(lm[19] + [0.0, 1.5]) > 15  # Brow band under its landmarks.
  assert dist(lm[24] + [0.0, 1.5]) > 15
  # Somewhere along each eye's mid line the sclera is brighter than the skin.
  for eye in (lm[36:42], lm[42:48]):
    line = np.stack([eye[0], 0.5 * (eye[1] + eye[5]), 0.5 * (eye[2] + eye[4]), eye[3]])
    t = np.linspace(0.0, 3.0, 31)
    points = [line[int(min(k, 2))] + (k - min(int(k), 2)) * (line[int(min(k, 2)) + 1]
                                                              - line[int(min(k, 2))])
              for k in t]
    assert max(_pixel(image, q).mean() for q in points) > skin.mean() + 15


def test_every_occluder_and_style_renders():
  cfg = dataclasses.replace(sf.DEFAULT_CONFIG, occluder_prob=1.0)
  for seed in range(24):
    out = sf.render_face(seed, image_size=96, config=cfg)
    assert out["image"].shape == (96, 96, 3)
    assert np.all(out["landmarks"] >= 0) and np.all(out["landmarks"] <= 95)


def test_sample_grid_size():
  grid = sf.sample_grid(range(3), image_size=64, cols=2)
  assert grid.size == (128, 128)


def test_tiny_builds_and_reads_back_without_tensorflow(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  from asmnet_jax_datasets.synthetic_faces import synthetic_faces_dataset_builder  # pylint: disable=g-import-not-at-top

  builder = tfds.builder("synthetic_faces/tiny", data_dir=str(tmp_path))
  builder.download_and_prepare()
  config = builder.builder_config
  sources = {split: builder.as_data_source(split) for split in ("train", "validation", "test")}
  assert {split: len(source) for split, source in sources.items()} == {
      "train": config.num_train, "validation": config.num_validation, "test": config.num_test}
  names = set()
  for split, source in sources.items():
    for i in range(len(source)):
      ex = source[i]
      assert ex["image"].shape == (192, 192, 3) and ex["image"].dtype == np.uint8
      assert ex["landmarks"].shape == (68, 2) and ex["landmarks"].dtype == np.float32
      assert ex["pose"].shape == (3,) and ex["pose"].dtype == np.float32
      np.testing.assert_array_equal(ex["crop_box"], [0, 0, 192, 192])
      name = ex["filename"].decode()
      assert name.startswith(f"synthetic/{split}/") and name.endswith(".jpg")
      names.add(name)
  assert len(names) == config.num_train + config.num_validation + config.num_test
  # A stored example is exactly the render of its split's seed (JPEG bytes stored as made).
  for split in ("train", "validation"):
    ex = sources[split][3]
    index = int(ex["filename"].decode().split("/")[-1].split(".")[0])
    seed = synthetic_faces_dataset_builder.SEED_BASE[split] + index
    out = sf.render_face(seed)
    np.testing.assert_array_equal(ex["landmarks"], out["landmarks"])
    np.testing.assert_array_equal(ex["pose"], out["pose"])
    assert np.abs(ex["image"].astype(int) - out["image"]).mean() < 1.0
  assert "tensorflow" not in sys.modules


def test_split_seeds_are_disjoint():
  from asmnet_jax_datasets.synthetic_faces import synthetic_faces_dataset_builder as b  # pylint: disable=g-import-not-at-top

  sizes = {"train": "num_train", "validation": "num_validation", "test": "num_test"}
  ranges = sorted(
      (b.SEED_BASE[split], b.SEED_BASE[split] + max(getattr(c, field) for c in b.Builder.BUILDER_CONFIGS))
      for split, field in sizes.items())
  assert set(b.SEED_BASE) == set(sizes)
  assert all(end <= next_start for (_, end), (next_start, _) in zip(ranges, ranges[1:]))


def test_render_jobs_alternate_presets_and_refuse_unknown_ones():
  from asmnet_jax_datasets.synthetic_faces import synthetic_faces_dataset_builder as b  # pylint: disable=g-import-not-at-top

  jobs = b.render_jobs("validation", 5, 64, "cartoon+photo")
  assert jobs == [(b.SEED_BASE["validation"] + i, 64, ("cartoon", "photo")[i % 2])
                  for i in range(5)]
  assert {preset for _, _, preset in b.render_jobs("train", 3, 64, "photo")} == {"photo"}
  mixed = {c.name: c for c in b.Builder.BUILDER_CONFIGS}["mixed"]
  assert mixed.render == "cartoon_real+photo"
  with pytest.raises(ValueError, match="unknown render preset 'oil' in 'cartoon\\+oil'"):
    b.render_jobs("train", 2, 64, "cartoon+oil")


def test_pose_sd_draws_normals_cut_to_the_ranges():
  cfg = dataclasses.replace(sf.DEFAULT_CONFIG, pose_sd=(25.0, 12.0, 12.0),
                            roll=(-10.0, 30.0))
  rng = np.random.default_rng(0)
  poses = np.array([render.sample_pose(rng, cfg) for _ in range(20000)])
  lows, highs = np.array([-60.0, -30.0, -10.0]), np.array([60.0, 30.0, 30.0])
  assert np.all(poses >= lows) and np.all(poses <= highs)
  # The cut normal's mean and spread, by quadrature of its density.
  for axis, sd in enumerate((25.0, 12.0, 12.0)):
    centre = (lows[axis] + highs[axis]) / 2
    grid = np.linspace(lows[axis], highs[axis], 20001)
    density = np.exp(-0.5 * ((grid - centre) / sd) ** 2)
    density /= density.sum()
    mean = (grid * density).sum()
    spread = np.sqrt(((grid - mean) ** 2 * density).sum())
    assert poses[:, axis].mean() == pytest.approx(mean, abs=0.03 * spread)
    assert poses[:, axis].std() == pytest.approx(spread, rel=0.03)
  assert centre == 10.0  # The roll's normal is centred on its range's midpoint.


def test_pose_without_sd_is_uniform_as_before():
  rng, reference = np.random.default_rng(3), np.random.default_rng(3)
  pose = render.sample_pose(rng, sf.DEFAULT_CONFIG)
  np.testing.assert_array_equal(
      pose, [reference.uniform(-60, 60), reference.uniform(-30, 30), reference.uniform(-30, 30)])
  with pytest.raises(ValueError, match="pose_sd"):
    dataclasses.replace(sf.DEFAULT_CONFIG, pose_sd=(25.0, 0.0, 12.0))


def test_grins_open_the_mouth_and_raise_the_lower_lids():
  """With grin_prob 1 every face smiles over parted lips, and its eyes are narrower
  (the cheeks push the lower lids up by a quarter of the opening at full smile); with
  grin_prob 0 no face grins."""
  mean = shape.template().vertices[:68]

  def openings(cfg):
    ratios, infos = [], []
    for seed in range(60):
      d, _, info = shape.sample_deformation(np.random.default_rng(seed), cfg, mean)
      p = mean + d
      for eye in shape.EYES:
        width = np.linalg.norm(p[eye[3]] - p[eye[0]])
        ratios.append((np.linalg.norm(p[eye[1]] - p[eye[5]]) +
                       np.linalg.norm(p[eye[2]] - p[eye[4]])) / (2 * width))
      infos.append((info, p))
    return np.array(ratios), infos

  grin, grin_infos = openings(dataclasses.replace(sf.PHOTO_CONFIG, grin_prob=1.0))
  plain, plain_infos = openings(dataclasses.replace(sf.PHOTO_CONFIG, grin_prob=0.0))
  for info, p in grin_infos:
    assert info["grin"] and info["smile"] >= 0.6 and 0.25 <= info["mouth_open"] <= 0.7
    gap = np.linalg.norm(p[[61, 62, 63]] - p[[67, 66, 65]], axis=1).mean()
    assert gap > 0.02  # Face units (the jaw is 1.25 wide): the teeth show.
  assert not any(info["grin"] for info, _ in plain_infos)
  # Smiles of 0.6-1 take 15-25 % off the opening; the identities' spread is ~18 % a face.
  assert 0.7 < np.median(grin) / np.median(plain) < 0.9
