"""What the variants x seeds runner (:func:`symnb.experiment.run`) returns, and its derived tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .stats import bootstrap_interval, paired_differences


@dataclass
class RunResult:
    """What :func:`run` returns.

    Attributes:
        runs: one row per (variant, seed) and extra evaluation, test-split means and sizes.
        summary: mean and std over seeds per variant (:func:`symnb.experiment.report.aggregate`).
        histories: variant -> one training history per seed; val_histories: the validation curves.
        models: variant -> the trained model of its first seed.
        start_steps: fine-tuned variant -> the training steps of the network it started from.
        renders: variant -> its render settings (texture sampling).
        per_class: variant -> per-class table of its first seed.
        per_sample: variant -> per-sample DataFrames, one per seed.
        paired: per (variant, metric) the mean paired difference from ``reference`` over test images
            and seeds with its 95% bootstrap interval (:func:`symnb.experiment.stats.paired_differences`).
        fidelity: per-(image, view) texture fidelity tables (``fidelity.texture_fidelity``);
        gains: per-image input-view gains (:func:`~symnb.experiment.fidelity.input_view_gain`);
        artefacts: per-image mesh artefact tables; each with variant and seed columns.
        reference, texture_reference: the config's reference variants of the paired tables
            (:class:`~symnb.experiment.config.ExperimentConfig`).
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    histories: dict = field(default_factory=dict)
    val_histories: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    per_class: dict = field(default_factory=dict)
    per_sample: dict = field(default_factory=dict)
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)
    fidelity: list = field(default_factory=list)
    gains: list = field(default_factory=list)
    artefacts: list = field(default_factory=list)
    start_steps: dict = field(default_factory=dict)
    renders: dict = field(default_factory=dict)
    reference: str | None = None
    texture_reference: str | None = None

    def fidelity_table(self) -> pd.DataFrame:
        """Masked PSNR / SSIM / L1 and mask IoU per (variant, view), means over images and seeds."""
        if not self.fidelity:
            return pd.DataFrame()
        df = pd.concat(self.fidelity)
        return df.groupby(["variant", "view"], sort=False)[["psnr", "ssim", "l1", "mask_iou"]].mean()

    def fidelity_paired(self, reference: str | None = None) -> pd.DataFrame:
        """Per view, each variant's paired PSNR / SSIM / L1 difference from ``reference`` (default
        ``texture_reference``; same images and seeds) with its 95% bootstrap interval
        (:func:`paired_differences`); empty without it."""
        df, reference = self._paired_rows(self.fidelity, reference)
        if df is None:
            return pd.DataFrame()
        tables = [paired_differences(_per_seed(rows), reference, ("psnr", "ssim", "l1")).assign(view=view)
                  for view, rows in df.groupby("view", sort=False)]
        return pd.concat(tables, ignore_index=True)

    def gain_table(self) -> pd.DataFrame:
        """Input-view PSNR of the predicted texture, of each image's mean colour, and the gain (dB),
        rendered with the annotated camera (and the gain with the predicted camera), means per variant
        over images and seeds; the gain's 95% bootstrap interval (``gain_ci_low``, ``gain_ci_high``:
        :func:`bootstrap_interval` over seeds and images) and the number of images (``n_images``)."""
        if not self.gains:
            return pd.DataFrame()
        df = pd.concat(self.gains)
        cols = [c for c in ("psnr", "psnr_mean_colour", "gain", "gain_pred_camera") if c in df]
        by = df.groupby("variant", sort=False)
        ci = {v: bootstrap_interval(_seed_grid(d, "gain")) for v, d in by}
        return by[cols].mean().assign(gain_ci_low=pd.Series({v: c[0] for v, c in ci.items()}),
                                      gain_ci_high=pd.Series({v: c[1] for v, c in ci.items()}),
                                      n_images=by["id"].nunique())

    def gain_paired(self, reference: str | None = None) -> pd.DataFrame:
        """Each variant's paired input-view gain difference from ``reference`` (default
        ``texture_reference``; 95% bootstrap CI)."""
        df, reference = self._paired_rows(self.gains, reference)
        return pd.DataFrame() if df is None else paired_differences(_per_seed(df), reference, ("gain",))

    def _paired_rows(self, tables: list, reference: str | None) -> tuple[pd.DataFrame | None, str | None]:
        """The concatenated tables and the reference variant, or (None, None) without either."""
        reference = reference or self.texture_reference
        df = pd.concat(tables) if tables and reference is not None else None
        return (df, reference) if df is not None and reference in set(df.variant) else (None, None)

    def artefact_summary(self) -> pd.DataFrame:
        """Symmetry error, roughness, normal consistency, self-intersections per variant (means)."""
        if not self.artefacts:
            return pd.DataFrame()
        df = pd.concat(self.artefacts)
        cols = ["symmetry_error", "roughness", "normal_consistency", "self_intersections"]
        return df.groupby("variant", sort=False)[cols].mean()


def _seed_grid(df: pd.DataFrame, column: str):
    """(seeds, images) array of one column of a per-image table with a seed column (images truncated to
    the seed with the fewest)."""
    rows = [g[column].to_numpy() for _, g in df.groupby("seed")]
    n = min(len(r) for r in rows)
    return np.stack([r[:n] for r in rows])


def _per_seed(df: pd.DataFrame) -> dict:
    """variant -> one table per seed (the input of :func:`paired_differences`)."""
    return {v: [d for _, d in g.groupby("seed")] for v, g in df.groupby("variant", sort=False)}
