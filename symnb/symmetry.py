"""Shape symmetries: detection on triangle meshes, the representation a network should use, and
exactly-symmetric mesh representations on templates (symmetry maps, symmetrize, expand).

Conventions (canonical object frame, shared with templates, data and model):
    * the main reflection plane is x = 0, y is up, a rotation axis (if any) is y;
    * "left" is the x > 0 side (`side` = +1), "right" is x < 0 (`side` = -1), `side` = 0 on the
      plane. Mode "l2r" copies the left half (mirrored) onto the right half, "r2l" the converse,
      "cent" averages each vertex with the mirror of its counterpart. For a general plane with unit
      normal n through point p, "left" is (v - p) . n > 0.

Shapes: verts (..., V, 3) float, faces (F, 3) long.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree

from .detect import Symmetry, detect_symmetries  # noqa: F401  (re-exported: symnb.symmetry API)
from .symgroup import (  # noqa: F401  (re-exported: symnb.symmetry API)
    GroupMap,
    group_expand,
    group_map,
    group_symmetrize,
    group_symmetry_error,
    invariant_dimension,
    symmetry_group,
)

MODES = ("l2r", "r2l", "cent")
REPRESENTATIONS = ("none", "reflection", "two_planes", "rotation")


# ------------------------------------------------------------------------------------- symmetry maps


@dataclass
class SymmetryMap:
    """Vertex correspondence of a mesh under a reflection (computed at runtime by matching positions).

    Attributes:
        mirror: (V,) long, index of the vertex at each vertex's mirrored position (itself on the plane).
        on_plane: (V,) bool, vertices on the plane.
        independent: (K,) long, sorted indices of the free vertices (left side + plane).
        side: (V,) int8, +1 left (x > 0), -1 right, 0 on the plane.
        slices: (V,) long horizontal band index (by y) or None; mirror pairs share a band.
        normal: (3,) float, unit plane normal.
        point: (3,) float, a point on the plane.
        template: (V, 3) float, the vertex positions the map was computed from.
    """

    mirror: torch.Tensor
    on_plane: torch.Tensor
    independent: torch.Tensor
    side: torch.Tensor
    slices: torch.Tensor | None = None
    normal: torch.Tensor = field(default_factory=lambda: torch.tensor([1.0, 0.0, 0.0]))
    point: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    template: torch.Tensor | None = None

    @property
    def n_verts(self) -> int:
        return len(self.mirror)

    @property
    def n_slices(self) -> int:
        return 0 if self.slices is None else int(self.slices.max()) + 1


def symmetry_map(
    verts: torch.Tensor, normal=(1.0, 0.0, 0.0), point=(0.0, 0.0, 0.0), n_slices: int = 0, tol: float = 1e-6
) -> SymmetryMap:
    """Match every vertex with the vertex at its mirrored position.

    Args:
        verts: (V, 3) float template positions (e.g. `sphere_template()`).
        normal: plane normal (normalised here); point: a point on the plane.
        n_slices: if > 0, split the template into this many equal-height bands along y
            (for per-slice symmetrization modes); mirror pairs always share a band.
        tol: largest allowed distance between a reflected vertex and its match, relative to the
            bounding-box diagonal; vertices within tol of the plane are "on the plane".
    Raises:
        ValueError: the vertices are not symmetric about the plane (a reflected vertex has no match).
    """
    v = torch.as_tensor(verts).detach().double().cpu()
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"symmetry_map: verts must be (V, 3), got {tuple(v.shape)}")
    n = torch.as_tensor(normal, dtype=torch.float64)
    if n.norm() == 0:
        raise ValueError("symmetry_map: zero plane normal")
    n = n / n.norm()
    p = torch.as_tensor(point, dtype=torch.float64)
    scale = float((v.amax(0) - v.amin(0)).norm()) or 1.0
    s = (v - p) @ n
    refl = v - 2 * s[:, None] * n
    d, idx = cKDTree(v.numpy()).query(refl.numpy())
    if d.max() > tol * scale:
        worst = int(np.argmax(d))
        raise ValueError(
            f"symmetry_map: vertices are not symmetric about the plane (vertex {worst}'s mirror is "
            f"{d.max() / scale:.3g} bbox diagonals from any vertex > tol {tol})"
        )
    mirror = torch.as_tensor(idx, dtype=torch.long)
    ar = torch.arange(len(v))
    if not torch.equal(mirror[mirror], ar):
        raise ValueError("symmetry_map: mirror matching is not an involution (duplicate vertices?)")
    on_plane = mirror == ar
    side = torch.where(on_plane, 0, torch.where(s > 0, 1, -1)).to(torch.int8)
    independent = torch.nonzero(side >= 0).squeeze(1)
    slices = None
    if n_slices > 0:
        y = v[:, 1]
        lo, hi = float(y.min()), float(y.max())
        t = (y - lo) / max(hi - lo, 1e-12)
        slices = (t * n_slices).floor().clamp(0, n_slices - 1).long()
        slices = torch.minimum(slices, slices[mirror])  # numerically equal y, guarantee equality
    return SymmetryMap(mirror, on_plane, independent, side, slices, n.float(), p.float(), v.float())


def reflect(x: torch.Tensor, normal, point=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Reflect points (..., 3) about the plane through `point` with unit `normal`."""
    n = torch.as_tensor(normal, dtype=x.dtype, device=x.device)
    n = n / n.norm()
    p = torch.as_tensor(point, dtype=x.dtype, device=x.device)
    return x - 2 * ((x - p) @ n)[..., None] * n


