"""Statistics of variants x seeds runs: bootstrap confidence intervals of a mean and of paired differences
from the baseline (the steps to reach a quality: :func:`symnb.experiment.report.steps_to_reach`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: per-image metrics of :func:`symnb.experiment.evaluate.evaluate` compared with a reference variant (the
#: runner's ``paired.csv``, ``symnb evaluate --paired-with``)
PAIRED_METRICS = ("iou_3d_drc", "iou_3d", "mask_iou", "rot_err", "chamfer", "symmetry_error")


def bootstrap_interval(grid: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                       rng: np.random.Generator | int = 0) -> tuple[float, float]:
    """Bootstrap interval of the mean of a (seeds, images) grid of per-image values.

    Each of ``n_boot`` resamples draws seeds with replacement, then images with replacement, and takes
    the mean over the resampled grid; the interval is their central ``level`` quantile range.

    Args:
        grid: (S, N) values, seed-major; rng: a generator (drawn from in place) or a seed.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or not grid.size:
        raise ValueError(f"grid must be a non-empty (seeds, images) array, got shape {grid.shape}")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    n_seeds, n_img = grid.shape
    boot = np.empty(n_boot)
    for k in range(n_boot):
        ss = rng.integers(0, n_seeds, n_seeds)
        ii = rng.integers(0, n_img, n_img)
        boot[k] = grid[np.ix_(ss, ii)].mean()
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_differences(per_sample: dict[str, list[pd.DataFrame]], baseline: str, metrics,
                       n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean paired difference (variant - baseline) of per-image metrics, with a bootstrap CI.

    Images are paired by id and seeds by position (seed k of a variant with seed k of the baseline).
    The interval resamples both sources of variation: seeds with replacement, then test images with
    replacement, and takes the mean difference over the resampled (seed, image) grid; the CI is the
    central ``level`` quantile range of ``n_boot`` such means.

    Args:
        per_sample: variant -> one per-sample DataFrame (columns id + metrics) per seed.
        baseline: the reference variant.
    Returns:
        one row per (variant, metric): mean_diff, ci_low, ci_high, n_seeds, n_images, and
        ``significant`` (the interval excludes 0).
    """
    if baseline not in per_sample:
        raise ValueError(f"no baseline {baseline!r} among {list(per_sample)}")
    rng = np.random.default_rng(seed)
    rows = []
    base = per_sample[baseline]
    for name, dfs in per_sample.items():
        if name == baseline:
            continue
        n_seeds = min(len(dfs), len(base))
        for m in metrics:
            if not all(m in d.columns for d in dfs[:n_seeds] + base[:n_seeds]):
                continue
            diffs = []
            for s in range(n_seeds):
                a = dfs[s].set_index("id")[m]
                b = base[s].set_index("id")[m]
                ids = a.index.intersection(b.index)
                diffs.append((a.loc[ids] - b.loc[ids]).to_numpy(dtype=np.float64))
            n_img = min(len(d) for d in diffs)
            grid = np.stack([d[:n_img] for d in diffs])  # (seeds, images)
            lo, hi = bootstrap_interval(grid, n_boot, level, rng)
            rows.append(dict(variant=name, metric=m, mean_diff=float(grid.mean()), ci_low=float(lo),
                             ci_high=float(hi), n_seeds=n_seeds, n_images=n_img,
                             significant=bool(lo > 0 or hi < 0)))
    return pd.DataFrame(rows)
