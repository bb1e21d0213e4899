"""3D and 2D reconstruction metrics: mask IoU, chamfer, surface Hausdorff and min-max distances,
and 3D IoU by voxelization (symmetry errors: :mod:`symnb.symmetry.errors`, re-exported here).

Meshes are given as verts (V, 3) float and faces (F, 3) long torch tensors.

Accuracy of the surface distances: each surface is represented by `n_samples` area-weighted
samples plus its vertices; the distance of a sample to the other surface is exact (closest point
on the nearest triangle, PyTorch3D's point-to-triangle kernel). A directed maximum is therefore a
lower bound of the true one, short by at most the sampling gap around the maximiser (about
sqrt(area / n_samples)); mean distances are Monte-Carlo estimates of the area-weighted means.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree

from .geometry import bbox_diagonal, check_mesh, point_mesh_closest, sample_surface

# ------------------------------------------------------------------------------------------------ 2D


def mask_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Intersection over union of binary masks, per batch item.

    Args:
        pred, target: (B, H, W) (or (B, 1, H, W)) masks; values > threshold count as foreground.
    Returns:
        (B,) float IoU; 1 where both masks are empty.
    """
    if pred.shape != target.shape:
        raise ValueError(f"mask_iou: shapes differ: pred {tuple(pred.shape)} vs target {tuple(target.shape)}")
    if pred.ndim < 3:
        raise ValueError(f"mask_iou: masks must be batched (B, H, W), got {tuple(pred.shape)}")
    if pred.shape[0] == 0:
        return torch.zeros(0)
    if torch.isnan(pred).any() or torch.isnan(target).any():
        raise ValueError("mask_iou: masks contain NaN")
    p = (pred > threshold).flatten(1)
    t = (target > threshold).flatten(1)
    inter = (p & t).sum(1).float()
    union = (p | t).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


# ---------------------------------------------------------------------------------- surface distances


def _surface_points(verts, faces, n_samples: int, seed: int) -> torch.Tensor:
    pts, _ = sample_surface(verts.double(), faces, n_samples, seed=seed)
    return torch.cat([pts, verts.double()[torch.unique(faces)]])


def directed_distances(
    verts_a, faces_a, verts_b, faces_b, n_samples: int = 20000, seed: int = 0, top_k: int = 256
):
    """Distances from samples of surface A to surface B.

    The exact point-to-surface distance is computed for the `top_k` samples whose approximate
    distance (KD-tree to dense samples of B, an upper bound) is largest, so the maximum is exact
    for the samples; the mean uses the KD-tree distances corrected by exact values where computed.

    Returns:
        dists (P,) float64 distances of A's sample points, points (P, 3), and for the arg-max sample
        its closest point on B (3,).
    """
    va, fa = check_mesh(verts_a, faces_a, "mesh A")
    vb, fb = check_mesh(verts_b, faces_b, "mesh B")
    pa = _surface_points(va, fa, n_samples, seed)
    pb = _surface_points(vb, fb, n_samples, seed + 1)
    approx, _ = cKDTree(pb.numpy()).query(pa.numpy(), workers=1)
    approx = torch.as_tensor(approx)
    k = min(top_k, len(pa))
    while True:
        cand = approx.topk(k).indices
        exact, closest, _ = point_mesh_closest(pa[cand], vb, fb, upper=approx[cand])
        # samples outside the candidates have exact <= approx <= approx[cand[-1]]
        if k == len(pa) or exact.max() >= approx[cand[-1]] or k >= 4 * top_k:
            break
        k = min(4 * k, len(pa))  # one widening round at most (ties, e.g. concentric spheres)
    d = approx.clone()
    d[cand] = exact
    best = int(exact.argmax())
    return d, pa, pa[cand[best]], closest[best]


def hausdorff(verts_a, faces_a, verts_b, faces_b, n_samples: int = 20000, seed: int = 0):
    """Two-sided Hausdorff distance between two triangle surfaces and the pair of points attaining it.

    Returns:
        (distance: float, point_a (3,) float64 on A, point_b (3,) float64 on B) with
        |point_a - point_b| = distance. See the module docstring for the accuracy.
    """
    dab, _, a1, b1 = directed_distances(verts_a, faces_a, verts_b, faces_b, n_samples, seed)
    dba, _, b2, a2 = directed_distances(verts_b, faces_b, verts_a, faces_a, n_samples, seed + 7)
    h_ab, h_ba = float((a1 - b1).norm()), float((b2 - a2).norm())
    if h_ab >= h_ba:
        return h_ab, a1, b1
    return h_ba, a2, b2


