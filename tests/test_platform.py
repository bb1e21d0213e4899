"""The platform: stack pins, import-time extension check, atomic writes, seeding, notebook hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

import symnb
from symnb import atomic_write, load_json, save_json, set_seed
from symnb.nbtools import check

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))


def test_pins_match_import_check():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, version in symnb.REQUIRED_STACK.items():
        assert f"{name}=={version}" in deps
    import torchvision

    assert torch.__version__.split("+")[0] == symnb.REQUIRED_STACK["torch"]
    assert torchvision.__version__.split("+")[0] == symnb.REQUIRED_STACK["torchvision"]


def test_extension_loads():
    from pytorch3d import _C

    assert hasattr(_C, "rasterize_meshes")


def test_broken_extension_error_names_the_fix():
    def broken(name):
        raise ImportError("libc10_cuda.so: cannot open shared object file")

    with pytest.raises(ImportError) as info:
        symnb.check_pytorch3d(import_module=broken)
    msg = str(info.value)
    assert "torch==2.11.0" in msg and "torchvision==0.26.0" in msg and "easypytorch3d" in msg
    assert "libc10_cuda.so" in msg


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    save_json({"x": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write('{"x": 2, "trunc')
            raise RuntimeError("crash mid-write")
    assert load_json(target) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_save_json_converts_tensors(tmp_path):
    save_json({"t": torch.tensor([1.5, 2.0]), "n": np.float32(3.0)}, tmp_path / "r.json")
    assert load_json(tmp_path / "r.json") == {"t": [1.5, 2.0], "n": 3.0}


def test_load_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_json(tmp_path / "bad.json")


def test_set_seed_reproduces_all_generators():
    set_seed(3)
    a = (np.random.rand(), torch.rand(2))
    set_seed(3)
    b = (np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and torch.equal(a[1], b[1])


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stripped_with_one_parameters_cell(nb):
    assert check(nb) == []


def test_parameters_cell_takes_signed_numbers_and_nothing_computed(tmp_path):
    from symnb.nbtools import write

    good = write(tmp_path / "good.ipynb", [("params", 'a = -1\nb = +0.5\nc = "x"\nd = None\ne = True')])
    assert check(good) == []
    for i, line in enumerate(["a = -True", "a = [1]", "a = 1 + 1", "a = -x"]):
        bad = write(tmp_path / f"bad{i}.ipynb", [("params", line)])
        assert check(bad) == [f"bad{i}.ipynb: parameters cell line 1 is not `name = <scalar>`"], line


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_has_a_papermill_test(nb):
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_nb_*.py"))
    assert f'"{nb.name}"' in tests, f"no tests/test_nb_*.py executes {nb.name}"


def test_ruff_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_use_project_root_finds_the_checkout_from_a_subfolder(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT / "nbs")
    assert symnb.project_root() == ROOT
    assert symnb.use_project_root() == ROOT and Path.cwd() == ROOT
    monkeypatch.chdir(tmp_path)  # outside any checkout: the working directory stays
    assert symnb.project_root() is None
    assert symnb.use_project_root() == tmp_path.resolve()
