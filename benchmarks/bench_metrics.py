"""Speed of the exact point-to-surface queries behind the evaluation's surface distances and symmetry
errors (prints side-by-side ratios).

    .venv/bin/python benchmarks/bench_metrics.py [--repeats 3]

Compares :class:`symnb.geometry.TriangleIndex` (bounding-sphere and plane bounds) with the same index
pruned by the bounding spheres alone (its previous form) and with PyTorch3D's brute-force
``point_face_distance`` kernel (float32, distances only), on the meshes the evaluation meets: a
smooth sphere and a folded one (overlapping faces, as the trained networks predict), for points on
the surface (the symmetry error's queries) and around it.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from bench_symmetry import timed  # the benchmarks' folder is on the path when a script runs
from pytorch3d import _C

from symnb.geometry import TriangleIndex, sample_surface
from symnb.symmetry.templates import sphere_template


class SphereBoundIndex(TriangleIndex):
    """The index pruned by the faces' bounding spheres only."""

    def candidates(self, p: np.ndarray, ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = np.maximum((p**2).sum(1)[:, None] + (self.cen**2).sum(1)[None] - 2 * p @ self.cen.T, 0)
        return np.nonzero(np.sqrt(d2) - self.rad[None] <= ub[:, None] * (1 + 1e-9) + 1e-9)


def pytorch3d_distances(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    tris = verts[faces].float()
    first = torch.zeros(1, dtype=torch.long)
    d2, _ = _C.point_face_dist_forward(points.float(), first, tris, first, len(points), 1e-12)
    return d2.double().sqrt()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"load average: {os.getloadavg()[0]:.2f}")
    g = torch.Generator().manual_seed(0)
    v, f = sphere_template(1280)
    v = v.double() * 0.3
    folded = v + 0.06 * torch.randn(v.shape, generator=g, dtype=torch.float64)
    print(f"{'mesh, points':<34}{'ours s':>9}{'spheres only s':>16}{'ratio':>7}"
          f"{'PyTorch3D s':>13}{'ratio':>7}")
    for name, verts in (("sphere", v), ("folded sphere", folded)):
        on, _ = sample_surface(verts, f, 1024, seed=1)
        around = on + 0.05 * torch.randn(on.shape, generator=g, dtype=torch.float64)
        for where, p in (("on the surface", on), ("around it", around)):
            ours, (d, _, _) = timed(lambda: TriangleIndex(verts, f).closest(p), args.repeats)  # noqa: B023
            spheres, (d_ref, _, _) = timed(lambda: SphereBoundIndex(verts, f).closest(p), args.repeats)  # noqa: B023
            p3d, d_p3d = timed(lambda: pytorch3d_distances(p, verts, f), args.repeats)  # noqa: B023
            assert torch.equal(d, d_ref) and torch.allclose(d, d_p3d, atol=1e-5)
            print(f"{name + ', ' + where:<34}{ours:>9.3f}{spheres:>16.3f}{spheres / ours:>6.1f}x"
                  f"{p3d:>13.3f}{p3d / ours:>6.1f}x")
    print(f"({len(f)} faces, {len(on)} points; ratio = the other's time / ours; distances agree: exactly "
          "with the sphere-bound index, to 1e-5 with PyTorch3D's float32)")


if __name__ == "__main__":
    main()
