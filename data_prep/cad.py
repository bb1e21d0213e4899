"""CAD cleanup: a Python replacement for the research's Blender script.

:func:`clean_cad` turns an arbitrary (possibly non-manifold, holey, duplicated) triangle mesh into a
watertight, consistently outward-oriented, exactly mirror-symmetric mesh in the canonical frame
(main reflection plane x = 0, y up, bounding box centred at the origin, unit bounding-box diagonal)
with about ``face_budget`` faces. Steps, each reported:

1. merge duplicate vertices, drop degenerate and duplicate faces;
2. fill small holes and orient faces consistently (VTK via PyVista);
3. detect the main reflection plane (``symnb.symmetry.detect_symmetries`` when available, else a
   PCA stand-in that tests the three principal planes) and rotate into the canonical frame;
4. watertight voxel remesh: unsigned distance to the surface -> shell -> morphological closing ->
   filled interior -> smoothed occupancy, mirror-averaged about x = 0 -> marching cubes;
5. quadric decimation to the face budget;
6. exact symmetrization: keep the x >= 0 half, mirror it, weld the plane vertices;
7. normalise (centre, unit diagonal).

Modules: this one holds the pipeline (:func:`clean_cad`, settings, report), the canonical-frame
steps and the command line; :mod:`data_prep.cad_mesh` the mesh checks and repair steps,
:mod:`data_prep.remesh` the voxel remesh, decimation and :func:`mirror_weld`. Their functions stay
importable from here.

Shapes: verts (V, 3) float64 numpy, faces (F, 3) int64 numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from symnb.config import Config

from .cad_mesh import (  # noqa: F401 - re-exported: data_prep.cad is the cleanup's public module
    Mesh,
    edge_counts,
    face_areas,
    fill_and_orient,
    is_watertight,
    merge_and_drop,
    normalize,
    sample_surface,
    signed_volume,
    surface_moments,
    symmetry_error,
)
from .remesh import decimate, mirror_weld, voxel_remesh  # noqa: F401 - re-exported


@dataclass
class CleanupSettings(Config):
    """Settings of :func:`clean_cad`."""

    resolution: int = 64
    """Voxels along the longest side of the bounding box for the watertight remesh."""
    face_budget: int = 1500
    """Target number of faces of the result (the mirrored result is within ~10%)."""
    closing: int = 1
    """Voxels of morphological closing (closes holes and gaps up to ~2x this size)."""
    smooth: float = 0.8
    """Gaussian smoothing (voxels) of the occupancy before marching cubes."""
    hole_size: float = 0.05
    """Largest hole filled before remeshing, relative to the bounding-box diagonal."""
    symmetrize: bool = True
    """Make the result exactly mirror-symmetric about x = 0."""
    seed: int = 0
    """Seed of the surface sampling used for distances and symmetry errors."""

    def validate(self) -> None:
        self._range("resolution", 8, 512)
        self._range("face_budget", 4)
        self._range("closing", 0)
        self._range("smooth", 0)
        self._range("hole_size", 0, 1)


@dataclass
class CleanupReport:
    """Before/after numbers of one :func:`clean_cad` call (symmetry errors relative to the diagonal)."""

    source: str = ""
    faces_before: int = 0
    faces_after: int = 0
    verts_before: int = 0
    verts_after: int = 0
    watertight_before: bool = False
    watertight_after: bool = False
    duplicate_verts_merged: int = 0
    degenerate_faces_dropped: int = 0
    symmetry_error_before: float = float("nan")
    symmetry_error_after: float = float("nan")
    plane_detector: str = ""
    rotation_axis_order: int = -1  # -1: none used; 0: continuous (surface of revolution); n: n-fold
    transform: list = field(default_factory=list)  # 4x4 similarity, source frame -> canonical frame
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- canonical frame


def symmetry_candidates(verts: np.ndarray, faces: np.ndarray, seed: int = 0) -> tuple[list, list, str]:
    """Candidate reflection planes [(normal (3,), point (3,), error)], rotation axes
    [(axis (3,), point (3,), order, error)] and the detector's name.

    Uses ``symnb.symmetry.detect_symmetries`` when that module provides it (order 0 = continuous
    rotation); otherwise tests the three principal planes through the area-weighted centroid and
    reports no axes.
    """
    try:
        from symnb.symmetry import detect_symmetries
    except ImportError:
        detect_symmetries = None
    if detect_symmetries is not None:
        import torch

        kwargs = {}
        try:  # coarser than the defaults: a few hundred faces need no 1000-direction scan (~1 s, not ~30 s)
            try:
                from symnb.symmetry import DetectSettings
            except ImportError:  # the layout before symnb.symmetry became a package
                from symnb.symmetry.detect import DetectSettings

            kwargs["settings"] = DetectSettings(n_samples=2000, n_scan=200, n_directions=300, n_refine=4,
                                                icp_iters=8, n_verify=3000, max_order=4, seed=seed)
        except ImportError:
            pass
        try:
            syms = detect_symmetries(torch.as_tensor(verts, dtype=torch.float32), torch.as_tensor(faces),
                                     tol=0.05, **kwargs)
            vec = lambda x: np.asarray(x, dtype=np.float64).reshape(3)
            planes = [(vec(s.normal), vec(s.point), float(s.error)) for s in syms if s.kind == "reflection"]
            axes = [(vec(s.normal), vec(s.point), int(s.order), float(s.error))
                    for s in syms if s.kind == "rotation"]
            if planes:
                return planes, axes, "symnb.symmetry"
        except Exception:  # noqa: BLE001 - fall back to the stand-in, the report says which ran
            pass
    c, cov = surface_moments(verts, faces)
    _, vecs = np.linalg.eigh(cov)
    return [(n, c, symmetry_error(verts, faces, n, c, seed=seed)) for n in vecs.T], [], "pca"


def plane_candidates(verts: np.ndarray, faces: np.ndarray, seed: int = 0) -> tuple[list[tuple], str]:
    """Candidate reflection planes [(normal (3,), point (3,), error)] and the detector's name."""
    planes, _, name = symmetry_candidates(verts, faces, seed)
    return planes, name


