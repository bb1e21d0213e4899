"""A drop-in for PyTorch3D's ``MeshRasterizer`` whose backward pass is ordinary autograd.

PyTorch3D's rasterizer returns four tensors per (image, row, column, k): the face index
``pix_to_face`` (discrete, no gradient) and three closed-form functions of that face's projected
vertices: barycentric coordinates, depth ``zbuf`` and the signed squared distance ``dists`` from
the pixel centre to the face's edges. Its CPU backward loops over every pixel in C++ and is slow.
:class:`FastMeshRasterizer` takes ``pix_to_face`` from a vectorised rasterizer (or PyTorch3D's
kernel) without gradient tracking and recomputes the three continuous outputs with PyTorch
operations in exactly the kernel's order of floating-point operations
(``pytorch3d/csrc/utils/geometry_utils.h``, ``rasterize_meshes_cpu.cpp``), so the values match
and autograd yields the kernel's gradients for the vertices and, through the projection, for
the cameras.

Conventions (PyTorch3D's): NDC +X points left and +Y up; pixel ``(y, x)`` of an ``(H, W)`` image
has its centre at ``(PixToNonSquareNdc(W - 1 - x, W, H), PixToNonSquareNdc(H - 1 - y, H, W))``;
the shorter side spans [-1, 1].
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from pytorch3d import _C
from pytorch3d.renderer import MeshRasterizer
from pytorch3d.renderer.mesh.clip import (
    ClipFrustum,
    clip_faces,
    convert_clipped_rasterization_to_original_faces,
)
from pytorch3d.renderer.mesh.rasterize_meshes import kMaxFacesPerBin
from pytorch3d.renderer.mesh.rasterizer import Fragments
from pytorch3d.renderer.utils import parse_image_size

#: PyTorch3D's epsilon (a C++ ``double``: areas are offset in double precision, then rounded).
K_EPSILON = 1e-8
#: Candidate (pixel, face) pairs processed at once by the vectorised forward pass.
MAX_PAIRS = 8_000_000

#: Intra-op threads for the many small tensor operations here (None: leave torch's setting).
#: One thread is the robust default: with OpenMP on an oversubscribed CPU, hundreds of short
#: parallel regions per call can cost 10x more than they save.
NUM_THREADS: int | None = 1

__all__ = ["FastMeshRasterizer", "pixel_centers", "rasterize_meshes_fast", "recompute_fragments"]


@contextlib.contextmanager
def _threads(n: int | None):
    """Temporarily set torch's intra-op thread count (restored afterwards)."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _ndc_range(s1: int, s2: int) -> np.float32:
    r = np.float32(2.0)
    if s1 > s2:
        r = np.float32(np.float32(s1) * r) / np.float32(s2)
    return np.float32(r)


def pixel_centers(size: int, other: int, device=None) -> torch.Tensor:
    """PyTorch3D's ``PixToNonSquareNdc(i, size, other)`` for i = 0..size-1, bit-exact float32.

    Returns:
        (size,) float32, ascending: the NDC centre of the pixel whose *reversed* index is i.
    """
    r = _ndc_range(size, other)
    off = np.float32(r / np.float32(2.0))
    i = np.arange(size, dtype=np.float32)
    centers = -off + (r * i + off) / np.float32(size)
    return torch.from_numpy(centers.astype(np.float32)).to(device)


def _edge(px, py, x0, y0, x1, y1):
    """EdgeFunctionForward(p, v0, v1), same operation order as the C++ kernel."""
    return (px - x0) * (y1 - y0) - (py - y0) * (x1 - x0)


def _offset_area(area: torch.Tensor) -> torch.Tensor:
    """``area + kEpsilon`` evaluated as the kernel does (float + double, rounded to float)."""
    if area.dtype == torch.float64:
        return area + K_EPSILON
    return (area.double() + K_EPSILON).to(area.dtype)


