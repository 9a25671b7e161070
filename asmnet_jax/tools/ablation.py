"""The paper's ablation: {MobileNetV2, ASMNet} x {MSE, ASM-assisted loss}.

    python -m asmnet_jax.tools.ablation --workdir DIR [--config configs/NAME.py]
        [--config.field=value ...] [--variants mnv2,asmnet]

Trains and evaluates `mnv2`, `mnv2_r`, `asmnet_nr` and `asmnet` (or --variants) in
DIR/<variant> (each resumable like train.py), then writes DIR/ablation.md and
ablation.json (params, FLOPs, NME, FR, AUC and pose MAE on every test split,
training time) and DIR/ablation_ced.png. The default config is the checkout's
configs/synthetic.py, from any directory; every variant's config is checked before
the first one trains.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags
from ml_collections import config_flags

from asmnet_jax import cli
from asmnet_jax.data import registry
from asmnet_jax.evaluate import plots
from asmnet_jax.evaluate import report
from asmnet_jax.nn import models
from asmnet_jax.runtime import distributed
from asmnet_jax.tools import benchmark
from asmnet_jax.train import config as config_lib
from asmnet_jax.train import loop

# Variant -> (model, loss), named as in the paper's tables.
VARIANTS = {
    "mnv2": ("mnv2", "mse"),
    "mnv2_r": ("mnv2", "asm"),
    "asmnet_nr": ("asmnet", "mse"),
    "asmnet": ("asmnet", "asm"),
}
# The paper counts size and compute at 224 x 224, whatever size was trained.
REFERENCE_IMAGE_SIZE = 224


def model_size(name: str, num_landmarks: int) -> dict[str, float]:
  """Parameters (all, incl. BN statistics) and forward GFLOPs at 224 x 224, batch 1."""
  model = models.create_model(name, num_landmarks)
  images = jnp.zeros((1, REFERENCE_IMAGE_SIZE, REFERENCE_IMAGE_SIZE, 3), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), images, train=False))
  trainable, bn_stats = models.count_parameters(variables)
  variables = model.init(jax.random.key(0), images, train=False)
  flops = benchmark.flops_of(lambda v, x: model.apply(v, x, train=False), variables, images)
  return {"params_m": (trainable + bn_stats) / 1e6,
          "gflops": flops / 1e9 if flops else float("nan")}


def _variant_config(base: ml_collections.ConfigDict,
                    variant: str) -> ml_collections.ConfigDict:
  """A copy of `base` with the variant's model and loss."""
  config = ml_collections.ConfigDict(base.to_dict())
  config.model, config.loss = VARIANTS[variant]
  return config


def run_variant(base: ml_collections.ConfigDict, variant: str, workdir: str) -> dict:
  """Trains and evaluates one variant in `workdir`; returns its results row."""
  config = _variant_config(base, variant)
  start = time.perf_counter()
  loop.train_and_evaluate(config, workdir)
  train_minutes = (time.perf_counter() - start) / 60
  results = report.evaluate_workdir(workdir)
  return {"variant": variant, "model": config.model, "loss": config.loss,
          "train_minutes": train_minutes, "splits": results}


def ablation_table(rows: list[dict], num_landmarks: int) -> str:
  """One Markdown table, a row per variant and split, laid out like METHOD.md section 8."""
  lines = ["| variant | loss | split | NME (%) | FR@0.1 (%) | AUC@0.1 | yaw / pitch / roll MAE (°) "
           "| params (M) | GFLOPs | train time (min) |",
           "|---|---|---|---:|---:|---:|---|---:|---:|---:|"]
  for row in rows:
    size = model_size(row["model"], num_landmarks)
    for split, r in row["splits"].items():
      pose = r["pose_mae"]
      lines.append(
          f"| {row['variant']} | {row['loss']} | {split} | {100 * r['nme']:.2f} | "
          f"{100 * r['failure_rate']:.2f} | {r['auc']:.4f} | {pose['yaw']:.2f} / "
          f"{pose['pitch']:.2f} / {pose['roll']:.2f} | {size['params_m']:.2f} | "
          f"{size['gflops']:.2f} | {row['train_minutes']:.1f} |")
  return "\n".join(lines) + "\n"


def define_flags(fv: flags.FlagValues) -> None:
  """The ablation's flags: --workdir, --config (and overrides), --variants."""
  flags.DEFINE_string("workdir", None, "Directory of the four runs.", required=True,
                      flag_values=fv)
  config_flags.DEFINE_config_file("config", cli.config_file("synthetic"),
                                  "Base training config.", flag_values=fv, lock_config=False)
  flags.DEFINE_list("variants", list(VARIANTS), f"Variants to run: {', '.join(VARIANTS)}.",
                    flag_values=fv)
  flags.register_validator(
      "variants", lambda names: bool(names) and set(names) <= set(VARIANTS),
      f"--variants takes one or more of {', '.join(VARIANTS)}", flag_values=fv)


def _run(fv: flags.FlagValues) -> None:
  distributed.initialize_if_available()
  base, root = fv.config, fv.workdir
  with cli.reported(ValueError):  # validate_config names the bad field.
    for variant in fv.variants:  # each variant's config, before hours of training.
      config_lib.validate_config(_variant_config(base, variant))
    registry.builder_class(base.dataset)
  rows = [run_variant(base, v, os.path.join(root, v)) for v in fv.variants]
  if jax.process_index() != 0:
    return
  builder = registry.get_builder(base.dataset, base.data_dir)  # built by the runs.
  num_landmarks = builder.info.features["landmarks"].shape[0]
  table = ablation_table(rows, num_landmarks)
  with open(os.path.join(root, "ablation.md"), "w") as f:
    f.write(f"Ablation on {base.dataset} ({base.num_epochs} epochs, {base.image_size} px, "
             f"{jax.device_count()} x {jax.devices()[0].device_kind})\n\n{table}")
  with open(os.path.join(root, "ablation.json"), "w") as f:
    json.dump(rows, f, indent=2)
  first_split = next(iter(rows[0]["splits"]))
  nmes = {}
  for row in rows:
    with np.load(report.prediction_file(os.path.join(root, row["variant"]), first_split)) as f:
      nmes[row["variant"]] = f["nme"]
  plots.ced_curves(nmes, os.path.join(root, "ablation_ced.png"))
  print(table)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the ablation per `argv` (default sys.argv[1:]); returns the exit status."""
  # Faster XLA:CPU steps; see asmnet_jax/runtime/allocator.py.
  return cli.run(define_flags, _run, argv, tuned_malloc=True)


if __name__ == "__main__":
  sys.exit(main())
