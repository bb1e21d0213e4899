"""Shape symmetries: groups, detection on triangle meshes, the representation a network should
use, sphere templates, and exactly-symmetric mesh representations (maps, symmetrize, expand, errors).

Modules (lower ones never import higher ones):

* :mod:`~symnb.symmetry.groups`: the registry name -> group matrices and template family;
* :mod:`~symnb.symmetry.templates`: sphere templates whose symmetries map vertices onto vertices;
* :mod:`~symnb.symmetry.maps`: :class:`SymmetryMap` (one type for every group), :func:`symmetrize`,
  :func:`expand`, :func:`n_free_params`;
* :mod:`~symnb.symmetry.errors`: :func:`index_symmetry_error`, :func:`geometric_symmetry_error`;
* :mod:`~symnb.symmetry.detect`: :func:`detect_symmetries` of a mesh in any pose;
* :mod:`~symnb.symmetry.representation`: :func:`choose_representation` and the canonical frame;
* :mod:`~symnb.symmetry.tables`: parameter tables and pictures.

Conventions (canonical object frame, shared with templates, data and model): the main reflection
plane is x = 0, y is up, a rotation axis (if any) is y; "left" is x > 0. Shapes: verts (..., V, 3)
float, faces (F, 3) long.
"""

from .detect import DetectSettings, Symmetry, detect_symmetries
from .errors import geometric_symmetry_error, index_symmetry_error
from .groups import GROUP_NAMES, GROUPS, Group, register_group, rotation_y, symmetry_group, template_for
from .maps import (
    MODES,
    SymmetryMap,
    expand,
    free_basis,
    invariant_dimension,
    n_free_params,
    posthoc_map,
    reflect,
    symmetrize,
    symmetrize_nearest,
    symmetry_map,
)
from .representation import Representation, choose_representation
from .tables import parameter_table, plot_symmetries, symmetry_table

#: Names of the representations ``choose_representation`` picks from (the registered groups).
REPRESENTATIONS = GROUP_NAMES

__all__ = [
    "GROUPS", "GROUP_NAMES", "MODES", "REPRESENTATIONS", "DetectSettings", "Group",
    "Representation", "Symmetry", "SymmetryMap", "choose_representation", "detect_symmetries", "expand",
    "free_basis", "geometric_symmetry_error", "index_symmetry_error", "invariant_dimension", "n_free_params",
    "parameter_table", "plot_symmetries", "posthoc_map", "reflect", "register_group", "rotation_y",
    "symmetrize", "symmetrize_nearest", "symmetry_group", "symmetry_map", "symmetry_table", "template_for",
]
