"""Symmetric mesh representations under a finite symmetry group (one plane, two planes, n-fold).

Every representation of `symnb.symmetry.choose_representation` with a finite group is handled the
same way, in the canonical frame (main plane x = 0, y up, rotation axis y, origin on every
symmetry element):

    ============  =====================================================  =====
    name          group G (orthogonal 3x3 matrices)                      |G|
    ============  =====================================================  =====
    none          {I}                                                    1
    reflection    {I, x -> -x}                                           2
    two_planes    {I, x -> -x, z -> -z, rotation by pi about y}          4
    rotation n    {rotation by 2 pi k / n about y, k = 0..n-1}, n >= 2   n
    ============  =====================================================  =====

For each element g the vertex permutation pi_g (g x_i = x_{pi_g(i)} on the template) is computed at
runtime by matching positions. A mesh v (V, 3) is *invariant* when v[pi_g(i)] = g v[i] for all g, i.
Vertices split into orbits; each orbit has one representative r (kept in `independent`), whose
stabiliser H_r = {g : pi_g(r) = r} fixes a subspace of R^3 with projection P_r = mean_{h in H_r} h:
3 free coordinates off every symmetry element, 2 on a plane, 1 on an axis, 0 at the centre. The
number of free scalars of a representation is sum_r rank(P_r).

Shapes: verts (..., V, 3) float; half (..., K, 3) float with K = len(gmap.independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

GROUP_NAMES = ("none", "reflection", "two_planes", "rotation")
_DIRECTION = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)  # picks representatives (x >= 0, z >= 0)


def rotation_y(angle: float) -> torch.Tensor:
    """(3, 3) float64 rotation by `angle` about +y (right-handed: z -> x); entries that are 0 or
    +-1 in exact arithmetic (multiples of pi / 2) are set exactly."""
    c, s = (round(t) if abs(t - round(t)) < 1e-12 else t for t in (math.cos(angle), math.sin(angle)))
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def _parse(representation, order):
    if not isinstance(representation, str):  # a symnb.symmetry.Representation
        order = representation.order if order is None else order
        representation = representation.name
    if representation not in GROUP_NAMES:
        raise ValueError(f"unknown representation {representation!r}; use {GROUP_NAMES}")
    if representation != "rotation":
        return representation, 1
    if order is None:
        raise ValueError("representation 'rotation' needs its order n >= 2")
    if order == 0:
        raise ValueError("a continuous rotation (order 0) has no finite group: use a finite order n >= 2 "
                         "(n_free_params(smap, 'rotation', order=0) counts its rings)")
    if order < 2:
        raise ValueError(f"rotation order must be >= 2, got {order}")
    return representation, int(order)


def symmetry_group(representation="reflection", order: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """The group of a representation: matrices (G, 3, 3) float64 (identity first) and their names.

    Args:
        representation: "none", "reflection", "two_planes", "rotation", or a `Representation`.
        order: n >= 2 for "rotation".
    """
    name, n = _parse(representation, order)
    eye = torch.eye(3, dtype=torch.float64)
    fx, fz = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)), eye.clone()
    fz[2, 2] = -1.0
    if name == "none":
        return eye[None], ["identity"]
    if name == "reflection":
        return torch.stack([eye, fx]), ["identity", "reflection x -> -x"]
    if name == "two_planes":
        return torch.stack([eye, fx, fz, fx @ fz]), [
            "identity", "reflection x -> -x", "reflection z -> -z", "rotation by pi about y"]
    mats = [eye] + [rotation_y(2 * math.pi * k / n) for k in range(1, n)]
    return torch.stack(mats), ["identity"] + [f"rotation by 2 pi {k}/{n} about y" for k in range(1, n)]


@dataclass
class GroupMap:
    """Vertex permutations, orbits and free subspaces of a template under a finite symmetry group.

    Attributes:
        name: representation name ("none", "reflection", "two_planes", "rotation"); order: n or 1.
        matrices: (G, 3, 3) float64 group elements (identity first); labels: their names.
        perms: (G, V) long, perms[g, i] = pi_g(i): the vertex at g's image of vertex i.
        independent: (K,) long, sorted orbit representatives (the x >= 0, z >= 0 side first).
        orbit: (V,) long, index into `independent` of each vertex's orbit.
        element: (V,) long, a group element g with pi_g(independent[orbit[i]]) = i.
        proj: (K, 3, 3) float64, projection onto the subspace fixed by each representative's stabiliser.
        dofs: (K,) long, rank of `proj` (3 free, 2 on a plane, 1 on an axis, 0 at the centre).
        template: (V, 3) float, the positions the map was computed from.
    """

    name: str
    order: int
    matrices: torch.Tensor
    labels: list[str]
    perms: torch.Tensor
    independent: torch.Tensor
    orbit: torch.Tensor
    element: torch.Tensor
    proj: torch.Tensor
    dofs: torch.Tensor
    template: torch.Tensor

    @property
    def n_verts(self) -> int:
        return self.perms.shape[1]

    @property
    def n_params(self) -> int:
        """Free scalars of the representation: sum of the representatives' free dimensions."""
        return int(self.dofs.sum())

    def to(self, device) -> GroupMap:
        """A copy with its tensors on `device`."""
        kw = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in vars(self).items()}
        return GroupMap(**kw)


