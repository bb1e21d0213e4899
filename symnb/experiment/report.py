"""Figures and the markdown report of a run: results table, metric-vs-step curves, sample
reconstructions and per-vertex error heat maps (matplotlib figures saved to files, PyTorch3D renders)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import torch
from pytorch3d.renderer import TexturesVertex
from pytorch3d.structures import Meshes

from ..data import collate, evenly_spaced
from ..render import RenderSettings, make_cameras, render_prediction, shaded_renderer
from ..utils import atomic_write
from .evaluate import error_heatmap


def save_figure(fig, path: str | Path, dpi: int = 90) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_curves(histories: dict[str, list[dict]], metrics=("loss", "mask", "mask_iou", "cam_deg")):
    """Metric vs step, one line per variant.  histories: {variant: [{"step": .., metric: ..}, ...]}."""
    return plot_seed_curves({name: [h] for name, h in histories.items()}, metrics)


def _shaded(verts: torch.Tensor, faces: torch.Tensor, colours: torch.Tensor, azim: float, size: int = 128):
    cams = make_cameras(dist=2.2, elev=20.0, azim=azim)
    mesh = Meshes([verts.float()], [faces], textures=TexturesVertex([colours.float()]))
    img = shaded_renderer(cams, RenderSettings(image_size=size))(mesh)
    return img[0, ..., :3].clamp(0, 1).numpy()


def error_colours(d: torch.Tensor, vmax: float) -> torch.Tensor:
    """(V,) distances -> (V, 3) colours of matplotlib's 'inferno' map on [0, vmax]."""
    cmap = matplotlib.colormaps["inferno"]
    return torch.tensor(cmap((d / max(vmax, 1e-9)).clamp(0, 1).numpy())[:, :3], dtype=torch.float32)


