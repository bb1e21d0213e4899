"""Symmetry errors of a mesh, one function per kind.

* :func:`index_symmetry_error`: through a template's :class:`SymmetryMap` (vertex correspondence
  known): |v[pi_g(i)] - g v[i]| over the non-identity elements g and vertices i.
* :func:`geometric_symmetry_error`: no correspondence needed: the Hausdorff distance between the
  surface and its image under each non-identity element (or, per vertex, the distance of each
  transformed vertex to the surface).
"""

from __future__ import annotations

import torch

from ..geometry import bbox_diagonal, check_mesh, point_mesh_closest
from ..metrics import directed_distances
from .groups import parse_group, reflection_matrix
from .maps import SymmetryMap


def index_symmetry_error(verts: torch.Tensor, smap: SymmetryMap) -> tuple[torch.Tensor, torch.Tensor]:
    """Index symmetry error |verts[pi_g(i)] - g verts[i]| over non-identity elements g and vertices i.

    Args:
        verts: (..., V, 3) float, V = smap.n_verts.
        smap: the template's map (any group; for one plane this is |v_i - reflect(v_mirror(i))|).
    Returns:
        (max, mean), each of shape (...); 0 for the trivial group.
    """
    if verts.shape[-2:] != (smap.n_verts, 3):
        raise ValueError(f"index_symmetry_error: verts must be (..., {smap.n_verts}, 3), got "
                         f"{tuple(verts.shape)}")
    eye = torch.eye(3, dtype=smap.matrices.dtype, device=smap.matrices.device)
    keep = (smap.matrices - eye).abs().flatten(1).amax(1) > 1e-12  # the non-identity elements
    if not bool(keep.any()):
        z = verts.new_zeros(verts.shape[:-2])
        return z, z
    mats, o = smap.matrices[keep].to(verts), smap.origin.to(verts)
    moved = verts[..., smap.perms[keep].to(verts.device), :]  # (..., G', V, 3)
    image = torch.einsum("gij,...vj->...gvi", mats, verts - o) + o
    err = (moved - image).norm(dim=-1).flatten(-2)
    return err.amax(-1), err.mean(-1)


def _elements(group, order, normal, point) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-identity matrices (G-1, 3, 3) float64 and the origin (3,) of a group spec."""
    if isinstance(group, SymmetryMap):
        return group.matrices[1:].cpu(), group.origin.cpu()
    origin = torch.zeros(3, dtype=torch.float64) if point is None else torch.as_tensor(
        point, dtype=torch.float64).reshape(3)
    if normal is not None:
        return reflection_matrix(normal)[None], origin
    entry, n = parse_group(group, order)
    return entry.elements(n)[0][1:], origin


def geometric_symmetry_error(verts, faces, group="reflection", order: int | None = None, *, normal=None,
                             point=None, relative: bool = True, per_vertex: bool = False,
                             n_samples: int = 20000, seed: int = 0):
    """Distance between a surface and its images under a symmetry group (no correspondence needed).

    Args:
        verts: (V, 3) float; faces: (F, 3) long.
        group: a group name (canonical frame), a ``Representation`` or a :class:`SymmetryMap`;
            order: n for "rotation". ``normal`` (and ``point``) give a reflection about another
            plane instead.
        relative: divide by the bounding-box diagonal (the ``Symmetry.error`` convention).
        per_vertex: return (V,) float64 distances of each vertex's images to the surface (the
            largest over the elements; heat maps) instead of the Hausdorff distance.
        n_samples, seed: surface samples of the Hausdorff distance (see ``symnb.metrics``).
    Returns:
        float: the largest over non-identity elements of the two-sided Hausdorff distance between
        the surface S and g S (an isometry, so one direction suffices); or (V,) with ``per_vertex``.
    """
    v, f = check_mesh(verts, faces)
    v = v.double()
    mats, o = _elements(group, order, normal, point)
    diag = float(bbox_diagonal(v)) if relative else 1.0
    if len(mats) == 0:
        return torch.zeros(len(v), dtype=torch.float64) if per_vertex else 0.0
    images = [(v - o) @ g.T + o for g in mats]
    if per_vertex:
        d = torch.stack([point_mesh_closest(x, v, f)[0] for x in images]).amax(0)
        return d / diag
    h = 0.0
    for g, x in zip(mats, images, strict=True):
        ff = f.flip(1) if torch.det(g) < 0 else f
        _, _, a, b = directed_distances(x, ff, v, f, n_samples, seed)
        h = max(h, float((a - b).norm()))
    return h / diag
