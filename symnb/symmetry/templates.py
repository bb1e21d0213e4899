"""Sphere templates whose symmetries map vertices exactly onto vertices.

Two families:

* **geodesic** (default): the icosahedron with every face split into f^2 triangles (a class-I
  geodesic sphere of frequency f), V = 10 f^2 + 2 vertices: 12, 42, 92, 162, 252, 362, 492, 642,
  812, 1002, 1212, 1442, 1692, ... The vertex count can be chosen finely (not only 4x per level:
  frequency f and round(f sqrt 2) give about 2x the vertices). It is oriented with a 5-fold axis
  of the icosahedron along y and a mirror plane at x = 0, so it has the reflection x -> -x
  (bit-exact, enforced after construction) and 5-fold rotations about y (to float rounding).
  Triangles are near-equilateral everywhere. With `orientation="planes"` it keeps the
  icosahedron's coordinate planes instead: bit-exact mirrors x = 0, y = 0 and z = 0 (so the
  two-planes group x = 0, z = 0 and the 2-fold rotation about y), no 5-fold axis.
* **uv**: a latitude/longitude sphere with `n_lat` bands and `n_lon` meridians,
  V = (n_lat - 1) n_lon + 2. With an even `n_lon` the meridians are arranged symmetrically about
  x = 0 (bit-exact mirror); rotations by 2 pi / n about y map vertices onto vertices for every n
  dividing `n_lon` (exact up to float rounding); z = 0 is a bit-exact mirror as well. Used for
  n-fold rotation representations.

`template_for(representation, n_verts, order)` (in ``symnb.symmetry.groups``)
returns a template invariant under the group of a representation.

All templates are unit spheres centred at the origin with outward (counter-clockwise) faces.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree

from .matching import match_vertices

GOLDEN = (1 + math.sqrt(5)) / 2


def geodesic_n_verts(frequency: int) -> int:
    """Vertex count 10 f^2 + 2 of the frequency-f geodesic sphere."""
    return 10 * frequency * frequency + 2


def _icosahedron(orientation: str = "five_fold") -> tuple[np.ndarray, np.ndarray]:
    p = GOLDEN
    v = np.array(
        [[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p],
         [0, -1, -p], [0, 1, -p], [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]],
        dtype=np.float64,
    )
    f = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]],
        dtype=np.int64,
    )
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    if orientation == "planes":  # the coordinate planes are mirror planes of this placement
        return v, f
    if orientation != "five_fold":
        raise ValueError(f"unknown geodesic orientation {orientation!r} (use 'five_fold' or 'planes')")
    # vertex (0, 1, p) lies in the mirror plane x = 0: rotate it about x onto +y
    ang = math.atan2(p, 1.0)  # angle of (y, z) = (1, p) from +y
    c, s = math.cos(ang), math.sin(ang)
    rx = np.array([[1, 0, 0], [0, c, s], [0, -s, c]])
    return v @ rx.T, f


def mirror_indices(verts: np.ndarray, normal=(1.0, 0.0, 0.0), tol: float = 1e-6) -> np.ndarray:
    """For each vertex the index of the vertex nearest to its reflection (plane through the origin).

    Raises:
        ValueError: some reflected vertex is farther than `tol` (relative to the bbox diagonal) from
        every vertex.
    """
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    v = np.asarray(verts, dtype=np.float64)
    return match_vertices(v, v - 2 * (v @ n)[:, None] * n, tol, "the reflection")


def _make_exact_mirror(v: np.ndarray, axis: int = 0) -> np.ndarray:
    """Make the mirror of coordinate `axis` (x by default) bit-exact: negative-side vertices are
    negated copies of their positive-side counterparts, plane vertices get coordinate 0. Applying
    it for several commuting mirror planes keeps the earlier ones exact."""
    flip = np.ones(3)
    flip[axis] = -1.0
    mirror = mirror_indices(v, normal=np.eye(3)[axis], tol=1e-6)
    v = v.copy()
    on_plane = mirror == np.arange(len(v))
    v[on_plane, axis] = 0.0
    neg = (~on_plane) & (v[:, axis] < 0)
    v[neg] = v[mirror[neg]] * flip
    return v


def _orient_outward(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    flip = (np.cross(b - a, c - a) * (a + b + c)).sum(1) < 0
    f = f.copy()
    f[flip] = f[flip][:, [0, 2, 1]]
    return f


def geodesic_sphere(frequency: int, orientation: str = "five_fold") -> tuple[torch.Tensor, torch.Tensor]:
    """Frequency-f geodesic icosphere: (V, 3) float32 with V = 10 f^2 + 2, faces (20 f^2, 3) long.

    Args:
        orientation: "five_fold" (a 5-fold axis along y, mirror x = 0) or "planes" (mirrors x = 0,
            y = 0 and z = 0, all bit-exact).
    """
    if frequency < 1:
        raise ValueError(f"frequency must be >= 1, got {frequency}")
    iv, ifaces = _icosahedron(orientation)
    f = frequency
    pts, tris = [], []
    for a, b, c in ifaces:
        # lattice point (i, j) -> A + i/f (B - A) + j/f (C - A), i + j <= f
        ids = {}
        for i in range(f + 1):
            for j in range(f + 1 - i):
                ids[i, j] = len(pts)
                k = f - i - j
                pts.append((k * iv[a] + i * iv[b] + j * iv[c]) / f)
        for i in range(f):
            for j in range(f - i):
                tris.append((ids[i, j], ids[i + 1, j], ids[i, j + 1]))
                if i + j < f - 1:
                    tris.append((ids[i + 1, j], ids[i + 1, j + 1], ids[i, j + 1]))
    pts = np.asarray(pts)
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    # merge duplicates along shared icosahedron edges
    groups = cKDTree(pts).query_ball_point(pts, r=1e-9)
    rep = np.array([min(g) for g in groups])
    uniq, inv = np.unique(rep, return_inverse=True)
    v = pts[uniq]
    faces = inv[np.asarray(tris)]
    if len(v) != geodesic_n_verts(f):
        raise RuntimeError(f"geodesic sphere construction gave {len(v)} vertices")
    for axis in (0, 1, 2) if orientation == "planes" else (0,):
        v = _make_exact_mirror(v, axis)
    faces = _orient_outward(v, faces)
    return torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(faces, dtype=torch.int64)


def uv_sphere(n_lat: int, n_lon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Latitude/longitude unit sphere, poles on the y axis. V = (n_lat - 1) n_lon + 2.

    Meridian j sits at angle 2 pi (j + 1/2) / n_lon about y from +z; with n_lon even, meridian
    j and n_lon - 1 - j are exact mirrors (x -> -x), so no vertex lies on the plane except the poles.
    """
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"uv_sphere needs n_lat >= 2 and n_lon >= 3, got {n_lat}, {n_lon}")
    if n_lon % 2:
        raise ValueError(f"uv_sphere: n_lon must be even for an exact x = 0 mirror, got {n_lon}")
    theta = np.pi * np.arange(1, n_lat) / n_lat  # polar angle from +y
    half = n_lon // 2
    phi = 2 * np.pi * (np.arange(half) + 0.5) / n_lon  # right half: x > 0
    xs, zs = np.sin(phi), np.cos(phi)
    # bit-exact z = 0 mirror: meridian j <-> half - 1 - j (phi -> pi - phi)
    q = half // 2
    xs[half - q:], zs[half - q:] = xs[:q][::-1], -zs[:q][::-1]
    if half % 2:
        zs[q] = 0.0
    # meridians 0..half-1 have x > 0; meridian n_lon-1-j is the exact mirror of j
    x = np.concatenate([xs, -xs[::-1]])
    z = np.concatenate([zs, zs[::-1]])
    st, ct = np.sin(theta), np.cos(theta)
    ring = np.stack(
        [st[:, None] * x[None, :], np.repeat(ct[:, None], n_lon, 1), st[:, None] * z[None, :]], -1
    ).reshape(-1, 3)
    v = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
    def rid(i, j):
        return 1 + i * n_lon + (j % n_lon)
    faces = []
    for j in range(n_lon):
        faces.append((0, rid(0, j), rid(0, j + 1)))
        for i in range(n_lat - 2):
            faces.append((rid(i, j), rid(i + 1, j), rid(i + 1, j + 1)))
            faces.append((rid(i, j), rid(i + 1, j + 1), rid(i, j + 1)))
        faces.append((len(v) - 1, rid(n_lat - 2, j + 1), rid(n_lat - 2, j)))
    faces = _orient_outward(v, np.asarray(faces))
    return torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(faces, dtype=torch.int64)


