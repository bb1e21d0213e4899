"""The forward pass of :mod:`symnb.raster.rasterizer`: candidate (pixel, face) pairs of each face's
blur-expanded bounding box, evaluated with PyTorch3D's formulas in the kernel's float order and
kept K per pixel in the kernel's (depth, face index) order."""

from __future__ import annotations

import numpy as np
import torch

from .kernels import K_EPSILON, edge_function, offset_area, pair_quantities, pixel_centers, unpack


@torch.no_grad()
def rasterize_pairs(
    face_verts: torch.Tensor,
    mesh_to_face_first_idx: torch.Tensor,
    num_faces_per_mesh: torch.Tensor,
    image_size: tuple[int, int],
    blur_radius: float,
    faces_per_pixel: int,
    perspective_correct: bool,
    clip_barycentric_coords: bool,
    cull_backfaces: bool,
    max_pairs: int = 8_000_000,
):
    """PyTorch3D's naive CPU rasterization, vectorised over candidate (pixel, face) pairs.

    Each face is tested only against the pixels inside its blur-expanded bounding box (the
    kernel's own first test), pairs farther than the blur radius outside one of the face's edge
    lines are dropped (a safe margin over the kernel's exact test, which follows), and the kept
    pairs are ordered per pixel by (depth, face index) as the kernel's sorted queue orders them.

    Meshes are processed in groups of at most ``max_pairs`` candidate pairs.

    Returns:
        (pix_to_face, zbuf, bary_coords, dists) as the kernel returns them, or None when one
        mesh alone has too many candidate pairs or depths are not finite (the caller then uses
        the kernel).
    """
    fv = face_verts.float()
    dev = fv.device
    H, W = image_size
    N, K = mesh_to_face_first_idx.shape[0], faces_per_pixel
    counts = num_faces_per_mesh.to(dev)
    mesh_of = torch.repeat_interleave(torch.arange(N, device=dev), counts)
    face_idx = torch.repeat_interleave(mesh_to_face_first_idx.to(dev), counts)
    face_idx = face_idx + torch.arange(face_idx.shape[0], device=dev) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    v = fv[face_idx]
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    area = edge_function(x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])  # ComputeFaceAreas
    r32 = float(np.float32(blur_radius))
    sqrt_r = float(np.sqrt(np.float32(blur_radius)))
    xmin, xmax = x.min(1).values - sqrt_r, x.max(1).values + sqrt_r
    ymin, ymax = y.min(1).values - sqrt_r, y.max(1).values + sqrt_r
    ok = (area.abs() > K_EPSILON) & (z.min(1).values.double() >= K_EPSILON)
    if cull_backfaces:
        ok &= area >= 0
    xs, ys = pixel_centers(W, H, dev), pixel_centers(H, W, dev)
    # reversed column/row index ranges [lo, hi) whose centres lie inside the expanded bbox
    cx0 = torch.searchsorted(xs, xmin.contiguous(), right=False)
    cx1 = torch.searchsorted(xs, xmax.contiguous(), right=True)
    cy0 = torch.searchsorted(ys, ymin.contiguous(), right=False)
    cy1 = torch.searchsorted(ys, ymax.contiguous(), right=True)
    nx, ny = (cx1 - cx0).clamp(min=0), (cy1 - cy0).clamp(min=0)
    npairs = torch.where(ok, nx * ny, torch.zeros_like(nx))
    area_b = offset_area(edge_function(x[:, 2], y[:, 2], x[:, 0], y[:, 0], x[:, 1], y[:, 1]))
    ex = torch.stack([x[:, 2] - x[:, 1], x[:, 0] - x[:, 2], x[:, 1] - x[:, 0]], 1).double()
    ey = torch.stack([y[:, 2] - y[:, 1], y[:, 0] - y[:, 2], y[:, 1] - y[:, 0]], 1).double()
    reach = ((ex * ex + ey * ey).sqrt() * (sqrt_r * 1.001) + 1e-5).float()  # (F, 3) edge-line bound
    faces = (v, area_b, reach, cx0, cy0, nx, npairs, mesh_of)

    p2f = torch.full((N * H * W * K,), -1, dtype=torch.int64, device=dev)
    zbuf = torch.full((N * H * W * K,), -1.0, device=dev)
    dists = torch.full((N * H * W * K,), -1.0, device=dev)
    bary = torch.full((N * H * W * K, 3), -1.0, device=dev)
    # meshes own disjoint pixels: process them in groups of at most max_pairs candidate pairs
    per_mesh = torch.zeros(N, dtype=torch.int64, device=dev).index_add_(0, mesh_of, npairs).tolist()
    if max(per_mesh, default=0) > max_pairs:
        return None
    first_face = (torch.cumsum(counts, 0) - counts).tolist()
    group, budget = [], 0
    for n in range(N + 1):
        if n == N or (group and budget + per_mesh[n] > max_pairs):
            if group:
                lo, hi = first_face[group[0]], first_face[group[-1]] + int(counts[group[-1]])
                out = _pairs_top_k(faces, lo, hi, xs, ys, (H, W, K), r32, perspective_correct,
                                   clip_barycentric_coords)
                if out is None:
                    return None
                sel, f, pz, b, signed = out
                p2f[sel], zbuf[sel], bary[sel], dists[sel] = face_idx[f], pz, b, signed
            group, budget = [], 0
        if n < N:
            group.append(n)
            budget += per_mesh[n]
    shape = (N, H, W, K)
    return p2f.view(shape), zbuf.view(shape), bary.view(*shape, 3), dists.view(shape)


