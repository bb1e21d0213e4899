"""Rasterization: a drop-in for PyTorch3D's ``MeshRasterizer``, bit-identical and fast on a CPU.

- :mod:`~symnb.raster.rasterizer`: :class:`FastMeshRasterizer`, its autograd function and the
  choice of backend (``CPU_BACKEND``);
- :mod:`~symnb.raster.cpu_kernels`: the forward and backward compiled with numba (CPU float32);
- :mod:`~symnb.raster.pairs`: the forward as tensor operations over candidate (pixel, face) pairs;
- :mod:`~symnb.raster.kernels`: PyTorch3D's per-pair formulas and their backward (the reference).
"""

from .rasterizer import (
    K_EPSILON,
    FastMeshRasterizer,
    pixel_centers,
    rasterize_meshes_fast,
    recompute_fragments,
)

__all__ = ["K_EPSILON", "FastMeshRasterizer", "pixel_centers", "rasterize_meshes_fast", "recompute_fragments"]
