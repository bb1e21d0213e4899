"""The variants x seeds runner used by the main job (``symnb.demo``) and ``nbs/06_ablations``.

For each variant of an :class:`ExperimentConfig` and each seed: train (resuming finished or
interrupted runs from their checkpoints), evaluate on the test split, and collect one row of
test-split means. With ``extras`` it also evaluates the untrained network (step 0) and, for every
variant without symmetry, its mean shape alone and its output symmetrized post hoc (best of l2r /
r2l / cent per image). Writes ``runs.csv`` (one row per run) and ``summary.csv`` (mean and std over
seeds) into the run folder.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from ..data import build_dataset
from ..model import ReconstructionNet, load_model
from ..utils import atomic_write, set_seed
from .config import ExperimentConfig, variant_config
from .evaluate import evaluate, per_class
from .fidelity import artefact_table, input_view_gain, texture_fidelity
from .report import aggregate, steps_to_reach
from .results import RunResult
from .stats import paired_differences
from .train import train

#: test-split means kept per run (lower is better except the IoUs)
RUN_METRICS = ("iou_3d_drc", "iou_3d", "iou_3d_icp", "chamfer", "hausdorff", "mask_iou", "mask_iou_gt_camera",
               "symmetry_error", "geom_symmetry_error", "rot_err", "az_err", "el_err")


#: per-image metrics compared with the baseline, with confidence intervals
PAIRED_METRICS = ("iou_3d_drc", "iou_3d", "mask_iou", "rot_err", "chamfer", "symmetry_error")


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


def _row(name: str, seed: int, model: ReconstructionNet, df: pd.DataFrame, steps: int, train_s: float,
         eval_s: float) -> dict:
    row = {"variant": name, "seed": seed, "symmetry": model.symmetry,
           "sym_mode": str(model.config.sym_mode) if model.symmetry != "none" else "-"}
    row.update({c: float(df[c].mean()) for c in RUN_METRICS if c in df.columns})
    if "rot_err" in df.columns:  # camera errors as papers give them: median and accuracy at 30 degrees
        row.update(rot_err_median=float(df.rot_err.median()), rot_acc30=float((df.rot_err < 30).mean()))
    row.update(n_params=model.n_params(), n_mean_shape_params=int(model.mean_shape.numel()),
               n_verts=model.n_verts, steps=steps, train_seconds=round(train_s, 1),
               eval_seconds=round(eval_s, 1))
    return row


#: per-sample table files of the evaluated splits (``per_sample<suffix>.csv``)
SPLIT_FILES = {"test": "", "novel": "_novelcad", "occluded": "_occluded", "clean": "_clean"}

#: the columns each extra split adds to a run's row: (prefix, metrics)
SPLIT_COLUMNS = {"novel": ("novel_", ("iou_3d_drc", "mask_iou", "rot_err_median", "rot_acc30")),
                 "occluded": ("occ_", ("iou_3d_drc", "mask_iou", "rot_err_median")),
                 "clean": ("clean_", ("iou_3d_drc", "mask_iou", "rot_err_median"))}

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
    size, plain = c.model.img_size, replace(c.data, flip=False, colour_jitter=0.0, crop_jitter=0.0)
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


def _same_outputs(a: ReconstructionNet, b: ReconstructionNet, dataset, n: int = 4) -> bool:
    """Whether two networks give identical meshes and cameras for the first ``n`` images (the check that
    a texture-only variant may share its source's geometric evaluation)."""
    images = torch.stack([dataset[i]["image"] for i in range(min(n, len(dataset)))])
    oa, ob = a.reconstruct(images), b.reconstruct(images)
    return all(torch.equal(oa[k], ob[k]) for k in ("verts", "scale", "trans", "quat"))


def _claims(out: RunResult, name: str, seed: int, model, test_ds, vc: ExperimentConfig, posthoc: bool,
            geometry_of: str | None = None):
    """Texture fidelity per view, the input view's gain over the mean colour, and mesh artefacts of one
    run (and fidelity and artefacts of its post-hoc l2r output); a texture-only variant takes the
    artefacts of the variant ``geometry_of`` (the same meshes)."""
    n = vc.eval.fidelity_items
    for sym in (None, "l2r") if posthoc else (None,):
        label = name if sym is None else f"{name}:posthoc_{sym}"
        fid = texture_fidelity(model, test_ds, max_items=n, render=vc.render, symmetrize=sym)
        if sym is None:  # rendered with the annotated camera (the protocol) and with the predicted one
            gains = [input_view_gain(model, test_ds, max_items=n, render=vc.render, camera=c)
                     for c in ("gt", "pred")]
            gain = gains[0].join(gains[1][["psnr", "gain"]].add_suffix("_pred_camera"))
            out.gains.append(gain.assign(variant=label, seed=seed))
        same = [a for a in out.artefacts if geometry_of and sym is None
                and a.variant.iloc[0] == geometry_of and a.seed.iloc[0] == seed]
        art = same[0].drop(columns=["variant", "seed"]) if same else artefact_table(
            model, test_ds, max_items=n, symmetrize=sym)
        out.fidelity.append(fid.assign(variant=label, seed=seed))
        out.artefacts.append(art.assign(variant=label, seed=seed))


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


def run(cfg: ExperimentConfig, run_dir: str | Path, variants: list[str] | None = None,
        seeds: list[int] | None = None, fresh: bool = False, extras: bool = True, log=print,
        jobs: int = 1) -> RunResult:
    """Train and evaluate every (variant, seed); see the module docstring.

    Args:
        cfg: the experiment (its ``variants`` and ``seeds``).
        run_dir: parent of the variants' output folders; runs.csv and summary.csv go here.
        variants: subset of ``cfg.variants`` (default all; "base" if the config has none).
        seeds: subset of seeds (default ``cfg.seeds``).
        fresh: retrain from scratch instead of resuming existing checkpoints.
        extras: also evaluate the untrained network and the baselines' mean shape / post-hoc rows.
        log: a print-like function for one line per run.
        jobs: train this many (variant, seed) runs at a time as separate processes first; then as many
            processes evaluate the test splits of the runs with shapes and cameras of their own, while
            this process collects them (the trained runs resume at their last step) and computes the
            claims.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
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
    data_cache: dict = {}

    def splits(c: ExperimentConfig) -> dict:
        key = (repr(c.data), c.model.img_size)
        if key not in data_cache:
            data_cache[key] = _splits(c)
        return data_cache[key]

    pending, pool = {}, None  # (variant, seed) -> its evaluation in a worker process (jobs > 1)
    if jobs > 1:  # a fine-tune starts once its source (same seed) is trained
        configs, index = [], {}
        for name in names:
            for seed in seeds:
                index[name, seed] = len(configs)
                configs.append(variant_config(cfg, name, seed, run_dir))
        after = {index[n, s]: index.get((_source(cfg, n), s)) for n in names for s in seeds}
        for c in configs:
            ensure_dataset(c)
        _train_in_parallel(configs, jobs, fresh, after)
        fresh = False  # the runs just trained are the ones to evaluate
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # the runs with shapes and cameras of their own are evaluated by `jobs` processes meanwhile
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"))
        for name in names:
            for seed in seeds:
                vc = variant_config(cfg, name, seed, run_dir)
                if _geometry_source(cfg, name, seed, run_dir) is None:
                    model_file = str(Path(vc.out_dir) / "model.pt")
                    pending[name, seed] = pool.submit(_evaluate_job, vc.to_dict(), model_file, 1)
    rows, out, trained = [], RunResult(pd.DataFrame(), pd.DataFrame()), {}
    evaluated: dict = {}  # (variant, seed) -> (per-split tables, model) of the networks evaluated here
    # extra evaluations (untrained, mean shape, post hoc, held-out CADs) skip the slow surface distances
    light = replace(cfg.eval, save_meshes=0, icp=False, geom_symmetry=False, distances=False)
    for name in names:
        for seed in seeds:
            vc = variant_config(cfg, name, seed, run_dir)
            data = splits(vc)
            test_ds = data["test"]
            if extras and not rows:  # the untrained network (step 0) of the first variant
                set_seed(seed)
                untrained = ReconstructionNet(vc.model)
                t0 = time.perf_counter()
                df0 = evaluate(untrained, test_ds, light, progress=False, render=vc.render)
                rows.append(_row("untrained", seed, untrained, df0, 0, 0.0, time.perf_counter() - t0))
            res = train(vc, dataset=data["train"], resume=not fresh, val_dataset=data.get("val"),
                        train_eval_dataset=data.get("train_eval"))
            model = load_model(res.model_path)
            shared = evaluated.get((_geometry_source(cfg, name, seed, run_dir), seed))
            if shared is not None and not _same_outputs(model, shared[1], test_ds):
                log(f"{name} seed {seed}: shapes or cameras differ from its source's; evaluated anew")
                shared = None
            if shared is None:  # a network of its own shapes and cameras
                job = pending.pop((name, seed), None)
                if job is not None:
                    tables, ev_s = job.result()
                else:
                    t0 = time.perf_counter()
                    tables = _evaluate_splits(model, vc, data, light, res.out_dir)
                    ev_s = time.perf_counter() - t0
                evaluated[name, seed] = (tables, model)
            else:  # only its texture differs from its source's: the geometric evaluation is the same
                tables, ev_s = shared[0], 0.0
                log(f"{name} seed {seed}: texture-only variant, geometric metrics of its source")
            for split, dfs in tables.items():
                with atomic_write(res.out_dir / f"per_sample{SPLIT_FILES[split]}.csv") as f:
                    dfs.to_csv(f, index=False)
            df = tables["test"]
            table = per_class(df)
            with atomic_write(res.out_dir / "per_class.csv") as f:
                table.to_csv(f)
            rows.append(_row(name, seed, model, df, res.steps, res.train_seconds, ev_s))
            for split, (prefix, keys) in SPLIT_COLUMNS.items():
                if split in tables:
                    extra = _row(name, seed, model, tables[split], 0, 0, 0)
                    rows[-1].update({prefix + k: v for k, v in extra.items() if k in keys})
            src = _source(cfg, name)
            if src in trained:  # fine-tuned: its steps follow its source's
                out.start_steps[name] = trained[src]
            trained.setdefault(name, res.steps)
            out.histories.setdefault(name, []).append(res.history)
            out.val_histories.setdefault(name, []).append(res.val_history)
            out.per_sample.setdefault(name, []).append(df)
            out.models.setdefault(name, model)
            out.renders.setdefault(name, vc.render)
            out.per_class.setdefault(name, table)
            if vc.eval.fidelity_items and hasattr(test_ds, "cad_texture"):
                _claims(out, name, seed, model, test_ds, vc, extras and model.symmetry == "none",
                        geometry_of=_geometry_source(cfg, name, seed, run_dir) if shared else None)
            if extras and model.symmetry == "none":
                evl = replace(light, max_items=vc.eval.max_items)
                dfm = evaluate(model, test_ds, evl, mean_shape_only=True, progress=False, render=vc.render)
                rows.append(_row(f"{name}:mean_shape", seed, model, dfm, res.steps, res.train_seconds, 0.0))
                out.per_sample.setdefault(f"{name}:mean_shape", []).append(dfm)
                dfp = evaluate(model, test_ds, evl, symmetrize="best", progress=False, render=vc.render)
                rows.append(_row(f"{name}:posthoc_best", seed, model, dfp, res.steps, res.train_seconds, 0.0))
                out.per_sample.setdefault(f"{name}:posthoc_best", []).append(dfp)
            mine = rows[-1 if model.symmetry != "none" or not extras else -3]
            shown = [f"{k}={mine[k]:.4g}" for k in ("iou_3d", "mask_iou", "chamfer") if k in mine]
            log(f"{name} seed {seed}: " + ", ".join(shown))
    if pool is not None:
        pool.shutdown()
    out.runs = pd.DataFrame(rows)
    novel = ("novel_iou_3d_drc", "novel_mask_iou", "novel_rot_err_median", "novel_rot_acc30",
             *(f"{p}{k}" for p in ("occ_", "clean_") for k in ("iou_3d_drc", "mask_iou", "rot_err_median")))
    out.summary = aggregate(out.runs, RUN_METRICS + ("rot_err_median", "rot_acc30") + novel
                            + ("train_seconds",)).join(
        out.runs.groupby("variant", sort=False)[["symmetry", "sym_mode", "n_params", "n_mean_shape_params",
                                                 "n_verts", "steps"]].first())
    if "baseline" in out.per_sample and len(out.per_sample) > 1:
        out.paired = paired_differences(out.per_sample, "baseline", PAIRED_METRICS)
        with atomic_write(run_dir / "paired.csv") as f:
            out.paired.to_csv(f, index=False)
        base_val = [h[-1]["val_iou_3d_drc"] for h in out.val_histories.get("baseline", []) if h]
        if base_val:  # steps each variant needs to reach the baseline's final validation 3-D IoU
            target = sum(base_val) / len(base_val)
            reach = steps_to_reach(out.val_histories, "val_iou_3d_drc", target, window=1)
            out.summary["steps_to_baseline"] = pd.Series(reach)
    tables = ((out.fidelity_table(), "fidelity.csv"), (out.fidelity_paired(), "fidelity_paired.csv"),
              (out.gain_table(), "input_gain.csv"), (out.gain_paired(), "input_gain_paired.csv"),
              (out.artefact_summary(), "artefacts.csv"))
    for table, fname in tables:
        if len(table):
            with atomic_write(run_dir / fname) as f:
                table.to_csv(f)
    with atomic_write(run_dir / "runs.csv") as f:
        out.runs.to_csv(f, index=False)
    with atomic_write(run_dir / "summary.csv") as f:
        out.summary.to_csv(f)
    return out
