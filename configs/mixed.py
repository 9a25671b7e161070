"""The recipe of the bundled model: ASMNet on cartoon and photo-style synthetic faces.

    python train.py --workdir workdirs/mixed --config configs/mixed.py
    python -m asmnet_jax.inference.pretrained --workdir workdirs/mixed

Builds `synthetic_faces/mixed` (30000 + 1000 + 1000 faces at 128 px, alternately in
the cartoon and the photo style) and trains the default recipe (`configs/synthetic.py`:
64 px crops, a short cosine schedule at a high learning rate) on it for 8 epochs, with
half the training crops mirrored left-right. Expected: about 6 % NME on its own
validation split, 5.3 % (cartoon) and 6.9 % (photo style) on synthetic validation
renders with test-time flips, and 8.1 % on the real-photo check set; 42 min on 2
shared CPU cores (19 of them building the dataset). Seed 0.
"""

from __future__ import annotations

from configs import photo


def get_config():
  c = photo.get_config()
  c.dataset = "synthetic_faces/mixed"
  # The mixed faces do not cover every left-right asymmetry of real ones; mirroring
  # half the crops keeps the network from learning one.
  c.input.flip_probability = 0.5
  return c