@torch.no_grad()
def plot_reconstructions(models: dict, dataset, indices: list[int], vmax: float = 0.1,
                         render: RenderSettings | None = None, azim: float = 60.0):
    """Grid, one row per test image: the input and its CAD model from a second view (``azim``), then
    per model the textured prediction rendered with the *predicted* camera over the input, the
    predicted shape from the same second view, and its per-vertex distance to the CAD model.

    Args:
        models: {name: ReconstructionNet}; dataset: test items with ``cad_mesh``; indices: samples.
        vmax: distance (object units, unit bbox diagonal) mapped to the top of the colour map.
        render: texture sampling settings (default: the model's input size, "uv" mode).
    """
    batch = collate([dataset[i] for i in indices])
    cols = 2 + 3 * len(models)
    fig, axes = plt.subplots(len(indices), cols, figsize=(1.7 * cols, 1.8 * len(indices)), squeeze=False)
    cads = [dataset.cad_mesh(c, int(k)) for c, k in zip(batch["class_name"], batch["cad_idx"], strict=True)]
    for r, (cv, cf) in enumerate(cads):
        axes[r, 0].imshow(batch["image"][r].permute(1, 2, 0).numpy())
        axes[r, 0].set_title(batch["id"][r], fontsize=6)
        axes[r, 1].imshow(_shaded(cv, cf, torch.full_like(cv, 0.7), azim))
    axes[0, 1].set_title("CAD (2nd view)", fontsize=7)
    for j, (name, model) in enumerate(models.items()):
        out = model.reconstruct(batch["image"])
        rs = render or RenderSettings()
        rend = render_prediction(out, rs, soft=False, image_size=model.config.img_size)
        image = torch.nn.functional.interpolate(batch["image"], size=rend.coverage.shape[-2:])
        for r, (cv, cf) in enumerate(cads):
            v, f = out["verts"][r].cpu(), out["faces"].cpu()
            cov = rend.coverage[r].cpu()
            shown = rend.rgb[r].cpu() if rend.rgb is not None else torch.full_like(image[r], 0.7)
            over = shown * cov + 0.35 * image[r] * (1 - cov)  # the prediction over the dimmed input
            axes[r, 2 + 3 * j].imshow(over.permute(1, 2, 0).clamp(0, 1))
            axes[r, 3 + 3 * j].imshow(_shaded(v, f, torch.full_like(v, 0.7), azim))
            axes[r, 4 + 3 * j].imshow(_shaded(v, f, error_colours(error_heatmap(v, f, cv, cf), vmax), azim))
        axes[0, 2 + 3 * j].set_title(f"{name}: predicted camera", fontsize=7)
        axes[0, 3 + 3 * j].set_title(f"{name}: 2nd view", fontsize=7)
        axes[0, 4 + 3 * j].set_title(f"{name}: error (0-{vmax})", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_texture_views(models: dict, dataset, indices: list[int], views=("input", "mirror", "az+90"),
                       renders: dict | None = None):
    """Grid of textured renders with the *annotated* camera's views (:func:`fidelity.view_camera`): the
    first row is the textured CAD model (generator shading), then one row per model, its predicted
    textured mesh on black; columns are (image, view) pairs. What ``texture_fidelity`` scores.

    Args:
        models: {name: ReconstructionNet}; dataset: test items with ``cad_mesh`` and ``cad_texture``.
        renders: {name: RenderSettings} each model's texture sampling (default: "uv").
    """
    from .fidelity import render_views

    batch = collate([dataset[i] for i in indices])
    cads = [dataset.cad_mesh(c, int(k)) for c, k in zip(batch["class_name"], batch["cad_idx"], strict=True)]
    textures = [torch.as_tensor(dataset.cad_texture(c, i)).float()
                for c, i in zip(batch["class_name"], batch["id"], strict=True)]
    size = batch["image"].shape[-1]
    rows = {}
    for name, model in models.items():
        rs = replace((renders or {}).get(name) or RenderSettings(), image_size=size)
        shown = render_views(model.reconstruct(batch["image"]), batch, cads, textures, views, rs)
        rows.setdefault("ground truth", {v: gt for v, (gt, _, _, _) in shown.items()})
        rows[name] = {v: pred * mask[:, None] for v, (_, _, pred, mask) in shown.items()}
    cols = [(i, v) for i in range(len(indices)) for v in views]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.1 * len(cols), 1.2 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c, (i, view) in enumerate(cols):
            axes[r, c].imshow(images[view][i].permute(1, 2, 0).clamp(0, 1).numpy())
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(f"{batch['id'][i]} {view}", fontsize=5)
        axes[r, 0].set_ylabel(name, fontsize=6)
    fig.tight_layout()
    return fig


def plot_train_val(val_histories: dict[str, list[list[dict]]],
                   metrics=("mask_iou", "iou_3d_drc", "rot_err"), offsets: dict[str, int] | None = None):
    """Validation curves (mean over seeds): each metric on the unaugmented training images (dashed)
    and on the validation split (solid), one colour per variant; ``offsets`` shifts a fine-tuned
    variant's steps by those of the network it started from (its curve continues that one)."""
    offsets = offsets or {}
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.8 * len(metrics), 3), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, m in zip(axes[0], metrics, strict=True):
        for k, (name, hists) in enumerate(val_histories.items()):
            for split, style in (("train", "--"), ("val", "-")):
                steps, ys = mean_curve(hists, f"{split}_{m}")
                if steps:
                    steps = [st + offsets.get(name, 0) for st in steps]
                    ax.plot(steps, ys, style, color=colours[k % len(colours)], label=f"{name} {split}")
        ax.set_xlabel("step")
        ax.set_title(m + (" (median deg)" if m == "rot_err" else ""))
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_metric_bars(summary: pd.DataFrame, metrics=("iou_3d", "mask_iou", "chamfer", "symmetry_error")):
    """Bar charts of summary metrics per variant."""
    metrics = [m for m in metrics if m in summary.columns]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3))
    for ax, m in zip(list(axes) if len(metrics) > 1 else [axes], metrics, strict=True):
        ax.bar(summary["variant"], summary[m], color="tab:blue")
        ax.set_title(m)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    fig.tight_layout()
    return fig


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    fmt = lambda x: f"{x:.4g}" if isinstance(x, float) and math.isfinite(x) else str(x)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def write_report(run_dir: str | Path, tables: dict[str, pd.DataFrame], per_class: dict[str, pd.DataFrame],
                 figures: dict[str, str], notes: str = "") -> Path:
    """Write ``run_dir/report.md``: titled tables, per-class tables, figures (relative PNG paths)."""
    run_dir = Path(run_dir)
    parts = [f"# symnb run `{run_dir.name}`", "", notes, ""]
    for title, table in tables.items():
        parts += [f"## {title}", "", _md_table(table), ""]
    for name, table in per_class.items():
        parts += [f"### {name}: per class", "", _md_table(table.reset_index()), ""]
    for title, rel in figures.items():
        parts += [f"## {title}", "", f"![{title}]({rel})", ""]
    path = run_dir / "report.md"
    with atomic_write(path) as f:
        f.write("\n".join(parts))
    return path


# ------------------------------------------------------------------------------- seeds and curves


def aggregate(runs: pd.DataFrame, metrics, by: str = "variant") -> pd.DataFrame:
    """Mean and standard deviation over seeds: one row per ``by`` value, columns ``<metric>`` (the
    mean), ``<metric>_std`` (sample std, 0 for a single seed) and ``n_seeds``, in first-appearance order."""
    metrics = [m for m in metrics if m in runs.columns]
    g = runs.groupby(by, sort=False)[metrics]
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)[[c for m in metrics for c in (m, f"{m}_std")]]
    out["n_seeds"] = runs.groupby(by, sort=False).size()
    return out