def minmax_distances(verts_a, faces_a, verts_b, faces_b, n_samples: int = 20000, seed: int = 0) -> dict:
    """Directed mean and max ("min-max") surface distances, A = prediction, B = target.

    Returns a dict of floats: "a2b_mean", "a2b_max", "b2a_mean", "b2a_max", symmetric combinations
    "mean" (average of the two means), "max" (= two-sided Hausdorff), and "rel_<name>" for each,
    divided by the target's bounding-box diagonal.
    """
    dab, _, a1, b1 = directed_distances(verts_a, faces_a, verts_b, faces_b, n_samples, seed)
    dba, _, b2, a2 = directed_distances(verts_b, faces_b, verts_a, faces_a, n_samples, seed + 7)
    out = {
        "a2b_mean": float(dab.mean()),
        "a2b_max": float((a1 - b1).norm()),
        "b2a_mean": float(dba.mean()),
        "b2a_max": float((b2 - a2).norm()),
    }
    out["mean"] = (out["a2b_mean"] + out["b2a_mean"]) / 2
    out["max"] = max(out["a2b_max"], out["b2a_max"])
    diag = float(bbox_diagonal(torch.as_tensor(verts_b).double()))
    out.update({f"rel_{k}": v / diag for k, v in list(out.items())})
    return out


def chamfer(verts_a, faces_a, verts_b, faces_b, n_samples: int = 10000, seed: int = 0) -> float:
    """Symmetric chamfer distance (mean squared nearest-neighbour distance, both ways, summed)
    between `n_samples` surface samples of each mesh, via `pytorch3d.loss.chamfer_distance`.

    With faces_a / faces_b None the verts are used as point clouds (P, 3).
    """
    from pytorch3d.loss import chamfer_distance

    def pts(v, f, s):
        if f is None:
            return torch.as_tensor(v).float()
        return sample_surface(torch.as_tensor(v).float(), f, n_samples, seed=s)[0]

    d, _ = chamfer_distance(pts(verts_a, faces_a, seed)[None], pts(verts_b, faces_b, seed + 1)[None])
    return float(d)


# ------------------------------------------------------------------------------------------ voxel IoU


def _crossings_axis(tris: np.ndarray, lo: np.ndarray, step: float, res: int, axis: int,
                    signed: bool) -> np.ndarray:
    """Ray crossings behind each voxel centre along `axis` (scanline voxelization).

    tris: (F, 3, 3) float64 in world coordinates. Returns (res, res, res) int32 in (x, y, z) order:
    the number of faces the ray from -inf to the centre crosses (``signed=False``: its parity says
    inside), or the sum of their orientations (``signed=True``: the winding number of the centre
    for a closed, consistently oriented mesh, self-intersections included; +1 inside an outward one).
    """
    u_ax, v_ax = [a for a in range(3) if a != axis]
    # grid coordinates with voxel centres at integers; a tiny irrational offset avoids rays hitting
    # edges and vertices exactly
    g = (tris - lo) / step - 0.5
    g[..., u_ax] += 1.3e-7 * math.pi
    g[..., v_ax] += 1.1e-7 * math.e
    pu, pv, pw = g[..., u_ax], g[..., v_ax], g[..., axis]
    umin = np.clip(np.ceil(pu.min(1)), 0, res).astype(np.int64)
    umax = np.clip(np.floor(pu.max(1)), -1, res - 1).astype(np.int64)
    vmin = np.clip(np.ceil(pv.min(1)), 0, res).astype(np.int64)
    vmax = np.clip(np.floor(pv.max(1)), -1, res - 1).astype(np.int64)
    nu = np.maximum(umax - umin + 1, 0)
    nv = np.maximum(vmax - vmin + 1, 0)
    count = nu * nv
    counts = np.zeros((res, res, res + 1), dtype=np.int32)
    tot = int(count.sum())
    if tot:
        fid = np.repeat(np.arange(len(tris)), count)
        start = np.cumsum(count) - count
        local = np.arange(tot) - np.repeat(start, count)
        cu = umin[fid] + local // np.maximum(nv[fid], 1)
        cv = vmin[fid] + local % np.maximum(nv[fid], 1)
        # barycentric test of the ray (cu, cv) against the projected triangle
        a_u, a_v = pu[fid, 0], pv[fid, 0]
        e1u, e1v = pu[fid, 1] - a_u, pv[fid, 1] - a_v
        e2u, e2v = pu[fid, 2] - a_u, pv[fid, 2] - a_v
        den = e1u * e2v - e2u * e1v
        ok = np.abs(den) > 1e-30
        den = np.where(ok, den, 1.0)
        qu, qv = cu - a_u, cv - a_v
        b1 = (qu * e2v - e2u * qv) / den
        b2 = (e1u * qv - qu * e1v) / den
        hit = ok & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1)
        w = pw[fid, 0] + b1 * (pw[fid, 1] - pw[fid, 0]) + b2 * (pw[fid, 2] - pw[fid, 0])
        # a crossing counts for the voxel centres with index > w
        k = np.clip(np.floor(w[hit]).astype(np.int64) + 1, 0, res)
        if signed:  # a face whose normal points against the ray enters the solid: +1 (the (u, v, w)
            # frame is left-handed for axis 1, which flips the projected orientation)
            hand = -1 if axis == 1 else 1
            weight = (np.sign(den[hit]) * -hand).astype(np.int32)
        else:
            weight = np.ones(int(hit.sum()), dtype=np.int32)
        np.add.at(counts, (cu[hit], cv[hit], k), weight)
    behind = np.cumsum(counts, axis=2)[..., :res]  # (u, v, w)
    order = np.argsort([u_ax, v_ax, axis])
    return np.transpose(behind, order)


