"""An experiment towards the bundled model: ASMNet on photo-style synthetic faces.

    python train.py --workdir workdirs/photo --config configs/photo.py

Builds `synthetic_faces/photo` (30000 + 1000 + 1000 faces in the photo style,
`asmnet_jax.synthetic.photo`) and trains the default recipe (`configs/synthetic.py`:
64 px crops, a short cosine schedule at a high learning rate) on it, a face seen 8
times. 36 min on 2 shared CPU cores (build 11 min). On the real-photo check set it
scored no better than the cartoon default (docs/experiments.md, 2026-12-02); the
bundled model comes from `configs/mixed.py`, which mixes both styles.
"""

from __future__ import annotations

from configs import synthetic


def get_config():
  c = synthetic.get_config()
  c.dataset = "synthetic_faces/photo"
  c.num_epochs = 8
  c.eval_batch_size = 100
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 1000
  return c
