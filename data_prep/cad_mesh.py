"""Mesh checks and repair steps of the CAD cleanup (:mod:`data_prep.cad`), on numpy meshes.

Watertightness and orientation checks, signed volume, face areas, area-weighted surface samples,
the mirror-symmetry error of a surface, duplicate merging, hole filling and consistent orientation
(VTK via PyVista), exact surface moments and bounding-box normalisation. Areas, samples and the
symmetry error are thin numpy wrappers over :mod:`symnb.geometry` (float64 throughout).

Shapes: verts (V, 3) float64 numpy, faces (F, 3) int64 numpy.
"""

from __future__ import annotations

import numpy as np
import pyvista as pv
import torch

from symnb.geometry import bbox_diagonal, face_areas_normals
from symnb.geometry import sample_surface as _sample_surface
from symnb.symmetry import reflect

Mesh = tuple[np.ndarray, np.ndarray]


def _tensors(verts, faces) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.as_tensor(np.ascontiguousarray(verts, dtype=np.float64))
    f = torch.as_tensor(np.ascontiguousarray(faces, dtype=np.int64)).reshape(-1, 3)
    return v, f


def edge_counts(faces: np.ndarray) -> np.ndarray:
    """Number of faces sharing each undirected edge: (E,) int."""
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return counts


def is_watertight(faces: np.ndarray) -> bool:
    """Closed 2-manifold edges: every undirected edge is shared by exactly two faces, consistently
    oriented (each directed edge appears once)."""
    faces = np.asarray(faces)
    if len(faces) == 0 or not (edge_counts(faces) == 2).all():
        return False
    d = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    return len(np.unique(d, axis=0)) == len(d)


def signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Signed enclosed volume (positive for outward-oriented closed meshes)."""
    a, b, c = (verts[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def face_areas(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Triangle areas (F,) float64 (:func:`symnb.geometry.face_areas_normals`)."""
    return face_areas_normals(*_tensors(verts, faces))[0].numpy()


def sample_surface(verts: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) float64 points sampled uniformly by area on the surface (:func:`symnb.geometry.sample_surface`,
    seeded from ``rng``)."""
    seed = int(rng.integers(2**62))
    return _sample_surface(*_tensors(verts, faces), n, seed=seed)[0].numpy()


def symmetry_error(verts: np.ndarray, faces: np.ndarray, normal=(1.0, 0.0, 0.0), point=(0.0, 0.0, 0.0),
                   n: int = 4000, seed: int = 0) -> float:
    """Mean distance from mirrored surface samples to the surface, relative to the bbox diagonal.

    0 (up to rounding) for a mesh symmetric about the plane (normal, point). Samples from
    :func:`symnb.geometry.sample_surface`; exact closest surface points from VTK's cell locator
    (float64, as :func:`symnb.geometry.point_mesh_closest` gives them, but ~20x faster: this runs
    twice per cleaned model). ``symnb.symmetry.geometric_symmetry_error`` is the *largest* such
    distance (a Hausdorff distance), on a raw CAD model 10-20x this mean, so it is not used for the
    report's before/after numbers.
    """
    v, f = _tensors(verts, faces)
    q = reflect(_sample_surface(v, f, n, seed=seed)[0].double(), normal, point).numpy()
    _, closest = _poly(verts, faces).find_closest_cell(q, return_closest_point=True)
    return float(np.linalg.norm(closest - q, axis=1).mean() / bbox_diagonal(v))


def merge_and_drop(verts: np.ndarray, faces: np.ndarray, tol: float = 1e-7) -> tuple[Mesh, int, int]:
    """Merge vertices closer than ``tol`` (relative to the diagonal), drop degenerate/duplicate faces.

    Returns:
        (verts, faces), number of merged vertices, number of dropped faces.
    """
    diag = np.linalg.norm(verts.max(0) - verts.min(0)) or 1.0
    key = np.round(verts / (tol * diag)).astype(np.int64)
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    v = verts[first]
    f = inv[faces]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    keep &= face_areas(v, f) > (1e-12 * diag * diag)
    f = f[keep]
    _, uniq = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    f = f[np.sort(uniq)]
    used = np.unique(f)
    remap = np.full(len(v), -1)
    remap[used] = np.arange(len(used))
    return (v[used], remap[f]), len(verts) - len(v), len(faces) - len(f)


def _poly(verts: np.ndarray, faces: np.ndarray) -> pv.PolyData:
    return pv.PolyData.from_regular_faces(np.asarray(verts, dtype=np.float64), np.asarray(faces))


def _unpoly(poly: pv.PolyData) -> Mesh:
    poly = poly.triangulate()
    return np.asarray(poly.points, dtype=np.float64), np.asarray(poly.faces).reshape(-1, 4)[:, 1:].astype(
        np.int64
    )


def fill_and_orient(verts: np.ndarray, faces: np.ndarray, hole_size: float) -> Mesh:
    """Fill holes up to ``hole_size`` (relative to the diagonal) and orient faces consistently outward."""
    diag = np.linalg.norm(verts.max(0) - verts.min(0))
    poly = _poly(verts, faces).fill_holes(hole_size * diag)
    poly = poly.compute_normals(consistent_normals=True, auto_orient_normals=True, split_vertices=False,
                                cell_normals=False, point_normals=True)
    return _unpoly(poly)


def surface_moments(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact area-weighted centroid (3,) and covariance (3, 3) of the surface (closed form per triangle:
    integral of x x^T over a triangle = A / 12 (sum_i v_i v_i^T + s s^T), s = v_0 + v_1 + v_2)."""
    tri = verts[faces]  # (F, 3, 3)
    area = face_areas(verts, faces)
    total = area.sum()
    if total <= 0:
        raise ValueError("mesh has zero surface area")
    ssum = tri.sum(1)
    centroid = (area[:, None] * ssum / 3).sum(0) / total
    second = np.einsum("f,fij->ij", area / 12, np.einsum("fki,fkj->fij", tri, tri)
                       + np.einsum("fi,fj->fij", ssum, ssum)) / total
    return centroid, second - np.outer(centroid, centroid)


def normalize(verts: np.ndarray) -> np.ndarray:
    """Centre the bounding box at the origin and scale to unit bounding-box diagonal."""
    lo, hi = verts.min(0), verts.max(0)
    return (verts - (lo + hi) / 2) / np.linalg.norm(hi - lo)