def _point_line_dist(px, py, ax, ay, bx, by):
    """Squared distance from p to segment [a, b] (PointLineDistanceForward)."""
    dx, dy = bx - ax, by - ay
    l2 = dx * dx + dy * dy
    degenerate = l2 <= K_EPSILON
    safe_l2 = torch.where(degenerate, torch.ones_like(l2), l2)
    tt = ((dx * (px - ax) + dy * (py - ay)) / safe_l2).clamp(0.0, 1.0)
    qx = px - (ax + tt * dx)
    qy = py - (ay + tt * dy)
    d = qx * qx + qy * qy
    if bool(degenerate.any()):
        ex, ey = px - bx, py - by
        d = torch.where(degenerate, ex * ex + ey * ey, d)
    return d


def _unpack(fv):
    return [fv[:, i, j] for i in range(3) for j in range(3)]  # x0, y0, z0, x1, ..., z2


def _bary_screen(px, py, x0, y0, x1, y1, x2, y2, area=None):
    if area is None:
        area = _offset_area(_edge(x2, y2, x0, y0, x1, y1))
    return _edge(px, py, x1, y1, x2, y2) / area, _edge(px, py, x2, y2, x0, y0) / area, \
        _edge(px, py, x0, y0, x1, y1) / area


def _perspective(w0, w1, w2, z0, z1, z2):
    """BarycentricPerspectiveCorrectionForward (denominator clamped at kEpsilon)."""
    t0, t1, t2 = w0 * z1 * z2, w1 * z0 * z2, w2 * z0 * z1
    denom = (t0 + t1 + t2).clamp(min=K_EPSILON)
    return t0 / denom, t1 / denom, t2 / denom


def _clip(w0, w1, w2):
    """BarycentricClipForward: clamp at 0 and renormalise (sum clamped at 1e-5)."""
    c0, c1, c2 = w0.clamp(min=0.0), w1.clamp(min=0.0), w2.clamp(min=0.0)
    s = (c0 + c1 + c2).clamp(min=1e-5)
    return c0 / s, c1 / s, c2 / s


def _face_pixel_quantities(fv, px, py, perspective_correct, clip_barycentric_coords, area=None):
    """Barycentrics, depth, squared distance and inside flag of pixel centres w.r.t. faces.

    The kernel's forward, operation for operation (no gradient tracking needed).

    Args:
        fv: (M, 3, 3) face vertices (x, y in NDC, z in view space), one face per query.
        px, py: (M,) pixel centres in NDC.
        area: optional (M,) ``EdgeFunction(v2, v0, v1) + eps`` (recomputed if None).

    Returns:
        bary_clip (M, 3), pz (M,), dist (M,) unsigned squared distance, inside (M,) bool.
    """
    x0, y0, z0, x1, y1, z1, x2, y2, z2 = _unpack(fv)
    w0, w1, w2 = _bary_screen(px, py, x0, y0, x1, y1, x2, y2, area)
    if perspective_correct:
        w0, w1, w2 = _perspective(w0, w1, w2, z0, z1, z2)
    inside = (w0 > 0) & (w1 > 0) & (w2 > 0)
    if clip_barycentric_coords:
        w0, w1, w2 = _clip(w0, w1, w2)
    pz = w0 * z0 + w1 * z1 + w2 * z2
    e01 = _point_line_dist(px, py, x0, y0, x1, y1)
    e02 = _point_line_dist(px, py, x0, y0, x2, y2)
    e12 = _point_line_dist(px, py, x1, y1, x2, y2)
    dist = torch.minimum(torch.minimum(e01, e02), e12)
    return torch.stack([w0, w1, w2], dim=-1), pz, dist, inside


def _edge_backward(px, py, ax, ay, bx, by, g):
    """EdgeFunctionBackward(p, a, b, g): gradients (dp, da, db), each an (x, y) pair."""
    return (g * (by - ay), g * (ax - bx)), (g * (py - by), g * (bx - px)), (g * (ay - py), g * (px - ax))


