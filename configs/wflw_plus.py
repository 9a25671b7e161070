"""The paper's recipe on WFLW plus horizontal flips and occlusion patches.

    python train.py --workdir workdirs/wflw_plus --config configs/wflw_plus.py \
        --config.manual_dir=~/data/WFLW

`configs/wflw.py` with half the training crops mirrored (the 98-point mirror map,
yaw and roll negated) and half given one random-colour rectangle of 10-40 % of the
crop side (random erasing). The paper did neither. Its effect on WFLW is not yet
measured.
"""

from __future__ import annotations

from configs import wflw
from configs.plus import add_flip_and_occlusion


def get_config():
  return add_flip_and_occlusion(wflw.get_config())