def mean_curve(histories: list[list[dict]], key: str) -> tuple[list[int], list[float]]:
    """(steps, mean over runs) of a logged metric, over the steps every run logged."""
    rows = [[h for h in hist if key in h] for hist in histories]
    n = min((len(r) for r in rows), default=0)
    steps = [rows[0][i]["step"] for i in range(n)] if n else []
    return steps, [sum(r[i][key] for r in rows) / len(rows) for i in range(n)]


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing running mean over ``window`` values (the first ones average what exists)."""
    window = max(1, window)
    # each mean summed afresh: a running sum drifts, and window 1 must return the values exactly
    return [sum(values[max(0, i - window + 1):i + 1]) / min(i + 1, window) for i in range(len(values))]


def steps_to_reach(histories: dict[str, list[list[dict]]], key: str, target: float, window: int = 5,
                   higher_is_better: bool = True) -> dict[str, float]:
    """Per variant, the first logged step at which the seed-mean, ``window``-smoothed ``key`` reaches
    ``target`` (NaN if never)."""
    out = {}
    for name, hists in histories.items():
        steps, ys = mean_curve(hists, key)
        ys = smooth(ys, window)
        reached = [(y >= target) if higher_is_better else (y <= target) for y in ys]
        hit = [s for s, r in zip(steps, reached, strict=True) if r]
        out[name] = float(hit[0]) if hit else float("nan")
    return out


def plot_seed_curves(histories: dict[str, list[list[dict]]], metrics=("loss", "mask", "mask_iou", "cam_deg"),
                     window: int = 1):
    """Metric vs step, the mean over seeds per variant (one line each)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        for name, hists in histories.items():
            steps, ys = mean_curve(hists, m)
            if steps:
                ax.plot(steps, smooth(ys, window), label=name)
        ax.set_xlabel("step")
        ax.set_title(m)
        if m in ("loss", "mask"):
            ax.set_yscale("log")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_run_report(result, run_dir: str | Path, test_dataset, notes: str = "", render=None,
                     n_show: int = 4) -> Path:
    """The figures and ``report.md`` of a :class:`symnb.experiment.RunResult`: per-run table, seed
    summary, per-class tables, metric-vs-step curves (mean over seeds), sample reconstructions."""

    run_dir = Path(run_dir)
    figs = {"Training losses vs step (mean over seeds)": save_figure(
        plot_seed_curves(result.histories), run_dir / "curves.png").name}
    if any(h for hs in result.val_histories.values() for h in hs):
        figs["Training (dashed) and validation (solid) metrics, camera as predicted"] = save_figure(
            plot_train_val(result.val_histories, offsets=result.start_steps), run_dir / "train_val.png").name
    figs["Summary"] = save_figure(plot_metric_bars(result.runs), run_dir / "summary.png").name
    idx = evenly_spaced(len(test_dataset), n_show)
    steps = result.runs.groupby("variant")["steps"].first() if "steps" in result.runs else pd.Series()
    trained = {n: m for n, m in result.models.items() if steps.get(n, 1) > 0}  # not the texture-only ones
    figs["Sample reconstructions and error heat maps"] = save_figure(
        plot_reconstructions(trained, test_dataset, idx, render=render),
        run_dir / "reconstructions.png").name
    if len(result.fidelity) and hasattr(test_dataset, "cad_texture"):
        textured = {n: m for n, m in result.models.items() if m.config.texture}
        figs["Textures from the annotated camera's views (what texture fidelity scores)"] = save_figure(
            plot_texture_views(textured, test_dataset, idx, renders=result.renders),
            run_dir / "textures.png").name
    from .evaluate import flips_by_half_turn, protocol_table, view_confusion

    tables = {"Runs (test split)": result.runs, "Mean and std over seeds": result.summary.reset_index()}
    if len(result.paired):
        tables[f"Paired difference from {result.reference} (mean over test images and seeds, 95% bootstrap "
               "CI)"] = result.paired
    occ = [c for c in result.summary.columns if c.startswith(("occ_", "clean_")) and not c.endswith("_std")]
    if occ:
        tables["Occluded vs the same images clean (test split)"] = result.summary[occ].reset_index()
    texture_tables = (
        ("Texture fidelity per view (masked PSNR dB, SSIM, L1; annotated camera)", result.fidelity_table(),
         "Texture fidelity", result.fidelity_paired()),
        ("Input view: PSNR against the image and gain over its mean colour (dB; annotated camera)",
         result.gain_table(), "Input-view gain", result.gain_paired()))
    for title, table, what, paired in texture_tables:
        if len(table):
            tables[title] = table.reset_index()
        if len(paired):
            tables[f"{what}: paired difference from {result.texture_reference} (95% bootstrap CI)"] = paired
    if len(result.artefacts):
        tables["Mesh artefacts (means over test images)"] = result.artefact_summary().reset_index()
    for name, dfs in result.per_sample.items():
        if ":" not in name:
            tables[f"{name}: the field's protocol per class (test split, first seed)"] = (
                protocol_table(dfs[0]).reset_index(names="class"))
    for name, dfs in result.per_sample.items():
        if name in trained and "az" in dfs[0]:
            tables[f"{name}: front / back confusion of the predicted azimuth (test split, all seeds)"] = (
                view_confusion(pd.concat(dfs)).reset_index())
            if "cad_idx" in dfs[0] and hasattr(test_dataset, "cad_mesh"):
                tables[f"{name}: front / back flips by the CAD model's likeness under a half turn (3-D IoU "
                       ">= 0.9; test split, all seeds)"] = flips_by_half_turn(pd.concat(dfs), test_dataset
                                                                              ).reset_index()
    return write_report(run_dir, tables, result.per_class, figs, notes)