def _add(*vs):
    out = vs[0]
    for v in vs[1:]:
        out = (out[0] + v[0], out[1] + v[1])
    return out


def _bary_backward(px, py, x0, y0, x1, y1, x2, y2, g0, g1, g2):
    """BarycentricCoordsBackward: gradients w.r.t. the three (x, y) vertices."""
    area = _offset_area(_edge(x2, y2, x0, y0, x1, y1))
    area2 = area * area
    area_inv = 1.0 / area
    p, v0, v1, v2 = (px, py), (x0, y0), (x1, y1), (x2, y2)
    grads = []
    for g, (a, b) in zip((g0, g1, g2), ((v1, v2), (v2, v0), (v0, v1)), strict=True):
        e = _edge(px, py, *a, *b)
        d_area = g * (-e / area2)
        d_e = g * area_inv
        grads.append((_edge_backward(*p, *a, *b, d_e), _edge_backward(*v2, *v0, *v1, d_area)))
    (e0, a0), (e1, a1), (e2, a2) = grads  # e*: (dp, d first, d second); a*: (dv2, dv0, dv1)
    dv0 = _add(_add(a0[1], _add(e1[2], a1[1])), _add(e2[1], a2[1]))
    dv1 = _add(_add(_add(e0[1], a0[2]), a1[2]), _add(e2[2], a2[2]))
    dv2 = _add(_add(_add(e0[2], a0[0]), _add(e1[1], a1[0])), a2[0])
    return dv0, dv1, dv2


def _perspective_backward(w0, w1, w2, z0, z1, z2, g0, g1, g2):
    """BarycentricPerspectiveCorrectionBackward: (grad bary0 x3, grad z x3)."""
    t0, t1, t2 = w0 * z1 * z2, w1 * z0 * z2, w2 * z0 * z1
    denom = (t0 + t1 + t2).clamp(min=K_EPSILON)
    gd = (-t0 * g0 - t1 * g1 - t2 * g2) / (denom * denom)
    gt0, gt1, gt2 = gd + g0 / denom, gd + g1 / denom, gd + g2 / denom
    gw = (gt0 * z1 * z2, gt1 * z0 * z2, gt2 * z0 * z1)
    gz = (gt1 * w1 * z2 + gt2 * w2 * z1, gt0 * w0 * z2 + gt2 * w2 * z0, gt0 * w0 * z1 + gt1 * w1 * z0)
    return gw, gz


def _clip_backward(w0, w1, w2, g0, g1, g2):
    """BarycentricClipBackward."""
    c0, c1, c2 = w0.clamp(min=0.0), w1.clamp(min=0.0), w2.clamp(min=0.0)
    s = c0 + c1 + c2
    small = s.double() < 1e-5
    s = torch.where(small, torch.full_like(s, 1e-5), s)
    s2 = s * s
    keep = (~small).to(s.dtype)
    gs0, gs1, gs2 = -c0 / s2 * keep, -c1 / s2 * keep, -c2 / s2 * keep
    inv = 1.0 / s
    r0 = (w0 >= 0).to(s.dtype) * (g0 * (inv + gs0) + g1 * gs1 + g2 * gs2)
    r1 = (w1 >= 0).to(s.dtype) * (g1 * (inv + gs1) + g0 * gs0 + g2 * gs2)
    r2 = (w2 >= 0).to(s.dtype) * (g2 * (inv + gs2) + g0 * gs0 + g1 * gs1)
    return r0, r1, r2


