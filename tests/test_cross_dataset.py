"""A trained 68-point run scored on another dataset (COFW-68) with eval.py --dataset."""

from __future__ import annotations

import importlib
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("h5py")  # COFW's files (the `cofw` extra, in `test` too).

from asmnet_jax.data import builders  # noqa: E402
from asmnet_jax.evaluate import report  # noqa: E402
from asmnet_jax_datasets.cofw import cofw_dataset_builder_test as cofw_test  # noqa: E402


def test_a_68_point_run_on_cofw68(trained_run, tmp_path, capsys):
  workdir = trained_run.copy_to(tmp_path / "w")
  manual = tmp_path / "COFW"
  shutil.copytree(cofw_test.DUMMY, manual)
  cofw_test.write_cofw68(str(manual))
  with pytest.warns(builders.SkippedSamplesWarning, match="no COFW68/3.pts"):
    splits = report.evaluate_workdir(workdir, checkpoint="latest", dataset="cofw/cofw68",
                                     manual_dir=str(manual))
  out = report.eval_dir(workdir, "cofw/cofw68", checkpoint="latest")
  assert out == os.path.join(workdir, "eval_cofw_cofw68", "latest") and list(splits) == ["test"]
  with open(os.path.join(out, "results.json")) as f:
    stored = json.load(f)
  assert (stored["dataset"], stored["trained_on"]) == ("cofw/cofw68", "synthetic_faces/tiny")
  assert stored["normalizer_description"] == "inter-ocular distance (outer eye corners 36, 45)"
  with np.load(report.prediction_file(workdir, "test", "cofw/cofw68", "latest")) as p:
    pred, gt = p["landmarks"], p["gt_landmarks"]
  expected = (np.linalg.norm(pred - gt, axis=-1).mean(-1)
              / np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1))
  assert pred.shape == (2, 68, 2)
  assert splits["test"]["nme"] == pytest.approx(expected.mean(), rel=1e-5)
  assert not os.path.exists(os.path.join(workdir, "eval", "results.json"))  # its own stays.

  # The 29-point COFW cannot score a 68-point run: one line from eval.py.
  evaluation = importlib.import_module("eval")
  with pytest.warns(builders.SkippedSamplesWarning, match="skipped 1 malformed sample"):
    status = evaluation.main(["--workdir", workdir, "--dataset", "cofw",
                              "--manual_dir", cofw_test.DUMMY])
  assert status == 2
  assert capsys.readouterr().err.strip().endswith(f"error: {workdir} predicts 68 points, "
                                                  "cofw has 29")
