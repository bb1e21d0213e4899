"""Mesh geometry helpers: conversion from PyVista, normalisation, surface sampling, closest points,
and subdivision (midpoint, centroid 1 -> 3, Loop).

Shapes: verts (V, 3) float, faces (F, 3) long; points (P, 3) float.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def check_mesh(verts, faces, name: str = "mesh") -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and convert a triangle mesh to (verts (V, 3) float, faces (F, 3) long) tensors.

    Raises:
        ValueError: wrong shapes, no faces, out-of-range indices or non-finite coordinates.
    """
    verts = torch.as_tensor(verts)
    faces = torch.as_tensor(faces)
    if verts.ndim != 2 or verts.shape[-1] != 3:
        raise ValueError(f"{name}: verts must have shape (V, 3), got {tuple(verts.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"{name}: faces must have shape (F, 3), got {tuple(faces.shape)}")
    if faces.shape[0] == 0:
        raise ValueError(f"{name}: mesh has no faces")
    if not torch.is_floating_point(verts):
        verts = verts.float()
    if not torch.isfinite(verts).all():
        raise ValueError(f"{name}: verts contain NaN or inf")
    faces = faces.long()
    if faces.min() < 0 or faces.max() >= verts.shape[0]:
        raise ValueError(f"{name}: face indices outside [0, {verts.shape[0]})")
    return verts, faces


def from_pyvista(polydata) -> tuple[torch.Tensor, torch.Tensor]:
    """PyVista PolyData (any polygons) -> (verts (V, 3) float32, faces (F, 3) int64), triangulated."""
    surf = polydata.extract_surface() if not hasattr(polydata, "faces") else polydata
    tri = surf.triangulate()
    if tri.n_cells == 0 or tri.n_points == 0:
        raise ValueError("PyVista mesh has no polygons")
    faces = np.array(tri.faces).reshape(-1, 4)
    if not (faces[:, 0] == 3).all():
        raise ValueError("PyVista mesh is not triangulated after triangulate()")
    verts = torch.as_tensor(np.array(tri.points), dtype=torch.float32)
    return check_mesh(verts, torch.as_tensor(faces[:, 1:], dtype=torch.int64), "pyvista mesh")


def used_vertices(faces: torch.Tensor) -> torch.Tensor:
    """Sorted indices (U,) of the vertices referenced by faces."""
    return torch.unique(faces)


def remove_unused(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop vertices no face references; faces are re-indexed."""
    used = used_vertices(faces)
    remap = torch.full((len(verts),), -1, dtype=torch.long)
    remap[used] = torch.arange(len(used))
    return verts[used], remap[faces]


def bbox_diagonal(verts: torch.Tensor) -> torch.Tensor:
    """Length of the axis-aligned bounding-box diagonal. verts: (..., V, 3) -> (...)."""
    return (verts.amax(-2) - verts.amin(-2)).norm(dim=-1)


def normalize(verts: torch.Tensor) -> torch.Tensor:
    """Centre the bounding box at the origin and scale to unit bounding-box diagonal.

    Args:
        verts: (..., V, 3) float.
    Returns:
        (..., V, 3) float.
    """
    lo, hi = verts.amin(-2, keepdim=True), verts.amax(-2, keepdim=True)
    diag = (hi - lo).norm(dim=-1, keepdim=True)
    if (diag <= 0).any():
        raise ValueError("normalize: degenerate mesh (zero bounding-box diagonal)")
    return (verts - (lo + hi) / 2) / diag


def face_areas_normals(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangle areas (F,) and unit normals (F, 3) (zero for degenerate faces), in verts' dtype.

    Hand-written rather than PyTorch3D's ``Meshes.faces_areas_packed`` / ``faces_normals_packed``:
    that kernel (``mesh_face_areas_normals``) computes in float32 only (float64 verts are cast
    down, so surface centroids and float64 samples would lose precision), and it zeroes normals of
    faces whose |cross product| is below an absolute 1e-6, which depends on the mesh's scale. On
    float32 input both agree to rounding (tests/test_geometry.py).
    """
    a, b, c = verts[faces].unbind(-2)
    cr = torch.cross(b - a, c - a, dim=-1)
    norm = cr.norm(dim=-1)
    return norm / 2, cr / norm.clamp_min(1e-30)[:, None]


def surface_centroid(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted centroid of the surface (3,) (a symmetry of the surface fixes it)."""
    areas, _ = face_areas_normals(verts.double(), faces)
    cent = verts.double()[faces].mean(-2)
    return (areas[:, None] * cent).sum(0) / areas.sum().clamp_min(1e-30)


def sample_surface(
    verts: torch.Tensor, faces: torch.Tensor, n: int, seed: int = 0, with_normals: bool = False
):
    """Area-weighted uniform samples on the surface, reproducible through `seed`.

    Args:
        verts: (V, 3) float; faces: (F, 3) long; n: number of samples.
    Returns:
        points (n, 3) [, normals (n, 3)] in verts' dtype, plus the face index (n,) of each sample.
    """
    verts, faces = check_mesh(verts, faces)
    areas, normals = face_areas_normals(verts, faces)
    if areas.sum() <= 0:
        raise ValueError("sample_surface: mesh has zero surface area")
    g = torch.Generator().manual_seed(seed)
    fidx = torch.multinomial(areas.double(), n, replacement=True, generator=g)
    u, v = torch.rand(n, generator=g, dtype=verts.dtype), torch.rand(n, generator=g, dtype=verts.dtype)
    flip = u + v > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    a, b, c = verts[faces[fidx]].unbind(-2)
    pts = a + u[:, None] * (b - a) + v[:, None] * (c - a)
    if with_normals:
        return pts, normals[fidx], fidx
    return pts, fidx


def closest_point_on_triangles(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor):
    """Exact closest point on triangle (a, b, c) to p (Ericson, Real-Time Collision Detection 5.1.5).

    Args:
        p, a, b, c: (..., 3) float, broadcastable.
    Returns:
        (..., 3) closest points.
    """
    p, a, b, c = torch.broadcast_tensors(p, a, b, c)
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    tiny = torch.finfo(p.dtype).tiny
    # interior (default)
    denom = (va + vb + vc)
    denom = torch.where(denom.abs() < tiny, torch.full_like(denom, tiny), denom)
    v_ = vb / denom
    w_ = vc / denom
    out = a + ab * v_[..., None] + ac * w_[..., None]

    def sel(mask, value):
        nonlocal out
        out = torch.where(mask[..., None], value, out)

    # edge regions (applied before vertex regions, which take precedence)
    e_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    w = (d4 - d3) / ((d4 - d3) + (d5 - d6)).clamp_min(tiny)
    sel(e_bc, b + (c - b) * w[..., None])
    e_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    w = d2 / (d2 - d6).clamp_min(tiny)
    sel(e_ac, a + ac * w[..., None])
    e_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    v = d1 / (d1 - d3).clamp_min(tiny)
    sel(e_ab, a + ab * v[..., None])
    sel((d6 >= 0) & (d5 <= d6), c)
    sel((d3 >= 0) & (d4 <= d3), b)
    sel((d1 <= 0) & (d2 <= 0), a)
    return out


class TriangleIndex:
    """Exact point-to-surface queries on a fixed triangle mesh (float64, numpy).

    Faces are pruned with two lower bounds of the distance from p to face t: its bounding sphere,
    |p - centre_t| - radius_t, and its plane, |n_t . (p - a_t)| less ``slack_t``, the farthest any of
    its corners lies off that plane in floating point (zero-area faces have a zero normal, so their
    plane bound is 0 and never prunes). Face t can only hold the closest point if both bounds are <=
    an upper bound of the distance (the nearest vertex of a face, or `upper`); the survivors are
    tested exactly (`closest_point_on_triangles`). The plane bound keeps folded meshes (overlapping
    faces, as trained networks predict them) from testing hundreds of faces per point
    (`benchmarks/bench_metrics.py`).
    """

    def __init__(self, verts, faces):
        from scipy.spatial import cKDTree

        self.verts = torch.as_tensor(verts).detach().double().cpu()
        self.faces = torch.as_tensor(faces).long().cpu()
        self.tris = self.verts[self.faces]
        self.cen = self.tris.mean(1).numpy()
        self.rad = (self.tris - self.tris.mean(1, keepdim=True)).norm(dim=-1).amax(1).numpy()
        _, nrm = face_areas_normals(self.verts, self.faces)  # unit, or zero for degenerate faces
        lift = ((self.tris - self.tris[:, :1]) * nrm[:, None]).sum(-1)  # the corners' offsets off the plane
        self.nrm, self.off = nrm.numpy(), (nrm * self.tris[:, 0]).sum(-1).numpy()
        self.slack = lift.abs().amax(1).numpy()
        used = torch.unique(self.faces)  # a vertex of no face bounds no distance to the surface
        self.vtree = cKDTree(self.verts[used].numpy())

    def candidates(self, p: np.ndarray, ub: np.ndarray,
                   block: int = 500_000) -> tuple[np.ndarray, np.ndarray]:
        """The (point, face) pairs whose lower bounds do not exceed the points' upper bounds.

        Args:
            p: (P, 3) points; ub: (P,) upper bounds of their distances to the surface.
            block: pairs plane-tested at once (bounded memory when the bounds are loose).
        Returns:
            point indices (K,) and face indices (K,): the bounding spheres are tested over all faces,
            then the planes over the pairs that pass the spheres.
        """
        tol = ub * (1 + 1e-9) + 1e-9
        d2 = np.maximum((p**2).sum(1)[:, None] + (self.cen**2).sum(1)[None] - 2 * p @ self.cen.T, 0)
        pi, fi = np.nonzero(np.sqrt(d2) - self.rad[None] <= tol[:, None])
        keep = np.empty(len(pi), dtype=bool)
        for b in range(0, len(pi), block):
            i, f = pi[b : b + block], fi[b : b + block]
            keep[b : b + block] = np.abs((p[i] * self.nrm[f]).sum(1) - self.off[f]) - self.slack[f] <= tol[i]
        return pi[keep], fi[keep]

    def closest(self, points, upper=None, chunk: int | None = None):
        """points (P, 3) -> dist (P,), closest point (P, 3), face index (P,) (torch float64 / long)."""
        pts = torch.as_tensor(points).detach().double().cpu()
        chunk = chunk or int(max(1, min(256, 4_000_000 // len(self.cen))))  # bounded (chunk, F) buffers
        ub = self.vtree.query(pts.numpy())[0]
        if upper is not None:
            ub = np.minimum(ub, np.asarray(upper, dtype=np.float64))
        dist = torch.empty(len(pts), dtype=torch.float64)
        closest = torch.empty(len(pts), 3, dtype=torch.float64)
        face = torch.empty(len(pts), dtype=torch.long)
        pn = pts.numpy()
        for s in range(0, len(pts), chunk):
            p = pn[s : s + chunk]
            pi_all, fi_all = self.candidates(p, ub[s : s + chunk])
            n = len(p)
            best = torch.full((n,), torch.inf, dtype=torch.float64)
            best_c = torch.zeros(n, 3, dtype=torch.float64)
            best_f = torch.zeros(n, dtype=torch.long)
            for b in range(0, len(pi_all), 500_000):  # bounded memory for loose bounds
                pi = torch.as_tensor(pi_all[b : b + 500_000])
                fi = torch.as_tensor(fi_all[b : b + 500_000])
                t = self.tris[fi]
                pt = pts[s : s + chunk][pi]
                c = closest_point_on_triangles(pt, t[:, 0], t[:, 1], t[:, 2])
                d = (c - pt).norm(dim=-1)
                blk = torch.full((n,), torch.inf, dtype=torch.float64).scatter_reduce(0, pi, d, "amin")
                hit = d <= blk[pi]
                sel = torch.zeros(n, dtype=torch.long).scatter_reduce(
                    0, pi[hit], torch.nonzero(hit).squeeze(1), "amax", include_self=False
                )
                better = blk < best
                best = torch.where(better, blk, best)
                best_c[better] = c[sel[better]]
                best_f[better] = fi[sel[better]]
            dist[s : s + chunk] = best
            closest[s : s + chunk] = best_c
            face[s : s + chunk] = best_f
        return dist, closest, face


def point_mesh_closest(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, upper=None):
    """Exact distance from each point to a triangle mesh, with the closest surface point.

    Args:
        points: (P, 3) float; verts: (V, 3); faces: (F, 3) long.
        upper: optional (P,) upper bounds of the distances (e.g. to known surface samples).
    Returns:
        dist (P,), closest (P, 3), face index (P,), float64.
    """
    return TriangleIndex(verts, faces).closest(points, upper)


# ----------------------------------------------------------------------------------------- subdivision


def _unique_edges(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique undirected edges (E, 2) (sorted pairs, lexicographic order) and, per face corner
    edge, its index (F, 3), from PyTorch3D's ``Meshes.edges_packed`` (the edge order
    ``SubdivideMeshes`` uses for its new vertices).

    Edge k of face f is (faces[f, k], faces[f, (k + 1) % 3]).
    """
    from pytorch3d.structures import Meshes

    mesh = Meshes([verts.detach()], [faces])
    # PyTorch3D's column k is the edge opposite corner k: (f1 f2), (f2 f0), (f0 f1)
    return mesh.edges_packed(), mesh.faces_packed_to_edges_packed()[:, [2, 0, 1]]


def subdivide_midpoint(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """1 -> 4 midpoint subdivision (PyTorch3D `SubdivideMeshes`). (V, 3), (F, 3) -> (V + E, 3), (4F, 3)."""
    from pytorch3d.ops import SubdivideMeshes
    from pytorch3d.structures import Meshes

    verts, faces = check_mesh(verts, faces)
    out = SubdivideMeshes()(Meshes([verts], [faces]))
    return out.verts_packed(), out.faces_packed()


def subdivide_centroid(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """1 -> 3 subdivision: a vertex at each face centroid. (V, 3), (F, 3) -> (V + F, 3), (3F, 3).

    The face orientation is preserved; differentiable in verts.
    """
    verts, faces = check_mesh(verts, faces)
    V, F = len(verts), len(faces)
    cent = verts[faces].mean(-2)
    c = torch.arange(V, V + F)
    a, b, d = faces.unbind(-1)
    new_faces = torch.cat(
        [torch.stack([a, b, c], -1), torch.stack([b, d, c], -1), torch.stack([d, a, c], -1)]
    )
    return torch.cat([verts, cent]), new_faces


def subdivide_loop(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Loop subdivision (Loop 1987, Warren's weights are NOT used: beta from Loop's formula).

    Interior odd vertex: 3/8 (a + b) + 1/8 (c + d); boundary odd vertex: edge midpoint.
    Interior even vertex of valence n: (1 - n beta) v + beta sum(neighbours),
    beta = (5/8 - (3/8 + cos(2 pi / n) / 4)^2) / n; boundary even vertex: 3/4 v + 1/8 (b0 + b1).
    Connectivity is the same as `subdivide_midpoint` (vertices V..V+E-1 are the edge points).
    Differentiable in verts. (V, 3), (F, 3) -> (V + E, 3), (4F, 3).
    """
    verts, faces = check_mesh(verts, faces)
    V = len(verts)
    edges, fe = _unique_edges(verts, faces)
    E = len(edges)
    # opposite vertex of each face edge: edge k = (f[k], f[k+1]), opposite = f[k+2]
    opp = faces.roll(-2, dims=1).reshape(-1)
    fe_flat = fe.reshape(-1)
    n_adj = torch.bincount(fe_flat, minlength=E)
    if (n_adj > 2).any():
        raise ValueError("subdivide_loop: non-manifold mesh (an edge has more than two faces)")
    boundary_e = n_adj == 1
    opp_sum = torch.zeros(E, 3, dtype=verts.dtype).index_add(0, fe_flat, verts[opp])
    ends = verts[edges].sum(1)
    odd = torch.where(boundary_e[:, None], ends / 2, 3.0 / 8.0 * ends + opp_sum / 8.0)

    # even vertices
    ea, eb = edges.unbind(-1)
    valence = torch.bincount(torch.cat([ea, eb]), minlength=V).to(verts.dtype)
    nb_sum = torch.zeros(V, 3, dtype=verts.dtype).index_add(0, ea, verts[eb]).index_add(0, eb, verts[ea])
    n = valence.clamp_min(1)
    beta = (5.0 / 8.0 - (3.0 / 8.0 + torch.cos(2 * math.pi / n) / 4.0) ** 2) / n
    even = (1 - n * beta)[:, None] * verts + beta[:, None] * nb_sum
    # boundary vertices: average of their two boundary neighbours
    ba, bb = edges[boundary_e].unbind(-1)
    b_cnt = torch.bincount(torch.cat([ba, bb]), minlength=V)
    b_sum = torch.zeros(V, 3, dtype=verts.dtype).index_add(0, ba, verts[bb]).index_add(0, bb, verts[ba])
    on_b = b_cnt > 0
    even_b = 0.75 * verts + b_sum / 8.0 * (2.0 / b_cnt.clamp_min(1).to(verts.dtype))[:, None]
    even = torch.where(on_b[:, None], even_b, even)

    m = fe + V  # (F, 3) new vertex ids for edges (f0 f1), (f1 f2), (f2 f0)
    f0, f1, f2 = faces.unbind(-1)
    m01, m12, m20 = m.unbind(-1)
    new_faces = torch.cat(
        [
            torch.stack([f0, m01, m20], -1),
            torch.stack([f1, m12, m01], -1),
            torch.stack([f2, m20, m12], -1),
            torch.stack([m01, m12, m20], -1),
        ]
    )
    return torch.cat([even, odd]), new_faces
