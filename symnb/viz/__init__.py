"""Mesh viewers with meshplot's calling conventions, on pythreejs, plus headless pictures.

``plot(v, f, c, uv, shading)`` returns a :class:`Viewer` (a pythreejs widget in JupyterLab) whose
methods are meshplot's: ``add_mesh``, ``add_points``, ``add_lines``, ``add_edges``, ``add_text``,
``update_object``, ``remove_object``, ``reset``, ``to_html``, ``save``. ``subplot(..., s=[rows, cols,
idx], data=...)`` fills a grid of viewers. On top of that:

- ``to_html`` / ``save`` write a standalone page: three.js (the copy pythreejs ships) and the scene,
  as base64 arrays, are inlined, so it works without a kernel and without internet.
- ``to_matplotlib`` / :func:`render_static` draw the same scene with matplotlib (Lambert-shaded
  ``Poly3DCollection``) for reports and headless runs (papermill, CI).
- research helpers: :func:`mesh_table`, :func:`plot_overlay` (transparent prediction over solid
  ground truth), :func:`add_bbox`, :func:`add_path`, :func:`plot_symmetry_plane`,
  :func:`distance_to_mesh` and :func:`symmetry_error` (per-vertex error colour maps).

Inputs may be numpy arrays, torch tensors or PyTorch3D ``Meshes`` (first mesh of the batch).
Shapes: ``v`` (V, 3) (or (V, 2), lifted to z = 0); ``f`` (F, 3) triangles or (K, 2) edges;
``c`` a colour name, an RGB triple, (V,) / (F,) scalars mapped through ``shading["colormap"]``
(with a colour bar) or (V, 3) / (F, 3) RGB in [0, 1]; ``uv`` (V, 2) with ``texture_data`` (H, W, 3)
an image whose row 0 is its top (v = 1).

Modules, by concern: :mod:`.scene` (defaults, inputs, colours, :class:`SceneObject`), :mod:`.three`
(pythreejs objects), :mod:`.viewer` (:class:`Viewer`, display, :func:`plot`), :mod:`.grid`
(grids, :func:`mesh_table`), :mod:`.research` (research helpers), :mod:`.static` (matplotlib) and
:mod:`.html` (standalone pages, template ``viewer_page.html``). Everything is importable from here,
the private helpers too (``noqa: F401`` below), as from the single module this package replaces.
"""

from __future__ import annotations

from .grid import Subplot, mesh_table, subplot
from .html import PAGE_TEMPLATE, b64, save_html, standalone_html, three_js_source
from .research import (
    add_bbox,
    add_path,
    distance_to_mesh,
    plot_error,
    plot_overlay,
    plot_symmetry_plane,
    reflect,
    symmetry_error,
)
from .scene import (
    SETTINGS,
    SHADING,
    SceneObject,
    _box_edges,  # noqa: F401
    _checkers,  # noqa: F401
    _mesh_object,  # noqa: F401
    _point_colors,  # noqa: F401
    _rgba,  # noqa: F401
    _unique_edges,  # noqa: F401
    as_numpy,
    colorbar_html,
    mesh_arrays,
    rgb,
    scalar_colors,
    vertex_normals,
)
from .static import draw_static, foreground_fraction, object_faces
from .three import _disc, _headlight, _three, look_at_quaternion  # noqa: F401
from .viewer import _PENDING, Viewer, _display, _flush_pending, plot, render_static  # noqa: F401

__all__ = [
    "PAGE_TEMPLATE", "SETTINGS", "SHADING", "SceneObject", "Subplot", "Viewer", "add_bbox", "add_path",
    "as_numpy", "b64", "colorbar_html", "distance_to_mesh", "draw_static", "foreground_fraction",
    "look_at_quaternion", "mesh_arrays", "mesh_table", "object_faces", "plot", "plot_error",
    "plot_overlay", "plot_symmetry_plane", "reflect", "render_static", "rgb", "save_html",
    "scalar_colors", "standalone_html", "subplot", "symmetry_error", "three_js_source",
    "vertex_normals",
]
