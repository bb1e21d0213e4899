"""The main job (``make demo`` = ``python -m symnb.demo``).

1. builds the embedded dataset (``data_prep.make_dataset``) unless it is already there;
2. trains each variant of ``configs/demo.yaml`` (baseline, reflection, refinement) on CPU (CUDA if present);
3. evaluates them on the test split, plus the untrained network, the baseline's mean shape alone and
   the baseline symmetrized post hoc (best of l2r / r2l / cent per sample);
4. writes ``results/<run>/summary.csv``, ``results/<run>/<variant>/model.pt`` (loadable by
   :func:`symnb.model.load_model`), per-sample and per-class tables, figures and ``report.md``.

``--smoke`` runs the same code path at CI size (seconds). Re-running resumes finished or
interrupted variants from their checkpoints.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from .evaluate import EvalConfig, evaluate, per_class
from .model import ReconstructionNet, load_model
from .report import plot_curves, plot_metric_bars, plot_reconstructions, save_figure, write_report
from .train import ExperimentConfig, config_from_dict, make_dataset, train
from .utils import atomic_write, save_json, set_seed

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "demo.yaml"

SUMMARY_COLUMNS = ["variant", "symmetry", "sym_mode", "iou_3d", "iou_3d_icp", "chamfer", "hausdorff",
                   "mask_iou", "symmetry_error", "geom_symmetry_error", "az_err", "el_err", "n_params",
                   "n_mean_shape_params",
                   "n_verts", "steps", "train_seconds", "eval_seconds"]


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in (b or {}).items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_demo_config(path: str | Path = DEFAULT_CONFIG, smoke: bool = False,
                     overrides: dict | None = None) -> dict:
    """Read the demo YAML; returns {"base": dict, "variants": {name: dict}, "eval": dict}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"demo config not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    variants = raw.pop("variants", {"baseline": {}})
    smoke_over = raw.pop("smoke", {})
    base = _merge(raw, smoke_over) if smoke else raw
    base = _merge(base, overrides or {})
    return {"base": base, "variants": variants, "eval": base.pop("eval", {})}


def experiment(base: dict, variant: dict, name: str, run_dir: Path) -> ExperimentConfig:
    """The ExperimentConfig of one variant (base sections overridden by the variant's)."""
    d = _merge(base, variant)
    d = {k: v for k, v in d.items() if k in ("model", "loss", "data", "render", "train")}
    cfg = config_from_dict(d)
    cfg.name, cfg.out_dir = name, str(run_dir / name)
    return cfg


def ensure_dataset(cfg: ExperimentConfig) -> Path:
    """Generate the embedded dataset at cfg.data.root if it is missing."""
    from data_prep.make_dataset import make_dataset as generate

    d = cfg.data
    return generate(d.root, classes=tuple(d.classes), per_class=d.per_class, img_size=max(64, d.img_size),
                    seed=d.data_seed, progress=True)


