"""CAD sources: PyVista's real aeroplane mesh and procedural categories with per-instance variation.

Every procedural shape is built in the canonical orientation (x = left-right, the main reflection
plane being x = 0; y up; z forward, i.e. the nose / front of the object points to +z) from
overlapping closed primitives. The parts are *not* boolean-merged: :func:`data_prep.cad.clean_cad`
voxel-remeshes them into one watertight surface, exactly as it does for messy real CAD files.

Shapes: each builder returns ``(verts (V, 3) float64, faces (F, 3) int64)`` numpy arrays.

Symmetries: aeroplane and car have one reflection plane (x = 0); diningtable has two (x = 0 and
z = 0); bottle is a surface of revolution about y (rotation axis y, every plane through it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyvista as pv

Mesh = tuple[np.ndarray, np.ndarray]


def _tri(poly: pv.PolyData) -> Mesh:
    poly = poly.triangulate()
    return np.asarray(poly.points, dtype=np.float64), np.asarray(poly.faces).reshape(-1, 4)[:, 1:]


def merge(parts: list[Mesh]) -> Mesh:
    """Concatenate meshes (no boolean union; overlapping parts stay overlapping)."""
    verts, faces, off = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + off)
        off += len(v)
    return np.concatenate(verts), np.concatenate(faces).astype(np.int64)


def box(x0, x1, y0, y1, z0, z1, level: int = 0) -> Mesh:
    """Axis-aligned closed box, faces subdivided ``level`` times (so it can be bent afterwards)."""
    return _tri(pv.Box(bounds=(x0, x1, y0, y1, z0, z1), level=level, quads=True).clean())


def ellipsoid(rx: float, ry: float, rz: float, center=(0.0, 0.0, 0.0), res: int = 24) -> Mesh:
    """Closed ellipsoid with radii (rx, ry, rz)."""
    t = np.linspace(0, np.pi, res)
    v, f = revolve(np.stack([np.sin(t), -np.cos(t)], 1), n_theta=res)
    return v * np.array([rx, ry, rz]) + np.asarray(center), f


def cylinder(center, direction, radius: float, height: float, res: int = 24) -> Mesh:
    """Capped cylinder."""
    return _tri(pv.Cylinder(center=center, direction=direction, radius=radius, height=height,
                            resolution=res, capping=True).clean())


def revolve(profile: np.ndarray, n_theta: int = 32) -> Mesh:
    """Closed surface of revolution about the y axis.

    Args:
        profile: (P, 2) (radius, y) from bottom to top; the first and last radii should be 0
            (poles); intermediate radii > 0.
        n_theta: angular samples (even, so that the plane x = 0 maps vertices onto vertices).

    Returns:
        verts (V, 3), faces (F, 3) with outward orientation.
    """
    r, y = profile[:, 0], profile[:, 1]
    ring = r[1:-1]
    theta = 2 * np.pi * np.arange(n_theta) / n_theta
    rv = np.stack(
        [ring[:, None] * np.sin(theta)[None], np.broadcast_to(y[1:-1, None], (len(ring), n_theta)),
         ring[:, None] * np.cos(theta)[None]], -1
    ).reshape(-1, 3)
    verts = np.concatenate([[[0, y[0], 0]], rv, [[0, y[-1], 0]]])
    top = len(verts) - 1
    faces = []
    j = np.arange(n_theta)
    k = (j + 1) % n_theta
    faces.append(np.stack([np.zeros(n_theta, int), 1 + k, 1 + j], 1))
    for i in range(len(ring) - 1):
        a, b = 1 + i * n_theta, 1 + (i + 1) * n_theta
        faces.append(np.stack([a + j, a + k, b + k], 1))
        faces.append(np.stack([a + j, b + k, b + j], 1))
    last = 1 + (len(ring) - 1) * n_theta
    faces.append(np.stack([np.full(n_theta, top), last + j, last + k], 1))
    return verts.astype(np.float64), np.concatenate(faces).astype(np.int64)


def aeroplane(rng: np.random.Generator) -> Mesh:
    """Fuselage, swept and tapered wings, tail fin and stabilisers; optional engines."""
    L = rng.uniform(0.9, 1.2)
    r = rng.uniform(0.045, 0.07)
    span = rng.uniform(0.8, 1.2)
    chord = rng.uniform(0.14, 0.22)
    sweep = rng.uniform(0.0, 0.5)
    wing_z = rng.uniform(-0.05, 0.1)
    wing_y = rng.uniform(-0.6, 0.3) * r
    th = 0.025
    parts = [ellipsoid(r, r * rng.uniform(1.0, 1.2), L / 2)]
    wing = box(-span / 2, span / 2, wing_y - th / 2, wing_y + th / 2,
               wing_z - chord / 2, wing_z + chord / 2, 3)
    v = wing[0].copy()
    taper = 1 - rng.uniform(0.2, 0.6) * np.abs(v[:, 0]) / (span / 2)
    v[:, 2] = wing_z + (v[:, 2] - wing_z) * taper - sweep * np.abs(v[:, 0])
    v[:, 1] += rng.uniform(0.0, 0.12) * np.abs(v[:, 0])  # dihedral
    parts.append((v, wing[1]))
    tail_z = -L / 2 + 0.08
    fin_h = rng.uniform(0.12, 0.22)
    fin = box(-th / 2, th / 2, 0, fin_h, tail_z - 0.06, tail_z + 0.06, 2)
    v = fin[0].copy()
    v[:, 2] -= 0.4 * v[:, 1]
    parts.append((v, fin[1]))
    stab_span = span * rng.uniform(0.3, 0.45)
    stab_y = rng.choice([0.0, fin_h * 0.9])
    parts.append(box(-stab_span / 2, stab_span / 2, stab_y - th / 2, stab_y + th / 2,
                     tail_z - 0.05 - 0.4 * stab_y, tail_z + 0.04 - 0.4 * stab_y))
    if rng.random() < 0.6:
        ex = span * rng.uniform(0.15, 0.3)
        for s in (-1, 1):
            parts.append(cylinder((s * ex, wing_y - 0.05, wing_z + 0.05 - sweep * ex), (0, 0, 1),
                                  0.035, 0.16, res=16))
    return merge(parts)


def car(rng: np.random.Generator) -> Mesh:
    """Body, tapered cabin and four wheels."""
    W = rng.uniform(0.36, 0.46)
    L = rng.uniform(0.9, 1.15)
    wheel_r = rng.uniform(0.08, 0.1)
    body_y0 = wheel_r * 0.6
    body_h = rng.uniform(0.14, 0.2)
    parts = [box(-W / 2, W / 2, body_y0, body_y0 + body_h, -L / 2, L / 2, 2)]
    cab_l = L * rng.uniform(0.4, 0.65)
    cab_z = rng.uniform(-0.12, 0.05) * L
    cab_h = rng.uniform(0.1, 0.17)
    cab = box(-W / 2 * 0.92, W / 2 * 0.92, body_y0 + body_h - 0.01, body_y0 + body_h + cab_h,
              cab_z - cab_l / 2, cab_z + cab_l / 2, 2)
    v = cab[0].copy()
    top = (v[:, 1] - v[:, 1].min()) / cab_h
    v[:, 2] = cab_z + (v[:, 2] - cab_z) * (1 - rng.uniform(0.2, 0.45) * top)
    v[:, 0] *= 1 - 0.12 * top
    parts.append((v, cab[1]))
    wb = L * rng.uniform(0.3, 0.36)
    for sz in (-1, 1):
        for sx in (-1, 1):
            parts.append(cylinder((sx * (W / 2 - 0.03), wheel_r, sz * wb), (1, 0, 0), wheel_r, 0.08, res=20))
    return merge(parts)


def bottle(rng: np.random.Generator) -> Mesh:
    """Surface of revolution about y: body, rounded shoulder, neck and lip."""
    H = rng.uniform(0.8, 1.0)
    R = rng.uniform(0.12, 0.2)
    neck = R * rng.uniform(0.3, 0.5)
    body = H * rng.uniform(0.45, 0.62)
    shoulder = H * rng.uniform(0.12, 0.22)
    t = np.linspace(0, np.pi / 2, 6)
    prof = [(0, 0), (R * 0.9, 0), (R, 0.03)]
    prof += [(R, body)]
    prof += [(neck + (R - neck) * np.cos(a), body + shoulder * np.sin(a)) for a in t[1:]]
    prof += [(neck, H - 0.04), (neck * 1.2, H - 0.03), (neck * 1.2, H), (0, H)]
    return revolve(np.asarray(prof, dtype=np.float64), n_theta=32)


def diningtable(rng: np.random.Generator) -> Mesh:
    """Rectangular top and four legs: two reflection planes (x = 0 and z = 0)."""
    W = rng.uniform(0.8, 1.2)
    D = W * rng.uniform(0.5, 0.8)
    H = rng.uniform(0.5, 0.7)
    th = rng.uniform(0.03, 0.06)
    leg = rng.uniform(0.04, 0.07)
    inset = rng.uniform(0.02, 0.1)
    parts = [box(-W / 2, W / 2, H - th, H, -D / 2, D / 2)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            cx, cz = sx * (W / 2 - inset - leg / 2), sz * (D / 2 - inset - leg / 2)
            parts.append(box(cx - leg / 2, cx + leg / 2, 0, H - th / 2, cz - leg / 2, cz + leg / 2))
    return merge(parts)


def real_aeroplane() -> Mesh:
    """PyVista's bundled aeroplane (a real CAD mesh: non-watertight, z up, arbitrary frame)."""
    from pyvista import examples

    return _tri(examples.load_airplane())


