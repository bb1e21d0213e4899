"""The representation a reconstruction network should use for a shape, and its canonical frame.

:func:`choose_representation` ranks the detected symmetries by how much each registered group
(``symnb.symmetry.groups``) divides the free parameters, and returns the transform that puts the
shape into the canonical frame (main plane x = 0, rotation axis y, centred, unit bbox diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .detect import Symmetry
from .groups import GROUPS


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


def _reduction(name: str, order: int) -> float:
    return GROUPS[name].reduction(order)


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
