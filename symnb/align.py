"""Rigid / similarity alignment of point sets and meshes: PCA with sign disambiguation, ICP
(point-to-point and point-to-plane, optional scale), and PCA-initialised ICP.

Transforms are (4, 4) float64 matrices T with x' = T @ [x, 1] (a similarity: s R, t).
Points: (N, 3) float.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree


@dataclass
class Alignment:
    """Result of an alignment.

    Attributes:
        transform: (4, 4) float64, maps source points onto the destination.
        residual: RMS distance of the transformed source points to their nearest destination points.
        iterations: ICP iterations run (0 for PCA).
    """

    transform: torch.Tensor
    residual: float
    iterations: int = 0

    def apply(self, pts: torch.Tensor) -> torch.Tensor:
        T = self.transform.to(pts)
        return pts @ T[:3, :3].T + T[:3, 3]


def _np(x) -> np.ndarray:
    x = torch.as_tensor(x).detach().cpu().double().numpy()
    if x.ndim != 2 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError(f"expected a non-empty (N, 3) point set, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("point set contains NaN or inf")
    return x


def _make_T(A: np.ndarray, t: np.ndarray) -> torch.Tensor:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = A, t
    return torch.as_tensor(T)


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = False, weights=None):
    """Least-squares similarity (Umeyama 1991) with dst ~ s R src + t. Returns (s, R (3, 3), t (3,))."""
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    U, S, Vt = np.linalg.svd(cov)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / (w @ (xs**2).sum(1))) if with_scale else 1.0
    return s, R, mu_d - s * R @ mu_s


def _rms_nn(tree: cKDTree, pts: np.ndarray) -> float:
    d, _ = tree.query(pts, workers=1)
    return float(np.sqrt((d**2).mean()))


def pca_frame(pts) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (3,) and principal axes (3, 3) (rows, decreasing variance), signs fixed so that the
    third moment along each of the first two axes is positive and the frame is right-handed."""
    x = _np(pts)
    mu = x.mean(0)
    c = x - mu
    w, vecs = np.linalg.eigh(c.T @ c)
    axes = vecs.T[::-1].copy()
    for i in range(2):
        if ((c @ axes[i]) ** 3).sum() < 0:
            axes[i] *= -1
    axes[2] = np.cross(axes[0], axes[1])
    return mu, axes


def pca_align(src, dst, with_scale: bool = False) -> Alignment:
    """Align principal axes of src onto those of dst (signs disambiguated by third moments).

    Args:
        src, dst: (N, 3), (M, 3) points (e.g. mesh vertices or surface samples).
    """
    s_np, d_np = _np(src), _np(dst)
    mu_s, A_s = pca_frame(s_np)
    mu_d, A_d = pca_frame(d_np)
    R = A_d.T @ A_s
    s = 1.0
    if with_scale:
        s = float(np.sqrt(((d_np - mu_d) ** 2).sum(1).mean() / ((s_np - mu_s) ** 2).sum(1).mean()))
    t = mu_d - s * R @ mu_s
    res = _rms_nn(cKDTree(d_np), s_np @ (s * R).T + t)
    return Alignment(_make_T(s * R, t), res, 0)


def icp(
    src_verts,
    dst_verts,
    init: torch.Tensor | None = None,
    max_iters: int = 50,
    with_scale: bool = False,
    point_to_plane: bool = False,
    dst_normals=None,
    tol: float = 1e-7,
    trim: float = 1.0,
) -> Alignment:
    """Iterative closest point from src to dst.

    Args:
        src_verts: (N, 3) source points; dst_verts: (M, 3) destination points.
        init: (4, 4) initial transform (identity by default).
        with_scale: estimate a similarity (Umeyama) instead of a rigid transform (point-to-point).
        point_to_plane: minimise distances along dst normals (linearised rotation, Chen & Medioni);
            needs `dst_normals` (M, 3).
        trim: fraction of the closest correspondences used at each step (1 = all).
    Returns:
        Alignment with the final transform and RMS nearest-neighbour residual.
    """
    src, dst = _np(src_verts), _np(dst_verts)
    if point_to_plane:
        if dst_normals is None:
            raise ValueError("icp(point_to_plane=True) needs dst_normals (M, 3)")
        nrm = _np(dst_normals)
        if len(nrm) != len(dst):
            raise ValueError(f"dst_normals has {len(nrm)} rows for {len(dst)} points")
    T = np.eye(4) if init is None else torch.as_tensor(init).double().numpy().copy()
    tree = cKDTree(dst)
    prev = np.inf
    it = 0
    for it in range(1, max_iters + 1):  # noqa: B007 - the count is returned
        cur = src @ T[:3, :3].T + T[:3, 3]
        d, j = tree.query(cur, workers=1)
        keep = np.ones(len(d), bool)
        if trim < 1.0:
            keep = d <= np.quantile(d, trim)
        p, q = cur[keep], dst[j[keep]]
        if point_to_plane:
            n = nrm[j[keep]]
            A = np.concatenate([np.cross(p, n), n], 1)
            b = ((q - p) * n).sum(1)
            x, *_ = np.linalg.lstsq(A, b, rcond=None)
            r = x[:3]
            ang = np.linalg.norm(r)
            from scipy.spatial.transform import Rotation

            dR = Rotation.from_rotvec(r).as_matrix() if ang > 0 else np.eye(3)
            step = np.eye(4)
            step[:3, :3], step[:3, 3] = dR, x[3:]
        else:
            s, R, t = umeyama(p, q, with_scale)
            step = np.eye(4)
            step[:3, :3], step[:3, 3] = s * R, t
        T = step @ T
        err = float(np.sqrt((d[keep] ** 2).mean()))
        if abs(prev - err) < tol * max(1.0, err):
            break
        prev = err
    res = _rms_nn(tree, src @ T[:3, :3].T + T[:3, 3])
    return Alignment(torch.as_tensor(T), res, it)


def pca_icp(src_verts, dst_verts, with_scale: bool = False, point_to_plane: bool = False,
            dst_normals=None, max_iters: int = 50) -> Alignment:
    """ICP initialised by PCA, trying all 4 proper sign flips of the principal axes (the third-moment
    signs are unreliable for near-symmetric shapes) and keeping the lowest residual."""
    src, dst = _np(src_verts), _np(dst_verts)
    mu_s, A_s = pca_frame(src)
    mu_d, A_d = pca_frame(dst)
    s = 1.0
    if with_scale:
        s = float(np.sqrt(((dst - mu_d) ** 2).sum(1).mean() / ((src - mu_s) ** 2).sum(1).mean()))
    best = None
    for sx, sy in itertools.product((1, -1), (1, -1)):
        F = np.diag([sx, sy, sx * sy]).astype(float)
        R = A_d.T @ F @ A_s
        init = _make_T(s * R, mu_d - s * R @ mu_s)
        al = icp(src, dst, init, max_iters, with_scale, point_to_plane, dst_normals)
        if best is None or al.residual < best.residual:
            best = al
    return best
