"""Exactly symmetric mesh representations on a template, for every group of the registry.

A :class:`SymmetryMap` holds, for a template and a group G (``symnb.symmetry.groups``), the vertex
permutation pi_g of each element (g x_i = x_{pi_g(i)}, computed at runtime by matching positions),
the vertex orbits with one representative each (``independent``), and the subspace each
representative's stabiliser H_r = {g : pi_g(r) = r} fixes (projection P_r = mean_{h in H_r} h):
3 free coordinates off every symmetry element, 2 on a plane, 1 on an axis, 0 at the centre.
A mesh v (V, 3) is *invariant* when v[pi_g(i)] = g v[i] for all g and i.

* :func:`symmetrize` projects any mesh onto the invariant ones: "cent" is the group average
  (Reynolds operator), "l2r" copies the representatives (the x >= 0 side first), "r2l" the
  representatives of the other side (groups with a mirror), or a list of modes, one per slice;
* :func:`expand` builds the invariant mesh from the representatives' positions;
* :func:`n_free_params` counts the free scalars (= rank of ``expand``).

A reflection about any plane (``normal``, ``point``) is the one-plane group in another frame: the
elements act as x -> g (x - origin) + origin.

Conventions: "left" is the x > 0 side (``side`` = +1), "right" x < 0 (-1), 0 on the plane; for a
general plane "left" is (v - point) . normal > 0. Shapes: verts (..., V, 3); half (..., K, 3) with
K = len(smap.independent).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .groups import GROUPS, parse_group, reflection_matrix
from .matching import match_vertices

MODES = ("l2r", "r2l", "cent")
_DIRECTION = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)  # picks representatives (x >= 0, z >= 0)


@dataclass
class SymmetryMap:
    """Vertex permutations, orbits and free subspaces of a template under a finite symmetry group.

    Attributes:
        name: group name ("none", "reflection", "two_planes", "rotation"); order: n or 1.
        matrices: (G, 3, 3) float64 group elements (identity first); labels: their names.
        origin: (3,) float64, the point every element fixes (0 in the canonical frame).
        perms: (G, V) long, perms[g, i] = pi_g(i): the vertex at g's image of vertex i.
        independent: (K,) long, sorted orbit representatives (the x >= 0, z >= 0 side first).
        orbit: (V,) long, index into `independent` of each vertex's orbit.
        copy: (2, V) long source vertex of each vertex for modes "l2r" (row 0, the representative)
            and "r2l" (row 1, the representative of the other side; = row 0 without a mirror).
        copy_mats: (2, V, 3, 3) float64, g_i P_r for the source r of vertex i: v_i = g_i P_r v_r.
        proj: (K, 3, 3) float64, projection onto the subspace fixed by each representative's stabiliser.
        dofs: (K,) long, rank of `proj` (3 free, 2 on a plane, 1 on an axis, 0 at the centre).
        slices: (V,) long horizontal band (by y) of each vertex, constant on orbits, or None.
        template: (V, 3) float, the positions the map was computed from.
        mirror_group: the group contains the main mirror (element 1), so "r2l" and slices apply.
    """

    name: str
    order: int
    matrices: torch.Tensor
    labels: list[str]
    origin: torch.Tensor
    perms: torch.Tensor
    independent: torch.Tensor
    orbit: torch.Tensor
    copy: torch.Tensor
    copy_mats: torch.Tensor
    proj: torch.Tensor
    dofs: torch.Tensor
    slices: torch.Tensor | None
    template: torch.Tensor
    mirror_group: bool = False

    @property
    def n_verts(self) -> int:
        return self.perms.shape[1]

    @property
    def n_params(self) -> int:
        """Free scalars of the representation: sum of the representatives' free dimensions."""
        return int(self.dofs.sum())

    @property
    def n_slices(self) -> int:
        return 0 if self.slices is None else int(self.slices.max()) + 1

    def _need_mirror(self, what: str) -> None:
        if not self.mirror_group:
            raise ValueError(f"{what} needs a group with a mirror plane, not {self.name!r}")

    @property
    def mirror(self) -> torch.Tensor:
        """(V,) long index of each vertex's mirror image (main plane)."""
        self._need_mirror("mirror")
        return self.perms[1]

    @property
    def on_plane(self) -> torch.Tensor:
        """(V,) bool, vertices on the main plane."""
        return self.mirror == torch.arange(self.n_verts, device=self.perms.device)

    @property
    def normal(self) -> torch.Tensor:
        """(3,) float unit normal of the main plane, pointing to the "left" (l2r source) side."""
        self._need_mirror("normal")
        M = self.matrices[1]
        n = torch.linalg.eigh((torch.eye(3, dtype=M.dtype, device=M.device) - M) / 2)[1][:, -1]
        c = self.template.double().to(M.device) - self.origin
        s = c @ n
        keep = self.copy[0] == torch.arange(self.n_verts, device=M.device)
        return (n if float(s[keep].sum()) >= 0 else -n).float()

    @property
    def point(self) -> torch.Tensor:
        """(3,) float, a point on the main plane."""
        return self.origin.float()

    @property
    def side(self) -> torch.Tensor:
        """(V,) int8: +1 left of the main plane (the "l2r" sources), -1 right, 0 on it."""
        left = self.copy[0] == torch.arange(self.n_verts, device=self.perms.device)
        return torch.where(self.on_plane, 0, torch.where(left, 1, -1)).to(torch.int8)

    def to(self, device) -> SymmetryMap:
        """A copy with its tensors on `device` (itself when they are there already)."""
        if self.perms.device == torch.device(device):
            return self
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return SymmetryMap(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in kw.items()})