def group_map(verts: torch.Tensor, representation="reflection", order: int | None = None,
              tol: float = 1e-6) -> GroupMap:
    """Match every vertex with its images under the representation's group.

    Args:
        verts: (V, 3) float template in the canonical frame (e.g. `templates.template_for(...)`).
        representation, order: see `symmetry_group`.
        tol: largest allowed distance between a transformed vertex and its match, relative to the
            bounding-box diagonal.
    Raises:
        ValueError: the template is not invariant under some element (named in the message), or
            two vertices coincide.
    """
    v = torch.as_tensor(verts).detach().double().cpu()
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"group_map: verts must be (V, 3), got {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise ValueError("group_map: verts contain NaN or inf")
    name, n = _parse(representation, order)
    mats, labels = symmetry_group(name, n)
    scale = float((v.amax(0) - v.amin(0)).norm()) or 1.0
    tree = cKDTree(v.numpy())
    V, ar = len(v), torch.arange(len(v))
    perms = []
    for g, label in zip(mats, labels, strict=True):
        d, idx = tree.query((v @ g.T).numpy())
        if d.max() > tol * scale:
            worst = int(np.argmax(d))
            raise ValueError(
                f"group_map: the template is not invariant under the {label} ({name}): vertex {worst}'s "
                f"image is {d.max() / scale:.3g} bbox diagonals from any vertex > tol {tol}")
        idx = torch.as_tensor(idx, dtype=torch.long)
        if len(torch.unique(idx)) != V:
            raise ValueError(f"group_map: the {label} does not permute the vertices (duplicate vertices?)")
        perms.append(idx)
    perms = torch.stack(perms)  # (G, V)
    # representative: the orbit member furthest along _DIRECTION (ties: smallest index)
    score = (v @ _DIRECTION)[perms]  # (G, V): score of each member of i's orbit
    cand = torch.where(score >= score.amax(0) - 1e-9 * scale, perms, V)
    rep = cand.amin(0)  # (V,)
    independent = torch.unique(rep)
    orbit = torch.searchsorted(independent, rep)
    element = (perms[:, rep] == ar).long().argmax(0)  # first g with pi_g(rep(i)) = i
    stab = (perms[:, independent] == independent).double()  # (G, K)
    proj = torch.einsum("gk,gij->kij", stab, mats) / stab.sum(0)[:, None, None]
    dofs = torch.diagonal(proj, dim1=1, dim2=2).sum(-1).round().long()  # rank of a projection = trace
    return GroupMap(name, n, mats, labels, perms, independent, orbit, element, proj, dofs, v.float())


