"""Triangle-mesh files: read and write .off, .obj and .ply with clear errors.

Shapes: ``verts`` (V, 3) float32, ``faces`` (F, 3) int64 (0-based vertex indices). Polygons with
more than three corners are fan-triangulated on reading. Writes are atomic
(:func:`symnb.utils.atomic_write`): a crash never leaves a half-written mesh file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .utils import atomic_write

MESH_SUFFIXES = (".off", ".obj", ".ply")


class MeshFormatError(ValueError):
    """A mesh file that exists but cannot be parsed (the message names the file)."""


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _fan(polys: list[list[int]]) -> list[list[int]]:
    tris = []
    for p in polys:
        tris.extend([p[0], p[i], p[i + 1]] for i in range(1, len(p) - 1))
    return tris


def _finish(path: Path, verts: list | np.ndarray, faces: list | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.array(verts, dtype=np.float32).reshape(-1, 3)  # a writable copy
    f = np.array(faces, dtype=np.int64).reshape(-1, 3)
    if len(v) == 0 or len(f) == 0:
        raise MeshFormatError(f"{path}: mesh has no vertices or no faces")
    if not np.isfinite(v).all():
        raise MeshFormatError(f"{path}: vertex coordinates contain NaN or inf")
    if f.min() < 0 or f.max() >= len(v):
        raise MeshFormatError(f"{path}: face index out of range [0, {len(v)})")
    return v, f


def _read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    tokens_lines = [ln.split("#")[0].split() for ln in path.read_text(errors="replace").splitlines()]
    lines = [t for t in tokens_lines if t]
    if not lines or not lines[0][0].endswith("OFF"):
        raise MeshFormatError(f"{path}: missing OFF header")
    head, rest = lines[0][1:], lines[1:]
    if not head:
        if not rest:
            raise MeshFormatError(f"{path}: OFF file has no counts line")
        head, rest = rest[0], rest[1:]
    try:
        nv, nf = int(head[0]), int(head[1])
        verts = [[float(x) for x in ln[:3]] for ln in rest[:nv]]
        polys = []
        for ln in rest[nv : nv + nf]:
            n = int(ln[0])
            polys.append([int(i) for i in ln[1 : 1 + n]])
    except (ValueError, IndexError) as err:
        raise MeshFormatError(f"{path}: corrupt OFF file ({err})") from err
    if len(verts) != nv or len(polys) != nf or any(len(v) != 3 for v in verts):
        raise MeshFormatError(f"{path}: OFF file truncated (expected {nv} vertices and {nf} faces)")
    return _finish(path, verts, _fan(polys))


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    verts, polys = [], []
    try:
        for ln in path.read_text(errors="replace").splitlines():
            t = ln.split()
            if not t:
                continue
            if t[0] == "v":
                verts.append([float(x) for x in t[1:4]])
            elif t[0] == "f":
                idx = [int(s.split("/")[0]) for s in t[1:]]
                polys.append([i - 1 if i > 0 else len(verts) + i for i in idx])
    except ValueError as err:
        raise MeshFormatError(f"{path}: corrupt OBJ file ({err})") from err
    return _finish(path, verts, _fan(polys))


def _read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyvista as pv

    try:
        mesh = pv.read(str(path))
    except Exception as err:  # noqa: BLE001 - VTK raises assorted errors for corrupt files
        raise MeshFormatError(f"{path}: corrupt PLY file ({err})") from err
    if not isinstance(mesh, pv.PolyData) or mesh.n_cells == 0:
        raise MeshFormatError(f"{path}: PLY file has no faces")
    mesh = mesh.triangulate()
    faces = np.asarray(mesh.faces).reshape(-1, 4)[:, 1:]
    return _finish(path, np.asarray(mesh.points), faces)


def load_mesh(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a triangle mesh from .off, .obj or .ply.

    Returns:
        verts (V, 3) float32 and faces (F, 3) int64.

    Raises:
        FileNotFoundError: no such file. MeshFormatError (a ValueError): unknown suffix, corrupt or
        empty file, NaN coordinates, face indices out of range; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such mesh file: {path}")
    readers = {".off": _read_off, ".obj": _read_obj, ".ply": _read_ply}
    suffix = path.suffix.lower()
    if suffix not in readers:
        raise MeshFormatError(f"{path}: unsupported mesh format {suffix!r} (use {', '.join(MESH_SUFFIXES)})")
    v, f = readers[suffix](path)
    return torch.from_numpy(v), torch.from_numpy(f)


def save_mesh(path: str | os.PathLike, verts, faces, precision: int = 6) -> Path:
    """Write a triangle mesh atomically as .off, .obj or ASCII .ply (chosen by the suffix).

    Args:
        verts: (V, 3) float tensor or array. faces: (F, 3) integer tensor or array (0-based).
        precision: decimals written per coordinate.
    """
    path = Path(path)
    v = _as_numpy(verts).astype(np.float64).reshape(-1, 3)
    f = _as_numpy(faces).astype(np.int64).reshape(-1, 3)
    if not np.isfinite(v).all():
        raise ValueError(f"refusing to write {path}: vertex coordinates contain NaN or inf")
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"refusing to write {path}: face index out of range [0, {len(v)})")
    suffix = path.suffix.lower()
    fmt = f"%.{precision}f"
    vlines = "\n".join(" ".join(fmt % x for x in row) for row in v)
    if suffix == ".off":
        flines = "\n".join(f"3 {a} {b} {c}" for a, b, c in f)
        text = f"OFF\n{len(v)} {len(f)} 0\n{vlines}\n{flines}\n"
    elif suffix == ".obj":
        text = "".join(f"v {ln}\n" for ln in vlines.split("\n")) + "".join(
            f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in f
        )
    elif suffix == ".ply":
        header = (
            f"ply\nformat ascii 1.0\nelement vertex {len(v)}\nproperty float x\nproperty float y\n"
            f"property float z\nelement face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
        )
        flines = "\n".join(f"3 {a} {b} {c}" for a, b, c in f)
        text = f"{header}{vlines}\n{flines}\n"
    else:
        raise ValueError(f"{path}: unsupported mesh format {suffix!r} (use {', '.join(MESH_SUFFIXES)})")
    with atomic_write(path) as fh:
        fh.write(text)
    return path