def _representatives(v: torch.Tensor, perms: torch.Tensor, direction: torch.Tensor, scale: float):
    """Per vertex, its orbit's member furthest along `direction` (ties: smallest index)."""
    V = len(v)
    score = (v @ direction)[perms]  # (G, V): score of each member of i's orbit
    cand = torch.where(score >= score.amax(0) - 1e-9 * scale, perms, V)
    return cand.amin(0)


def symmetry_map(verts: torch.Tensor, group="reflection", order: int | None = None, *, normal=None,
                 point=None, n_slices: int = 0, tol: float | None = 1e-6) -> SymmetryMap:
    """Match every vertex of a template with its images under a group.

    Args:
        verts: (V, 3) float template (e.g. ``groups.template_for(group, n, order)``).
        group: a registered group name or a ``Representation``; order: n >= 2 for "rotation".
        normal, point: for "reflection", a plane other than x = 0 (normal is normalised here).
        n_slices: groups with a mirror: horizontal bands by y for per-slice modes (constant on orbits).
        tol: largest allowed distance between a transformed vertex and its match, relative to the
            bbox diagonal; None pairs nearest vertices unchecked (approximate, for nearly symmetric
            meshes; the result is then only as symmetric as the pairing).
    Raises:
        ValueError: the template is not invariant under some element (named in the message), two
            vertices coincide, or the arguments do not fit the group.
    """
    v = torch.as_tensor(verts).detach().double().cpu()
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"symmetry_map: verts must be (V, 3), got {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise ValueError("symmetry_map: verts contain NaN or inf")
    entry, n = parse_group(group, order)
    mats, labels = entry.elements(n)
    origin = torch.zeros(3, dtype=torch.float64)
    if normal is not None or point is not None:
        if entry.name != "reflection":
            raise ValueError(f"normal / point are for the reflection group, not {entry.name!r}")
        if normal is not None:
            mats = torch.stack([mats[0], reflection_matrix(normal)])
        if point is not None:
            origin = torch.as_tensor(point, dtype=torch.float64).reshape(3)
    if n_slices and not entry.mirror:
        raise ValueError(f"per-slice modes need a group with a mirror plane, not {entry.name!r}")
    scale = float((v.amax(0) - v.amin(0)).norm()) or 1.0
    c = v - origin
    V, ar = len(v), torch.arange(len(v))
    perms = []
    for g, label in zip(mats, labels, strict=True):
        idx = torch.as_tensor(match_vertices(c, c @ g.T, tol, f"the {label} ({entry.name})"))
        if len(torch.unique(idx)) != V:
            raise ValueError(f"symmetry_map: the {label} does not permute the vertices (duplicate vertices, "
                             "or an approximate pairing that is not one-to-one)")
        perms.append(idx)
    perms = torch.stack(perms)  # (G, V)
    d = _DIRECTION  # representatives: x >= 0, then z >= 0; for a general plane its normal's side
    if normal is not None:
        d = torch.as_tensor(normal, dtype=torch.float64).reshape(3)
    rep = _representatives(c, perms, d, scale)
    independent = torch.unique(rep)
    orbit = torch.searchsorted(independent, rep)
    stab = (perms[:, independent] == independent).double()  # (G, K)
    proj = torch.einsum("gk,gij->kij", stab, mats) / stab.sum(0)[:, None, None]
    dofs = torch.diagonal(proj, dim1=1, dim2=2).sum(-1).round().long()  # rank of a projection = trace
    rep_other = _representatives(c, perms, -d, scale) if entry.mirror else rep
    copies, copy_mats = [], []
    for r in (rep, rep_other):
        element = (perms[:, r] == ar).long().argmax(0)  # first g with pi_g(r(i)) = i
        stab_r = (perms[:, r] == r).double()  # (G, V) stabiliser of each source
        P = torch.einsum("gv,gij->vij", stab_r, mats) / stab_r.sum(0)[:, None, None]
        copies.append(r)
        copy_mats.append(mats[element] @ P)
    slices = None
    if n_slices > 0:
        y = v[:, 1]
        t = (y - y.min()) / max(float(y.max() - y.min()), 1e-12)
        slices = (t * n_slices).floor().clamp(0, n_slices - 1).long()
        slices = slices[perms].amin(0)  # numerically equal y within an orbit: guarantee equality
    return SymmetryMap(entry.name, n, mats, labels, origin, perms, independent, orbit, torch.stack(copies),
                       torch.stack(copy_mats), proj, dofs, slices, v.float(), entry.mirror)


