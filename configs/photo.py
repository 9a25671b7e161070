"""The bundled model: ASMNet on photo-style synthetic faces, for real photographs.

    python train.py --workdir workdirs/photo --config configs/photo.py
    python -m asmnet_jax.inference.pretrained --workdir workdirs/photo

The first line builds `synthetic_faces/photo` (30000 + 1000 + 1000 faces rendered in
the photo style, `asmnet_jax.synthetic.photo`) and trains on it; the second writes
the bundle that `Predictor.pretrained()` and `predict.py IMAGE` use. Times and
figures: README's first table and docs/experiments.md.

It is the default recipe (`configs/synthetic.py`: 64 px crops, a short cosine
schedule at a high learning rate) on six times as many, more varied faces, for
fewer epochs: with 30000 faces a face is seen 8 times, and the run fits in well
under an hour on 2 CPU cores.
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