def _segment_backward(px, py, ax, ay, bx, by, g):
    """PointLineDistanceBackward: gradients w.r.t. a and b (the segment parameter held fixed)."""
    dx, dy = bx - ax, by - ay
    t_bot = dx * dx + dy * dy
    t_top = dx * (px - ax) + dy * (py - ay)
    tt = (t_top / torch.where(t_bot > 0, t_bot, torch.ones_like(t_bot))).clamp(0.0, 1.0)
    qx = (1.0 - tt) * ax + tt * bx - px
    qy = (1.0 - tt) * ay + tt * by - py
    sa, sb = g * (1.0 - tt) * 2.0, g * tt * 2.0
    return (sa * qx, sa * qy), (sb * qx, sb * qy)


def _distance_backward(px, py, x0, y0, x1, y1, x2, y2, g):
    """PointTriangleDistanceBackward: the gradient goes to the first closest edge (01, 02, 12)."""
    e01 = _point_line_dist(px, py, x0, y0, x1, y1)
    e02 = _point_line_dist(px, py, x0, y0, x2, y2)
    e12 = _point_line_dist(px, py, x1, y1, x2, y2)
    m01 = (e01 <= e02) & (e01 <= e12)
    m02 = ~m01 & (e02 <= e01) & (e02 <= e12)
    m12 = ~m01 & ~m02 & (e12 <= e01) & (e12 <= e02)
    zero = torch.zeros_like(g)
    a01, b01 = _segment_backward(px, py, x0, y0, x1, y1, torch.where(m01, g, zero))
    a02, b02 = _segment_backward(px, py, x0, y0, x2, y2, torch.where(m02, g, zero))
    a12, b12 = _segment_backward(px, py, x1, y1, x2, y2, torch.where(m12, g, zero))
    return _add(a01, a02), _add(b01, a12), _add(b02, b12)


def _pair_grads(fv, px, py, g_z, g_bary, g_dist, pc, clip):
    """PyTorch3D's ``RasterizeMeshesBackwardCpu`` for M (pixel, face) pairs, vectorised.

    Same float operations in the same order as the kernel, so each pair's contribution equals
    the kernel's, including where its float32 arithmetic is ill-conditioned (perspective
    denominators clamped at kEpsilon for pixels in the blur band). In float64 this is the
    exact derivative wherever no clamp is active.

    Args:
        fv: (M, 3, 3) face vertices; px, py: (M,) pixel centres; g_z (M,), g_bary (M, 3),
        g_dist (M,): upstream gradients.

    Returns:
        (M, 3, 3) gradients w.r.t. fv.
    """
    x0, y0, z0, x1, y1, z1, x2, y2, z2 = _unpack(fv)
    b0 = _bary_screen(px, py, x0, y0, x1, y1, x2, y2)
    b = _perspective(*b0, z0, z1, z2) if pc else b0
    bc = _clip(*b) if clip else b
    inside = (b[0] > 0) & (b[1] > 0) & (b[2] > 0)
    g_dist = torch.where(inside, -g_dist, g_dist)
    d0, d1, d2 = _distance_backward(px, py, x0, y0, x1, y1, x2, y2, g_dist)
    g = (g_bary[:, 0] + g_z * z0, g_bary[:, 1] + g_z * z1, g_bary[:, 2] + g_z * z2)
    if clip:
        g = _clip_backward(*b, *g)
    gz = (torch.zeros_like(z0),) * 3
    if pc:
        g, gz = _perspective_backward(*b0, z0, z1, z2, *g)
    v0, v1, v2 = _bary_backward(px, py, x0, y0, x1, y1, x2, y2, *g)
    return torch.stack([
        torch.stack([v0[0] + d0[0], v0[1] + d0[1], gz[0] + g_z * bc[0]], -1),
        torch.stack([v1[0] + d1[0], v1[1] + d1[1], gz[1] + g_z * bc[1]], -1),
        torch.stack([v2[0] + d2[0], v2[1] + d2[1], gz[2] + g_z * bc[2]], -1),
    ], 1)