def _mode_codes(smap: SymmetryMap, mode) -> torch.Tensor:
    """Per-vertex mode code (V,): 0 = l2r, 1 = r2l, 2 = cent."""
    if isinstance(mode, str):
        if mode not in MODES:
            raise ValueError(f"unknown symmetrize mode {mode!r}; use one of {MODES} or a per-slice list")
        return torch.full((smap.n_verts,), MODES.index(mode), dtype=torch.long)
    modes = list(mode)
    if smap.slices is None:
        raise ValueError("a per-slice mode list needs a SymmetryMap built with n_slices > 0")
    if len(modes) != smap.n_slices:
        raise ValueError(f"got {len(modes)} modes for {smap.n_slices} slices")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown symmetrize modes {bad}; use {MODES}")
    codes = torch.tensor([MODES.index(m) for m in modes], dtype=torch.long)
    return codes[smap.slices]


def symmetrize(verts: torch.Tensor, smap: SymmetryMap | GroupMap, mode="cent") -> torch.Tensor:
    """Make vertex positions exactly symmetric (differentiable).

    Args:
        verts: (..., V, 3) float, V = smap.n_verts.
        smap: the template's SymmetryMap (one plane), or a GroupMap (any representation; then
            `group_symmetrize`: mode "cent" = group average, "copy"/"l2r" = representatives copied).
        mode: "l2r" (left side kept, right = mirror of left), "r2l", "cent" (average of each
            vertex and its mirrored counterpart), or a list of such modes, one per slice.
    Returns:
        (..., V, 3) symmetric positions; plane vertices are projected onto the plane.
    """
    if isinstance(smap, GroupMap):
        return group_symmetrize(verts, smap, mode)
    if verts.shape[-2:] != (smap.n_verts, 3):
        raise ValueError(f"symmetrize: verts must be (..., {smap.n_verts}, 3), got {tuple(verts.shape)}")
    n, p = smap.normal.to(verts), smap.point.to(verts)
    mirrored = reflect(verts[..., smap.mirror, :], n, p)
    cent = (verts + mirrored) / 2
    side = smap.side.to(verts.device)
    codes = _mode_codes(smap, mode).to(verts.device)
    keep = ((codes == 0) & (side > 0)) | ((codes == 1) & (side < 0))
    copy = ((codes == 0) & (side < 0)) | ((codes == 1) & (side > 0))
    out = torch.where(keep[:, None], verts, cent)
    return torch.where(copy[:, None], mirrored, out)


def expand(half: torch.Tensor, smap: SymmetryMap | GroupMap) -> torch.Tensor:
    """Independent vertices -> the full exactly-symmetric mesh (differentiable).

    Args:
        half: (..., K, 3) positions of `smap.independent` (left side and plane vertices).
        smap: a SymmetryMap, or a GroupMap (then `group_expand`).
    Returns:
        (..., V, 3): left vertices as given, right vertices mirrored from their counterparts, plane
        vertices projected onto the plane (x = 0 for the default plane).
    """
    if isinstance(smap, GroupMap):
        return group_expand(half, smap)
    K = len(smap.independent)
    if half.shape[-2:] != (K, 3):
        raise ValueError(f"expand: half must be (..., {K}, 3), got {tuple(half.shape)}")
    pos = torch.full((smap.n_verts,), -1, dtype=torch.long)
    pos[smap.independent] = torch.arange(K)
    src = torch.where(pos >= 0, pos, pos[smap.mirror]).to(half.device)
    full = half[..., src, :]
    n, p = smap.normal.to(half), smap.point.to(half)
    mirrored = reflect(full, n, p)
    side = smap.side.to(half.device)[:, None]
    return torch.where(side < 0, mirrored, torch.where(side == 0, (full + mirrored) / 2, full))


