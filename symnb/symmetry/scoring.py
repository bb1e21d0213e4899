"""Scoring and refinement of candidate symmetries of a surface (used by :mod:`symnb.symmetry.detect`).

All in a frame centred at the surface's area-weighted centroid and scaled by the bbox diagonal.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ..geometry import TriangleIndex, sample_surface, surface_centroid


def refl_matrix(n: np.ndarray) -> np.ndarray:
    return np.eye(3) - 2 * np.outer(n, n)


def rot_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()


class Scorer:
    """Scores and refines linear transforms of the centred, normalised surface."""

    def __init__(self, verts: torch.Tensor, faces: torch.Tensor, s):
        """s: a ``DetectSettings``."""
        v = verts.double()
        self.faces = faces
        lo, hi = v.amin(0), v.amax(0)
        self.diag = float((hi - lo).norm())
        if self.diag <= 0:
            raise ValueError("detect_symmetries: degenerate mesh (zero bounding-box diagonal)")
        self.c = surface_centroid(v, faces)
        self.vn = (v - self.c) / self.diag  # normalised mesh
        pts, nrm, _ = sample_surface(self.vn, faces, s.n_samples, seed=s.seed, with_normals=True)
        self.P, self.N = pts.numpy(), nrm.numpy()
        self.tree = cKDTree(self.P)
        q, _ = sample_surface(self.vn, faces, s.n_verify, seed=s.seed + 1)
        self.Q = np.concatenate([q.numpy(), self.vn[torch.unique(faces)].numpy()])
        self.tree_q = cKDTree(self.Q)
        self.index = TriangleIndex(self.vn, faces)
        self.sub = self.Q[: s.n_scan]
        self.cap = 0.05
        self.floor = self.score_many(np.eye(3)[None])[0]
        self.s = s

    def score_many(self, mats: np.ndarray, pts: np.ndarray | None = None) -> np.ndarray:
        """Capped mean NN distance of transformed scan points, for each (3, 3) matrix -> (M,)."""
        pts = self.sub if pts is None else pts
        tp = np.einsum("mij,pj->mpi", mats, pts).reshape(-1, 3)
        d, _ = self.tree.query(tp, workers=1, distance_upper_bound=self.cap)
        return np.minimum(d, self.cap).reshape(len(mats), -1).mean(1)

    def refine_plane(self, n: np.ndarray, d: float = 0.0, fine: bool = False) -> tuple[np.ndarray, float]:
        """ICP-style plane fit: reflect, pair with nearest samples, bisector plane of the pairs."""
        P, tree = (self.Q[:4000], self.tree_q) if fine else (self.P[:1500], self.tree)
        for _ in range(self.s.icp_iters):
            r = P - 2 * (P @ n - d)[:, None] * n
            dist, j = tree.query(r, workers=1)
            keep = dist < max(3 * np.median(dist), 1e-3)
            p, q = P[keep], tree.data[j[keep]]
            diff = p - q
            w, vecs = np.linalg.eigh(diff.T @ diff)
            n_new = vecs[:, -1]
            n_new = n_new if n_new @ n >= 0 else -n_new
            d = float(((p + q) / 2 @ n_new).mean())
            done = np.arccos(min(1.0, abs(n_new @ n))) < 1e-4
            n = n_new
            if done:
                break
        return n, d

    def refine_plane_p2plane(self, n: np.ndarray, d: float, iters: int = 6) -> tuple[np.ndarray, float]:
        """Point-to-plane refinement: Gauss-Newton on sum(((reflect(p) - q) . normal_q)^2), which does
        not let correspondences slide along flat faces (more accurate than the bisector fit)."""
        P, N = self.P, self.N

        def plane(x, e1, e2, n0):
            m = n0 + x[0] * e1 + x[1] * e2
            return m / np.linalg.norm(m), x[2]

        for _ in range(iters):
            e1 = np.cross(n, np.eye(3)[np.argmin(np.abs(n))])
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(n, e1)
            r = P - 2 * (P @ n - d)[:, None] * n
            dist, j = self.tree.query(r, workers=1)
            keep = dist < max(3 * np.median(dist), 1e-3)
            p, q, m = P[keep], P[j[keep]], N[j[keep]]

            def res(x, p=p, q=q, m=m, e1=e1, e2=e2, n0=n):
                nn, dd = plane(x, e1, e2, n0)
                return ((p - 2 * (p @ nn - dd)[:, None] * nn - q) * m).sum(1)

            x0 = np.array([0.0, 0.0, d])
            r0 = res(x0)
            h = 1e-6
            J = np.stack([(res(x0 + h * np.eye(3)[k]) - r0) / h for k in range(3)], 1)
            step, *_ = np.linalg.lstsq(J, -r0, rcond=None)
            n_new, d = plane(x0 + step, e1, e2, n)
            done = np.linalg.norm(step[:2]) < 1e-6
            n = n_new
            if done:
                break
        return n, d

    def refine_axis(self, a: np.ndarray, angle: float) -> np.ndarray:
        P = self.P[:2000]
        for _ in range(self.s.icp_iters):
            R = rot_matrix(a, angle)
            dist, j = self.tree.query(P @ R.T, workers=1)
            keep = dist < max(3 * np.median(dist), 1e-3)
            p, q = P[keep], self.P[j[keep]]
            U, _, Vt = np.linalg.svd(q.T @ p)
            D = np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))])
            R_est = U @ D @ Vt
            rv = Rotation.from_matrix(R_est).as_rotvec()
            if np.linalg.norm(rv) < 1e-6:
                break
            a_new = rv / np.linalg.norm(rv)
            a_new = a_new if a_new @ a >= 0 else -a_new
            done = np.arccos(min(1.0, abs(a_new @ a))) < 1e-5
            a = a_new
            if done:
                break
        return a

    def refine_revolution_axis(self, a: np.ndarray) -> np.ndarray:
        m = np.cross(self.P, self.N)  # ((p - c) x n) . axis = 0 on a surface of revolution
        w, vecs = np.linalg.eigh(m.T @ m)
        if w[0] > 0.3 * w[1]:  # no distinct axis (sphere-like: every axis fits): keep the candidate
            return a
        b = vecs[:, 0]
        return b if b @ a >= 0 else -b

    def hausdorff(self, A: np.ndarray, t: np.ndarray | None = None, top_k: int = 64) -> float:
        """Directed Hausdorff from the transformed verification samples to the surface (normalised).

        For an isometry T, h(S, T S) = h(T S, S) (the maximum over T S of the distance to S equals
        the maximum over S of the distance to T^-1 S), so one direction is the two-sided distance
        up to sampling."""
        tp = self.Q @ A.T + (0 if t is None else t)
        approx, _ = self.tree_q.query(tp, workers=1)
        k = min(top_k, len(tp))
        cand = np.argpartition(-approx, k - 1)[:k]
        exact, _, _ = self.index.closest(tp[cand], upper=approx[cand])
        return float(exact.max())