def _pair_pixels(sel, image_size, K, dtype, device):
    """Pixel centres (px, py) of flat (n, y, x, k) indices ``sel``."""
    H, W = image_size
    pix = torch.div(sel, K, rounding_mode="floor")
    xi = pix % W
    yi = torch.div(pix, W, rounding_mode="floor") % H
    xs = pixel_centers(W, H, device).to(dtype)
    ys = pixel_centers(H, W, device).to(dtype)
    return xs[W - 1 - xi], ys[H - 1 - yi]


class _Fragments(torch.autograd.Function):
    """Attaches the kernel's backward to precomputed (zbuf, bary_coords, dists).

    Forward returns the given values unchanged (they come from the vectorised rasterizer or
    from PyTorch3D's kernel); backward evaluates the kernel's per-pair gradients with
    :func:`_pair_grads` and sums them per face.
    """

    @staticmethod
    def forward(ctx, face_verts, pix_to_face, zbuf, bary, dists, pc, clip):
        sel = torch.nonzero(pix_to_face.reshape(-1) >= 0).squeeze(1)
        ctx.save_for_backward(face_verts, pix_to_face, sel)
        ctx.flags = (pc, clip)
        ctx.mark_non_differentiable(pix_to_face)
        return zbuf.clone(), bary.clone(), dists.clone()

    @staticmethod
    def backward(ctx, g_zbuf, g_bary, g_dists):
        face_verts, pix_to_face, sel = ctx.saved_tensors
        N, H, W, K = pix_to_face.shape
        faces = pix_to_face.reshape(-1)[sel]
        px, py = _pair_pixels(sel, (H, W), K, face_verts.dtype, face_verts.device)
        g_z = g_zbuf.reshape(-1)[sel] if g_zbuf is not None else torch.zeros_like(px)
        g_b = g_bary.reshape(-1, 3)[sel] if g_bary is not None else torch.zeros(len(sel), 3).to(px)
        g_d = g_dists.reshape(-1)[sel] if g_dists is not None else torch.zeros_like(px)
        with _threads(NUM_THREADS if face_verts.device.type == "cpu" else None):
            pair = _pair_grads(face_verts[faces], px, py, g_z, g_b, g_d, *ctx.flags)
            grad = torch.zeros_like(face_verts).index_add_(0, faces, pair)
        return grad, None, None, None, None, None, None


def _scatter_pairs(sel, shape, pz, bary, signed, dtype):
    """(N, H, W, K) zbuf / dists and (N, H, W, K, 3) bary with -1 outside the flat indices sel."""
    n = int(np.prod(shape))
    dev = pz.device
    zbuf = torch.full((n,), -1.0, dtype=dtype, device=dev).index_put_((sel,), pz.to(dtype))
    dists = torch.full((n,), -1.0, dtype=dtype, device=dev).index_put_((sel,), signed.to(dtype))
    bary_all = torch.full((n, 3), -1.0, dtype=dtype, device=dev).index_put_((sel,), bary.to(dtype))
    return zbuf.view(shape), bary_all.view(*shape, 3), dists.view(shape)