def n_free_params(smap: SymmetryMap | GroupMap, representation="reflection", order: int | None = None) -> int:
    """Number of free vertex coordinates of a template under a representation.

    * "none": 3 V.
    * "reflection": 3 per left vertex + 2 per plane vertex (x fixed to 0).
    * "two_planes" (planes x = 0 and z = 0) and "rotation" with `order` n >= 2 about y: the number
      of free scalars of `group_expand`, sum over orbits of the dimension fixed by the
      representative's stabiliser: 3 per vertex orbit off the symmetry elements, 2 per orbit on one
      plane, 1 per vertex on the y axis. The template must be invariant (ValueError otherwise:
      use `templates.template_for(representation, n_verts, order)`).
    * "rotation" with order 0 (continuous): 2 (radius, height) per distinct (height, radius) ring
      + 1 per axis vertex (no finite group; the template needs no particular symmetry).

    Args:
        smap: a SymmetryMap (its `template` positions are used for the group counts) or a
            GroupMap (its own count `n_params` is returned; the other arguments are ignored).
        representation: a name or a `Representation` (its name and order are used).
    """
    if isinstance(smap, GroupMap):
        return smap.n_params
    if isinstance(representation, Representation):
        order = representation.order if order is None else order
        representation = representation.name
    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}; use {REPRESENTATIONS}")
    V = smap.n_verts
    if representation == "none":
        return 3 * V
    if representation == "reflection":
        return 3 * int((smap.side > 0).sum()) + 2 * int(smap.on_plane.sum())
    if smap.template is None:
        raise ValueError(f"n_free_params({representation!r}) needs the template positions in smap")
    if representation == "rotation" and order is None:
        raise ValueError("n_free_params('rotation') needs the rotation order (n >= 2, or 0 for continuous)")
    if representation == "two_planes" or order != 0:
        return group_map(smap.template, representation, order).n_params
    v = smap.template.double()
    eps = 1e-6 * float((v.amax(0) - v.amin(0)).norm())
    axis = (v[:, 0].abs() <= eps) & (v[:, 2].abs() <= eps)
    r = v[~axis][:, [0, 2]].norm(dim=1)
    key = torch.stack([v[~axis][:, 1], r], 1).div(eps * 10).round()
    return 2 * len(torch.unique(key, dim=0)) + int(axis.sum())


# ------------------------------------------------------------------------------------ representation


@dataclass
class Representation:
    """The symmetric representation a reconstruction network should use for a shape.

    Attributes:
        name: "none", "reflection", "two_planes" or "rotation".
        transform: (4, 4) float64 similarity mapping the input frame to the canonical frame
            (main reflection plane x = 0, rotation axis y, centred, unit bbox diagonal when the
            vertices were given): x_canonical = transform @ [x, 1].
        order: rotation order (n >= 2, 0 = continuous) for "rotation", 1 otherwise.
        symmetries: the symmetries the representation uses (main one first).
    """

    name: str
    transform: torch.Tensor
    order: int = 1
    symmetries: list[Symmetry] = field(default_factory=list)

    @property
    def R(self) -> torch.Tensor:  # noqa: N802 - rotation part (3, 3), scale removed
        A = self.transform[:3, :3]
        return A / torch.linalg.det(A).abs().pow(1 / 3)

    @property
    def scale(self) -> float:
        return float(torch.linalg.det(self.transform[:3, :3]).abs().pow(1 / 3))

    @property
    def t(self) -> torch.Tensor:
        return self.transform[:3, 3]

    def apply(self, verts: torch.Tensor) -> torch.Tensor:
        """Map points (..., 3) to the canonical frame."""
        T = self.transform.to(verts)
        return verts @ T[:3, :3].T + T[:3, 3]


def _reduction(sym_set: str, order: int) -> float:
    return {"none": 1, "reflection": 2, "two_planes": 4}.get(sym_set, math.inf if order == 0 else order)


def _perp(u: np.ndarray, hint: np.ndarray | None = None) -> np.ndarray:
    """A unit vector perpendicular to u (closest to hint if given)."""
    if hint is not None:
        w = hint - (hint @ u) * u
        if np.linalg.norm(w) > 1e-6:
            return w / np.linalg.norm(w)
    e = np.eye(3)[np.argmin(np.abs(u))]
    w = e - (e @ u) * u
    return w / np.linalg.norm(w)


