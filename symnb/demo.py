"""The main job (``make demo`` = ``python -m symnb.demo``).

1. builds the embedded dataset (``data_prep.make_dataset``) unless it is already there;
2. trains each variant of ``configs/demo.yaml`` (baseline, reflection_ft, refinement_ft, the texture
   ablations) on CPU (CUDA if present) through the variants x seeds runner
   (:func:`symnb.experiment.run`);
3. evaluates them on the test split, plus the untrained network, the baseline's mean shape alone and
   the baseline symmetrized post hoc (best of l2r / r2l / cent per sample);
4. writes ``results/<run>/summary.csv`` and ``runs.csv``, ``results/<run>/<variant>/model.pt``
   (loadable by :func:`symnb.model.load_model`), per-sample and per-class tables, figures and ``report.md``.

``--smoke`` runs the same code path at CI size (seconds). Re-running resumes finished or
interrupted variants from their checkpoints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from .cli_errors import add_debug_flag, run_main
from .config import merge, parse_overrides
from .data import build_dataset
from .experiment import load_experiment, run
from .experiment.report import write_run_report
from .utils import save_json

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "demo.yaml"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="symnb demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="demo", help="results/<run>/ is written (default: demo)")
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="experiment YAML (variants and settings)")
    ap.add_argument("--smoke", action="store_true", help="CI-sized run through the same code path")
    ap.add_argument("--steps", type=int, default=None, help="override training steps of every variant")
    ap.add_argument("--variants", default=None, help="comma-separated subset of the config's variants")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: the config's)")
    ap.add_argument("--results", default="results", help="parent folder of the run")
    ap.add_argument("--fresh", action="store_true", help="ignore existing checkpoints of this run")
    ap.add_argument("--jobs", type=int, default=1, help="train this many (variant, seed) runs at a time, "
                    "as separate processes")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override one config value, e.g. --set train.lr=0.001 (repeatable)")
    return add_debug_flag(ap)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parser().parse_args(argv)
    t_start = time.perf_counter()
    over = parse_overrides(args.overrides)
    if args.steps is not None:
        over = merge(over, {"train": {"steps": args.steps}})
    cfg = load_experiment(args.config, smoke=args.smoke, overrides=over)
    variants = args.variants.split(",") if args.variants else None
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    run_dir = Path(args.results) / args.run
    result = run(cfg, run_dir, variants=variants, seeds=seeds, fresh=args.fresh, jobs=args.jobs)
    test_ds = build_dataset(cfg.data, "test", cfg.model.img_size)
    total = time.perf_counter() - t_start
    notes = (f"Dataset `{cfg.data.root}` ({', '.join(cfg.data.classes)}; {len(test_ds)} test images, "
             f"{cfg.model.img_size} px). Total wall time {total / 60:.1f} min. `untrained` is the network at "
             "step 0 (sphere mean shape); `baseline:mean_shape` evaluates the learned class-blended mean "
             "shape without deformation; `baseline:posthoc_best` symmetrizes the baseline's output (best of "
             "l2r/r2l/cent per sample).")
    write_run_report(result, run_dir, test_ds, notes, render=cfg.render)
    save_json({"total_seconds": total, "variants": list(result.histories), "smoke": args.smoke,
               "config": cfg.to_dict()}, run_dir / "run.json")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(result.runs.to_string(index=False))
    print(f"wrote {run_dir}/summary.csv and {run_dir}/report.md in {total / 60:.1f} min")
    return result.runs


if __name__ == "__main__":
    sys.exit(run_main(main))  # a user error: one "error: ..." line, exit code 2 (--debug: traceback)
