"""The paper's recipe on WFLW (METHOD.md, section 5): 98 points, 95 % ASM variance.

    python train.py --workdir workdirs/wflw --config configs/wflw.py \
        --config.manual_dir=~/data/WFLW
"""

from __future__ import annotations

from configs import ibug_300w


def get_config():
  c = ibug_300w.get_config()
  c.dataset = "wflw"
  c.validation_split = "test"
  c.variance_kept = 0.95
  return c
