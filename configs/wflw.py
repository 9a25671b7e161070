"""The paper's recipe on WFLW (METHOD.md, section 5): 98 points, 95 % ASM variance.

    python -m asmnet_jax.data.build wflw --manual_dir ~/data/WFLW
    python train.py --workdir workdirs/wflw --config configs/wflw.py \
        --config.manual_dir=~/data/WFLW
    python eval.py --workdir workdirs/wflw

Expected (the paper's ASMNet, METHOD.md section 8; not yet run here): NME 10.77 %,
FR@0.1 39.12 %, AUC@0.1 0.1637 on `test`. The best checkpoint is picked on
`validation` (5 % of the training images, held out), not on `test`. 150 epochs of
about 142 steps (about 7,130 training faces, batch 50): about 21,400 steps at 224 px,
a GPU job.
"""

from __future__ import annotations

from asmnet_jax.train.config import paper_recipe


def get_config():
  # The best checkpoint is picked on `validation` (5 % of the training images);
  # eval.py then reports test and its subsets once.
  return paper_recipe("wflw", variance_kept=0.95)
