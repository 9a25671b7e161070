"""The paper's recipe on 300W (METHOD.md, section 5): 68 points, 90 % ASM variance.

    python train.py --workdir workdirs/300w --config configs/ibug_300w.py \
        --config.manual_dir=~/data/300W
"""

from __future__ import annotations

from asmnet_jax.train.config import paper_recipe


def get_config():
  # 300W has no validation split; the paper reports on `full`.
  return paper_recipe("ibug_300w", variance_kept=0.9, validation_split="full")
