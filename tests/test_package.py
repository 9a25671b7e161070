"""The package's shape: what installs, what the pure core imports, where builders live."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _packages_on_disk() -> set[str]:
  found = set()
  for top, name in (("asmnet_jax", "asmnet_jax"), ("datasets", "asmnet_jax_datasets")):
    for root, dirs, files in os.walk(os.path.join(REPO, top)):
      dirs[:] = [d for d in dirs if d != "__pycache__"]
      if "__init__.py" in files:
        relative = os.path.relpath(root, os.path.join(REPO, top))
        found.add(name if relative == "." else f"{name}.{relative.replace(os.sep, '.')}")
  return found


def test_setup_cfg_installs_every_package():
  parser = configparser.ConfigParser()
  parser.read(os.path.join(REPO, "setup.cfg"))
  listed = set(parser["options"]["packages"].split())
  on_disk = _packages_on_disk()
  assert "asmnet_jax.core" in on_disk and "asmnet_jax_datasets.wflw" in on_disk
  assert listed == on_disk


def test_every_subpackage_states_its_job_in_one_line():
  import importlib  # pylint: disable=g-import-not-at-top
  subpackages = sorted(p for p in _packages_on_disk() if p.count(".") == 1
                       and p.startswith("asmnet_jax."))
  assert len(subpackages) >= 9
  for name in subpackages:
    doc = importlib.import_module(name).__doc__
    assert doc and doc.strip().splitlines()[0].endswith("."), name


def test_few_modules_at_the_top_of_the_package():
  top = [f for f in os.listdir(os.path.join(REPO, "asmnet_jax")) if f.endswith(".py")]
  assert "__init__.py" in top and len(top) <= 12


def test_core_imports_no_data_stack():
  modules = ", ".join(["asmnet_jax.core.asm", "asmnet_jax.core.losses", "asmnet_jax.core.metrics",
                       "asmnet_jax.core.geometry", "asmnet_jax.core.pose"])
  code = (f"import sys, {modules}; "
          "print(sorted(m for m in ('tensorflow_datasets', 'grain', 'cv2', 'tensorflow') "
          "if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, cwd="/")
  assert out.stdout.strip() == "[]"


def test_builders_found_next_to_a_foreign_datasets_package(tmp_path):
  # A package named `datasets` (Hugging Face's, say) first on the path must not
  # hide ours, which install as asmnet_jax_datasets.
  fake = tmp_path / "datasets"
  fake.mkdir()
  (fake / "__init__.py").write_text("FOREIGN = True\n")
  code = ("import datasets; assert datasets.FOREIGN; "
          "from asmnet_jax.data import registry; "
          "print(registry.known_datasets(), registry.test_splits('ibug_300w'))")
  env = dict(os.environ, PYTHONPATH=str(tmp_path))
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, cwd=str(tmp_path), env=env)
  assert out.stdout.strip() == (
      "['cofw', 'ibug_300w', 'landmark_folder', 'synthetic_faces', 'wflw'] ('common', "
      "'challenging', 'full')")
