"""Deprecated: evaluation lives in :mod:`symnb.experiment.evaluate` (kept for one release)."""

import warnings

from .experiment.evaluate import (  # noqa: F401
    SUMMARY_METRICS,
    EvalConfig,
    angle_diff,
    error_heatmap,
    evaluate,
    per_class,
    viewpoint,
)

warnings.warn("symnb.evaluate is deprecated; import from symnb.experiment.evaluate", DeprecationWarning,
              stacklevel=2)
