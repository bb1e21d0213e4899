"""A drop-in for PyTorch3D's ``MeshRasterizer`` with the same outputs and gradients, fast on a CPU.

PyTorch3D's rasterizer returns four tensors per (image, row, column, k): the face index
``pix_to_face`` (discrete, no gradient) and three closed-form functions of that face's projected
vertices: barycentric coordinates, depth ``zbuf`` and the signed squared distance ``dists`` from
the pixel centre to the face's edges. Its CPU forward tests every face against every pixel and
its CPU backward loops over every pixel in C++.

:class:`FastMeshRasterizer`

* forward: tests each face only against the pixels in its blur-expanded bounding box, evaluates
  the kernel's formulas for those (pixel, face) pairs with tensor operations in exactly the
  kernel's order of float operations (``pytorch3d/csrc/utils/geometry_utils.h``,
  ``rasterize_meshes_cpu.cpp``) and keeps the K nearest per pixel in the kernel's order, so all
  four outputs are identical to PyTorch3D's;
* backward: evaluates the kernel's backward for all kept pairs at once, again operation for
  operation (:func:`symnb.raster.kernels.pair_grads`), and sums per face; autograd carries the
  result through the projection to the vertices and the camera parameters.

On CPU tensors of float32 both run as compiled loops (:mod:`symnb.raster.cpu_kernels`, ``CPU_BACKEND =
"numba"``); elsewhere (CUDA tensors of ``mode="fast"``, float64, ``CPU_BACKEND = "torch"``) as
tensor operations over all pairs (:mod:`symnb.raster.pairs`, :mod:`symnb.raster.kernels`).

Conventions (PyTorch3D's): NDC +X points left and +Y up; pixel ``(y, x)`` of an ``(H, W)`` image
has its centre at ``(PixToNonSquareNdc(W - 1 - x, W, H), PixToNonSquareNdc(H - 1 - y, H, W))``;
the shorter side spans [-1, 1].
"""

from __future__ import annotations

import contextlib
import os

import numba
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

from . import cpu_kernels
from .kernels import (
    K_EPSILON,
    pair_grads,
    pair_quantities,
    pixel_centers,
)
from .pairs import rasterize_pairs

#: Candidate (pixel, face) pairs evaluated at once (meshes beyond this are done in groups;
#: a single mesh with more pairs uses PyTorch3D's kernel).
MAX_PAIRS = 8_000_000

#: Intra-op threads for the many small tensor operations here (None: leave torch's setting).
#: One thread is the robust default: with OpenMP on an oversubscribed CPU, hundreds of short
#: parallel regions per call can cost 10x more than they save.
NUM_THREADS: int | None = 1

#: How CPU float32 tensors are rasterized: "numba" (compiled loops over each face's bounding box,
#: :mod:`symnb.raster.cpu_kernels`) or "torch" (the vectorised tensor transcription, the reference).
CPU_BACKEND = "numba"

__all__ = ["K_EPSILON", "FastMeshRasterizer", "pixel_centers", "rasterize_meshes_fast", "recompute_fragments"]


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


def _use_numba(face_verts: torch.Tensor) -> bool:
    return CPU_BACKEND == "numba" and face_verts.device.type == "cpu" and face_verts.dtype == torch.float32


#: The process that first ran numba's parallel loops: numba terminates a child forked from it that runs
#: them again (GNU OpenMP is not fork-safe), so such children (fork pools, DataLoader workers) use the
#: serial loops.
_PARALLEL_PID: int | None = None


def _numba_parallel() -> bool:
    """Whether this process runs numba's parallel loops; if so, on as many threads as torch's intra-op
    pool (``torch.set_num_threads`` also limits the rasterizer).

    The first call starts numba's threading layer; its OpenMP layer shares torch's OpenMP runtime and
    sets that runtime's thread count to all cores when it starts, so torch's own setting is put back
    (otherwise one-thread processes side by side, ``--jobs N``, would each run on every core).
    """
    global _PARALLEL_PID
    if _PARALLEL_PID is None:
        _PARALLEL_PID = os.getpid()
    elif _PARALLEL_PID != os.getpid():
        return False
    n = torch.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return True


def _rasterize_numba(face_verts, first_idx, num_faces, image_size, blur_radius, faces_per_pixel,
                     perspective_correct, clip_barycentric_coords, cull_backfaces):
    """:func:`symnb.raster.cpu_kernels.rasterize_meshes` (or, serially, ``rasterize``) of all meshes as
    tensors; None where it defers to the kernel."""
    H, W = image_size
    N, K = len(num_faces), faces_per_pixel
    xs, ys = pixel_centers(W, H).numpy(), pixel_centers(H, W).numpy()
    p2f = np.full((N, H, W, K), -1, np.int64)
    zbuf, dists = np.full((N, H, W, K), -1.0, np.float32), np.full((N, H, W, K), -1.0, np.float32)
    bary = np.full((N, H, W, K, 3), -1.0, np.float32)
    fv, first, counts = face_verts.contiguous().numpy(), first_idx.numpy(), num_faces.numpy()
    rest = (xs, ys, np.float32(blur_radius), perspective_correct, clip_barycentric_coords, cull_backfaces,
            p2f, zbuf, bary, dists)
    if _numba_parallel():
        ok = cpu_kernels.rasterize_meshes(fv, first, counts, *rest)
    else:  # one loop over the faces of all meshes, which PyTorch3D packs back to back
        packed = np.array_equal(first, np.cumsum(counts) - counts) and counts.sum() == len(fv)
        ok = packed and cpu_kernels.rasterize(fv, 0, np.repeat(np.arange(N), counts), *rest)
    if not ok:
        return None
    return tuple(torch.from_numpy(t) for t in (p2f, zbuf, bary, dists))


