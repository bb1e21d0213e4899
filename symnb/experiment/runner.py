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

from ..model import ReconstructionNet, load_model
from ..utils import atomic_write, set_seed
from .artefacts import artefact_table
from .config import ExperimentConfig
from .evaluate import evaluate, per_class
from .fidelity import input_view_gain, texture_fidelity
from .jobs import SPLIT_FILES, Job, _evaluate_splits, _splits, plan, submit_evaluations, train_jobs
from .report import aggregate, steps_to_reach
from .results import RunResult
from .stats import PAIRED_METRICS, paired_differences
from .train import train

#: test-split means kept per run (lower is better except the IoUs)
RUN_METRICS = ("iou_3d_drc", "iou_3d", "iou_3d_icp", "chamfer", "hausdorff", "mask_iou", "mask_iou_gt_camera",
               "symmetry_error", "geom_symmetry_error", "rot_err", "az_err", "el_err")


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


#: the columns each extra split adds to a run's row: (prefix, metrics)
SPLIT_COLUMNS = {"novel": ("novel_", ("iou_3d_drc", "mask_iou", "rot_err_median", "rot_acc30")),
                 "occluded": ("occ_", ("iou_3d_drc", "mask_iou", "rot_err_median")),
                 "clean": ("clean_", ("iou_3d_drc", "mask_iou", "rot_err_median"))}

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
            gain = input_view_gain(model, test_ds, max_items=vc.eval.gain_items or n, render=vc.render,
                                   cameras=("gt", "pred"))
            out.gains.append(gain.assign(variant=label, seed=seed))
        same = [a for a in out.artefacts if geometry_of and sym is None
                and a.variant.iloc[0] == geometry_of and a.seed.iloc[0] == seed]
        art = same[0].drop(columns=["variant", "seed"]) if same else artefact_table(
            model, test_ds, max_items=n, symmetrize=sym)
        out.fidelity.append(fid.assign(variant=label, seed=seed))
        out.artefacts.append(art.assign(variant=label, seed=seed))


