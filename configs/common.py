"""Fields every training config has, with their defaults (see `train.py`)."""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Data: a TFDS name from datasets/, with its builder config where it has one.
  c.dataset = "synthetic_faces"
  c.data_dir = ml_collections.FieldReference(None, field_type=str)   # None: TFDS default.
  c.manual_dir = ml_collections.FieldReference(None, field_type=str)  # 300W / WFLW downloads.
  c.train_split = "train"
  c.validation_split = "test"    # Picks the "best" checkpoint.
  c.max_train_examples = ml_collections.FieldReference(None, field_type=int)  # None: all.

  # Model and loss: the paper's four variants are {asmnet, mnv2} x {asm, mse}.
  c.model = "asmnet"             # asmnet | mnv2
  c.loss = "asm"                 # asm (ASM-assisted, Eq. 9) | mse (the "_nr" variants)
  c.variance_kept = 0.9          # PCA variance of the ASM: 0.9 for 300W, 0.95 for WFLW.
  c.pose_weight = 0.5            # Eq. 12.
  c.pose_scale_deg = 90.0        # The network regresses pose / this, so both terms are O(1).
  c.compute_dtype = "float32"    # bfloat16 on accelerators.
  c.bn_momentum = 0.999          # Keras' MobileNetV2; short runs want less (see synthetic.py).
  c.precise_bn_batches = 20      # Eval BN statistics from 20 training batches (0: EMA).
  c.dropout_rate = 0.3           # On the pooled features, before the heads (the paper's).

  # Optimiser: Adam with Keras-style decay lr / (1 + decay * step) (METHOD.md, section 5).
  c.learning_rate = 1e-2
  c.lr_schedule = "keras_decay"  # keras_decay | cosine
  c.lr_decay = 1e-5
  c.warmup_steps = 0
  c.num_epochs = 150
  c.batch_size = 50              # Global, across all devices and hosts.
  c.image_size = 224
  c.seed = 0

  # Input pipeline (asmnet_jax.input_pipeline.InputConfig).
  c.input = ml_collections.ConfigDict()
  c.input.margin_range = (0.0, 0.1)
  c.input.eval_margin = 0.05
  c.input.rotation_deg = 0.0
  c.input.scale_range = (1.0, 1.0)
  c.input.worker_count = 0         # grain worker processes for the training stream.

  # Book-keeping.
  c.log_every_steps = 50
  c.eval_every_steps = 1000      # Validation NME, for the best checkpoint.
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  c.eval_batch_size = 64
  return c
