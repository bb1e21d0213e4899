"""Research helpers on top of the viewer: bounding boxes, highlighted paths, prediction-over-ground-
truth overlays, symmetry planes / axes, point-to-surface distances, mirror symmetry errors and
error heat maps."""

from __future__ import annotations

import numpy as np

from .scene import _box_edges, as_numpy, mesh_arrays
from .viewer import Viewer, _display


def add_bbox(view: Viewer, verts, shading: dict | None = None, obj: int | None = None) -> int:
    """Draw the axis-aligned bounding box of ``verts`` (N, 3) as 12 edges; returns its object id."""
    v, _ = mesh_arrays(verts)
    corners, edges = _box_edges(v)
    return view.add_edges(corners, edges, shading=shading, obj=obj)


def add_path(view: Viewer, points, c="red", shading: dict | None = None) -> tuple[int, int]:
    """Highlight a polyline through ``points`` (N, 3): its segments and its points. Returns both ids."""
    p, _ = mesh_arrays(points)
    sh = {"line_color": c, "point_color": c, **(shading or {})}
    return view.add_lines(p[:-1], p[1:], shading=sh), view.add_points(p, shading=sh)


def plot_overlay(pred_v, pred_f, gt_v, gt_f=None, opacity: float = 0.35, pred_color="#d62728",
                 gt_color="#bbbbbb", view: Viewer | None = None, display: bool = True) -> Viewer:
    """Prediction drawn transparent over the solid ground truth (the research's overlay figure)."""
    view = view if view is not None else Viewer()
    gt_v, gt_f = mesh_arrays(gt_v, gt_f)
    view.add_mesh(gt_v, gt_f, c=gt_color)
    view.add_mesh(pred_v, pred_f, c=pred_color, shading={"opacity": opacity})
    if display:
        _display(view)
    return view


def plot_symmetry_plane(view: Viewer, symmetry=None, normal=(1.0, 0.0, 0.0), point=(0.0, 0.0, 0.0),
                        size: float | None = None, color="#1f77b4", opacity: float = 0.3) -> int:
    """Draw a symmetry as a translucent square plane or, for rotations, as an axis line.

    ``symmetry``: any object with ``kind``, ``normal``, ``point`` (and ``order``), e.g.
    ``symnb.symmetry.Symmetry``; a kind containing "rot" or "axis" is drawn as the axis through
    ``point`` along ``normal``, anything else as the plane through ``point`` with that ``normal``.
    ``size``: side of the square / length of the axis (default 1.2 scene diagonals).
    """
    kind = "reflection"
    if symmetry is not None:
        kind = str(getattr(symmetry, "kind", "reflection"))
        normal, point = symmetry.normal, symmetry.point
    n = as_numpy(normal, np.float64).reshape(3)
    if not np.isfinite(n).all() or np.linalg.norm(n) < 1e-12:
        raise ValueError(f"symmetry normal must be a finite non-zero 3-vector, got {n}")
    n = n / np.linalg.norm(n)
    p = as_numpy(point, np.float64).reshape(3)
    size = size or 1.2 * view._diag()
    if "rot" in kind.lower() or "axis" in kind.lower():
        return view.add_lines(p - n * size / 2, p + n * size / 2,
                              shading={"line_color": color, "line_width": 3.0})
    a = np.cross(n, [0.0, 1.0, 0.0] if abs(n[1]) < 0.9 else [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(n, a)
    corners = np.array([p + size / 2 * (sa * a + sb * b) for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    return view.add_mesh(corners, np.array([[0, 1, 2], [0, 2, 3]]), c=color,
                         shading={"opacity": opacity, "flat": True})


def distance_to_mesh(points, verts, faces=None) -> np.ndarray:
    """Per-point Euclidean distance (N,) from ``points`` (N, 3) to a triangle mesh's surface.

    Exact point-to-triangle distances (:func:`symnb.geometry.point_mesh_closest`); with
    ``faces=None`` the distance to the nearest of ``verts`` (a point cloud, scipy KD-tree).
    """
    import torch

    from ..geometry import point_mesh_closest

    pts, _ = mesh_arrays(points)
    v, f = mesh_arrays(verts, faces)
    if f is None:
        from scipy.spatial import cKDTree

        return cKDTree(v).query(pts)[0].astype(np.float32)
    dist = point_mesh_closest(torch.from_numpy(pts), torch.from_numpy(v), torch.from_numpy(f).long())[0]
    return dist.numpy().astype(np.float32)


def reflect(verts, normal=(1.0, 0.0, 0.0), point=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Mirror ``verts`` (N, 3) across the plane through ``point`` with ``normal`` (numpy in, numpy out)."""
    import torch

    from ..symmetry import reflect as reflect_torch

    v, _ = mesh_arrays(verts)
    n, p = as_numpy(normal, np.float64).reshape(3), as_numpy(point, np.float64).reshape(3)
    return reflect_torch(torch.from_numpy(v).double(), n, p).numpy().astype(np.float32)


def symmetry_error(verts, faces, normal=(1.0, 0.0, 0.0), point=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Per-vertex geometric symmetry error (V,): distance of each mirrored vertex to the surface
    (:func:`symnb.symmetry.geometric_symmetry_error` with ``per_vertex=True``, absolute units)."""
    import torch

    from ..symmetry import geometric_symmetry_error

    v, f = mesh_arrays(verts, faces)
    d = geometric_symmetry_error(torch.as_tensor(v), torch.as_tensor(f), normal=normal, point=point,
                                 relative=False, per_vertex=True)
    return d.numpy()


def plot_error(verts, faces, ref_verts=None, ref_faces=None, error=None, colormap: str = "plasma",
               vmax: float | None = None, view: Viewer | None = None, display: bool = True) -> Viewer:
    """Heat map of a per-vertex error: ``error`` (V,), or the distance to ``ref_verts``/``ref_faces``."""
    v, f = mesh_arrays(verts, faces)
    if error is None:
        if ref_verts is None:
            raise ValueError("plot_error needs `error` or a reference mesh")
        error = distance_to_mesh(v, ref_verts, ref_faces)
    view = view if view is not None else Viewer()
    view.add_mesh(v, f, c=as_numpy(error, np.float32),
                  shading={"colormap": colormap, "normalize": [0.0, vmax]})
    if display:
        _display(view)
    return view