class _Collector:
    """Collects the jobs' evaluations into a :class:`RunResult` (the rows of runs.csv, histories,
    per-sample tables, claims), in the jobs' order; see :func:`run`."""

    def __init__(self, cfg: ExperimentConfig, extras: bool, log, pending: dict):
        self.out = RunResult(pd.DataFrame(), pd.DataFrame(), reference=cfg.reference,
                             texture_reference=cfg.texture_reference)
        self.rows = []
        self.trained, self.evaluated = {}, {}
        self.extras, self.log, self.pending, self._data = extras, log, pending, {}
        # extra evaluations (untrained, mean shape, post hoc, held-out CADs) skip the slow surface distances
        self.light = replace(cfg.eval, save_meshes=0, icp=False, geom_symmetry=False, distances=False)

    def splits(self, c: ExperimentConfig) -> dict:
        key = (repr(c.data), c.model.img_size)
        if key not in self._data:
            self._data[key] = _splits(c)
        return self._data[key]

    def _tables(self, job: Job, model, data: dict, out_dir) -> tuple[dict, float, bool]:
        """The job's per-split tables (from its worker, evaluated here, or its source's when only its
        texture differs), the seconds they took and whether they are its source's."""
        shared = self.evaluated.get((job.geometry_of, job.seed))
        if shared is not None and not _same_outputs(model, shared[1], data["test"]):
            self.log(f"{job.name} seed {job.seed}: shapes or cameras differ from its source's; evaluated "
                     "anew")
            shared = None
        if shared is not None:  # only its texture differs from its source's: the same geometric evaluation
            self.log(f"{job.name} seed {job.seed}: texture-only variant, geometric metrics of its source")
            return shared[0], 0.0, True
        future = self.pending.pop((job.name, job.seed), None)
        if future is not None:
            tables, seconds = future.result()
        else:
            t0 = time.perf_counter()
            tables = _evaluate_splits(model, job.config, data, self.light, out_dir)
            seconds = time.perf_counter() - t0
        self.evaluated[job.name, job.seed] = (tables, model)
        return tables, seconds, False

    def add(self, job: Job, fresh: bool) -> None:
        """Train (or resume) one job, evaluate it and add its rows and tables."""
        vc, name, seed, out = job.config, job.name, job.seed, self.out
        data = self.splits(vc)
        test_ds = data["test"]
        if self.extras and not self.rows:  # the untrained network (step 0) of the first variant
            set_seed(seed)
            untrained = ReconstructionNet(vc.model)
            t0 = time.perf_counter()
            df0 = evaluate(untrained, test_ds, self.light, progress=False, render=vc.render)
            self.rows.append(_row("untrained", seed, untrained, df0, 0, 0.0, time.perf_counter() - t0))
        res = train(vc, dataset=data["train"], resume=not fresh, val_dataset=data.get("val"),
                    train_eval_dataset=data.get("train_eval"))
        model = load_model(res.model_path)
        tables, ev_s, shared = self._tables(job, model, data, res.out_dir)
        for split, dfs in tables.items():
            with atomic_write(res.out_dir / f"per_sample{SPLIT_FILES[split]}.csv") as f:
                dfs.to_csv(f, index=False)
        df = tables["test"]
        table = per_class(df)
        with atomic_write(res.out_dir / "per_class.csv") as f:
            table.to_csv(f)
        row = _row(name, seed, model, df, res.steps, res.train_seconds, ev_s)
        for split, (prefix, keys) in SPLIT_COLUMNS.items():
            if split in tables:
                extra = _row(name, seed, model, tables[split], 0, 0, 0)
                row.update({prefix + k: v for k, v in extra.items() if k in keys})
        self.rows.append(row)
        if job.source in self.trained:  # fine-tuned: its steps follow its source's
            out.start_steps[name] = self.trained[job.source]
        self.trained.setdefault(name, res.steps)
        out.histories.setdefault(name, []).append(res.history)
        out.val_histories.setdefault(name, []).append(res.val_history)
        out.per_sample.setdefault(name, []).append(df)
        out.models.setdefault(name, model)
        out.renders.setdefault(name, vc.render)
        out.per_class.setdefault(name, table)
        if vc.eval.fidelity_items and hasattr(test_ds, "cad_texture"):
            _claims(out, name, seed, model, test_ds, vc, self.extras and model.symmetry == "none",
                    geometry_of=job.geometry_of if shared else None)
        if self.extras and model.symmetry == "none":
            evl = replace(self.light, max_items=vc.eval.max_items)
            for label, kw in (("mean_shape", {"mean_shape_only": True}),
                              ("posthoc_best", {"symmetrize": "best"})):
                dfx = evaluate(model, test_ds, evl, progress=False, render=vc.render, **kw)
                self.rows.append(_row(f"{name}:{label}", seed, model, dfx, res.steps, res.train_seconds,
                                      0.0))
                out.per_sample.setdefault(f"{name}:{label}", []).append(dfx)
        shown = [f"{k}={row[k]:.4g}" for k in ("iou_3d", "mask_iou", "chamfer") if k in row]
        self.log(f"{name} seed {seed}: " + ", ".join(shown))

    def result(self, run_dir: Path) -> RunResult:
        """The :class:`RunResult` of the collected jobs, with its tables written into ``run_dir``."""
        out = self.out
        out.runs = pd.DataFrame(self.rows)
        novel = ("novel_iou_3d_drc", "novel_mask_iou", "novel_rot_err_median", "novel_rot_acc30",
                 *(f"{p}{k}" for p in ("occ_", "clean_")
                   for k in ("iou_3d_drc", "mask_iou", "rot_err_median")))
        out.summary = aggregate(out.runs, RUN_METRICS + ("rot_err_median", "rot_acc30") + novel
                                + ("train_seconds",)).join(
            out.runs.groupby("variant", sort=False)[["symmetry", "sym_mode", "n_params",
                                                     "n_mean_shape_params", "n_verts", "steps"]].first())
        ref = out.reference
        for field_name, name in (("reference", ref), ("texture_reference", out.texture_reference)):
            if name is not None and name not in out.per_sample:
                self.log(f"{field_name} {name!r} is not among the run's variants: no paired table against it")
        if ref in out.per_sample and len(out.per_sample) > 1:
            out.paired = paired_differences(out.per_sample, ref, PAIRED_METRICS)
            ref_val = [h[-1]["val_iou_3d_drc"] for h in out.val_histories.get(ref, []) if h]
            if ref_val:  # steps each variant needs to reach the reference's final validation 3-D IoU
                target = sum(ref_val) / len(ref_val)
                reach = steps_to_reach(out.val_histories, "val_iou_3d_drc", target, window=1)
                out.summary["steps_to_reference"] = pd.Series(reach)
        tables = ((out.paired, "paired.csv", False), (out.fidelity_table(), "fidelity.csv", True),
                  (out.fidelity_paired(), "fidelity_paired.csv", True),
                  (out.gain_table(), "input_gain.csv", True),
                  (out.gain_paired(), "input_gain_paired.csv", True),
                  (out.artefact_summary(), "artefacts.csv", True), (out.runs, "runs.csv", False),
                  (out.summary, "summary.csv", True))
        for table, fname, index in tables:
            if len(table) or fname in ("runs.csv", "summary.csv"):
                with atomic_write(run_dir / fname) as f:
                    table.to_csv(f, index=index)
        return out


def run(cfg: ExperimentConfig, run_dir: str | Path, variants: list[str] | None = None,
        seeds: list[int] | None = None, fresh: bool = False, extras: bool = True, log=print,
        jobs: int = 1) -> RunResult:
    """Train and evaluate every (variant, seed): :func:`plan`, :func:`train_jobs` and
    :func:`submit_evaluations` (with ``jobs`` > 1), then the jobs collected in order; see the module
    docstring.

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
    todo = plan(cfg, run_dir, variants, seeds)
    pool, pending = None, {}
    if jobs > 1:
        train_jobs(todo, jobs, fresh)
        fresh = False  # the runs just trained are the ones to evaluate
        pool, pending = submit_evaluations(todo, jobs)
    collector = _Collector(cfg, extras, log, pending)
    try:
        for job in todo:
            collector.add(job, fresh)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return collector.result(run_dir)
