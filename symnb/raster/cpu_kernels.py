"""The CPU kernels of :mod:`symnb.raster.rasterizer`: forward and backward compiled with numba.

The same per-(pixel, face) float32 operations, in the same order, as PyTorch3D's CPU kernels
(``rasterize_meshes_cpu.cpp``, ``geometry_utils.h``) and as their vectorised torch transcription
:mod:`symnb.raster.kernels` (which stays the reference, and the path for other devices and dtypes),
but each face visits only the pixels of its blur-expanded bounding box and keeps its K nearest
faces per pixel by insertion, so one call costs about as much as PyTorch3D's CUDA kernel does per
pixel instead of hundreds of tensor operations.

:func:`rasterize_meshes` and :func:`backward_meshes` run the meshes of a batch in parallel on
numba's threads. With numba's OpenMP layer (its default where TBB is absent) these are the OpenMP
threads torch itself runs on, so a call right after a torch operation finds them ready instead of
competing with them while they spin-wait (Python threads took 2x longer there than when idle).

Shapes: ``fv`` (F, 3, 3) float32 face vertices (x, y in NDC, z in view space); per-pixel outputs
(N, H, W, K). Constants are float32, as in the kernels (a Python float would promote to float64).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_EPS = np.float32(1e-8)  # kEpsilon where the kernel compares or clamps in float
_CLIP_EPS = np.float32(1e-5)
_ZERO, _ONE, _TWO = np.float32(0.0), np.float32(1.0), np.float32(2.0)


@njit(cache=True, error_model="numpy", inline="always")
def _edge(px, py, ax, ay, bx, by):
    return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


@njit(cache=True, error_model="numpy", inline="always")
def _offset_area(area):
    """``area + kEpsilon`` in double precision, rounded back to float32 (the kernel's float + double)."""
    return np.float32(np.float64(area) + 1e-8)


@njit(cache=True, error_model="numpy", inline="always")
def _line_dist(px, py, ax, ay, bx, by):
    """Squared distance from p to the segment [a, b] (PointLineDistanceForward)."""
    dx, dy = bx - ax, by - ay
    l2 = dx * dx + dy * dy
    if l2 <= _EPS:
        ex, ey = px - bx, py - by
        return ex * ex + ey * ey
    tt = (dx * (px - ax) + dy * (py - ay)) / l2
    tt = min(max(tt, _ZERO), _ONE)
    qx = px - (ax + tt * dx)
    qy = py - (ay + tt * dy)
    return qx * qx + qy * qy


@njit(cache=True, error_model="numpy", inline="always")
def _bary(px, py, x0, y0, x1, y1, x2, y2, area, z0, z1, z2, pc):
    """Screen barycentrics (b0, b1, b2) and the perspective-corrected ones (w0, w1, w2) (= b without pc)."""
    b0 = _edge(px, py, x1, y1, x2, y2) / area
    b1 = _edge(px, py, x2, y2, x0, y0) / area
    b2 = _edge(px, py, x0, y0, x1, y1) / area
    if not pc:
        return b0, b1, b2, b0, b1, b2
    w0, w1, w2 = _perspective(b0, b1, b2, z0, z1, z2)
    return b0, b1, b2, w0, w1, w2


@njit(cache=True, error_model="numpy", inline="always")
def _perspective(w0, w1, w2, z0, z1, z2):
    """BarycentricPerspectiveCorrectionForward (denominator clamped at kEpsilon)."""
    t0, t1, t2 = w0 * z1 * z2, w1 * z0 * z2, w2 * z0 * z1
    denom = t0 + t1 + t2
    if denom < _EPS:
        denom = _EPS
    return t0 / denom, t1 / denom, t2 / denom


@njit(cache=True, error_model="numpy", inline="always")
def _clip(w0, w1, w2):
    c0, c1, c2 = max(w0, _ZERO), max(w1, _ZERO), max(w2, _ZERO)
    s = c0 + c1 + c2
    if s < _CLIP_EPS:
        s = _CLIP_EPS
    return c0 / s, c1 / s, c2 / s


@njit(cache=True, error_model="numpy", inline="always")
def _reach(ax, ay, bx, by, sqrt_r):
    dx, dy = np.float64(bx - ax), np.float64(by - ay)
    return np.float32(np.sqrt(dx * dx + dy * dy) * (np.float64(sqrt_r) * 1.001) + 1e-5)


@njit(cache=True, error_model="numpy", nogil=True)
def rasterize(fv, f0, mesh_of, xs, ys, blur_radius, pc, clip, cull, p2f, zbuf, bary, dists):
    """PyTorch3D's naive CPU rasterization, face by face over each face's bounding box, into given outputs.

    Args:
        fv: (F, 3, 3) float32 faces of some meshes (those of a mesh consecutive, in ascending order),
            f0: the packed index of fv[0]; mesh_of: (F,) int64 each face's mesh, 0 = the first of the
            outputs; xs (W,), ys (H,): :func:`pixel_centers` (ascending); blur_radius: float32;
            pc / clip / cull: perspective correction, barycentric clipping, back-face culling.
        p2f (n, H, W, K) int64, zbuf, dists (n, H, W, K) and bary (n, H, W, K, 3) float32: the
            outputs of these meshes, C-contiguous, filled with -1.

    Returns:
        False if a kept depth is not finite (the kernel's order is then undefined; the caller
        defers to it), else True.
    """
    N, H, W, K = p2f.shape
    count = np.zeros(N * H * W, np.int64)
    f_, z_, d_, b_ = p2f.reshape(-1), zbuf.reshape(-1), dists.reshape(-1), bary.reshape(-1, 3)  # flat views
    sqrt_r = np.float32(np.sqrt(blur_radius))
    for f in range(fv.shape[0]):
        x0, y0, z0 = fv[f, 0, 0], fv[f, 0, 1], fv[f, 0, 2]
        x1, y1, z1 = fv[f, 1, 0], fv[f, 1, 1], fv[f, 1, 2]
        x2, y2, z2 = fv[f, 2, 0], fv[f, 2, 1], fv[f, 2, 2]
        area = _edge(x0, y0, x1, y1, x2, y2)  # ComputeFaceAreas
        if not abs(area) > _EPS or np.float64(min(z0, z1, z2)) < 1e-8 or (cull and area < _ZERO):
            continue
        area_b = _offset_area(_edge(x2, y2, x0, y0, x1, y1))
        xmin, xmax = min(x0, x1, x2) - sqrt_r, max(x0, x1, x2) + sqrt_r
        ymin, ymax = min(y0, y1, y2) - sqrt_r, max(y0, y1, y2) + sqrt_r
        # an edge line's reach: a pixel on its outer side farther than this is neither inside nor
        # within the blur radius (a safe margin over the kernel's exact test, which follows)
        reach0 = _reach(x1, y1, x2, y2, sqrt_r)
        reach1 = _reach(x2, y2, x0, y0, sqrt_r)
        reach2 = _reach(x0, y0, x1, y1, sqrt_r)
        pos = area_b > _ZERO
        n = mesh_of[f]
        for yi in range(np.searchsorted(ys, ymin, side="left"), np.searchsorted(ys, ymax, side="right")):
            py = ys[yi]
            row = H - 1 - yi
            for xi in range(np.searchsorted(xs, xmin, side="left"), np.searchsorted(xs, xmax, side="right")):
                px = xs[xi]
                e0 = _edge(px, py, x1, y1, x2, y2)
                e1 = _edge(px, py, x2, y2, x0, y0)
                e2 = _edge(px, py, x0, y0, x1, y1)
                if ((abs(e0) > reach0 and (e0 < _ZERO) == pos) or (abs(e1) > reach1 and (e1 < _ZERO) == pos)
                        or (abs(e2) > reach2 and (e2 < _ZERO) == pos)):
                    continue  # far on the outer side of an edge line (w_i = e_i / area < 0)
                w0, w1, w2 = e0 / area_b, e1 / area_b, e2 / area_b
                if pc:
                    w0, w1, w2 = _perspective(w0, w1, w2, z0, z1, z2)
                inside = w0 > _ZERO and w1 > _ZERO and w2 > _ZERO
                if clip:
                    w0, w1, w2 = _clip(w0, w1, w2)
                pz = w0 * z0 + w1 * z1 + w2 * z2
                if pz < _ZERO:
                    continue
                dist = min(min(_line_dist(px, py, x0, y0, x1, y1), _line_dist(px, py, x0, y0, x2, y2)),
                           _line_dist(px, py, x1, y1, x2, y2))
                if not inside and not dist < blur_radius:
                    continue
                if not np.isfinite(pz):
                    return False
                pz = pz + _ZERO  # -0.0 -> +0.0
                pix = (n * H + row) * W + W - 1 - xi
                c = count[pix]
                base = pix * K
                if c == K:  # full: the new face goes in only before the last (ties: lower face first)
                    if not pz < z_[base + K - 1]:
                        continue
                    j = base + K - 1
                else:
                    j = base + c
                    count[pix] = c + 1
                while j > base and z_[j - 1] > pz:
                    f_[j], z_[j], d_[j] = f_[j - 1], z_[j - 1], d_[j - 1]
                    b_[j, 0], b_[j, 1], b_[j, 2] = b_[j - 1, 0], b_[j - 1, 1], b_[j - 1, 2]
                    j -= 1
                f_[j], z_[j], d_[j] = f0 + f, pz, -dist if inside else dist
                b_[j, 0], b_[j, 1], b_[j, 2] = w0, w1, w2
    return True


@njit(cache=True, error_model="numpy", parallel=True)
def rasterize_meshes(fv, first, counts, xs, ys, blur_radius, pc, clip, cull, p2f, zbuf, bary, dists):
    """:func:`rasterize` of each mesh n (faces ``fv[first[n]:first[n] + counts[n]]``) into the outputs'
    slot n, meshes in parallel. Returns False if any mesh's call did."""
    ok = np.ones(p2f.shape[0], np.bool_)
    for n in prange(p2f.shape[0]):
        f0, f1 = first[n], first[n] + counts[n]
        ok[n] = rasterize(fv[f0:f1], f0, np.zeros(f1 - f0, np.int64), xs, ys, blur_radius, pc, clip, cull,
                          p2f[n:n + 1], zbuf[n:n + 1], bary[n:n + 1], dists[n:n + 1])
    return ok.all()


@njit(cache=True, error_model="numpy", inline="always")
def _edge_backward(px, py, ax, ay, bx, by, g):
    """EdgeFunctionBackward: (dp, da, db), each (x, y)."""
    return g * (by - ay), g * (ax - bx), g * (py - by), g * (bx - px), g * (ay - py), g * (px - ax)


@njit(cache=True, error_model="numpy", inline="always")
def _segment_backward(px, py, ax, ay, bx, by, g):
    """PointLineDistanceBackward: gradients w.r.t. a and b."""
    dx, dy = bx - ax, by - ay
    t_bot = dx * dx + dy * dy
    t_top = dx * (px - ax) + dy * (py - ay)
    tt = t_top / (t_bot if t_bot > _ZERO else _ONE)
    tt = min(max(tt, _ZERO), _ONE)
    qx = (_ONE - tt) * ax + tt * bx - px
    qy = (_ONE - tt) * ay + tt * by - py
    sa, sb = g * (_ONE - tt) * _TWO, g * tt * _TWO
    return sa * qx, sa * qy, sb * qx, sb * qy


@njit(cache=True, error_model="numpy", nogil=True)
def backward(fv, p2f, g_z, g_bary, g_dist, xs, ys, pc, clip, grad):
    """PyTorch3D's ``RasterizeMeshesBackwardCpu``: adds the gradient of fv, summed over kept pairs, to grad.

    Args:
        fv: (F, 3, 3) float32 packed faces; p2f (n, H, W, K) int64 packed face indices of some
            meshes; g_z, g_dist (n, H, W, K), g_bary (n, H, W, K, 3) float32 upstream gradients;
            xs, ys: pixel centres as for :func:`rasterize`; grad: (F, 3, 3) float32.
    """
    N, H, W, K = p2f.shape
    for n in range(N):
        for row in range(H):
            py = ys[H - 1 - row]
            for col in range(W):
                px = xs[W - 1 - col]
                for k in range(K):
                    f = p2f[n, row, col, k]
                    if f < 0:
                        continue
                    gz, gd = g_z[n, row, col, k], g_dist[n, row, col, k]
                    gb = g_bary[n, row, col, k]
                    _pair_backward(fv, f, px, py, gz, gb[0], gb[1], gb[2], gd, pc, clip, grad)


@njit(cache=True, error_model="numpy", parallel=True)
def backward_meshes(fv, p2f, g_z, g_bary, g_dist, xs, ys, pc, clip, grad):
    """:func:`backward` of each mesh (image) in parallel; meshes own disjoint faces, so each thread
    adds to rows of grad no other thread touches."""
    for n in prange(p2f.shape[0]):
        backward(fv, p2f[n:n + 1], g_z[n:n + 1], g_bary[n:n + 1], g_dist[n:n + 1], xs, ys, pc, clip, grad)


@njit(cache=True, error_model="numpy", inline="always")
def _pair_backward(fv, f, px, py, g_z, gb0, gb1, gb2, g_dist, pc, clip, grad):
    """One pair's kernel backward (:func:`symnb.raster.kernels.pair_grads`), added to grad[f]."""
    x0, y0, z0 = fv[f, 0, 0], fv[f, 0, 1], fv[f, 0, 2]
    x1, y1, z1 = fv[f, 1, 0], fv[f, 1, 1], fv[f, 1, 2]
    x2, y2, z2 = fv[f, 2, 0], fv[f, 2, 1], fv[f, 2, 2]
    area = _offset_area(_edge(x2, y2, x0, y0, x1, y1))
    s0, s1, s2, b0, b1, b2 = _bary(px, py, x0, y0, x1, y1, x2, y2, area, z0, z1, z2, pc)
    c0, c1, c2 = _clip(b0, b1, b2) if clip else (b0, b1, b2)
    if b0 > _ZERO and b1 > _ZERO and b2 > _ZERO:
        g_dist = -g_dist
    # distance: the gradient goes to the first closest edge (01, 02, 12)
    e01 = _line_dist(px, py, x0, y0, x1, y1)
    e02 = _line_dist(px, py, x0, y0, x2, y2)
    e12 = _line_dist(px, py, x1, y1, x2, y2)
    m01 = e01 <= e02 and e01 <= e12
    m02 = not m01 and e02 <= e01 and e02 <= e12
    m12 = not m01 and not m02 and e12 <= e01 and e12 <= e02
    a01x, a01y, b01x, b01y = _segment_backward(px, py, x0, y0, x1, y1, g_dist if m01 else _ZERO)
    a02x, a02y, b02x, b02y = _segment_backward(px, py, x0, y0, x2, y2, g_dist if m02 else _ZERO)
    a12x, a12y, b12x, b12y = _segment_backward(px, py, x1, y1, x2, y2, g_dist if m12 else _ZERO)
    d0x, d0y = a01x + a02x, a01y + a02y
    d1x, d1y = b01x + a12x, b01y + a12y
    d2x, d2y = b02x + b12x, b02y + b12y
    g0, g1, g2 = gb0 + g_z * z0, gb1 + g_z * z1, gb2 + g_z * z2
    if clip:  # BarycentricClipBackward
        k0, k1, k2 = max(b0, _ZERO), max(b1, _ZERO), max(b2, _ZERO)
        ksum = k0 + k1 + k2
        small = np.float64(ksum) < 1e-5
        if small:
            ksum = _CLIP_EPS
        ksq = ksum * ksum
        keep = _ZERO if small else _ONE
        gs0, gs1, gs2 = -k0 / ksq * keep, -k1 / ksq * keep, -k2 / ksq * keep
        inv = _ONE / ksum
        r0 = (_ONE if b0 >= _ZERO else _ZERO) * (g0 * (inv + gs0) + g1 * gs1 + g2 * gs2)
        r1 = (_ONE if b1 >= _ZERO else _ZERO) * (g1 * (inv + gs1) + g0 * gs0 + g2 * gs2)
        r2 = (_ONE if b2 >= _ZERO else _ZERO) * (g2 * (inv + gs2) + g0 * gs0 + g1 * gs1)
        g0, g1, g2 = r0, r1, r2
    gz0 = gz1 = gz2 = _ZERO
    if pc:  # BarycentricPerspectiveCorrectionBackward, of the screen barycentrics s
        t0, t1, t2 = s0 * z1 * z2, s1 * z0 * z2, s2 * z0 * z1
        denom = t0 + t1 + t2
        if denom < _EPS:
            denom = _EPS
        gd = (-t0 * g0 - t1 * g1 - t2 * g2) / (denom * denom)
        gt0, gt1, gt2 = gd + g0 / denom, gd + g1 / denom, gd + g2 / denom
        g0, g1, g2 = gt0 * z1 * z2, gt1 * z0 * z2, gt2 * z0 * z1
        gz0 = gt1 * s1 * z2 + gt2 * s2 * z1
        gz1 = gt0 * s0 * z2 + gt2 * s2 * z0
        gz2 = gt0 * s0 * z1 + gt1 * s1 * z0
    # BarycentricCoordsBackward
    area2 = area * area
    area_inv = _ONE / area
    e = _edge(px, py, x1, y1, x2, y2)
    _, _, e0ax, e0ay, e0bx, e0by = _edge_backward(px, py, x1, y1, x2, y2, g0 * area_inv)
    a0v2x, a0v2y, a0v0x, a0v0y, a0v1x, a0v1y = _edge_backward(x2, y2, x0, y0, x1, y1, g0 * (-e / area2))
    e = _edge(px, py, x2, y2, x0, y0)
    _, _, e1ax, e1ay, e1bx, e1by = _edge_backward(px, py, x2, y2, x0, y0, g1 * area_inv)
    a1v2x, a1v2y, a1v0x, a1v0y, a1v1x, a1v1y = _edge_backward(x2, y2, x0, y0, x1, y1, g1 * (-e / area2))
    e = _edge(px, py, x0, y0, x1, y1)
    _, _, e2ax, e2ay, e2bx, e2by = _edge_backward(px, py, x0, y0, x1, y1, g2 * area_inv)
    a2v2x, a2v2y, a2v0x, a2v0y, a2v1x, a2v1y = _edge_backward(x2, y2, x0, y0, x1, y1, g2 * (-e / area2))
    v0x = (a0v0x + (e1bx + a1v0x)) + (e2ax + a2v0x)
    v0y = (a0v0y + (e1by + a1v0y)) + (e2ay + a2v0y)
    v1x = ((e0ax + a0v1x) + a1v1x) + (e2bx + a2v1x)
    v1y = ((e0ay + a0v1y) + a1v1y) + (e2by + a2v1y)
    v2x = ((e0bx + a0v2x) + (e1ax + a1v2x)) + a2v2x
    v2y = ((e0by + a0v2y) + (e1ay + a1v2y)) + a2v2y
    grad[f, 0, 0] += v0x + d0x
    grad[f, 0, 1] += v0y + d0y
    grad[f, 0, 2] += gz0 + g_z * c0
    grad[f, 1, 0] += v1x + d1x
    grad[f, 1, 1] += v1y + d1y
    grad[f, 1, 2] += gz1 + g_z * c1
    grad[f, 2, 0] += v2x + d2x
    grad[f, 2, 1] += v2y + d2y
    grad[f, 2, 2] += gz2 + g_z * c2
