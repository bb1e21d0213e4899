"""The jobs of a run: which (variant, seed) runs there are, their data, and their training and
evaluation in worker processes.

:func:`plan` lists the :class:`Job` s of an experiment (a fine-tune after its source; a texture-only
variant knows whose shapes and cameras it shares), :func:`train_jobs` trains them in processes (a
fine-tune as soon as its source is trained), :func:`submit_evaluations` evaluates the test splits of
the trained ones in processes. :mod:`symnb.experiment.runner` collects the results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data import build_dataset
from ..model import load_model
from .config import ExperimentConfig, variant_config
from .evaluate import evaluate
from .train import train


def ensure_dataset(cfg: ExperimentConfig) -> Path:
    """Generate the embedded benchmark at ``cfg.data.root`` when the data config asks for it
    (``data.generate``) and the folder is missing; a dataset made with the same settings is reused,
    one the generator made with other settings is regenerated."""
    root = Path(cfg.data.root)
    if cfg.data.name != "pascal3d" or not cfg.data.generate:
        return root
    from data_prep.make_dataset import make_dataset as generate

    opts = {"img_size": max(64, cfg.model.img_size), **cfg.data.generate}
    # a dataset the generator made (dataset.json) with other settings is regenerated; anything else is refused
    ours = (root / "dataset.json").is_file()
    return generate(root, classes=tuple(cfg.data.classes), progress=cfg.train.progress, overwrite=ours,
                    **opts)


#: per-sample table files of the evaluated splits (``per_sample<suffix>.csv``)
SPLIT_FILES = {"test": "", "novel": "_novelcad", "occluded": "_occluded", "clean": "_clean"}

#: settings that change only a network's texture, never its shapes or cameras
TEXTURE_FIELDS = {"model": ("texture", "tex_size", "uv_map", "symmetric_texture", "texture_source"),
                  "render": ("texture_mode", "atlas_size")}


def _evaluate_splits(model, vc: ExperimentConfig, data: dict, light, out_dir) -> dict:
    """Per-sample tables of the test split (``vc.eval``) and, where the benchmark has them, of the
    held-out CAD instances and the occluded test images with their clean originals (``light``)."""
    tables = {"test": evaluate(model, data["test"], vc.eval, out_dir=out_dir, progress=False,
                               render=vc.render)}
    for split in ("novel", "occluded", "clean"):
        if split in data:
            tables[split] = evaluate(model, data[split], light, progress=False, render=vc.render)
    return tables


def _splits(c: ExperimentConfig) -> dict:
    """The datasets a run trains and is evaluated on: train, test, and where the benchmark has them the
    held-out CAD instances (novel), the occluded test images and their clean originals, and with
    validation the validation split and the unaugmented training images (train_eval)."""
    ensure_dataset(c)
    size, plain = c.model.img_size, c.data.unaugmented()
    data = {"train": build_dataset(c.data, "train", size), "test": build_dataset(c.data, "test", size)}
    try:  # the held-out CAD instances (generated benchmark: <class>_novelcad_test.txt)
        data["novel"] = build_dataset(replace(c.data, index_name="novelcad"), "test", size)
    except FileNotFoundError:
        pass
    try:  # occluded copies of test images (<class>_occluded_test.txt) and their clean originals
        data["occluded"] = build_dataset(replace(c.data, index_name="occluded"), "test", size)
        data["clean"] = _originals(data["test"], data["occluded"])
    except FileNotFoundError:
        pass
    if c.train.val_every:
        data["val"] = build_dataset(c.data, "eval", size)
        data["train_eval"] = build_dataset(plain, "train", size)
    return data


def _evaluate_job(cfg_dict: dict, model_path: str, threads: int) -> tuple[dict, float]:
    """:func:`_evaluate_splits` of one trained run in a worker process (``run(..., jobs=N)``), and the
    seconds it took."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    vc = ExperimentConfig.from_dict(cfg_dict)
    light = replace(vc.eval, save_meshes=0, icp=False, geom_symmetry=False, distances=False)
    tables = _evaluate_splits(load_model(model_path), vc, _splits(vc), light, vc.out_dir)
    return tables, time.perf_counter() - t0


def _geometry_source(cfg: ExperimentConfig, name: str, seed: int, run_dir) -> str | None:
    """The variant whose shapes and cameras ``name`` has: its fine-tuning source, when ``name`` trains
    no step and its settings differ from the source's in texture settings alone (``TEXTURE_FIELDS``)."""
    src = _source(cfg, name)
    if src is None:
        return None
    a, b = variant_config(cfg, name, seed, run_dir), variant_config(cfg, src, seed, run_dir)
    if a.train.steps != 0:
        return None
    for section in ("model", "render", "data", "eval"):
        da, db = getattr(a, section).to_dict(), getattr(b, section).to_dict()
        for key in TEXTURE_FIELDS.get(section, ()):
            da.pop(key, None), db.pop(key, None)
        if da != db:
            return None
    return src


