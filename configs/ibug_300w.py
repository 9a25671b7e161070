"""The paper's recipe on 300W (METHOD.md, section 5): 68 points, 90 % ASM variance.

    python -m asmnet_jax.data.build ibug_300w --manual_dir ~/data/300W
    python train.py --workdir workdirs/300w --config configs/ibug_300w.py \
        --config.manual_dir=~/data/300W
    python eval.py --workdir workdirs/300w

Expected (the paper's ASMNet, METHOD.md section 8; not yet run here): NME 5.50 % on
`full`, 4.82 % on `common`, 8.2 % on `challenging`. The best checkpoint is picked
on `validation` (5 % of the training images, held out), not on a test split. 150
epochs of 59 steps (about 2,990 training faces, batch 50): about 8,900 steps at
224 px, a GPU job.
"""

from __future__ import annotations

from asmnet_jax.train.config import paper_recipe


def get_config():
  # The best checkpoint is picked on `validation` (5 % of the training images);
  # eval.py then reports common, challenging and full once.
  return paper_recipe("ibug_300w", variance_kept=0.9)