def summary_row(name: str, model: ReconstructionNet, df: pd.DataFrame, steps: int, train_s: float,
                eval_s: float) -> dict:
    """One summary.csv row: test-split means and the model's sizes."""
    row = {"variant": name, "symmetry": model.symmetry,
           "sym_mode": str(model.config.sym_mode) if model.symmetry == "reflection" else "-"}
    for c in SUMMARY_COLUMNS:
        if c in df.columns:
            row[c] = float(df[c].mean())
    row.update(n_params=model.n_params(), n_mean_shape_params=int(model.mean_shape.numel()),
               n_verts=model.n_verts,
               steps=steps, train_seconds=round(train_s, 1), eval_seconds=round(eval_s, 1))
    return row


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="demo", help="results/<run>/ is written (default: demo)")
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="demo YAML (variants and settings)")
    ap.add_argument("--smoke", action="store_true", help="CI-sized run through the same code path")
    ap.add_argument("--steps", type=int, default=None, help="override training steps of every variant")
    ap.add_argument("--variants", default=None, help="comma-separated subset of the config's variants")
    ap.add_argument("--results", default="results", help="parent folder of the run")
    ap.add_argument("--fresh", action="store_true", help="ignore existing checkpoints of this run")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    over = {"train": {"steps": args.steps}} if args.steps else {}
    dc = load_demo_config(args.config, smoke=args.smoke, overrides=over)
    variants = dc["variants"]
    if args.variants:
        wanted = args.variants.split(",")
        missing = [v for v in wanted if v not in variants]
        if missing:
            raise ValueError(f"unknown variants {missing}; the config has {list(variants)}")
        variants = {k: variants[k] for k in wanted}
    run_dir = Path(args.results) / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    ecfg = EvalConfig(**dc["eval"])
    first = experiment(dc["base"], {}, "data", run_dir)
    t0 = time.perf_counter()
    ensure_dataset(first)
    data_s = time.perf_counter() - t0
    train_ds = make_dataset(first.data, "train")
    test_ds = make_dataset(first.data, "test")
    print(f"dataset: {len(train_ds)} train / {len(test_ds)} test images ({data_s:.1f} s)")

    rows, tables, histories, models = [], {}, {}, {}
    for name, over_v in variants.items():
        cfg = experiment(dc["base"], over_v, name, run_dir)
        if args.fresh:
            (Path(cfg.out_dir) / "checkpoint.pt").unlink(missing_ok=True)
        if name == next(iter(variants)):  # the untrained network and its mean shape (step 0)
            set_seed(cfg.train.seed)
            untrained = ReconstructionNet(dataclasses.replace(cfg.model, img_size=cfg.data.img_size))
            t0 = time.perf_counter()
            df0 = evaluate(untrained, test_ds, EvalConfig(**{**dc["eval"], "save_meshes": 0}), progress=False)
            rows.append(summary_row("untrained", untrained, df0, 0, 0.0, time.perf_counter() - t0))
        res = train(cfg, dataset=train_ds)
        model = load_model(res.model_path)
        t0 = time.perf_counter()
        df = evaluate(model, test_ds, ecfg, out_dir=res.out_dir, progress=False)
        ev_s = time.perf_counter() - t0
        df.to_csv(res.out_dir / "per_sample.csv", index=False)
        tables[name] = per_class(df)
        tables[name].to_csv(res.out_dir / "per_class.csv")
        rows.append(summary_row(name, model, df, res.steps, res.train_seconds, ev_s))
        histories[name] = res.history
        models[name] = model
        if model.symmetry == "none":  # mean shape alone, and post-hoc symmetrization (best of 3 modes)
            light = EvalConfig(**{**dc["eval"], "save_meshes": 0})
            dfm = evaluate(model, test_ds, light, mean_shape_only=True, progress=False)
            rows.append(summary_row(f"{name}:mean_shape", model, dfm, res.steps, res.train_seconds, 0.0))
            dfp = evaluate(model, test_ds, light, symmetrize="best", progress=False)
            rows.append(summary_row(f"{name}:posthoc_best", model, dfp, res.steps, res.train_seconds, 0.0))
        print(f"{name}: " + ", ".join(f"{k}={v:.4g}" for k, v in rows[-1].items() if isinstance(v, float)))

    summary = pd.DataFrame(rows)
    summary = summary[[c for c in SUMMARY_COLUMNS if c in summary.columns]]
    with atomic_write(run_dir / "summary.csv") as f:
        summary.to_csv(f, index=False)
    figs = {}
    figs["Metrics vs step"] = save_figure(plot_curves(histories), run_dir / "curves.png").name
    figs["Summary"] = save_figure(plot_metric_bars(summary), run_dir / "summary.png").name
    n_show = min(4, len(test_ds))
    idx = [int(i) for i in torch.linspace(0, len(test_ds) - 1, n_show).round().long()]
    figs["Sample reconstructions and error heat maps"] = save_figure(
        plot_reconstructions(models, test_ds, idx), run_dir / "reconstructions.png").name
    total = time.perf_counter() - t_start
    notes = (f"Dataset `{first.data.root}` ({', '.join(first.data.classes)}; {len(train_ds)} train / "
             f"{len(test_ds)} test images, {first.data.img_size} px). Total wall time {total / 60:.1f} min "
             f"(data {data_s:.0f} s). `untrained` is the network at step 0 (sphere mean shape); "
             "`baseline:mean_shape` evaluates the learned class-blended mean shape without deformation; "
             "`baseline:posthoc_best` symmetrizes the baseline's output (best of l2r/r2l/cent per sample).")
    write_report(run_dir, summary, tables, figs, notes)
    save_json({"total_seconds": total, "data_seconds": data_s, "variants": list(variants),
               "smoke": args.smoke}, run_dir / "run.json")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False))
    print(f"wrote {run_dir}/summary.csv and {run_dir}/report.md in {total / 60:.1f} min")
    return summary


if __name__ == "__main__":
    main()
