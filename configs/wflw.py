"""The paper's recipe on WFLW (METHOD.md, section 5): 98 points, 95 % ASM variance.

    python train.py --workdir workdirs/wflw --config configs/wflw.py \
        --config.manual_dir=~/data/WFLW
"""

from __future__ import annotations

from asmnet_jax.train.config import paper_recipe


def get_config():
  return paper_recipe("wflw", variance_kept=0.95, validation_split="test")