def choose_representation(symmetries: list[Symmetry], verts: torch.Tensor | None = None) -> Representation:
    """Pick the representation with the fewest free parameters and the transform to canonical frame.

    Candidates: "rotation" (an n-fold rotation, n >= 2, or continuous: reduction by n), "two_planes"
    (two orthogonal reflection planes: reduction 4), "reflection" (one plane: 2), "none". Ties go
    to the planes. In the canonical frame the main plane's normal is x, a rotation axis is y, and
    for "two_planes" the second normal is z. Without verts the transform is a rotation plus a
    translation putting the plane/axis through the origin; with verts (V, 3), the remaining free
    directions are chosen by PCA (y = the in-plane direction of least spread, "up" for vehicles;
    its sign so that the third moment is positive), and the result is centred (bbox) and scaled to
    unit bbox diagonal.
    """
    refl = [s for s in symmetries if s.kind == "reflection"]
    rots = [s for s in symmetries if s.kind == "rotation" and (s.order >= 2 or s.order == 0)]
    options: list[tuple[float, int, str, list[Symmetry], int]] = [(1, 3, "none", [], 1)]
    if refl:
        options.append((2, 1, "reflection", [refl[0]], 1))
    pairs = [
        (a, b) for i, a in enumerate(refl) for b in refl[i + 1 :] if abs(float(a.normal @ b.normal)) < 0.035
    ]
    if pairs:
        a, b = min(pairs, key=lambda ab: max(ab[0].error, ab[1].error))
        options.append((4, 1, "two_planes", [a, b], 1))
    for r in rots:
        options.append((_reduction("rotation", r.order), 2, "rotation", [r], r.order))
    best = max(options, key=lambda o: (o[0], -o[1]))
    _, _, name, used, order = best

    pts = None if verts is None else torch.as_tensor(verts).detach().double().cpu().numpy()
    cov_dirs = None
    if pts is not None:
        c = pts - pts.mean(0)
        _, vecs = np.linalg.eigh(c.T @ c)
        cov_dirs = vecs.T[::-1]  # largest spread first
    R = np.eye(3)
    origin = np.zeros(3)
    if name in ("reflection", "two_planes"):
        ex = used[0].normal.double().numpy()
        origin = used[0].point.double().numpy()
        if name == "two_planes":
            ez = used[1].normal.double().numpy()
            ez = ez - (ez @ ex) * ex
            ez /= np.linalg.norm(ez)
            ey = np.cross(ez, ex)
            # origin: a point on both planes nearest to the first plane's point
            A = np.stack([ex, ez])
            b = np.array([ex @ used[0].point.double().numpy(), ez @ used[1].point.double().numpy()])
            origin = origin + np.linalg.lstsq(A, b - A @ origin, rcond=None)[0]
        else:
            hint = None
            if pts is not None:
                # in-plane PCA: y = the in-plane direction of least spread
                c = pts - pts.mean(0)
                P = np.eye(3) - np.outer(ex, ex)
                _, vecs = np.linalg.eigh(P @ (c.T @ c) @ P)
                inplane = [vecs[:, i] for i in range(3) if abs(vecs[:, i] @ ex) < 0.5]
                inplane.sort(key=lambda d: float(((c @ d) ** 2).sum()))
                hint = inplane[0] if inplane else None
            ey = _perp(ex, hint)
            ez = np.cross(ex, ey)
        R = np.stack([ex, ey, ez])
    elif name == "rotation":
        ey = used[0].normal.double().numpy()
        origin = used[0].point.double().numpy()
        planes = [s for s in refl if abs(float(s.normal.double().numpy() @ ey)) < 0.035]
        if planes:
            hint = planes[0].normal.double().numpy()
        else:
            hint = cov_dirs[0] if cov_dirs is not None else None
        ex = _perp(ey, hint)
        ez = np.cross(ex, ey)
        R = np.stack([ex, ey, ez])
    if pts is not None:
        q = (pts - origin) @ R.T
        if name != "rotation" and name != "none":
            # orient y so the third moment along y is positive (sign of "up" for asymmetric profiles)
            if ((q[:, 1] - q[:, 1].mean()) ** 3).sum() < 0:
                R[1] *= -1
                R[2] *= -1
                q = (pts - origin) @ R.T
        if name == "rotation" and ((q[:, 1] - q[:, 1].mean()) ** 3).sum() < 0:
            R[1] *= -1
            R[0] *= -1
            q = (pts - origin) @ R.T
        lo, hi = q.min(0), q.max(0)
        centre = (lo + hi) / 2
        # keep symmetric coordinates exactly on the symmetry elements
        if name in ("reflection", "two_planes"):
            centre[0] = 0.0
        if name == "two_planes" or name == "rotation":
            centre[2] = 0.0
        if name == "rotation":
            centre[0] = 0.0
        s = 1.0 / max(np.linalg.norm(hi - lo), 1e-12)
    else:
        centre, s = np.zeros(3), 1.0
    T = np.eye(4)
    T[:3, :3] = s * R
    T[:3, 3] = -s * (R @ origin + centre)
    return Representation(name, torch.as_tensor(T), order, used)


