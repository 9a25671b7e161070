"""The training config: its fields and defaults, their checks, and the copy a run
stores in its work directory (config.json), which a resumed run must match in the
fields that change the shapes of its checkpoints (`check_resume_compatible`).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from asmnet_jax.core import losses
from asmnet_jax.data import pipeline
from asmnet_jax.nn import models

LOSSES = ("asm", "mse")
LR_SCHEDULES = ("keras_decay", "cosine")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# ASMNet and MobileNetV2 halve the resolution five times.
MIN_IMAGE_SIZE = 32
CONFIG_FILE = "config.json"
# Fields added after the first release, with the values that runs trained before
# them used (their config.json lacks them).
_ADDED_FIELDS = {"bn_momentum": models.BN_MOMENTUM, "dropout_rate": models.DROPOUT_RATE,
                 "precise_bn_batches": 0, "allow_changed": "",
                 "landmark_distance": "squared"}
# Fields a resumed run must keep: they change the network (model), its landmark
# head (the dataset's number of points) or what the stored model was fitted to.
SHAPE_FIELDS = ("model", "dataset", "image_size")


class ConfigFileError(ValueError):
  """A work directory's config.json that cannot be read; the message names the file."""


class IncompatibleRunError(ValueError):
  """A config that differs from the work directory's run in a `SHAPE_FIELDS` field."""


def base_config() -> ml_collections.ConfigDict:
  """Every field a training config has, with its default (the paper's where it has one)."""
  c = ml_collections.ConfigDict()
  # Data: a TFDS name from datasets/, with its builder config where it has one.
  c.dataset = "synthetic_faces"
  c.data_dir = ml_collections.FieldReference(None, field_type=str)   # None: TFDS default.
  c.manual_dir = ml_collections.FieldReference(None, field_type=str)  # 300W / WFLW downloads.
  c.train_split = "train"
  # Picks the "best" checkpoint: held-out training images, never a test split.
  c.validation_split = "validation"
  c.max_train_examples = ml_collections.FieldReference(None, field_type=int)  # None: all.

  # Model and loss: the paper's four variants are {asmnet, mnv2} x {asm, mse}.
  c.model = "asmnet"             # asmnet | mnv2 | tiny (a smoke-test stand-in)
  c.loss = "asm"                 # asm (ASM-assisted, Eq. 9) | mse (the "_nr" variants)
  # A point's error in both facial terms: squared (Eq. 7) | euclidean | wing.
  c.landmark_distance = "squared"
  c.variance_kept = 0.9          # PCA variance of the ASM: 0.9 for 300W, 0.95 for WFLW.
  c.pose_weight = 0.5            # Eq. 12.
  c.pose_scale_deg = 90.0        # The network regresses pose / this, so both terms are O(1).
  c.compute_dtype = "float32"    # bfloat16 on accelerators.
  c.bn_momentum = models.BN_MOMENTUM    # Keras' MobileNetV2; short runs want less.
  c.precise_bn_batches = 20      # Eval BN statistics from 20 training batches (0: EMA).
  c.dropout_rate = models.DROPOUT_RATE  # On the pooled features, before the heads (the paper's).

  # Optimiser: Adam with Keras-style decay lr / (1 + decay * step) (METHOD.md, section 5).
  c.learning_rate = 1e-2
  c.lr_schedule = "keras_decay"  # keras_decay | cosine
  c.lr_decay = 1e-5
  c.warmup_steps = 0
  c.num_epochs = 150
  c.batch_size = 50              # Global, across all devices and hosts.
  c.image_size = 224
  c.seed = 0

  # Input pipeline (asmnet_jax.data.pipeline.InputConfig).
  input_defaults = pipeline.InputConfig()
  c.input = ml_collections.ConfigDict()
  c.input.margin_range = input_defaults.margin_range
  c.input.eval_margin = input_defaults.eval_margin
  c.input.rotation_deg = input_defaults.rotation_deg
  c.input.scale_range = input_defaults.scale_range
  c.input.flip_probability = input_defaults.flip_probability  # left-right mirroring.
  c.input.occlusion_probability = input_defaults.occlusion_probability  # random erasing.
  c.input.occlusion_size = input_defaults.occlusion_size  # its sides, fractions of S.
  c.input.random_conv_probability = input_defaults.random_conv_probability  # RandConv.
  # Augment inside the jitted step from cached uint8 crops (docs/training.md).
  c.input.augment_on_device = input_defaults.augment_on_device
  c.input.crop_cache_dir = ml_collections.FieldReference(None, field_type=str)  # None: data_dir.
  c.input.worker_count = input_defaults.worker_count  # grain worker processes for training.

  # Book-keeping.
  c.log_every_steps = 50
  c.eval_every_steps = 1000      # Validation NME, for the best checkpoint.
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  c.eval_batch_size = 64
  # Resuming: comma-separated `SHAPE_FIELDS` that may differ from the stored run's.
  c.allow_changed = ""
  return c