def detect_plane(verts: np.ndarray, faces: np.ndarray, seed: int = 0, up_hint=None, forward_hint=None,
                 tol: float = 0.01,
                 candidates: tuple[list, str] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Main reflection plane (normal (3,), point (3,)) and the detector's name.

    Among the planes whose symmetry error is below ``max(tol, 2 * best)``, the one most orthogonal
    to the up and forward hints wins (a car is nearly front-back symmetric too); without hints the
    most symmetric plane wins. ``candidates``: precomputed :func:`plane_candidates` output.
    """
    cands, name = candidates if candidates is not None else plane_candidates(verts, faces, seed)
    best = min(e for _, _, e in cands)
    good: list[tuple] = []
    for c in sorted(cands, key=lambda c: c[2]):  # near-duplicate planes: keep the most symmetric
        if c[2] <= max(tol, 2 * best) and all(abs(c[0] @ g[0]) < np.cos(np.radians(10)) for g in good):
            good.append(c)
    if up_hint is None and forward_hint is None:
        n, p, _ = min(good, key=lambda c: c[2])
        return n, p, name
    hints = [np.asarray(h, dtype=np.float64) / np.linalg.norm(h)
             for h in (up_hint, forward_hint) if h is not None]
    n, p, _ = min(good, key=lambda c: (sum(abs(c[0] @ h) for h in hints) / np.linalg.norm(c[0]), c[2]))
    return n, p, name


def canonical_rotation(normal: np.ndarray, up_hint, forward_hint) -> np.ndarray:
    """Rotation (3, 3) mapping ``normal`` to +-x, ``up_hint`` (projected onto the plane) to +y and
    the hinted front to +z (the sign of x follows; the result is a proper rotation)."""
    n = normal / np.linalg.norm(normal)
    up = np.asarray(up_hint, dtype=np.float64)
    y = up - (up @ n) * n
    if np.linalg.norm(y) < 1e-6:
        raise ValueError("up hint is parallel to the symmetry-plane normal")
    y /= np.linalg.norm(y)
    z = np.cross(n, y)
    if z @ np.asarray(forward_hint, dtype=np.float64) < 0:
        z = -z
    x = np.cross(y, z)
    return np.stack([x, y, z])


def extrinsic_to_canonical(extrinsic, transform) -> np.ndarray:
    """World-to-camera extrinsic (4, 4) for the canonical frame of a cleaned CAD model.

    Args:
        extrinsic: (4, 4) or (3, 4) [R | t] mapping the *source* CAD frame to the camera.
        transform: (4, 4) similarity ``CleanupReport.transform`` (source -> canonical), scale s.

    Returns:
        (4, 4) rigid [R R_T^T | s t - R R_T^T t_T]: ``K [R' | t'] T X`` is the pixel of ``K [R | t] X``
        for every source point X (the camera's depth scales by s, the projection is unchanged).
    """
    E = np.asarray(extrinsic, dtype=np.float64)
    T = np.asarray(transform, dtype=np.float64)
    s = np.cbrt(np.linalg.det(T[:3, :3]))
    Rt, tt = T[:3, :3] / s, T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = E[:3, :3] @ Rt.T
    out[:3, 3] = s * E[:3, 3] - out[:3, :3] @ tt
    return out


def _check_hints(name: str, up_hint, forward_hint) -> None:
    """Up and forward hints: 3 finite numbers each, non-zero, not parallel."""
    vecs = []
    for label, hint in (("up", up_hint), ("forward", forward_hint)):
        h = np.asarray(hint, dtype=np.float64).reshape(-1)
        if h.shape != (3,) or not np.isfinite(h).all() or np.linalg.norm(h) < 1e-12:
            raise ValueError(f"{name}: the {label} direction must be 3 finite numbers, not all zero; got "
                             f"{h.tolist()}")
        vecs.append(h / np.linalg.norm(h))
    if abs(vecs[0] @ vecs[1]) > 0.99:
        raise ValueError(f"{name}: the up {np.asarray(up_hint).tolist()} and forward "
                         f"{np.asarray(forward_hint).tolist()} directions are parallel")


def clean_cad(verts, faces, settings: CleanupSettings | None = None, up_hint=(0.0, 1.0, 0.0),
              forward_hint=(0.0, 0.0, 1.0), canonical: bool = False,
              source: str = "") -> tuple[Mesh, CleanupReport]:
    """Clean a CAD mesh into the canonical frame (see the module docstring).

    Args:
        verts: (V, 3) float; faces: (F, 3) int (any frame, any scale).
        settings: :class:`CleanupSettings`.
        up_hint, forward_hint: source-frame directions that become +y and +z.
        canonical: the source is already oriented (plane x = 0, y up); only centring is done
            (no plane detection), so procedural shapes keep their exact frame.
        source: name recorded in the report.

    Returns:
        ((verts (V', 3), faces (F', 3)), report).
    """
    s = settings or CleanupSettings()
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"{source or 'mesh'}: expected verts (V, 3) and faces (F, 3), "
                         f"got {v.shape}, {f.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{source or 'mesh'}: vertex coordinates contain NaN or inf")
    name = source or "mesh"
    if len(v) == 0 or f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"{name}: face index out of range [0, {len(v)})")
    if not canonical:
        _check_hints(name, up_hint, forward_hint)
    rep = CleanupReport(source=source, faces_before=len(f), verts_before=len(v),
                        watertight_before=is_watertight(f))
    (v, f), rep.duplicate_verts_merged, rep.degenerate_faces_dropped = merge_and_drop(v, f)
    rep.steps.append("merge_and_drop")
    if len(f) == 0:
        raise ValueError(f"{name}: every face is degenerate (zero area or repeated vertices)")
    v, f = fill_and_orient(v, f, s.hole_size)
    rep.steps.append("fill_and_orient")
    c1, d1 = (v.max(0) + v.min(0)) / 2, np.linalg.norm(v.max(0) - v.min(0))
    v = normalize(v)
    if canonical:
        rep.plane_detector = "given"
        normal, point = np.array([1.0, 0.0, 0.0]), np.zeros(3)
        R = np.eye(3)
    else:
        planes, axes, detector = symmetry_candidates(v, f, seed=s.seed)
        up = np.asarray(up_hint, dtype=np.float64) / np.linalg.norm(up_hint)
        # a rotation axis near the hinted up becomes y exactly (canonical frame: rotation axis = y)
        near = [a for a in axes if abs(a[0] @ up) > np.cos(np.radians(45)) and a[3] <= 0.02]
        if near:
            axis = min(near, key=lambda a: a[3])[0]
            up = axis * np.sign(axis @ up)
            rep.rotation_axis_order = min(near, key=lambda a: a[3])[2]
            planes = [(n - (n @ up) * up, p, e) for n, p, e in planes if abs(n @ up) < 0.2]
            planes = [(n / np.linalg.norm(n), p, e) for n, p, e in planes] or [
                (np.cross(up, [0.0, 0.0, 1.0]) if abs(up[2]) < 0.9 else np.cross(up, [1.0, 0.0, 0.0]),
                 axes[0][1], 0.0)]
        normal, point, rep.plane_detector = detect_plane(v, f, up_hint=up, forward_hint=forward_hint,
                                                         candidates=(planes, detector))
        R = canonical_rotation(normal, up, forward_hint)
    v = (v - point) @ R.T
    rep.steps.append("canonical_frame")
    rep.symmetry_error_before = symmetry_error(v, f, seed=s.seed)
    try:
        v, f = voxel_remesh(v, f, s.resolution, s.closing, s.smooth, mirror=s.symmetrize, seed=s.seed)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from err
    rep.steps.append("voxel_remesh")
    target = s.face_budget
    for _ in range(4):  # the cut at x = 0 adds faces: shrink the decimation target until in budget
        dv, df = decimate(v, f, target)
        if s.symmetrize:
            dv, df = mirror_weld(dv, df)
        if len(df) <= 1.1 * s.face_budget:
            break
        target = int(target * s.face_budget / len(df) * 0.97)
    v, f = dv, df
    rep.steps += ["decimate", "mirror_weld"] if s.symmetrize else ["decimate"]
    c2, d2 = (v.max(0) + v.min(0)) / 2, np.linalg.norm(v.max(0) - v.min(0))
    v = normalize(v)
    T = np.eye(4)  # source -> canonical: X' = R (X - c1) / (d1 d2) - (R point + c2) / d2
    T[:3, :3] = R / (d1 * d2)
    T[:3, 3] = -R @ c1 / (d1 * d2) - (R @ point + c2) / d2
    rep.transform = T.tolist()
    if signed_volume(v, f) < 0:
        f = f[:, ::-1].copy()
    rep.faces_after, rep.verts_after = len(f), len(v)
    rep.watertight_after = is_watertight(f)
    rep.symmetry_error_after = symmetry_error(v, f, seed=s.seed)
    return (v, f), rep


def main(argv: list[str] | None = None) -> CleanupReport:
    """``python -m data_prep.cad IN OUT [--up X Y Z] [--forward X Y Z] [--face-budget N] ...``"""
    import argparse
    import json

    from symnb.cli_errors import add_debug_flag
    from symnb.io import check_writable, load_mesh, save_mesh

    ap = argparse.ArgumentParser(description="Clean a CAD mesh into the canonical frame (watertight, "
                                             "exactly mirror-symmetric about x = 0, y up, unit diagonal).")
    ap.add_argument("input", help=".off / .obj / .ply")
    ap.add_argument("output", help=".off / .obj / .ply (written atomically)")
    ap.add_argument("--up", type=float, nargs=3, default=(0.0, 1.0, 0.0), help="source direction that is up")
    ap.add_argument("--forward", type=float, nargs=3, default=(0.0, 0.0, 1.0), help="source front direction")
    ap.add_argument("--face-budget", type=int, default=CleanupSettings.face_budget)
    ap.add_argument("--resolution", type=int, default=CleanupSettings.resolution)
    ap.add_argument("--canonical", action="store_true", help="source already has plane x = 0 and y up")
    ap.add_argument("--report", default=None, help="write the report as JSON here")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing OUTPUT that symnb did not write")
    add_debug_flag(ap)
    a = ap.parse_args(argv)
    check_writable(a.output, overwrite=a.overwrite)  # before the remesh, not after it
    settings = CleanupSettings(resolution=a.resolution, face_budget=a.face_budget)
    v, f = load_mesh(a.input)
    (cv, cf), rep = clean_cad(v.double().numpy(), f.numpy(), settings, up_hint=a.up, forward_hint=a.forward,
                              canonical=a.canonical, source=a.input)
    save_mesh(a.output, cv, cf, precision=7, overwrite=a.overwrite)
    if a.report:
        from symnb.utils import save_json

        save_json(rep.as_dict(), a.report)
    print(json.dumps({k: val for k, val in rep.as_dict().items() if k != "transform"}, indent=1))
    return rep


if __name__ == "__main__":
    import sys

    from symnb.cli_errors import run_main

    sys.exit(run_main(main))