def refinement_template(n_base: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Template for the refinement scheme: ~2x ``n_base`` vertices, exactly ``n_base`` independent ones.

    A latitude-longitude sphere (:func:`uv_sphere`, no vertex on the plane
    x = 0 except the two poles) has ``(n_lat - 1) n_lon / 2 + 2`` independent vertices, so choosing
    ``(n_lat - 1) n_lon = 2 (n_base - 2)`` (cells as square as possible) gives the same number of
    mean-shape parameters as the ``n_base``-vertex baseline and ``2 n_base - 2`` output vertices.

    Returns:
        verts (V, 3), faces (F, 3).
    """
    target = 2 * (n_base - 2)
    cands = [(r + 1, target // r) for r in range(2, target) if target % r == 0 and (target // r) % 2 == 0
             and target // r >= 4]
    if not cands:
        raise ValueError(f"no latitude-longitude sphere has exactly {n_base} independent vertices")
    n_lat, n_lon = min(cands, key=lambda c: abs(math.log(c[1] / (2 * c[0]))))
    return uv_sphere(n_lat, n_lon)


def _closest_frequency(n_verts: int) -> int:
    f = max(1, round(math.sqrt(max(n_verts - 2, 10) / 10)))
    cands = [g for g in (f - 1, f, f + 1) if g >= 1]
    return min(cands, key=lambda g: (abs(math.log(geodesic_n_verts(g) / n_verts)), g))


def sphere_template(
    n_verts: int = 642, family: str = "geodesic", n_fold: int = 1, orientation: str = "five_fold"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit sphere template with about `n_verts` vertices (closest in log ratio within the family).

    Args:
        n_verts: wanted vertex count (default 642 = the frequency-8 geodesic sphere = MCMR's
            level-3 icosphere count).
        family: "geodesic" (10 f^2 + 2 vertices, x = 0 mirror, 5-fold about y) or "uv"
            (latitude/longitude, x = 0 mirror, n-fold about y for n | n_lon).
        n_fold: for family "uv", the number of meridians is a multiple of lcm(2, n_fold).
        orientation: for family "geodesic", "five_fold" or "planes" (see `geodesic_sphere`).
    Returns:
        verts (V, 3) float32 on the unit sphere, faces (F, 3) long, outward.
    """
    if n_verts < 12:
        raise ValueError(f"sphere_template: n_verts must be >= 12, got {n_verts}")
    if family == "geodesic":
        return geodesic_sphere(_closest_frequency(n_verts), orientation)
    if family == "uv":
        step = math.lcm(2, max(1, n_fold))
        best = None
        for n_lon in range(max(step, 4), 4 * int(math.sqrt(n_verts)) + 2 * step, step):
            n_lat = max(2, round((n_verts - 2) / n_lon + 1))
            count = (n_lat - 1) * n_lon + 2
            # prefer near-square cells: n_lon ~ 2 n_lat
            key = (abs(math.log(count / n_verts)) + 0.05 * abs(math.log(n_lon / (2 * n_lat))), n_lon)
            if best is None or key < best[0]:
                best = (key, n_lat, n_lon)
        return uv_sphere(best[1], best[2])
    raise ValueError(f"unknown template family {family!r} (use 'geodesic' or 'uv')")


def double_resolution(verts: torch.Tensor, faces: torch.Tensor | None = None, family: str = "geodesic"):
    """The template of the same family with about 2x the vertices of `verts` (refinement scheme).

    For the geodesic family, frequency f -> round(f sqrt 2): 642 -> 1212, 162 -> 362, 2562 -> 5762.
    """
    return sphere_template(2 * len(verts), family=family)
