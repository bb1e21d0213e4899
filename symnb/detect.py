"""Deprecated: symmetry detection lives in :mod:`symnb.symmetry.detect` (kept for one release)."""

import warnings

from .symmetry.detect import DetectSettings, Symmetry, detect_symmetries, fibonacci_hemisphere  # noqa: F401

warnings.warn("symnb.detect is deprecated; import from symnb.symmetry.detect", DeprecationWarning,
              stacklevel=2)