def _check_shape(fn: str, verts: torch.Tensor, gmap: GroupMap) -> None:
    if verts.shape[-2:] != (gmap.n_verts, 3):
        raise ValueError(f"{fn}: verts must be (..., {gmap.n_verts}, 3), got {tuple(verts.shape)}")


def group_symmetrize(verts: torch.Tensor, gmap: GroupMap, mode: str = "cent") -> torch.Tensor:
    """Project vertex positions onto the invariant meshes (differentiable).

    Args:
        verts: (..., V, 3) float.
        mode: "cent": the Reynolds average out[i] = 1/|G| sum_g g^T verts[pi_g(i)] (the orthogonal
            projection onto invariant meshes; "cent" of `symmetrize` for one plane); "copy" (alias
            "l2r"): the representatives are kept (projected onto their free subspace) and copied to
            their orbits, i.e. `group_expand(verts[..., independent, :])`.
    Returns:
        (..., V, 3) invariant positions.
    """
    _check_shape("group_symmetrize", verts, gmap)
    if mode in ("copy", "l2r"):
        return group_expand(verts[..., gmap.independent.to(verts.device), :], gmap)
    if mode != "cent":
        raise ValueError(f"group_symmetrize: unknown mode {mode!r}; use 'cent' or 'copy'")
    mats = gmap.matrices.to(verts)
    moved = verts[..., gmap.perms.to(verts.device), :]  # (..., G, V, 3)
    return torch.einsum("gji,...gvj->...vi", mats, moved) / len(mats)


def group_expand(half: torch.Tensor, gmap: GroupMap) -> torch.Tensor:
    """Representatives' positions -> the full exactly-invariant mesh (differentiable).

    Args:
        half: (..., K, 3) positions of `gmap.independent`; each is projected onto the subspace its
            stabiliser fixes (plane vertices onto the plane, axis vertices onto the axis).
    Returns:
        (..., V, 3): vertex i = g_i P_r half[r] with r its orbit's representative and g_i
        (`gmap.element`) a group element taking r to i.
    """
    K = len(gmap.independent)
    if half.shape[-2:] != (K, 3):
        raise ValueError(f"group_expand: half must be (..., {K}, 3), got {tuple(half.shape)}")
    p = torch.einsum("kij,...kj->...ki", gmap.proj.to(half), half)
    mats = gmap.matrices.to(half)[gmap.element.to(half.device)]  # (V, 3, 3)
    return torch.einsum("vij,...vj->...vi", mats, p[..., gmap.orbit.to(half.device), :])


def group_symmetry_error(verts: torch.Tensor, gmap: GroupMap) -> tuple[torch.Tensor, torch.Tensor]:
    """Index symmetry error over all group elements: |verts[pi_g(i)] - g verts[i]|.

    Args:
        verts: (..., V, 3) float.
    Returns:
        (max, mean), each (...,): over elements g and vertices i.
    """
    _check_shape("group_symmetry_error", verts, gmap)
    mats = gmap.matrices.to(verts)
    moved = verts[..., gmap.perms.to(verts.device), :]  # (..., G, V, 3)
    err = (moved - torch.einsum("gij,...vj->...gvi", mats, verts)).norm(dim=-1).flatten(-2)
    return err.amax(-1), err.mean(-1)


def invariant_dimension(gmap: GroupMap) -> int:
    """Dimension of the space of invariant meshes by the character formula (an independent count):
    (1/|G|) sum_g (number of vertices fixed by pi_g) trace(g)."""
    fixed = (gmap.perms == torch.arange(gmap.n_verts)).sum(1).double()
    tr = torch.diagonal(gmap.matrices, dim1=1, dim2=2).sum(-1)
    return int(round(float((fixed * tr).sum()) / len(gmap.matrices)))
