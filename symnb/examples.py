"""Example meshes with known symmetries and their truth table, for tests, notebooks and benchmarks.

:func:`example_mesh` builds them (PyVista's CAD aeroplane and octagonal nut, an unevenly tessellated
box, a vase and an open tube of revolution, a random asymmetric blob), :data:`EXAMPLE_TRUTH` lists
the symmetries detection must find in their own frame, and :func:`random_pose` moves a mesh into an
arbitrary similarity pose.

Shapes: verts (V, 3) float32, faces (F, 3) long.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .geometry import from_pyvista, remove_unused

__all__ = ["EXAMPLES", "EXAMPLE_TRUTH", "example_mesh", "random_pose"]

EXAMPLES = ("airplane", "nut", "box", "vase", "open_cylinder", "blob")


def example_mesh(name: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Test meshes with known symmetries, (verts (V, 3) float32, faces (F, 3) long).

    * "airplane": PyVista's CAD aeroplane (one reflection plane, normal x).
    * "nut": PyVista's nut.ply, an octagonal nut (8-fold rotation about y, 9 planes).
    * "box": a 2 x 1.2 x 0.6 box, unevenly tessellated (planes x, y, z; 2-fold axes x, y, z).
    * "vase": a closed surface of revolution about y (64 meridians).
    * "open_cylinder": an open tube about y (no caps; continuous rotation, non-watertight).
    * "blob": a smooth random asymmetric blob (no symmetry), from `seed`.
    """
    import pyvista as pv
    from pyvista import examples

    from .symmetry.templates import sphere_template, uv_sphere

    if name == "airplane":
        return from_pyvista(examples.load_airplane())
    if name == "nut":
        return from_pyvista(pv.read(os.path.join(os.path.dirname(examples.__file__), "nut.ply")))
    if name == "box":
        # uneven tessellation: a finer grid on the +x half than on the -x half
        left = pv.Box(bounds=(0, 1, -0.6, 0.6, -0.3, 0.3), level=4)
        right = pv.Box(bounds=(-1, 0, -0.6, 0.6, -0.3, 0.3), level=1)
        v1, f1 = from_pyvista(left)
        v2, f2 = from_pyvista(right)
        # drop the two inner walls at x = 0 so the union is the box surface
        keep1 = ~(v1[f1][:, :, 0].abs() < 1e-6).all(1)
        keep2 = ~(v2[f2][:, :, 0].abs() < 1e-6).all(1)
        return remove_unused(torch.cat([v1, v2]), torch.cat([f1[keep1], f2[keep2] + len(v1)]))
    if name in ("vase", "open_cylinder"):
        v, f = uv_sphere(24, 64)
        y = v[:, 1].clone()
        if name == "vase":
            r = 0.45 + 0.2 * torch.sin(2.5 * y + 0.5) + 0.05 * y
            return torch.stack([v[:, 0] * r, y, v[:, 2] * r], 1), f
        # keep only the ring vertices' side faces: tube of radius 0.5, height 1.2
        ring = (v[:, 1].abs() < 0.999)
        keep = ring[f].all(1)
        v = torch.stack([0.5 * v[:, 0] / v[:, [0, 2]].norm(dim=1).clamp_min(1e-9), 0.6 * y, 0.5 * v[:, 2]
                         / v[:, [0, 2]].norm(dim=1).clamp_min(1e-9)], 1)
        return remove_unused(v, f[keep])
    if name == "blob":
        v, f = sphere_template(642)
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(6, 3, generator=g) * 2.0
        ph = torch.rand(6, generator=g) * 6.28
        a = torch.rand(6, generator=g) * 0.15 + 0.05
        r = 1 + (a * torch.sin(v @ w.T + ph)).sum(1)
        v = v * r[:, None] * torch.tensor([1.0, 0.8, 0.6])
        return v, f
    raise ValueError(f"unknown example mesh {name!r}; choose from {EXAMPLES}")


def random_pose(verts: torch.Tensor, seed: int = 0, scale_range=(0.2, 5.0)):
    """Apply a random rotation, translation and scale: returns (verts', R (3, 3), t (3,), s).

    verts' = s * verts @ R.T + t, all float64.
    """
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    R = torch.as_tensor(Rotation.random(random_state=rng).as_matrix())
    s = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    t = torch.as_tensor(rng.normal(size=3) * 3.0)
    return s * torch.as_tensor(verts).double() @ R.T + t, R, t, s


#: Known symmetries of the example meshes in their own frame: the representation, the rotation
#: order (1 if none), and the reference directions (plane normals / main axis) detection must find.
EXAMPLE_TRUTH = {
    "airplane": dict(representation="reflection", order=1, planes=[(1.0, 0.0, 0.0)], axis=None),
    "nut": dict(representation="rotation", order=8, planes=[(0.0, 1.0, 0.0)], axis=(0.0, 1.0, 0.0)),
    "box": dict(
        representation="two_planes", order=1, planes=[(1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)], axis=None
    ),
    "vase": dict(representation="rotation", order=0, planes=[], axis=(0.0, 1.0, 0.0)),
    "open_cylinder": dict(representation="rotation", order=0, planes=[], axis=(0.0, 1.0, 0.0)),
    "blob": dict(representation="none", order=1, planes=[], axis=None),
}