@dataclass(frozen=True)
class Source:
    """One CAD model to prepare.

    Attributes:
        name: human-readable origin ("pyvista:airplane", "procedural:car#3", ...).
        build: () -> (verts, faces) in the source's own frame.
        up_hint: direction of "up" in the source frame (becomes +y).
        forward_hint: direction of the object's front in the source frame (becomes +z).
        canonical: True when the source is already in the canonical orientation.
    """

    name: str
    build: Callable[[], Mesh]
    up_hint: tuple[float, float, float] = (0.0, 1.0, 0.0)
    forward_hint: tuple[float, float, float] = (0.0, 0.0, 1.0)
    canonical: bool = True


PROCEDURAL = {"aeroplane": aeroplane, "car": car, "bottle": bottle, "diningtable": diningtable}
SUPPORTED_CLASSES = tuple(PROCEDURAL)


def sources(class_name: str, n: int, seed: int = 0) -> list[Source]:
    """``n`` CAD sources for a class (aeroplane: PyVista's real mesh first, then procedural variants).

    Deterministic for (class_name, n, seed).
    """
    if class_name not in PROCEDURAL:
        raise ValueError(f"no CAD source for class {class_name!r}; supported: {', '.join(SUPPORTED_CLASSES)}")
    if n < 1:
        raise ValueError(f"need at least one CAD model per class, got n={n}")
    out: list[Source] = []
    if class_name == "aeroplane":
        # found by inspection: z is up, the fuselage runs along -y (nose at small y)
        out.append(Source("pyvista:airplane", real_aeroplane, up_hint=(0, 0, 1), forward_hint=(0, -1, 0),
                          canonical=False))
    ss = np.random.SeedSequence([seed, SUPPORTED_CLASSES.index(class_name)])
    for i, child in enumerate(ss.spawn(n - len(out))):
        fn = PROCEDURAL[class_name]
        out.append(Source(f"procedural:{class_name}#{i}",
                          lambda fn=fn, c=child: fn(np.random.default_rng(c))))
    return out
