"""Deprecated: sphere templates live in :mod:`symnb.symmetry.templates` (kept for one release)."""

import warnings

from .symmetry.templates import *  # noqa: F401,F403
from .symmetry.templates import (  # noqa: F401
    GOLDEN,
    double_resolution,
    geodesic_n_verts,
    geodesic_sphere,
    mirror_indices,
    sphere_template,
    template_family,
    template_for,
    uv_sphere,
)

warnings.warn("symnb.templates is deprecated; import from symnb.symmetry.templates", DeprecationWarning,
              stacklevel=2)
