"""Deprecated: reporting lives in :mod:`symnb.experiment.report` (kept for one release)."""

import warnings

from .experiment.report import *  # noqa: F401,F403

warnings.warn("symnb.report is deprecated; import from symnb.experiment.report", DeprecationWarning,
              stacklevel=2)
