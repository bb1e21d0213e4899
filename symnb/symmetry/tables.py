"""Tables and pictures of symmetries: parameter counts per representation, detected symmetries."""

from __future__ import annotations

import numpy as np
import torch

from .detect import Symmetry
from .groups import template_family, template_for
from .maps import n_free_params, symmetry_map


def parameter_table(n_verts: int = 642, orders=(2, 5, 8, 0)):
    """Free vertex coordinates of each representation on a sphere template of about `n_verts`.

    Each representation uses a template invariant under its group (`groups.template_for`):
    the geodesic sphere (mirror x = 0, 5-fold about y) for none, reflection and 5-fold; the geodesic
    sphere with the icosahedron's coordinate planes (x = 0, y = 0, z = 0) for two planes and
    2-fold; uv spheres with a meridian count divisible by n for the other orders (and the
    continuous rotation). Counts are `n_free_params`, i.e. those used by `expand`.
    Returns a pandas DataFrame with columns representation, order, template, n_verts, n_params,
    ratio (to 3 n_verts).
    """
    import pandas as pd

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