def paper_recipe(dataset: str, variance_kept: float,
                 validation_split: str = "validation") -> ml_collections.ConfigDict:
  """The authors' recipe (METHOD.md, section 5) on a real dataset: Adam 1e-2 with
  Keras decay, batch 50, 150 epochs at 224 px, their offline augmentation (no flip,
  no occlusion), bfloat16; the best checkpoint picked on the builder's held-out
  `validation` split. A GPU job: the augmentation runs on the device, inside the
  step, so that the host keeps up (docs/training.md).
  """
  c = base_config()
  c.dataset = dataset
  c.variance_kept = variance_kept
  c.validation_split = validation_split
  c.input.rotation_deg = 31.5  # ±0.55 rad.
  c.input.scale_range = (0.8, 1.0)
  c.input.augment_on_device = True
  c.compute_dtype = "bfloat16"
  return c


def validate_config(config: ml_collections.ConfigDict, check_devices: bool = True) -> None:
  """Raises ValueError naming the first bad field of a training config.

  check_devices: also check that the batch sizes divide among this machine's devices
  (False for a stored config read back for evaluation).
  """

  def fail(field, message):
    raise ValueError(f"config.{field}={config.get(field)!r}: {message}")

  if config.model not in models.MODELS:
    fail("model", f"must be one of {tuple(models.MODELS)}")
  if config.loss not in LOSSES:
    fail("loss", f"must be one of {LOSSES}")
  if config.landmark_distance not in losses.LANDMARK_DISTANCES:
    fail("landmark_distance", f"must be one of {losses.LANDMARK_DISTANCES}")
  if not 0.0 < config.variance_kept <= 1.0:
    fail("variance_kept", "must be in (0, 1]")
  if config.compute_dtype not in DTYPES:
    fail("compute_dtype", f"must be one of {tuple(DTYPES)}")
  for field in ("num_epochs", "batch_size", "eval_batch_size", "checkpoint_every_steps",
                "eval_every_steps", "log_every_steps", "keep_checkpoints"):
    value = config.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      fail(field, "must be a positive integer")
  if config.image_size < MIN_IMAGE_SIZE or config.image_size % 2:
    fail("image_size", f"must be an even number of pixels >= {MIN_IMAGE_SIZE}")
  if not config.learning_rate > 0.0:
    fail("learning_rate", "must be positive")
  if config.lr_schedule not in LR_SCHEDULES:
    fail("lr_schedule", f"must be one of {LR_SCHEDULES}")
  if config.lr_decay < 0.0 or config.warmup_steps < 0:
    fail("lr_decay", "lr_decay and warmup_steps must not be negative")
  if config.max_train_examples is not None and config.max_train_examples < 1:
    fail("max_train_examples", "must be None (all) or a positive integer")
  if not 0.0 <= config.bn_momentum < 1.0:
    fail("bn_momentum", "must be in [0, 1)")
  if config.precise_bn_batches < 0:
    fail("precise_bn_batches", "must be 0 (keep the running averages) or positive")
  if not 0.0 <= config.dropout_rate < 1.0:
    fail("dropout_rate", "must be in [0, 1)")
  if not config.pose_scale_deg > 0.0:
    fail("pose_scale_deg", "must be positive")
  # Imported here: it imports TensorFlow Datasets (a second), which workers reading
  # this module's config need not.
  from asmnet_jax.data import registry  # pylint: disable=g-import-not-at-top
  # Builders whose splits depend on their data (TEST_SPLITS None) are checked by
  # `loop.check_splits` against the built splits only.
  if config.validation_split in (registry.builder_class(config.dataset).TEST_SPLITS or ()):
    fail("validation_split", f"is a test split of {config.dataset}; pick the best "
         "checkpoint on held-out training images (e.g. 'validation') and report the test "
         "splits once, with eval.py")
  for field in ("flip_probability", "occlusion_probability", "random_conv_probability"):
    if not 0.0 <= config.input.get(field, 0.0) <= 1.0:
      raise ValueError(f"config.input.{field}={config.input[field]!r}: must be in [0, 1]")
  lo, hi = config.input.get("occlusion_size", pipeline.InputConfig.occlusion_size)
  if not 0.0 < lo <= hi <= 1.0:
    raise ValueError(f"config.input.occlusion_size={(lo, hi)!r}: must be (lo, hi) with "
                     "0 < lo <= hi <= 1")
  workers = config.input.worker_count
  if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
    raise ValueError(f"config.input.worker_count={workers!r}: must be 0 (in-process) "
                     "or a positive number of worker processes")
  unknown = [f for f in allowed_changes(config) if f not in SHAPE_FIELDS]
  if unknown:
    fail("allow_changed", f"names {', '.join(unknown)}; only {', '.join(SHAPE_FIELDS)} "
         "need allowing")
  if not check_devices:
    return
  for field in ("batch_size", "eval_batch_size"):
    if config.get(field) % jax.device_count():
      fail(field, f"must be divisible by the {jax.device_count()} devices")


