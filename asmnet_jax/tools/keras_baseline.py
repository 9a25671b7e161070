"""The authors' Keras graph of ASMNet, timed the way `asmnet_jax.tools.benchmark` times
ours, for a same-machine speed comparison.

    pip install tensorflow-cpu   # in a separate environment: not a dependency
    python -m asmnet_jax.tools.keras_baseline [--batch_size 50] [--image_size 224]

The graph (METHOD.md, section 2): `keras.applications.MobileNetV2` (no weights) up to
block 15, global average pools of the outputs of blocks 1, 3, 6, 10, 13 and 15
concatenated (536 features), Dropout(0.3), Dense(2n) landmarks and Dense(3) pose. It
has 1,439,507 weights for 68 points, the figure our ASMNet must equal.

Prints one JSON line: params_total, train_img_per_s (median over `steps` steps of a
`tf.function` step: forward, MSE on both heads, backward, Adam; the authors' loss
without its ASM term), infer_ms_b1 (median `tf.function` forward at batch 1 over
`infer_calls` calls) and the CPU. It needs TensorFlow and absl (which TensorFlow
brings), not JAX: run it with this checkout on PYTHONPATH in TensorFlow's environment.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Sequence

from absl import flags
import numpy as np

from asmnet_jax import cli
from asmnet_jax.runtime import machine

# Layer names of keras.applications.MobileNetV2 whose outputs are the six taps.
TAPS = ("block_1_project_BN", "block_3_project_BN", "block_6_project_BN",
        "block_10_project_BN", "block_13_project_BN", "block_15_add")


def build(num_landmarks: int = 68, image_size: int = 224):
  """The authors' ASMNet as a Keras model: image -> (landmarks (2n,), pose (3,))."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  keras = tf.keras
  backbone = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3),
                                            include_top=False, weights=None)
  pooled = [keras.layers.GlobalAveragePooling2D()(backbone.get_layer(name).output)
            for name in TAPS]
  features = keras.layers.Dropout(0.3)(keras.layers.Concatenate()(pooled))
  landmarks = keras.layers.Dense(2 * num_landmarks, name="landmarks")(features)
  pose = keras.layers.Dense(3, name="pose")(features)
  return keras.Model(backbone.input, [landmarks, pose])


def measure(batch_size: int, image_size: int, steps: int, infer_calls: int) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = build(image_size=image_size)
  optimizer = tf.keras.optimizers.Adam(1e-3)
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(0, 1, (batch_size, image_size, image_size, 3)),
                       tf.float32)
  target_landmarks = tf.constant(rng.uniform(-0.5, 0.5, (batch_size, 136)), tf.float32)
  target_pose = tf.constant(rng.uniform(-1, 1, (batch_size, 3)), tf.float32)

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      landmarks, pose = model(images, training=True)
      loss = (tf.reduce_mean(tf.square(landmarks - target_landmarks))
              + tf.reduce_mean(tf.square(pose - target_pose)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  @tf.function
  def infer(x):
    return model(x, training=False)

  train_step().numpy()  # traces and compiles.
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    train_step().numpy()
    times.append(time.perf_counter() - start)
  one = images[:1]
  infer(one)[0].numpy()
  latencies = []
  for _ in range(infer_calls):
    start = time.perf_counter()
    infer(one)[0].numpy()
    latencies.append(time.perf_counter() - start)
  return {
      "model": "keras_asmnet", "batch_size": batch_size, "image_size": image_size,
      "params_total": int(model.count_params()),
      "train_img_per_s": batch_size / statistics.median(times),
      "train_img_per_s_best": batch_size / min(times),
      "infer_ms_b1": 1e3 * statistics.median(latencies),
      "infer_ms_b1_best": 1e3 * min(latencies),
      "tensorflow": tf.__version__, "keras": tf.keras.__version__,
  }


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_integer("batch_size", 50, "Training batch.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("image_size", 224, "Input side, pixels.", lower_bound=32,
                       flag_values=fv)
  flags.DEFINE_integer("steps", 5, "Timed training steps.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("infer_calls", 200, "Timed inference calls at batch 1.",
                       lower_bound=1, flag_values=fv)


def _run(fv: flags.FlagValues) -> None:
  record = measure(fv.batch_size, fv.image_size, fv.steps, fv.infer_calls)
  record.update(machine.host_record())
  print(json.dumps(record))


def main(argv: Sequence[str] | None = None) -> int:
  return cli.run(define_flags, _run, argv)


if __name__ == "__main__":
  sys.exit(main())