def _backward_numba(face_verts, pix_to_face, g_zbuf, g_bary, g_dists, flags) -> torch.Tensor:
    """The gradient of the packed face vertices from :func:`symnb.raster.cpu_kernels.backward_meshes` (or,
    serially, ``backward``)."""
    N, H, W, K = pix_to_face.shape
    up = [torch.zeros(s) if g is None else g.detach().float().contiguous()
          for g, s in ((g_zbuf, (N, H, W, K)), (g_bary, (N, H, W, K, 3)), (g_dists, (N, H, W, K)))]
    fv = face_verts.detach().contiguous().numpy()
    xs, ys = pixel_centers(W, H).numpy(), pixel_centers(H, W).numpy()
    grad = np.zeros_like(fv)
    backward = cpu_kernels.backward_meshes if _numba_parallel() else cpu_kernels.backward
    backward(fv, pix_to_face.contiguous().numpy(), *(u.numpy() for u in up), xs, ys, *flags, grad)
    return torch.from_numpy(grad)


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
    :func:`symnb.raster.kernels.pair_grads` and sums them per face.
    """

    @staticmethod
    def forward(ctx, face_verts, pix_to_face, zbuf, bary, dists, pc, clip):
        ctx.save_for_backward(face_verts, pix_to_face)
        ctx.flags = (pc, clip)
        ctx.mark_non_differentiable(pix_to_face)
        return zbuf, bary, dists  # fresh tensors made for this call: no copy needed

    @staticmethod
    def backward(ctx, g_zbuf, g_bary, g_dists):
        face_verts, pix_to_face = ctx.saved_tensors
        N, H, W, K = pix_to_face.shape
        if _use_numba(face_verts):
            grad = _backward_numba(face_verts, pix_to_face, g_zbuf, g_bary, g_dists, ctx.flags)
            return grad, None, None, None, None, None, None
        sel = torch.nonzero(pix_to_face.reshape(-1) >= 0).squeeze(1)
        faces = pix_to_face.reshape(-1)[sel]
        px, py = _pair_pixels(sel, (H, W), K, face_verts.dtype, face_verts.device)
        g_z = g_zbuf.reshape(-1)[sel] if g_zbuf is not None else torch.zeros_like(px)
        g_b = g_bary.reshape(-1, 3)[sel] if g_bary is not None else torch.zeros(len(sel), 3).to(px)
        g_d = g_dists.reshape(-1)[sel] if g_dists is not None else torch.zeros_like(px)
        with _threads(NUM_THREADS if face_verts.device.type == "cpu" else None):
            pair = pair_grads(face_verts[faces], px, py, g_z, g_b, g_d, *ctx.flags)
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
        bary, pz, dist, inside = pair_quantities(
            face_verts[pix_to_face.reshape(-1)[sel]], px, py, perspective_correct,
            clip_barycentric_coords,
        )
        signed = torch.where(inside, -dist, dist)
        values = _scatter_pairs(sel, (N, H, W, K), pz, bary, signed, face_verts.dtype)
    return _Fragments.apply(face_verts, pix_to_face, *values, perspective_correct, clip_barycentric_coords)


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
    batches) or from the kernel; the backward is :func:`symnb.raster.kernels.pair_grads`.
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
        if _use_numba(face_verts):
            out = _rasterize_numba(face_verts.detach(), first_idx, num_faces, im_size, blur_radius,
                                   faces_per_pixel, perspective_correct, clip_barycentric_coords,
                                   cull_backfaces)
    if out is None and vectorised_forward and not split and bool(torch.isfinite(face_verts).all()):
        with _threads(NUM_THREADS if face_verts.device.type == "cpu" else None):
            out = rasterize_pairs(
                face_verts.detach(), first_idx, num_faces, im_size, blur_radius, faces_per_pixel,
                perspective_correct, clip_barycentric_coords, cull_backfaces, MAX_PAIRS,
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
    ``Fragments``. ``pix_to_face``, ``zbuf``, ``bary_coords`` and ``dists`` equal PyTorch3D's;
    the backward evaluates PyTorch3D's per-pixel backward for all pixels at once, so the
    gradients (vertices and, through the projection, camera parameters) are PyTorch3D's up to
    the order of summation.

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
