"""Detection of reflection planes and rotation axes of a triangle surface in any pose.

Pipeline (all in a frame centred at the surface's area-weighted centroid, which every symmetry of
the surface fixes, and scaled by the bounding-box diagonal):

1. Area-weighted surface samples (so uneven tessellation does not bias anything; open surfaces are
   fine). A KD-tree on them scores a transform T by the capped mean distance of T(samples) to the
   samples, compared with the noise floor of an independent sample set.
2. Plane candidates: normals on a Fibonacci hemisphere (no reliance on PCA, which is ambiguous for
   near-equal inertia) plus the PCA axes; the local minima of the score are refined ICP-style
   (reflect, take nearest neighbours, re-fit the plane as the bisector of the pairs).
3. Axis candidates: PCA axes, plane normals and intersections of plane pairs. Orders 12..2 are
   scored; the axis of the largest fitting order is refined by Kabsch on correspondences; a
   continuous rotation (order 0) is declared when several generic angles all fit, its axis
   refined by the surface-of-revolution condition ((p - c) x n) . axis = 0 (linear least squares).
4. Every survivor is verified with the surface Hausdorff distance between the surface and its
   transformed copy (exact point-to-triangle distances for the worst samples and the vertices),
   divided by the bounding-box diagonal: `Symmetry.error`. Those above `tol` are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ..config import Config
from ..geometry import check_mesh
from .scoring import Scorer as _Scorer
from .scoring import refl_matrix as _refl_matrix
from .scoring import rot_matrix as _rot_matrix


@dataclass
class Symmetry:
    """A symmetry of a surface.

    Attributes:
        kind: "reflection" or "rotation".
        normal: (3,) float64 unit plane normal (reflection) or rotation axis.
        point: (3,) float64 a point on the plane / axis (input coordinates).
        order: 1 for a reflection, n for an n-fold rotation, 0 for a continuous rotation.
        error: Hausdorff distance between the surface and its transformed copy / bbox diagonal
            (for a continuous rotation, the largest over the tested angles).
    """

    kind: str
    normal: torch.Tensor
    point: torch.Tensor
    order: int
    error: float

    def matrix(self, angle: float | None = None) -> torch.Tensor:
        """The (4, 4) float64 transform (reflection, or rotation by `angle` / 2 pi / order)."""
        n = self.normal.double()
        if self.kind == "reflection":
            A = torch.eye(3, dtype=torch.float64) - 2 * torch.outer(n, n)
        else:
            if angle is None:
                angle = 2 * math.pi / self.order if self.order else 0.0
            A = torch.as_tensor(Rotation.from_rotvec((n * angle).numpy()).as_matrix())
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3] = A
        T[:3, 3] = self.point.double() - A @ self.point.double()
        return T


@dataclass
class DetectSettings(Config):
    """Detection knobs (defaults: ~1 s for a 10k-face mesh on 2 CPU cores)."""

    n_samples: int = 5000
    """Surface samples in the scoring KD-tree."""
    n_scan: int = 300
    """Samples used to score the candidate scan."""
    n_directions: int = 1000
    """Fibonacci normals on the hemisphere (~ 4 degree spacing for 1000)."""
    n_refine: int = 8
    """Local minima refined per scan."""
    icp_iters: int = 10
    """ICP iterations per refinement."""
    n_verify: int = 8000
    """Surface samples (plus all vertices) in the Hausdorff verification."""
    max_order: int = 12
    """Largest n-fold order tried."""
    seed: int = 0
    """Sampling seed."""

    def validate(self) -> None:
        for name in ("n_samples", "n_scan", "n_directions", "n_refine", "n_verify"):
            self._range(name, 1)
        self._range("icp_iters", 0)
        self._range("max_order", 2)
        self._range("seed", 0)


GENERIC_ANGLES = (0.37, 2.45, 4.3)  # radians, far from k 2 pi / n for every n <= 12


def fibonacci_hemisphere(n: int) -> np.ndarray:
    """n roughly uniform unit vectors with z >= 0 (n, 3)."""
    i = np.arange(n) + 0.5
    z = 1 - i / n
    r = np.sqrt(1 - z * z)
    phi = i * math.pi * (3 - math.sqrt(5))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def _canon(n: np.ndarray) -> np.ndarray:
    n = n / np.linalg.norm(n)
    return -n if n[np.argmax(np.abs(n))] < 0 else n


def _same_plane(n, d, m, e) -> bool:
    return abs(n @ m) > math.cos(math.radians(2.0)) and abs(d - e * np.sign(n @ m)) < 0.01


def _plane_candidates(sc: _Scorer) -> list[np.ndarray]:
    s = sc.s
    dirs = fibonacci_hemisphere(s.n_directions)
    scores = sc.score_many(np.stack([_refl_matrix(n) for n in dirs]))
    both = np.concatenate([dirs, -dirs])
    _, nb = cKDTree(both).query(dirs, k=9)
    nb_scores = scores[nb[:, 1:] % len(dirs)]
    local_min = scores <= nb_scores.min(1)
    idx = np.nonzero(local_min)[0]
    idx = idx[np.argsort(scores[idx])][: s.n_refine]
    _, vecs = np.linalg.eigh(np.cov(sc.P.T))
    return [dirs[i] for i in idx] + list(vecs.T)


def _fit_continuous(sc: _Scorer, a0: np.ndarray, tol: float, loose: float):
    generic = sc.score_many(np.stack([_rot_matrix(a0, t) for t in GENERIC_ANGLES]))
    if generic.max() > loose:
        return None
    a = sc.refine_revolution_axis(a0)
    if abs(a @ a0) < math.cos(math.radians(10)):
        return None
    err = max(sc.hausdorff(_rot_matrix(a, t)) for t in GENERIC_ANGLES)
    return (a, 0, err) if err <= tol else None


def _fit_rotation(sc: _Scorer, a0: np.ndarray, tol: float, loose: float):
    """Best rotation about (a refinement of) axis a0: (axis, order, error) or None.

    Continuous when the generic angles all fit; else the largest order n in 2..max_order whose
    error is within tol and not much worse than the smallest fitting order's (a 12-fold "fit" of
    an octagonal nut is approximate: its error is far above the 2-, 4- and 8-fold errors)."""
    cont = _fit_continuous(sc, a0, tol, loose)
    if cont is not None:
        return cont
    orders = np.arange(2, sc.s.max_order + 1)
    scores = sc.score_many(np.stack([_rot_matrix(a0, 2 * math.pi / n) for n in orders]))
    # orders that fit about as well as the best one (true orders score at the noise floor)
    best_score = scores.min()
    fits = [int(n) for n, v in zip(orders, scores, strict=True) if v <= min(loose, 1.5 * best_score + 0.002)]
    if not fits:
        return None
    a = sc.refine_axis(a0, 2 * math.pi / fits[0])
    base = sc.hausdorff(_rot_matrix(a, 2 * math.pi / fits[0]))
    if base > tol:
        return None
    cont = _fit_continuous(sc, a, tol, loose)  # the refined axis may reveal a continuous rotation
    if cont is not None:
        return cont
    for n in sorted(fits[1:], reverse=True):
        err = sc.hausdorff(_rot_matrix(a, 2 * math.pi / n))
        if err <= tol and err <= 2 * base + 0.002:
            a2 = sc.refine_axis(a, 2 * math.pi / n)
            err2 = sc.hausdorff(_rot_matrix(a2, 2 * math.pi / n))
            return (a2, n, err2) if err2 <= err else (a, n, err)
    return a, fits[0], base


def _dihedral_family(sc: _Scorer, axis: np.ndarray, order: int, planes: list, tol: float):
    """Snap the planes related to a main axis onto the symmetry group they must form.

    Planes perpendicular to the axis get the axis as normal. For a continuous axis only the best
    plane containing it is kept (it implies all others). For an n-fold axis the planes containing
    it are regenerated as the n planes at angles theta_0 + k pi / n from the best one (closure of
    the dihedral group), each verified; with a perpendicular plane, the n 2-fold axes in those
    planes perpendicular to the main axis are generated and verified too.
    Returns (planes, extra 2-fold rotations)."""
    cosines = [abs(p[0] @ axis) for p in planes]
    perp = [p for p, c in zip(planes, cosines, strict=True) if c > math.cos(math.radians(5))]
    containing = [p for p, c in zip(planes, cosines, strict=True) if c < math.sin(math.radians(5))]
    others = [
        p for p, c in zip(planes, cosines, strict=True)
        if math.sin(math.radians(5)) <= c <= math.cos(math.radians(5))
    ]
    new_perp = []
    for n, d, err in perp[:1]:
        m = axis if n @ axis > 0 else -axis
        e2 = sc.hausdorff(_refl_matrix(m), 2 * d * m)
        new_perp.append((m, d, e2) if e2 <= max(err, tol) else (n, d, err))
    if not containing:
        return others + new_perp, []
    best = min(containing, key=lambda p: p[2])
    if order == 0:
        return others + new_perp + [best], []
    u = best[0] - (best[0] @ axis) * axis
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    fam, extra = [], []
    for k in range(order):
        t = k * math.pi / order
        n = math.cos(t) * u + math.sin(t) * w
        err = sc.hausdorff(_refl_matrix(n))
        if err <= tol:
            fam.append((n, 0.0, err))
        if new_perp:
            b = np.cross(axis, n)
            err = sc.hausdorff(_rot_matrix(b, math.pi))
            if err <= tol:
                extra.append((b, 2, err))
    return others + new_perp + fam, extra


def detect_symmetries(
    verts, faces, tol: float = 0.02, settings: DetectSettings | None = None
) -> list[Symmetry]:
    """Reflection planes and rotation axes of a triangle surface in any pose.

    Args:
        verts: (V, 3) float; faces: (F, 3) long (open and unevenly tessellated surfaces are fine).
        tol: largest accepted error (Hausdorff to the transformed copy / bbox diagonal).
        settings: detection knobs.
    Returns:
        list of `Symmetry`, best (smallest error) first; empty for an asymmetric shape.
    """
    s = settings or DetectSettings()
    verts, faces = check_mesh(verts, faces)
    sc = _Scorer(verts, faces, s)
    loose = sc.floor + max(tol, 0.004)

    # ---------------- reflection planes
    planes: list[tuple[np.ndarray, float, float]] = []  # (normal, offset, error)
    for n0 in _plane_candidates(sc):
        if any(abs(n0 @ m) > math.cos(math.radians(2.0)) for m, _, _ in planes):
            continue
        if sc.score_many(_refl_matrix(n0)[None])[0] > loose + 0.02:
            continue
        n, d = sc.refine_plane(n0)
        if any(_same_plane(n, d, m, e) for m, e, _ in planes):
            continue
        if sc.score_many(_refl_matrix(n)[None])[0] > loose:
            continue
        n, d = sc.refine_plane(n, d, fine=True)
        n, d = sc.refine_plane_p2plane(n, d)
        if any(_same_plane(n, d, m, e) for m, e, _ in planes):
            continue
        err = sc.hausdorff(_refl_matrix(n), 2 * d * n)
        if err <= tol:
            planes.append((n, d, err))

    # ---------------- rotation axes
    axes = [np.linalg.eigh(np.cov(sc.P.T))[1][:, i] for i in range(3)]
    axes += [n for n, _, _ in sorted(planes, key=lambda x: x[2])]
    for i in range(len(planes)):
        for j in range(i + 1, len(planes)):
            cr = np.cross(planes[i][0], planes[j][0])
            if np.linalg.norm(cr) > 0.1:
                axes.append(cr / np.linalg.norm(cr))
    rotations: list[tuple[np.ndarray, int, float]] = []
    tried: list[np.ndarray] = []
    for a0 in axes:
        a0 = a0 / np.linalg.norm(a0)
        if any(abs(a0 @ b) > math.cos(math.radians(2.0)) for b in tried):
            continue
        # axes perpendicular to a continuous or n >= 3-fold axis are generated below from the planes
        if any((o == 0 or o >= 3) and abs(a0 @ b) < 0.035 for b, o, _ in rotations):
            continue
        tried.append(a0)
        found = _fit_rotation(sc, a0, tol, loose)
        if found is not None and all(abs(found[0] @ b) < math.cos(math.radians(2)) for b, _, _ in rotations):
            rotations.append(found)
            tried.append(found[0])

    for b, o, _ in [r for r in rotations if r[1] == 0 or r[1] >= 3]:
        planes, extra = _dihedral_family(sc, b, o, planes, tol)
        rotations = [r for r in rotations if r[1] != 2 or abs(r[0] @ b) >= 0.035] + extra

    out = []
    for n, d, err in planes:
        n_c = _canon(n)
        d_c = d * float(n_c @ n)
        point = sc.c + torch.as_tensor(n_c * d_c * sc.diag)
        out.append(Symmetry("reflection", torch.as_tensor(n_c), point, 1, err))
    for a, order, err in rotations:
        out.append(Symmetry("rotation", torch.as_tensor(_canon(a)), sc.c.clone(), order, err))
    out.sort(key=lambda x: x.error)
    return out