def _pairs_top_k(faces, lo, hi, xs, ys, hwk, r32, perspective_correct, clip_barycentric_coords):
    """The kept (pixel, face) pairs of faces lo..hi-1 (local order) and their kernel values.

    Returns:
        flat (n, y, x, k) indices (M,), local face indices (M,), zbuf (M,), bary (M, 3),
        signed dists (M,); or None if a depth is not finite.
    """
    v, area_b, reach, cx0, cy0, nx, npairs, mesh_of = faces
    H, W, K = hwk
    dev = v.device
    npairs = npairs[lo:hi]
    total = int(npairs.sum())
    owner = lo + torch.repeat_interleave(torch.arange(hi - lo, device=dev), npairs)
    starts = torch.cumsum(npairs, 0) - npairs
    local = torch.arange(total, device=dev) - torch.repeat_interleave(starts, npairs)
    nxo = nx[owner]
    xidx = cx0[owner] + local % nxo
    yidx = cy0[owner] + torch.div(local, nxo, rounding_mode="floor")
    px, py = xs[xidx], ys[yidx]

    # cheap rejection: a pair on the outer side of edge line i (barycentric w_i < 0) farther from
    # it than sqrt(blur_radius) (with margin) is neither inside nor within the blur radius
    a = area_b[owner]
    x0, y0, _, x1, y1, _, x2, y2, _ = unpack(v[owner])
    far = torch.zeros_like(px, dtype=torch.bool)
    for i, (ax, ay, bx, by) in enumerate(((x1, y1, x2, y2), (x2, y2, x0, y0), (x0, y0, x1, y1))):
        e = edge_function(px, py, ax, ay, bx, by)
        far |= (e / a < 0) & (e.abs() > reach[owner, i])
    near = torch.nonzero(~far).squeeze(1)
    owner, px, py, xidx, yidx = owner[near], px[near], py[near], xidx[near], yidx[near]

    bary, pz, dist, inside = pair_quantities(
        v[owner], px, py, perspective_correct, clip_barycentric_coords, area_b[owner]
    )
    keep = torch.nonzero(~(pz < 0) & (inside | (dist < r32))).squeeze(1)
    pz = pz[keep] + 0.0  # + 0.0 turns -0.0 into +0.0
    if not bool(torch.isfinite(pz).all()):
        return None  # the kernel's ordering is undefined for NaN depths; defer to it
    owner = owner[keep]
    pixel = (mesh_of[owner] * H + (H - 1 - yidx[keep])) * W + (W - 1 - xidx[keep])
    # non-negative float32 depths sort like their bit patterns: one int64 key (pixel, depth);
    # the stable sort keeps ascending face order among equal depths, as the kernel's tuples do
    key = pixel * (1 << 31) + pz.view(torch.int32).to(torch.int64)
    key, order = torch.sort(key, stable=True)
    pixel = torch.div(key, 1 << 31, rounding_mode="floor")
    pos = torch.arange(len(key), device=dev)
    start = torch.ones_like(pixel, dtype=torch.bool)
    start[1:] = pixel[1:] != pixel[:-1]
    rank = pos - torch.cummax(torch.where(start, pos, torch.zeros_like(pos)), 0).values
    m = torch.nonzero(rank < K).squeeze(1)
    src = keep[order[m]]
    signed = torch.where(inside[src], -dist[src], dist[src])
    return pixel[m] * K + rank[m], owner[order[m]], pz[order[m]], bary[src], signed
