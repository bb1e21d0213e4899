"""Shared fixtures: seeding, and running notebooks headless with papermill."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from symnb import set_seed

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
NB_BUILD = ROOT / "build" / "nb"

# `make test` runs the test files in pytest-xdist workers that share the cores: each worker, and the
# notebook kernels and command-line runs it starts, gets its share of threads (oversubscribed OpenMP
# threads spin: two notebooks of two threads each on two cores ran 3-4x slower than one)
THREADS = max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
torch.set_num_threads(THREADS)


def pytest_collection_modifyitems(items):
    """Files with a ``slow`` test first, then the notebooks, then the rest (collection order within
    each; the sort is stable): `make test`'s xdist workers take whole files in this order
    (``--dist loadfile --no-loadscope-reorder``), so the long ones do not end the run on one worker
    while the other waits."""
    def rank(item) -> int:
        return 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("notebook") else 2

    first = {}
    for item in items:
        first[item.path] = min(first.get(item.path, 2), rank(item))
    items.sort(key=lambda item: first[item.path])


@pytest.fixture(autouse=True)
def _seed():
    set_seed(0)


def execute_notebook(name: str, **params) -> dict:
    """Run ``nbs/<name>`` with papermill and the given parameters; return its ``results.json``.

    The executed copy goes to ``build/nb/<name>`` (ignored by git; `make test` then runs
    nbval over these smoke-parameterised copies) and the notebook's own outputs to
    ``build/nb/<stem>/`` through its ``out_dir`` parameter.
    """
    import papermill as pm

    stem = Path(name).stem
    out_dir = NB_BUILD / stem
    results = out_dir / "results.json"
    results.unlink(missing_ok=True)
    params = {"out_dir": str(out_dir), **params}
    NB_BUILD.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(NBS / name), str(NB_BUILD / name), parameters=params, cwd=str(ROOT),
        kernel_name="python3", progress_bar=False,
    )
    assert results.is_file(), f"{name} did not write {results}"
    return json.loads(results.read_text())


@pytest.fixture
def run_notebook():
    return execute_notebook