def _originals(test, occluded):
    """The clean test items whose occluded copies (``<id>_occ``) ``occluded`` holds, in its order."""
    where = {i: k for k, (_, i) in enumerate(test.items)}
    picked = [where[i.removesuffix("_occ")] for _, i in occluded.items]
    sub = torch.utils.data.Subset(test, picked)
    sub.cad_mesh = test.cad_mesh
    return sub


def _source(cfg: ExperimentConfig, name: str) -> str | None:
    """The variant ``name`` fine-tunes (``train.init_from: "@variant"``), or None."""
    src = (cfg.variants.get(name, {}).get("train") or {}).get("init_from") or ""
    return src[1:] if src.startswith("@") else None


def _train_job(cfg_dict: dict, fresh: bool, threads: int) -> str:
    """One (variant, seed) training in a worker process (``run(..., jobs=N)``)."""
    import torch

    torch.set_num_threads(threads)
    vc = ExperimentConfig.from_dict(cfg_dict)
    return str(train(vc, resume=not fresh).model_path)


def _train_in_parallel(configs: list[ExperimentConfig], jobs: int, fresh: bool,
                       after: dict[int, int | None] | None = None) -> None:
    """Train runs as ``jobs`` processes at a time (spawned, so CUDA and threads are safe).

    ``after[i] = j`` makes run i wait for run j (a fine-tune for its source); a run starts as soon as
    a process is free and its source is trained, so fine-tunes overlap the remaining sources. Each run
    gets the cores divided by the runs that can go at the moment it starts (a baseline whose fine-tunes
    wait for it trains on all of them).
    """
    import multiprocessing as mp
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    after = after or {}
    cores = os.cpu_count() or 1
    todo, done, running = list(range(len(configs))), set(), {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        while todo or running:
            ready = [i for i in todo if after.get(i) is None or after[i] in done]
            start = ready[: jobs - len(running)]
            threads = max(1, cores // max(1, len(running) + len(start)))
            for i in start:
                todo.remove(i)
                running[pool.submit(_train_job, configs[i].to_dict(), fresh, threads)] = i
            if not running:
                raise ValueError("fine-tuned runs wait for sources that are not among the runs")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                fut.result()
                done.add(running.pop(fut))


@dataclass
class Job:
    """One (variant, seed) run of a plan.

    Attributes:
        name, seed: the variant and seed; config: its resolved config (``variant_config``).
        source: the variant it fine-tunes (``train.init_from: "@source"``), or None.
        geometry_of: the variant whose shapes and cameras it has (a texture-only variant, which shares
            that variant's geometric evaluation), or None.
    """

    name: str
    seed: int
    config: ExperimentConfig
    source: str | None = None
    geometry_of: str | None = None


def plan(cfg: ExperimentConfig, run_dir: str | Path, variants: list[str] | None = None,
         seeds: list[int] | None = None) -> list[Job]:
    """The (variant, seed) runs of an experiment, in order: a fine-tune after its source.

    Args:
        cfg: the experiment; run_dir: parent of the runs' folders; variants: a subset of
            ``cfg.variants`` (default all; "base" if the config has none); seeds: default ``cfg.seeds``.
    Raises:
        ValueError: an unknown variant, or a fine-tune listed before its source.
    """
    names = list(variants or cfg.variants or ["base"])
    missing = [v for v in names if v != "base" and v not in cfg.variants]
    if missing:
        raise ValueError(f"unknown variants {missing}; the config has {list(cfg.variants)}")
    seeds = list(seeds if seeds is not None else cfg.seeds)
    cfg = replace(cfg, seeds=tuple(seeds))  # the run's seeds decide the folders (one seed: no seed folder)
    for i, name in enumerate(names):  # fine-tuned variants need their source trained first
        src = _source(cfg, name)
        if src is not None and src not in names[:i]:
            raise ValueError(f"variant {name!r} fine-tunes {src!r}: list {src!r} before it")
    return [Job(name, seed, variant_config(cfg, name, seed, run_dir), _source(cfg, name),
                _geometry_source(cfg, name, seed, run_dir)) for name in names for seed in seeds]


def train_jobs(jobs: list[Job], processes: int, fresh: bool = False) -> None:
    """Train the jobs in ``processes`` processes, a fine-tune as soon as its source is trained."""
    index = {(j.name, j.seed): i for i, j in enumerate(jobs)}
    after = {i: index.get((j.source, j.seed)) for i, j in enumerate(jobs)}
    for j in jobs:
        ensure_dataset(j.config)
    _train_in_parallel([j.config for j in jobs], processes, fresh, after)


def submit_evaluations(jobs: list[Job], processes: int):
    """Evaluate the test splits of the trained jobs with shapes and cameras of their own in ``processes``
    processes; returns the pool and {(variant, seed): future of (tables, seconds)}."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=processes, mp_context=mp.get_context("spawn"))
    pending = {(j.name, j.seed): pool.submit(_evaluate_job, j.config.to_dict(),
                                             str(Path(j.config.out_dir) / "model.pt"), 1)
               for j in jobs if j.geometry_of is None}
    return pool, pending
