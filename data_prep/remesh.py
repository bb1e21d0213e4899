"""Watertight remeshing steps of the CAD cleanup (:mod:`data_prep.cad`).

:func:`voxel_remesh` (unsigned distance -> shell -> morphological closing -> filled interior ->
smoothed, optionally mirror-averaged occupancy -> marching cubes), :func:`decimate` (VTK quadric
decimation to a face budget) and :func:`mirror_weld` (keep x >= 0, mirror, weld the plane: an
exactly mirror-symmetric mesh).

Shapes: verts (V, 3) float64 numpy, faces (F, 3) int64 numpy.
"""

from __future__ import annotations

import numpy as np
import pyvista as pv
from scipy import ndimage
from scipy.spatial import cKDTree

from .cad_mesh import Mesh, _poly, _unpoly, face_areas, merge_and_drop, sample_surface, signed_volume

__all__ = ["decimate", "mirror_weld", "voxel_remesh"]


def voxel_remesh(verts: np.ndarray, faces: np.ndarray, resolution: int, closing: int, smooth: float,
                 mirror: bool, seed: int = 0) -> Mesh:
    """Watertight surface of the solid bounded by (or thickened around) the input surface.

    The grid is symmetric about x = 0; with ``mirror`` the occupancy is averaged with its mirror
    image so the surface is symmetric about x = 0.
    """
    lo, hi = verts.min(0), verts.max(0)
    if mirror:
        m = max(abs(lo[0]), abs(hi[0]))
        lo[0], hi[0] = -m, m
    h = (hi - lo).max() / resolution
    pad = 3 + closing
    n = np.ceil((hi - lo) / h).astype(int) + 1 + 2 * pad
    origin = (lo + hi) / 2 - (n - 1) / 2 * h
    rng = np.random.default_rng(seed)
    area = face_areas(verts, faces).sum()
    pts = sample_surface(verts, faces, int(min(max(20 * area / (h * h), 20000), 400000)), rng)
    axes = [origin[i] + h * np.arange(n[i]) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    d, _ = cKDTree(pts).query(grid, distance_upper_bound=1.5 * h)
    shell = (d <= 0.9 * h).reshape(n)
    st = ndimage.generate_binary_structure(3, 1)
    solid = ndimage.binary_closing(shell, st, iterations=closing) if closing else shell
    solid = ndimage.binary_fill_holes(solid)
    occ = ndimage.gaussian_filter(solid.astype(np.float64), smooth) if smooth > 0 else solid.astype(float)
    if mirror:
        occ = 0.5 * (occ + occ[::-1])
    img = pv.ImageData(dimensions=tuple(int(k) for k in n), spacing=(h, h, h), origin=tuple(origin))
    img.point_data["occ"] = occ.ravel(order="F")
    surf = img.contour([0.5], scalars="occ", method="flying_edges")
    surf = surf.connectivity("largest")
    v, f = _unpoly(surf.extract_surface(algorithm="dataset_surface"))
    if len(f) == 0:
        raise ValueError(f"the watertight remesh at resolution {resolution} found no solid (a flat mesh "
                         "encloses no volume; a very thin one may need a higher resolution)")
    (v, f), _, _ = merge_and_drop(v, f)
    if signed_volume(v, f) < 0:
        f = f[:, ::-1].copy()
    return v, f


def decimate(verts: np.ndarray, faces: np.ndarray, budget: int) -> Mesh:
    """Quadric decimation (VTK) to about ``budget`` faces; no-op if already below."""
    if len(faces) <= budget:
        return verts, faces
    poly = _poly(verts, faces).decimate(1 - budget / len(faces), volume_preservation=True)
    return _unpoly(poly)


def mirror_weld(verts: np.ndarray, faces: np.ndarray) -> Mesh:
    """Exactly mirror-symmetric closed mesh: clip at x = 0, keep x >= 0, mirror, weld plane vertices.

    The mirror image of every vertex is a vertex (bit-exact: x -> -x). A geometric operation on a
    cleaned CAD mesh, not the network's differentiable
    symmetrization of predicted vertices (``symnb.symmetry.symmetrize``).
    """
    half = _poly(verts, faces).clip(normal=(-1.0, 0.0, 0.0), origin=(0.0, 0.0, 0.0))
    v, f = _unpoly(half.extract_surface(algorithm="dataset_surface"))
    (v, f), _, _ = merge_and_drop(v, f, tol=1e-9)
    v = v.copy()
    # the cut's boundary lies on the plane: snap it (and rounding noise) to x = 0 exactly
    e = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    edges, counts = np.unique(e, axis=0, return_counts=True)
    v[np.unique(edges[counts == 1]), 0] = 0.0
    v[np.abs(v[:, 0]) < 1e-9 * np.abs(v).max(), 0] = 0.0
    v[:, 0] = np.maximum(v[:, 0], 0.0)
    (v, f), _, _ = merge_and_drop(v, f, tol=1e-12)
    on_plane = v[:, 0] == 0.0
    mv = v[~on_plane] * np.array([-1.0, 1.0, 1.0])
    index = np.arange(len(v))
    mirror_index = np.where(on_plane, index, len(v) + np.cumsum(~on_plane) - 1)
    f2 = mirror_index[f][:, ::-1]
    out_v = np.concatenate([v, mv])
    out_f = np.concatenate([f, f2])
    # drop faces lying in the plane itself (they would be doubled)
    keep = ~(on_plane[f].all(1))
    keep = np.concatenate([keep, keep])
    return out_v, out_f[keep]
