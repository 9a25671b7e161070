"""The paper's recipe on 300W (METHOD.md, section 5): 68 points, 90 % ASM variance.

    python -m asmnet_jax.data.build ibug_300w --manual_dir ~/data/300W
    python train.py --workdir workdirs/300w --config configs/ibug_300w.py \
        --config.manual_dir=~/data/300W
    python eval.py --workdir workdirs/300w

Expected (the paper's ASMNet, METHOD.md section 8; not yet run here): NME 5.50 % on
`full`, 4.82 % on `common`, 8.2 % on `challenging`. 150 epochs of 62 steps (3,148
training faces, batch 50): 9,300 steps at 224 px, a GPU job.
"""

from __future__ import annotations

from asmnet_jax.train.config import paper_recipe


def get_config():
  # 300W has no validation split; the paper reports on `full`.
  return paper_recipe("ibug_300w", variance_kept=0.9, validation_split="full")
