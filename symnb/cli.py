"""The ``symnb`` command (``pip install -e .`` puts it on the PATH; ``python -m symnb.cli`` works too).

::

    symnb train CONFIG [--variant NAME] [--seed S] [--set section.key=value ...] [--out DIR] [--fresh]
    symnb evaluate MODEL DATA [--split test] [--index novelcad] [--out DIR] [--max-items N] [--textures N]
                   [--texture-ceiling] [--paired-with MODEL]
    symnb ceilings CONFIG [--sizes 64,128|none] [--steps N] [--model MODEL] [--code-steps N] [--out DIR]
                   [--set ...]
    symnb demo [the main job's options]          (python -m symnb.demo)
    symnb make-data [the generator's options]    (python -m data_prep.make_dataset)

``symnb train`` runs one (variant, seed) of an experiment config; under
``torchrun --nproc_per_node N symnb train ...`` it trains with DistributedDataParallel (gloo on CPU,
NCCL on CUDA). A cluster job array runs one ``symnb train`` per array index (see the README).

A user error (bad config value, missing or foreign file) prints one line ``error: ...`` and exits
with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_errors import add_debug_flag, run_main


def _train(args) -> int:
    from .config import parse_overrides
    from .experiment import ensure_dataset, load_experiment, train, variant_config

    cfg = load_experiment(args.config, smoke=args.smoke, overrides=parse_overrides(args.overrides))
    run_dir = Path(args.out) if args.out else Path("results") / cfg.name
    vc = variant_config(cfg, args.variant, args.seed if args.seed is not None else cfg.seeds[0], run_dir)
    ensure_dataset(vc)
    res = train(vc, resume="force" if args.force else not args.fresh)
    print(f"{vc.name}: {res.steps} steps in {res.train_seconds:.0f} s -> {res.model_path}")
    return 0


#: The texture columns that ``evaluate --paired-with`` pairs (input-view gains, fidelity per view).
TEXTURE_METRICS = ("gain", "psnr_", "ssim_")


def _load(path: str):
    """A model file's network and the render settings it was trained with (its ``experiment`` record;
    the defaults for a file without one: the texture's sampling, TexturesUV or atlas, is a render
    setting), from one read of the file."""
    from .config import from_dict
    from .model.checkpoint import model_from_state, read_checkpoint
    from .render import RenderSettings

    state = read_checkpoint(path)
    record = state.get("experiment") or {}
    return model_from_state(state, path), from_dict(RenderSettings, record.get("render"),
                                                    f"{path}: experiment.render")


def _scores(model, rs, ds, args) -> dict:
    """One model's per-image tables on ``ds``: "geometry" (:func:`evaluate`) and, with ``--textures N``,
    "textures" (the input view's gain over the mean colour and the fidelity PSNR / SSIM of each view,
    one row per image)."""
    from .experiment.evaluate import EvalConfig, evaluate
    from .experiment.fidelity import GAIN_CAMERAS, input_view_gain, texture_fidelity

    out = {"geometry": evaluate(model, ds, EvalConfig(max_items=args.max_items, save_meshes=0))}
    if args.textures:
        cameras = tuple(GAIN_CAMERAS) if args.texture_ceiling else ("gt", "pred")
        out["textures"] = input_view_gain(model, ds, args.textures, render=rs, cameras=cameras)
        for oracle in (False, True) if args.texture_ceiling else (False,):
            fid = texture_fidelity(model, ds, args.textures, render=rs, oracle=oracle)
            views = fid.pivot_table(index="id", columns="view", values=["psnr", "ssim"])
            sfx = "_oracle" if oracle else ""
            views.columns = [f"{metric}_{view}{sfx}" for metric, view in views.columns]
            out["textures"] = out["textures"].merge(views.reset_index(), on="id")
    return out


def _texture_table(tex):
    """Per class and over all images: the means of the texture columns that are paired."""
    cols = [c for c in tex.columns if c.startswith(TEXTURE_METRICS)]
    table = tex.groupby("class_name")[cols].mean()
    table.loc["all"] = tex[cols].mean()
    return table


def _evaluate(args) -> int:
    import pandas as pd

    from .data import DataConfig, build_dataset
    from .experiment.evaluate import protocol_table
    from .experiment.stats import PAIRED_METRICS, paired_differences
    from .utils import atomic_write

    if args.textures < 0:
        raise ValueError(f"--textures must be >= 0 (images whose texture is scored), got {args.textures}")
    if args.texture_ceiling and not args.textures:
        raise ValueError("--texture-ceiling scores the texture: give --textures N (N > 0) as well")
    model, rs = _load(args.model)
    root = Path(args.data)
    folders = sorted(root.iterdir()) if root.is_dir() else []
    present = tuple(p.name for p in folders if (p / "annotations").is_dir())
    classes = tuple(args.classes.split(",")) if args.classes else present
    data = DataConfig(root=args.data, classes=classes or ("?",), index_name=args.index)
    ds = build_dataset(data, args.split, model.config.img_size)
    scores = _scores(model, rs, ds, args)
    table = protocol_table(scores["geometry"])
    out = Path(args.out) if args.out else None
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(4).to_string())
        if "textures" in scores:
            print(_texture_table(scores["textures"]).round(3).to_string())
        if args.paired_with:  # the same images through another model: paired differences (this - other)
            other = _scores(*_load(args.paired_with), ds, args)
            metrics = {"geometry": PAIRED_METRICS,
                       "textures": [c for c in scores.get("textures", {}) if c.startswith(TEXTURE_METRICS)]}
            paired = pd.concat([paired_differences({"model": [df], "paired_with": [other[part]]},
                                                   "paired_with", metrics[part]).assign(part=part)
                                for part, df in scores.items()], ignore_index=True)
            print(f"paired with {args.paired_with} (this model - that one, 95% interval):")
            print(paired.round(4).to_string(index=False))
    if out:
        _write_tables(out, "per_sample.csv", scores["geometry"], "protocol.csv", table)
        if "textures" in scores:
            _write_tables(out, "textures_per_sample.csv", scores["textures"], "textures.csv",
                          _texture_table(scores["textures"]))
        if args.paired_with:
            with atomic_write(out / "paired.csv") as f:
                paired.to_csv(f, index=False)
    return 0


def _write_tables(out: Path, rows_name: str, rows, table_name: str, table) -> None:
    """Write a per-item table (no index) and a summary table (with its index) atomically."""
    from .utils import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / rows_name) as f:
        rows.to_csv(f, index=False)
    with atomic_write(out / table_name) as f:
        table.to_csv(f)
    print(f"wrote {out}/{table_name} and {out}/{rows_name}")


def _ceilings(args) -> int:
    import pandas as pd

    from .config import parse_overrides
    from .experiment import ensure_dataset, load_experiment
    from .experiment.ceilings import FitConfig, ceiling_table, run_ceilings

    cfg = load_experiment(args.config, smoke=args.smoke, overrides=parse_overrides(args.overrides))
    ensure_dataset(cfg)
    fit = FitConfig(steps=args.steps)
    sizes = () if args.sizes == "none" else tuple(int(s) for s in args.sizes.split(","))
    scores = run_ceilings(cfg, sizes, fit, model_path=args.model, code_steps=args.code_steps)
    table = ceiling_table(scores)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(3).to_string())
    out = Path(args.out) if args.out else Path("results") / "ceilings"
    _write_tables(out, "ceilings_per_image.csv", scores, "ceilings.csv", table)
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="symnb", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_debug_flag(ap)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one variant and seed of an experiment config")
    t.add_argument("config", help="experiment YAML (e.g. configs/demo.yaml)")
    t.add_argument("--variant", default="base", help="a variant of the config (default: its base sections)")
    t.add_argument("--seed", type=int, default=None, help="training seed (default: the config's first)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    t.add_argument("--out", default=None, help="run folder (default results/<config name>)")
    t.add_argument("--smoke", action="store_true", help="apply the config's smoke section")
    t.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    t.add_argument("--force", action="store_true", help="resume even a checkpoint of another config")
    e = sub.add_parser("evaluate", help="evaluate a model file on a dataset split")
    e.add_argument("model", help="a model.pt")
    e.add_argument("data", help="dataset root (Pascal3D+ layout)")
    e.add_argument("--classes", default=None, help="comma-separated classes (default: all present)")
    e.add_argument("--split", default="test")
    e.add_argument("--index", default=None, help="index variant, e.g. novelcad (held-out CAD instances)")
    e.add_argument("--max-items", type=int, default=None)
    e.add_argument("--textures", type=int, default=0, metavar="N",
                   help="also score the texture on N images (needs generated data): input-view gain over "
                        "the mean colour, fidelity PSNR / SSIM per view")
    e.add_argument("--texture-ceiling", action="store_true",
                   help="with --textures: also the gain and fidelity of the image projected onto the "
                        "predicted mesh through the annotated camera (columns *_oracle: what a perfect "
                        "camera allows; the gain also through the annotated rotation alone, "
                        "*_oracle_rotation, and scale and translation alone, *_oracle_position)")
    e.add_argument("--paired-with", default=None, metavar="MODEL",
                   help="score a second model.pt on the same images and print the paired differences")
    e.add_argument("--out", default=None, help="folder for per_sample.csv and protocol.csv (and the texture "
                                               "and paired tables)")
    c = sub.add_parser("ceilings", help="quality ceilings (template fits, a network)")
    c.add_argument("config", help="experiment YAML (its data, loss and model template)")
    c.add_argument("--sizes", default="64,128",
                   help='comma-separated crop sizes of the template fits ("none": no fits)')
    c.add_argument("--steps", type=int, default=300, help="Adam steps per fitted instance")
    c.add_argument("--model", default=None, help="a trained model.pt: adds rows (b) and (c)")
    c.add_argument("--code-steps", type=int, default=0,
                   help="with --model: fine-tune it this many steps with the image feature and with an "
                        "instance code (rows b')")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    c.add_argument("--smoke", action="store_true", help="apply the config's smoke section")
    c.add_argument("--out", default=None, help="folder for ceilings.csv (default results/ceilings)")
    sub.add_parser("demo", help="the main job (options: symnb demo --help)", add_help=False)
    sub.add_parser("make-data", help="generate a dataset (options: symnb make-data --help)", add_help=False)
    return ap


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "demo":
        from .demo import main as demo

        demo(argv[1:])
        return 0
    if argv and argv[0] == "make-data":
        from data_prep.make_dataset import main as make_data

        make_data(argv[1:])
        return 0
    args = parser().parse_args(argv)
    return {"train": _train, "evaluate": _evaluate, "ceilings": _ceilings}[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """The ``symnb`` command: a user error prints one ``error: ...`` line and exits with 2
    (``--debug``: the traceback); see :mod:`symnb.cli_errors`."""
    return run_main(_dispatch, argv)


if __name__ == "__main__":
    sys.exit(main())