def input_config(config: ml_collections.ConfigDict) -> pipeline.InputConfig:
  return pipeline.InputConfig(
      image_size=config.image_size,
      margin_range=tuple(config.input.margin_range),
      eval_margin=config.input.eval_margin,
      rotation_deg=config.input.rotation_deg,
      scale_range=tuple(config.input.scale_range),
      # Runs stored before flips (occlusion, ...) existed lack the fields.
      flip_probability=config.input.get("flip_probability", 0.0),
      occlusion_probability=config.input.get("occlusion_probability", 0.0),
      occlusion_size=tuple(config.input.get("occlusion_size",
                                            pipeline.InputConfig.occlusion_size)),
      random_conv_probability=config.input.get("random_conv_probability", 0.0),
      augment_on_device=config.input.get("augment_on_device", False),
      worker_count=config.input.worker_count,
      seed=config.seed)


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes `config` as DIR/config.json."""
  with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run stored in its work directory, with added-field defaults.

  Raises:
    FileNotFoundError: no config.json (not a train.py work directory).
    ConfigFileError: one that is not JSON, not a config, or has a bad field; the
      message names the file (and the field).
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir} a train.py work directory?")
  try:
    with open(path, encoding="utf-8") as f:
      stored = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ConfigFileError(f"{path} is not valid JSON ({e}); fix it, or copy it from "
                          "a run with the same config") from None
  if not isinstance(stored, dict):
    raise ConfigFileError(f"{path} holds a JSON {type(stored).__name__}, not a config")
  _check_stored_types(stored, base_config().to_dict(), path)
  for field, value in _ADDED_FIELDS.items():
    stored.setdefault(field, value)
  config = ml_collections.ConfigDict(stored)
  if config.get("model", "asmnet") not in models.MODELS:
    raise ConfigFileError(f"{path}: config.model={config.model!r}: must be one of "
                          f"{tuple(models.MODELS)}")
  return config


def _check_stored_types(stored: dict, defaults: dict, path: str, prefix: str = "") -> None:
  """Raises ConfigFileError naming the first stored field whose JSON type is not
  that of its default (an int for a float and null for an optional field pass)."""
  for field, value in stored.items():
    if field not in defaults or defaults[field] is None or value is None:
      continue
    default = defaults[field]
    if isinstance(default, dict):
      ok = isinstance(value, dict)
      if ok:
        _check_stored_types(value, default, path, f"{prefix}{field}.")
    elif isinstance(default, bool):
      ok = isinstance(value, bool)
    elif isinstance(default, float):
      ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, int):
      ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, (tuple, list)):
      ok = isinstance(value, (tuple, list))
    else:
      ok = isinstance(value, type(default))
    if not ok:
      raise ConfigFileError(f"{path}: config.{prefix}{field}={value!r}: must be of type "
                            f"{type(default).__name__} (the default is {default!r})")


def allowed_changes(config: ml_collections.ConfigDict) -> list[str]:
  """The field names of `config.allow_changed` ("model,image_size" -> [...])."""
  return [f.strip() for f in str(config.get("allow_changed") or "").split(",") if f.strip()]


def check_resume_compatible(config: ml_collections.ConfigDict, workdir: str) -> list[str]:
  """Checks `config` against the run stored in `workdir` (if any), reading only.

  Returns:
    The `SHAPE_FIELDS` that differ and `config.allow_changed` allows.

  Raises:
    IncompatibleRunError: showing each other differing `SHAPE_FIELDS` field.
    ConfigFileError: the stored config.json cannot be read.
  """
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    return []
  stored = load_config(workdir)
  changed = [f for f in SHAPE_FIELDS if stored.get(f) != config.get(f)]
  allowed = allowed_changes(config)
  refused = [f for f in changed if f not in allowed]
  if refused:
    shown = ", ".join(f"{f} {stored.get(f)!r} -> {config.get(f)!r}" for f in refused)
    raise IncompatibleRunError(
        f"{workdir} holds a run with another {'/'.join(refused)} ({shown}); its "
        f"checkpoints would not fit. Use a new --workdir, or "
        f"--config.allow_changed={','.join(refused)} to resume from them anyway")
  return changed