def canonicalize(verts: torch.Tensor, faces: torch.Tensor, tol: float = 0.02):
    """Detect symmetries and map the mesh to the canonical frame.

    Returns:
        verts (V, 3) float32 in the canonical frame, the Representation, the detected symmetries.
    """
    syms = detect_symmetries(verts, faces, tol=tol)
    rep = choose_representation(syms, verts)
    return rep.apply(torch.as_tensor(verts).double()).float(), rep, syms


# ------------------------------------------------------------------------------------- tables / plots


def parameter_table(n_verts: int = 642, orders=(2, 5, 8, 0)):
    """Free vertex coordinates of each representation on a sphere template of about `n_verts`.

    Each representation uses a template invariant under its group (`templates.template_for`):
    the geodesic sphere (mirror x = 0, 5-fold about y) for none, reflection and 5-fold; the geodesic
    sphere with the icosahedron's coordinate planes (x = 0, y = 0, z = 0) for two planes and
    2-fold; uv spheres with a meridian count divisible by n for the other orders (and the
    continuous rotation). Counts are `n_free_params`, i.e. those used by `expand`/`group_expand`.
    Returns a pandas DataFrame with columns representation, order, template, n_verts, n_params,
    ratio (to 3 n_verts).
    """
    import pandas as pd

    from .templates import template_family, template_for

    rows = [("none", 1), ("reflection", 1), ("two_planes", 1)] + [("rotation", n) for n in orders]
    out = []
    for name, order in rows:
        v, _ = template_for(name, n_verts, order=order)
        family = template_family(name, order)
        sm = symmetry_map(v)
        k = n_free_params(sm, name, order=order if name == "rotation" else None)
        out.append(dict(representation=name, order=order, template=family, n_verts=len(v), n_params=k,
                        ratio=k / (3 * len(v))))
    return pd.DataFrame(out)


def plot_symmetries(
    verts, faces, symmetries: list[Symmetry], ax=None, max_faces: int = 3000, title: str = ""
):
    """Draw a mesh (matplotlib 3D) with its reflection planes (translucent squares) and rotation
    axes (lines labelled with the order, "inf" for continuous). Returns the Axes."""
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    v = torch.as_tensor(verts).detach().double().cpu().numpy()
    f = torch.as_tensor(faces).cpu().numpy()
    if ax is None:
        ax = plt.figure(figsize=(4, 4)).add_subplot(projection="3d")
    if len(f) > max_faces:
        f = f[np.random.default_rng(0).choice(len(f), max_faces, replace=False)]
    mesh = Poly3DCollection(v[f], facecolor=(0.7, 0.7, 0.75, 0.35), edgecolor=(0.3, 0.3, 0.3, 0.15), lw=0.2)
    ax.add_collection3d(mesh)
    lo, hi = v.min(0), v.max(0)
    c, r = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(symmetries):
        n = s.normal.double().numpy()
        p = s.point.double().numpy()
        col = colours[i % len(colours)]
        if s.kind == "reflection":
            e1 = np.cross(n, np.eye(3)[np.argmin(np.abs(n))])
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(n, e1)
            q = p + (c - p) - ((c - p) @ n) * n
            corners = [q + r * 0.8 * (a * e1 + b * e2) for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
            ax.add_collection3d(Poly3DCollection([corners], facecolor=col, alpha=0.25, edgecolor=col))
        else:
            seg = np.stack([p - 1.1 * r * n, p + 1.1 * r * n])
            ax.plot(*seg.T, color=col, linewidth=2)
            ax.text(*(p + 1.15 * r * n), "inf" if s.order == 0 else str(s.order), color=col)
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_zlim(c[2] - r, c[2] + r)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def symmetry_table(symmetries: list[Symmetry]):
    """pandas DataFrame of symmetries: kind, order, normal, error."""
    import pandas as pd

    return pd.DataFrame(
        [
            dict(kind=s.kind, order=s.order, normal=s.normal.numpy().round(3).tolist(), error=s.error)
            for s in symmetries
        ],
        columns=["kind", "order", "normal", "error"],
    )