def is_closed_oriented(faces) -> bool:
    """Whether a triangle mesh is closed and consistently oriented: every directed edge (a, b) occurs
    once and its reverse (b, a) once (so the winding number of every point is well defined)."""
    f = torch.as_tensor(faces).long().reshape(-1, 3)
    if len(f) == 0:
        return False
    e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = int(f.max()) + 1
    key = e[:, 0] * n + e[:, 1]
    rev = e[:, 1] * n + e[:, 0]
    uniq, counts = torch.unique(key, return_counts=True)
    if (counts != 1).any():
        return False
    return bool(torch.isin(rev, uniq).all())


def voxelize(verts, faces, lo, step: float, res: int, method: str = "auto") -> np.ndarray:
    """Occupancy of the voxel centres lo + (i + 1/2) step, i in [0, res)^3 -> (res, res, res) bool.

    method "signed": the winding number by signed ray crossings along x, y and z (majority vote)
    is >= 1: exact for closed, consistently oriented meshes, self-intersecting ones included, where
    parity counts the overlap of two folded parts as outside; "parity": ray parity along x, y and z
    with a majority vote (for triangle soups, robust to small holes and inconsistent orientation);
    "auto": "signed" when :func:`is_closed_oriented` (every predicted mesh), else "parity" (CAD
    soups); "winding": generalized winding number > 1/2 (Jacobson et al. 2013), chunked torch,
    O(res^3 F), the slow reference.
    """
    v, f = check_mesh(verts, faces)
    if method == "auto":
        method = "signed" if is_closed_oriented(f) else "parity"
    tris = v.double()[f].numpy()
    lo = np.asarray(lo, dtype=np.float64)
    if method in ("parity", "signed"):
        signed = method == "signed"
        votes = sum((c >= 1 if signed else c % 2 == 1).astype(np.int8)
                    for c in (_crossings_axis(tris, lo, step, res, ax, signed) for ax in range(3)))
        return votes >= 2
    if method == "winding":
        return winding_numbers(v, f, _grid_points(lo, step, res)).reshape(res, res, res).numpy() > 0.5
    raise ValueError(f"unknown voxelization method {method!r}")


def _grid_points(lo, step, res) -> torch.Tensor:
    idx = torch.arange(res, dtype=torch.float64)[:, None]
    c = torch.as_tensor(lo, dtype=torch.float64)[None] + (idx + 0.5) * step
    gx, gy, gz = torch.meshgrid(c[:, 0], c[:, 1], c[:, 2], indexing="ij")
    return torch.stack([gx, gy, gz], -1).reshape(-1, 3)


