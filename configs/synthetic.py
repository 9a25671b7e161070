"""The default: ASMNet on the embedded synthetic faces, on a CPU in minutes.

    python train.py --workdir workdirs/synthetic
    python train.py --workdir /tmp/t --config configs/synthetic.py --config.dataset=synthetic_faces/tiny
"""

from __future__ import annotations

from configs import common


def get_config():
  c = common.base_config()
  c.dataset = "synthetic_faces"
  c.validation_split = "test"
  # Small crops and a shorter schedule than the paper's so that a 2-core CPU trains
  # in minutes; the faces are rendered at 192 px.
  c.image_size = 96
  c.num_epochs = 30
  c.batch_size = 50
  c.learning_rate = 2e-3
  c.lr_decay = 1e-4
  c.warmup_steps = 100
  c.input.rotation_deg = 10.0
  c.input.scale_range = (0.9, 1.1)
  c.log_every_steps = 20
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
  return c