def reflect(x: torch.Tensor, normal, point=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Reflect points (..., 3) about the plane through `point` with unit `normal`."""
    n = torch.as_tensor(normal, dtype=x.dtype, device=x.device)
    n = n / n.norm()
    p = torch.as_tensor(point, dtype=x.dtype, device=x.device)
    return x - 2 * ((x - p) @ n)[..., None] * n


def _check(fn: str, verts: torch.Tensor, smap: SymmetryMap) -> None:
    if verts.shape[-2:] != (smap.n_verts, 3):
        raise ValueError(f"{fn}: verts must be (..., {smap.n_verts}, 3), got {tuple(verts.shape)}")


def _act(mats: torch.Tensor, x: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """origin + mats[i] (x[..., i, :] - origin) per vertex.  mats (V, 3, 3), x (..., V, 3)."""
    if not bool(origin.any()):
        return torch.einsum("vij,...vj->...vi", mats, x)
    return torch.einsum("vij,...vj->...vi", mats, x - origin) + origin


def _copied(verts: torch.Tensor, smap: SymmetryMap, row: int) -> torch.Tensor:
    src = smap.copy[row].to(verts.device)
    return _act(smap.copy_mats[row].to(verts), verts[..., src, :], smap.origin.to(verts))


def _average(verts: torch.Tensor, smap: SymmetryMap) -> torch.Tensor:
    mats, o = smap.matrices.to(verts), smap.origin.to(verts)
    moved = verts[..., smap.perms.to(verts.device), :] - o  # (..., G, V, 3)
    return torch.einsum("gji,...gvj->...vi", mats, moved) / len(mats) + o


def _mode_codes(smap: SymmetryMap, mode) -> torch.Tensor | int:
    """A mode index (0 l2r, 1 r2l, 2 cent) or per-vertex codes (V,) for a per-slice list."""
    if isinstance(mode, str):
        code = {"copy": 0, **{m: i for i, m in enumerate(MODES)}}.get(mode)
        if code is None:
            raise ValueError(f"unknown symmetrize mode {mode!r}; use one of {MODES} or a per-slice list")
        if code == 1 and not smap.mirror_group:
            raise ValueError(f"unknown mode 'r2l' for group {smap.name!r}: use 'cent' or 'l2r' "
                             "(no mirror plane)")
        return code
    modes = list(mode)
    if smap.slices is None:
        raise ValueError("a per-slice mode list needs a symmetry map built with n_slices > 0")
    if len(modes) != smap.n_slices:
        raise ValueError(f"got {len(modes)} modes for {smap.n_slices} slices")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown symmetrize modes {bad}; use {MODES}")
    return torch.tensor([MODES.index(m) for m in modes], dtype=torch.long)[smap.slices]


def symmetrize(verts: torch.Tensor, smap: SymmetryMap, mode="cent") -> torch.Tensor:
    """Make vertex positions exactly invariant under the map's group (differentiable).

    Args:
        verts: (..., V, 3) float, V = smap.n_verts.
        smap: the template's :class:`SymmetryMap`.
        mode: "cent": the group average 1/|G| sum_g g^T verts[pi_g(i)] (the orthogonal projection
            onto invariant meshes; for one plane the average of each vertex and its mirrored
            counterpart); "l2r" (alias "copy"): the representatives (left side) are kept, projected
            onto their free subspace, and copied to their orbits; "r2l": the same from the other
            side (groups with a mirror); or a list of such modes, one per slice.
    Returns:
        (..., V, 3) invariant positions; vertices on a symmetry element are projected onto it.
    """
    _check("symmetrize", verts, smap)
    code = _mode_codes(smap, mode)
    if isinstance(code, int):
        return _average(verts, smap) if code == 2 else _copied(verts, smap, code)
    code = code.to(verts.device)[:, None]
    out = torch.where(code == 0, _copied(verts, smap, 0), _average(verts, smap))
    return torch.where(code == 1, _copied(verts, smap, 1), out)


def expand(half: torch.Tensor, smap: SymmetryMap) -> torch.Tensor:
    """Representatives' positions -> the full exactly-invariant mesh (differentiable).

    Args:
        half: (..., K, 3) positions of ``smap.independent``; each is projected onto the subspace its
            stabiliser fixes (plane vertices onto the plane, axis vertices onto the axis).
    Returns:
        (..., V, 3): vertex i = g_i P_r half[r], r its orbit's representative and g_i a group element
        taking r to i.
    """
    K = len(smap.independent)
    if half.shape[-2:] != (K, 3):
        raise ValueError(f"expand: half must be (..., {K}, 3), got {tuple(half.shape)}")
    return _act(smap.copy_mats[0].to(half), half[..., smap.orbit.to(half.device), :], smap.origin.to(half))


def free_basis(smap: SymmetryMap) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal bases of the representatives' free subspaces.

    Returns:
        basis (K, 3, 3) float: columns j < dofs[k] span the range of ``smap.proj[k]``, the rest are 0;
        free (K, 3) bool: which (representative, column) pairs are free; ``free.sum() = smap.n_params``.
    """
    _, evecs = torch.linalg.eigh(smap.proj.double())  # projections: eigenvalues 0 or 1, ascending
    evecs = evecs.flip(-1)  # eigenvalue-1 vectors first
    free = torch.arange(3)[None] < smap.dofs[:, None]
    return (evecs * free[:, None, :]).float(), free


def invariant_dimension(smap: SymmetryMap) -> int:
    """Dimension of the space of invariant meshes by the character formula (an independent count):
    (1/|G|) sum_g (number of vertices fixed by pi_g) trace(g)."""
    fixed = (smap.perms == torch.arange(smap.n_verts)).sum(1).double()
    tr = torch.diagonal(smap.matrices, dim1=1, dim2=2).sum(-1)
    return int(round(float((fixed * tr).sum()) / len(smap.matrices)))


def n_free_params(smap: SymmetryMap, representation=None, order: int | None = None) -> int:
    """Number of free vertex coordinates of a template under a representation.

    * the map's own group (``representation`` None or equal): ``smap.n_params`` = sum over orbits
      of the dimension fixed by the representative's stabiliser (3 off the symmetry elements, 2 on
      one plane, 1 on the y axis); "none" gives 3 V;
    * another finite group: the same count for a map of ``smap.template`` under that group (the
      template must be invariant: ValueError otherwise; use ``groups.template_for``);
    * "rotation" with order 0 (continuous): 2 (radius, height) per distinct (height, radius) ring
      + 1 per axis vertex (no finite group; the template needs no particular symmetry).

    Args:
        representation: a group name or a ``Representation`` (its name and order are used).
    """
    if representation is None:
        return smap.n_params
    if not isinstance(representation, str):
        order = representation.order if order is None else order
        representation = representation.name
    if representation not in GROUPS:
        raise ValueError(f"unknown representation {representation!r}; use {tuple(GROUPS)}")
    if GROUPS[representation].ordered and order is None:
        raise ValueError("n_free_params('rotation') needs the rotation order (n >= 2, or 0 for continuous)")
    if representation == smap.name and (order or 1) == smap.order:
        return smap.n_params
    if not (GROUPS[representation].ordered and order == 0):
        return symmetry_map(smap.template, representation, order).n_params
    v = smap.template.double()
    eps = 1e-6 * float((v.amax(0) - v.amin(0)).norm())
    axis = (v[:, 0].abs() <= eps) & (v[:, 2].abs() <= eps)
    r = v[~axis][:, [0, 2]].norm(dim=1)
    key = torch.stack([v[~axis][:, 1], r], 1).div(eps * 10).round()
    return 2 * len(torch.unique(key, dim=0)) + int(axis.sum())


def posthoc_map(template: torch.Tensor) -> SymmetryMap:
    """The reflection map (plane x = 0) of a model's template, for post-hoc symmetrization."""
    return symmetry_map(template, "reflection")


def symmetrize_nearest(verts: torch.Tensor, mode: str = "cent", normal=(1.0, 0.0, 0.0),
                       point=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Approximate mirror symmetrization of a mesh without a symmetry map (e.g. for viewers).

    Each vertex's partner is the vertex nearest to its mirror image (:func:`match_vertices`
    unchecked); "l2r" replaces right-side vertices (negative side of ``normal``) by their mirrored
    partners, "r2l" the left ones, "cent" averages every vertex with its mirrored partner. Only as
    symmetric as the pairing: use :func:`symmetrize` with a :class:`SymmetryMap` for exact results.

    Args:
        verts: (V, 3) float tensor or array.
    Returns:
        (V, 3) tensor of verts' dtype (float32 for arrays).
    """
    if mode not in MODES:
        raise ValueError(f"unknown symmetrize mode {mode!r}; use one of {MODES}")
    v = torch.as_tensor(verts).detach()
    v = v.float() if not v.is_floating_point() else v
    n = torch.as_tensor(normal, dtype=v.dtype)
    p = torch.as_tensor(point, dtype=v.dtype)
    m = reflect(v, n, p)
    partner = torch.as_tensor(match_vertices(v.cpu().numpy(), m.cpu().numpy(), tol=None))
    mirrored = m[partner]  # mirror image of each vertex's partner (~ the vertex itself if symmetric)
    if mode == "cent":
        return (v + mirrored) / 2
    side = (v - p) @ (n / n.norm())
    replace = side < 0 if mode == "l2r" else side > 0
    return torch.where(replace[:, None], mirrored, v)
