"""Deprecated: the group machinery lives in :mod:`symnb.symmetry` (one map type for every group).

Kept for one release so that ``from symnb.symgroup import group_map, ...`` keeps working.
"""

import warnings

from .symmetry import (  # noqa: F401
    GroupMap,
    expand,
    group_expand,
    group_map,
    group_symmetrize,
    group_symmetry_error,
    invariant_dimension,
    rotation_y,
    symmetry_group,
)
from .symmetry.groups import GROUP_NAMES  # noqa: F401

warnings.warn("symnb.symgroup is deprecated; import from symnb.symmetry", DeprecationWarning, stacklevel=2)
