"""The recipe of the bundled model: ASMNet on cartoon and photo-style synthetic faces.

    python train.py --workdir workdirs/mixed --config configs/mixed.py
    python -m asmnet_jax.inference.pretrained --workdir workdirs/mixed --recrop_scale 1.04,1.04 \
        --tta_scales 0.925,1.075,1.225

Builds `synthetic_faces/mixed` (30000 + 1000 + 1000 faces at 128 px, alternately in
the cartoon and the photo style, both in the proportions of photographed faces and
with the jaw on the visible silhouette, its points evenly spaced, the brow points on
the brow's upper edge and the jaw outline, nose base and lips where 300-W annotators
put them, the poses mostly near-frontal as in photographs, 30 % of them grinning,
the photo style's faces exposed as a camera meters them, the nose standing as far
forward as a photographed adult's) and trains the default recipe
(`configs/synthetic.py`: 64 px crops, a cosine schedule) on it for 14 epochs
at half the default's peak learning rate, with half the training crops mirrored
left-right and the landmarks' error measured as a distance, not its square.
Expected: about 3.94 % NME on its own validation split (seed 1: 3.76 %); about 32 min
on 2 CPU cores alone (4 of them building the dataset). Seed 0. Its figures and
measured times: README and docs/experiments.md.
"""

from __future__ import annotations

from configs import photo


def get_config():
  c = photo.get_config()
  c.dataset = "synthetic_faces/mixed"
  # The mixed faces do not cover every left-right asymmetry of real ones; mirroring
  # half the crops keeps the network from learning one.
  c.input.flip_probability = 0.5
  # 16 epochs at the default's 4e-2 diverged; 14 at 2e-2 beat 8 at 4e-2 on validation.
  c.num_epochs = 14
  c.learning_rate = 2e-2
  # The distance itself (what NME averages) rather than its square: validation 3.90 %
  # against 4.25 % with the paper's squared distance (docs/experiments.md, 2026-12-04).
  c.landmark_distance = "euclidean"
  # 80 px crops (inherited: 64) scored no better on real development faces, at 1.7x
  # the training time (docs/experiments.md, 2026-12-03).
  return c