def recompute_fragments(
    face_verts: torch.Tensor,
    pix_to_face: torch.Tensor,
    perspective_correct: bool,
    clip_barycentric_coords: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """zbuf, barycentrics and signed distances for a given ``pix_to_face``, differentiably.

    Args:
        face_verts: (F, 3, 3) packed face vertices, x/y in NDC, z in view space; any float dtype.
        pix_to_face: (N, H, W, K) long face indices into ``face_verts`` (-1 = empty).

    Returns:
        zbuf (N, H, W, K), bary_coords (N, H, W, K, 3), dists (N, H, W, K); -1 where empty.
    """
    N, H, W, K = pix_to_face.shape
    with torch.no_grad():
        sel = torch.nonzero(pix_to_face.reshape(-1) >= 0).squeeze(1)
        px, py = _pair_pixels(sel, (H, W), K, face_verts.dtype, face_verts.device)
        bary, pz, dist, inside = _face_pixel_quantities(
            face_verts[pix_to_face.reshape(-1)[sel]], px, py, perspective_correct,
            clip_barycentric_coords,
        )
        signed = torch.where(inside, -dist, dist)
        values = _scatter_pairs(sel, (N, H, W, K), pz, bary, signed, face_verts.dtype)
    return _Fragments.apply(face_verts, pix_to_face, *values, perspective_correct, clip_barycentric_coords)


@torch.no_grad()
def _rasterize_vectorised(
    face_verts: torch.Tensor,
    mesh_to_face_first_idx: torch.Tensor,
    num_faces_per_mesh: torch.Tensor,
    image_size: tuple[int, int],
    blur_radius: float,
    faces_per_pixel: int,
    perspective_correct: bool,
    clip_barycentric_coords: bool,
    cull_backfaces: bool,
):
    """PyTorch3D's naive CPU rasterization, vectorised over candidate (pixel, face) pairs.

    Each face is tested only against the pixels inside its blur-expanded bounding box (the
    kernel's own first test), pairs farther than the blur radius outside one of the face's edge
    lines are dropped (a safe margin over the kernel's exact test, which follows), and the kept
    pairs are ordered per pixel by (depth, face index) as the kernel's sorted queue orders them.

    Returns:
        (pix_to_face, zbuf, bary_coords, dists) as the kernel returns them, or None when the
        batch is too large for one pass or depths are not finite (the caller uses the kernel).
    """
    fv = face_verts.float()
    dev = fv.device
    H, W = image_size
    N, K = mesh_to_face_first_idx.shape[0], faces_per_pixel
    shape = (N, H, W, K)
    counts = num_faces_per_mesh.to(dev)
    empty = torch.zeros(0, dtype=torch.int64, device=dev)
    mesh_of = torch.repeat_interleave(torch.arange(N, device=dev), counts)
    face_idx = torch.repeat_interleave(mesh_to_face_first_idx.to(dev), counts)
    face_idx = face_idx + torch.arange(face_idx.shape[0], device=dev) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    v = fv[face_idx]
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    area = _edge(x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])  # ComputeFaceAreas
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
    total = int(npairs.sum())
    if total > MAX_PAIRS:
        return None
    owner = torch.repeat_interleave(torch.arange(len(face_idx), device=dev), npairs)
    starts = torch.cumsum(npairs, 0) - npairs
    local = torch.arange(total, device=dev) - torch.repeat_interleave(starts, npairs)
    nxo = nx[owner]
    xidx = cx0[owner] + local % nxo
    yidx = cy0[owner] + torch.div(local, nxo, rounding_mode="floor")
    px, py = xs[xidx], ys[yidx]

    # cheap rejection: a pair on the outer side of edge line i (barycentric w_i < 0) farther from
    # it than sqrt(blur_radius) (with margin) is neither inside nor within the blur radius
    area_b = _offset_area(_edge(x[:, 2], y[:, 2], x[:, 0], y[:, 0], x[:, 1], y[:, 1]))
    ex = torch.stack([x[:, 2] - x[:, 1], x[:, 0] - x[:, 2], x[:, 1] - x[:, 0]], 1).double()
    ey = torch.stack([y[:, 2] - y[:, 1], y[:, 0] - y[:, 2], y[:, 1] - y[:, 0]], 1).double()
    reach = ((ex * ex + ey * ey).sqrt() * (sqrt_r * 1.001) + 1e-5).float()  # (F, 3) |e_i| bound
    a = area_b[owner]
    vo = v[owner]
    x0, y0, _, x1, y1, _, x2, y2, _ = _unpack(vo)
    far = torch.zeros_like(px, dtype=torch.bool)
    for i, (ax, ay, bx, by) in enumerate(((x1, y1, x2, y2), (x2, y2, x0, y0), (x0, y0, x1, y1))):
        e = _edge(px, py, ax, ay, bx, by)
        far |= (e / a < 0) & (e.abs() > reach[owner, i])
    near = torch.nonzero(~far).squeeze(1)
    owner, px, py, xidx, yidx = owner[near], px[near], py[near], xidx[near], yidx[near]

    bary, pz, dist, inside = _face_pixel_quantities(
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
    first = torch.cummax(torch.where(start, pos, torch.zeros_like(pos)), 0).values
    m = torch.nonzero(pos - first < K).squeeze(1) if len(pos) else empty
    sel = pixel[m] * K + (pos - first)[m]
    src = keep[order[m]]
    p2f = torch.full((N * H * W * K,), -1, dtype=torch.int64, device=dev)
    p2f[sel] = face_idx[owner[order[m]]]
    signed = torch.where(inside[src], -dist[src], dist[src])
    zbuf, bary_all, dists = _scatter_pairs(sel, shape, pz[order[m]], bary[src], signed, torch.float32)
    return p2f.view(shape), zbuf, bary_all, dists


def rasterize_meshes_fast(
    meshes,
    image_size=256,
    blur_radius: float = 0.0,
    faces_per_pixel: int = 8,
    bin_size: int | None = None,
    max_faces_per_bin: int | None = None,
    perspective_correct: bool = False,
    clip_barycentric_coords: bool = False,
    cull_backfaces: bool = False,
    z_clip_value: float | None = None,
    cull_to_frustum: bool = False,
    vectorised_forward: bool = True,
):
    """Same arguments and outputs as ``pytorch3d.renderer.mesh.rasterize_meshes``.

    The forward values come from the vectorised rasterizer (``vectorised_forward``; PyTorch3D's
    kernel is used for faces clipped and split at the near plane, non-finite vertices or huge
    batches) or from the kernel; the backward is :func:`_pair_grads`, vectorised over pairs.
    """
    verts_packed = meshes.verts_packed()
    face_verts = verts_packed[meshes.faces_packed()]
    first_idx = meshes.mesh_to_faces_packed_first_idx()
    num_faces = meshes.num_faces_per_mesh()
    im_size = parse_image_size(image_size)
    clipped = None
    neighbor_idx = None
    if z_clip_value is not None or cull_to_frustum:
        frustum = ClipFrustum(
            left=-1, right=1, top=-1, bottom=1, perspective_correct=perspective_correct,
            z_clip_value=z_clip_value, cull=cull_to_frustum,
        )
        clipped = clip_faces(face_verts, first_idx, num_faces, frustum=frustum)
        face_verts = clipped.face_verts
        first_idx, num_faces = clipped.mesh_to_face_first_idx, clipped.num_faces_per_mesh
        neighbor_idx = clipped.clipped_faces_neighbor_idx
    split = neighbor_idx is not None and bool((neighbor_idx != -1).any())

    out = None
    if vectorised_forward and not split and bool(torch.isfinite(face_verts).all()):
        with _threads(NUM_THREADS if face_verts.device.type == "cpu" else None):
            out = _rasterize_vectorised(
                face_verts.detach(), first_idx, num_faces, im_size, blur_radius, faces_per_pixel,
                perspective_correct, clip_barycentric_coords, cull_backfaces,
            )
    if out is None:
        if neighbor_idx is None:
            neighbor_idx = torch.full(
                (face_verts.shape[0],), -1, dtype=torch.int64, device=face_verts.device
            )
        if bin_size is None:
            if not verts_packed.is_cuda:
                bin_size = 0
            elif max(im_size) <= 64:
                bin_size = 8
            else:
                bin_size = int(2 ** max(np.ceil(np.log2(max(im_size))) - 4, 4))
        if bin_size != 0 and 1 + (max(im_size) - 1) // bin_size >= kMaxFacesPerBin:
            raise ValueError(f"bin_size too small, number of faces per bin must be < {kMaxFacesPerBin}")
        if max_faces_per_bin is None:
            max_faces_per_bin = int(max(10000, meshes._F / 5))
        with torch.no_grad():
            out = _C.rasterize_meshes(
                face_verts.detach().float(), first_idx, num_faces, neighbor_idx, im_size,
                blur_radius, faces_per_pixel, bin_size, max_faces_per_bin, perspective_correct,
                clip_barycentric_coords, cull_backfaces,
            )
    pix_to_face = out[0]
    zbuf, bary, dists = _Fragments.apply(
        face_verts, pix_to_face, *(t.to(face_verts.dtype) for t in out[1:]),
        perspective_correct, clip_barycentric_coords,
    )
    if clipped is not None:
        pix_to_face, bary = convert_clipped_rasterization_to_original_faces(pix_to_face, bary, clipped)
    return pix_to_face, zbuf, bary, dists


class FastMeshRasterizer(MeshRasterizer):
    """``MeshRasterizer`` with PyTorch3D's outputs and gradients at a fraction of the CPU cost.

    Same constructor and call as :class:`pytorch3d.renderer.MeshRasterizer`; returns
    ``Fragments``. ``pix_to_face`` is identical to PyTorch3D's; ``zbuf``, ``bary_coords`` and
    ``dists`` are recomputed from it with autograd-tracked PyTorch operations, so their
    gradients (vertices, camera parameters) are PyTorch3D's up to float rounding.

    Args:
        cameras, raster_settings: as for ``MeshRasterizer``.
        mode: "auto" (default: "fast" on CPU, "stock" on CUDA), "fast", or "stock"
            (PyTorch3D's own rasterizer, forward and backward).
        vectorised_forward: in "fast" mode, compute ``pix_to_face`` with the vectorised
            bounding-box rasterizer (True) or with PyTorch3D's kernel (False).
    """

    def __init__(self, cameras=None, raster_settings=None, mode: str = "auto",
                 vectorised_forward: bool = True) -> None:
        super().__init__(cameras=cameras, raster_settings=raster_settings)
        if mode not in ("auto", "fast", "stock"):
            raise ValueError(f"mode must be 'auto', 'fast' or 'stock', got {mode!r}")
        self.mode = mode
        self.vectorised_forward = vectorised_forward

    def forward(self, meshes_world, **kwargs) -> Fragments:
        mode = self.mode
        if mode == "auto":
            mode = "stock" if meshes_world.device.type == "cuda" else "fast"
        if mode == "stock":
            return super().forward(meshes_world, **kwargs)
        meshes_proj = self.transform(meshes_world, **kwargs)
        rs = kwargs.get("raster_settings", self.raster_settings)
        clip_bary = rs.clip_barycentric_coords
        if clip_bary is None:
            clip_bary = rs.blur_radius > 0.0
        cameras = kwargs.get("cameras", self.cameras)
        perspective_correct = (
            rs.perspective_correct if rs.perspective_correct is not None else cameras.is_perspective()
        )
        if rs.z_clip_value is not None:
            z_clip = rs.z_clip_value
        else:
            znear = cameras.get_znear()
            if isinstance(znear, torch.Tensor):
                znear = znear.min().item()
            z_clip = None if not perspective_correct or znear is None else znear / 2
        pix_to_face, zbuf, bary, dists = rasterize_meshes_fast(
            meshes_proj,
            image_size=rs.image_size,
            blur_radius=rs.blur_radius,
            faces_per_pixel=rs.faces_per_pixel,
            bin_size=rs.bin_size,
            max_faces_per_bin=rs.max_faces_per_bin,
            perspective_correct=perspective_correct,
            clip_barycentric_coords=clip_bary,
            cull_backfaces=rs.cull_backfaces,
            z_clip_value=z_clip,
            cull_to_frustum=rs.cull_to_frustum,
            vectorised_forward=self.vectorised_forward,
        )
        return Fragments(pix_to_face=pix_to_face, zbuf=zbuf, bary_coords=bary, dists=dists)
