"""PyTorch3D's per-(pixel, face) rasterization formulas and their backward, vectorised over pairs.

Each function evaluates, for M (pixel, face) pairs at once, the same float operations in the same
order as PyTorch3D's CPU kernels (``pytorch3d/csrc/utils/geometry_utils.h`` and
``rasterize_meshes/rasterize_meshes_cpu.cpp`` of the installed 0.7.9 build, whose perspective
correction clamps its denominator at kEpsilon), so float32 results match the kernels bit for bit;
in float64 they give the exact derivatives wherever no clamp is active.

Shapes: ``fv`` (M, 3, 3) face vertices (x, y in NDC, z in view space); ``px``, ``py`` (M,) pixel
centres in NDC; per-pair results are (M,) or (M, 3).
"""

from __future__ import annotations

import numpy as np
import torch

#: PyTorch3D's epsilon (a C++ ``double``: areas are offset in double precision, then rounded).
K_EPSILON = 1e-8

__all__ = [
    "K_EPSILON", "edge_function", "offset_area", "pair_grads", "pair_quantities", "pixel_centers", "unpack",
]


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


def edge_function(px, py, x0, y0, x1, y1):
    """EdgeFunctionForward(p, v0, v1), same operation order as the C++ kernel."""
    return (px - x0) * (y1 - y0) - (py - y0) * (x1 - x0)


def offset_area(area: torch.Tensor) -> torch.Tensor:
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


def unpack(fv):
    """(M, 3, 3) face vertices -> [x0, y0, z0, x1, y1, z1, x2, y2, z2], each (M,)."""
    return [fv[:, i, j] for i in range(3) for j in range(3)]  # x0, y0, z0, x1, ..., z2


def _bary_screen(px, py, x0, y0, x1, y1, x2, y2, area=None):
    """BarycentricCoordinatesForward: screen-space barycentrics (w0, w1, w2)."""
    if area is None:
        area = offset_area(edge_function(x2, y2, x0, y0, x1, y1))
    return (
        edge_function(px, py, x1, y1, x2, y2) / area,
        edge_function(px, py, x2, y2, x0, y0) / area,
        edge_function(px, py, x0, y0, x1, y1) / area,
    )


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


def pair_quantities(fv, px, py, perspective_correct, clip_barycentric_coords, area=None):
    """Barycentrics, depth, squared distance and inside flag of pixel centres w.r.t. faces.

    The kernel's forward, operation for operation (no gradient tracking needed).

    Args:
        fv: (M, 3, 3) face vertices (x, y in NDC, z in view space), one face per query.
        px, py: (M,) pixel centres in NDC.
        area: optional (M,) ``EdgeFunction(v2, v0, v1) + eps`` (recomputed if None).

    Returns:
        bary_clip (M, 3), pz (M,), dist (M,) unsigned squared distance, inside (M,) bool.
    """
    x0, y0, z0, x1, y1, z1, x2, y2, z2 = unpack(fv)
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
    area = offset_area(edge_function(x2, y2, x0, y0, x1, y1))
    area2 = area * area
    area_inv = 1.0 / area
    p, v0, v1, v2 = (px, py), (x0, y0), (x1, y1), (x2, y2)
    grads = []
    for g, (a, b) in zip((g0, g1, g2), ((v1, v2), (v2, v0), (v0, v1)), strict=True):
        e = edge_function(px, py, *a, *b)
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


def pair_grads(fv, px, py, g_z, g_bary, g_dist, pc, clip):
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
    x0, y0, z0, x1, y1, z1, x2, y2, z2 = unpack(fv)
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