def winding_numbers(verts, faces, points, chunk: int = 2048) -> torch.Tensor:
    """Generalized winding number of each point (P,) w.r.t. a triangle soup (solid angles / 4 pi,
    Van Oosterom-Strackee formula). Exact 1 inside / 0 outside for closed outward meshes."""
    tris = verts.double()[faces]  # (F, 3, 3)
    out = []
    for s in range(0, len(points), chunk):
        p = points[s : s + chunk].double()
        a, b, c = (tris[None, :, i] - p[:, None] for i in range(3))
        la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
        det = (a * torch.cross(b, c, dim=-1)).sum(-1)
        den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
        out.append((2 * torch.atan2(det, den)).sum(1) / (4 * math.pi))
    return torch.cat(out)


def iou_3d(verts_a, faces_a, verts_b, faces_b, resolution: int = 64, method: str = "auto") -> float:
    """Volumetric IoU of two meshes voxelized on a common resolution^3 grid over their joint bbox.

    Robust for non-watertight meshes through the 3-axis parity vote (see `voxelize`). Accuracy: a
    boundary layer of about one voxel, i.e. relative error ~ (surface / volume) * bbox / resolution.
    """
    va, fa = check_mesh(verts_a, faces_a, "mesh A")
    vb, fb = check_mesh(verts_b, faces_b, "mesh B")
    if resolution < 2:
        raise ValueError(f"iou_3d: resolution must be >= 2, got {resolution}")
    allv = torch.cat([va.double(), vb.double()])
    lo, hi = allv.amin(0).numpy(), allv.amax(0).numpy()
    step = float((hi - lo).max()) / resolution * (1 + 1e-6)
    centre = (lo + hi) / 2
    lo = centre - step * resolution / 2
    occ_a = voxelize(va, fa, lo, step, resolution, method)
    occ_b = voxelize(vb, fb, lo, step, resolution, method)
    union = np.logical_or(occ_a, occ_b).sum()
    if union == 0:
        return 0.0
    return float(np.logical_and(occ_a, occ_b).sum() / union)


# ------------------------------------------------------------------------------- the field's protocol


def iou_3d_protocol(pred_verts, faces, gt_meshes,
                    resolution: int = 32) -> tuple[np.ndarray, float, np.ndarray]:
    """3-D IoU as in DRC / CMR / U-CMR: canonical-frame predictions against their CAD models after one
    global scale and translation for the whole test set, on ``resolution``^3 voxels in [-0.5, 0.5]^3.

    The scale is the ratio of the mean bounding-box diagonals (CAD / prediction) and the translation
    maps the mean prediction bbox centre onto the mean CAD bbox centre; both are averages over the
    set, so no per-item alignment is done. Occupancy is 1 for voxel centres inside a mesh (3-axis
    parity vote of :func:`voxelize`), i.e. the 0.5 threshold of a binary occupancy.

    Args:
        pred_verts: (N, V, 3) tensor or list of (V_i, 3); faces: (F, 3) long shared, or a list.
        gt_meshes: list of N (verts, faces).
    Returns:
        ious (N,) float64, the global scale, the global translation (3,).
    """
    preds = list(pred_verts)
    pf = faces if isinstance(faces, (list, tuple)) else [faces] * len(preds)
    if len(preds) != len(gt_meshes) or not preds:
        raise ValueError(f"iou_3d_protocol: {len(preds)} predictions for {len(gt_meshes)} CAD models")
    box = lambda v: torch.stack([torch.as_tensor(v).double().amin(0), torch.as_tensor(v).double().amax(0)])
    pb, gb = torch.stack([box(v) for v in preds]), torch.stack([box(v) for v, _ in gt_meshes])
    s = float((gb[:, 1] - gb[:, 0]).norm(dim=-1).mean() / (pb[:, 1] - pb[:, 0]).norm(dim=-1).mean())
    t = (gb.mean(1).mean(0) - s * pb.mean(1).mean(0)).numpy()
    lo, step = np.full(3, -0.5), 1.0 / resolution
    ious, cad_occ = [], {}  # each CAD model voxelized once on the fixed grid (a test set shares a few)
    for v, f, (gv, gf) in zip(preds, pf, gt_meshes, strict=True):
        occ = voxelize(torch.as_tensor(v).double() * s + torch.as_tensor(t), f, lo, step, resolution)
        key = (id(gv), id(gf))  # the cache holds the pair itself, so its identity is not reused
        if key not in cad_occ:
            cad_occ[key] = (gv, gf, voxelize(gv, gf, lo, step, resolution))
        gt = cad_occ[key][2]
        union = (occ | gt).sum()
        ious.append(float((occ & gt).sum() / union) if union else 0.0)
    return np.array(ious), s, t
