"""The paper's recipe on 300W plus horizontal flips and occlusion patches.

    python train.py --workdir workdirs/300w_plus --config configs/ibug_300w_plus.py \
        --config.manual_dir=~/data/300W

`configs/ibug_300w.py` with half the training crops mirrored (the 68-point mirror
map, yaw and roll negated) and half given one random-colour rectangle of 10-40 % of
the crop side (random erasing). The paper did neither. Its effect on 300W is not
yet measured.
"""

from __future__ import annotations

from configs import ibug_300w
from configs.plus import add_flip_and_occlusion


def get_config():
  return add_flip_and_occlusion(ibug_300w.get_config())
