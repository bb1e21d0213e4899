"""Triangle-mesh files: read and write .off, .obj and .ply with clear errors.

Shapes: ``verts`` (V, 3) float32, ``faces`` (F, 3) int64 (0-based vertex indices). Polygons with
more than three corners are fan-triangulated on reading. Writes are atomic
(:func:`symnb.utils.atomic_write`): a crash never leaves a half-written mesh file.

Reading is PyTorch3D's (``pytorch3d.io.load_obj``, ``load_ply`` and the OFF interpreter behind
``pytorch3d.io.IO().load_mesh``), wrapped so that every failure is a :class:`MeshFormatError`
naming the file, plus what PyTorch3D does not check or does differently:

* OFF: the ``[C][N]OFF`` header line is required (PyTorch3D also reads header-less files) and the
  counts line may have two or three numbers; the body after the counts line goes to PyTorch3D.
  An empty file, a missing counts line or a truncated PLY header would make PyTorch3D's parsers
  loop forever: they are rejected before parsing. When PyTorch3D rejects an OFF file, the
  offending line is located (e.g. ``5 0 1 2``: a face whose count does not match its indices).
* OBJ: negative (relative) vertex indices count back from the vertices read *so far* (the OBJ
  rule; PyTorch3D counts from the end of the file), and index 0 is an error (PyTorch3D reads it
  as vertex 1).
* all: out-of-range face indices (PyTorch3D only warns), NaN / inf coordinates, meshes without
  vertices or faces.

Writing never replaces a file we did not write. Every file our writers produce carries
:data:`WRITER_MARK`: a comment line (``# written by symnb`` in .off / .obj / .mtl, ``comment written
by symnb`` in a .ply header) or a PNG text chunk (``Software: symnb``). An existing file without it
raises ``FileExistsError`` unless the call passes ``overwrite=True`` (:func:`check_writable`); a
file with it (e.g. a mesh exported by an earlier evaluation) is replaced.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from .utils import atomic_write

MESH_SUFFIXES = (".off", ".obj", ".ply")


#: What our writers put into every file they write (see the module docstring).
WRITER_MARK = "written by symnb"


class MeshFormatError(ValueError):
    """A mesh file that exists but cannot be parsed (the message names the file)."""


def is_ours(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that one of symnb's writers wrote (it carries :data:`WRITER_MARK`)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as im:
                return str(im.info.get("Software", "")).startswith("symnb")
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except (OSError, ValueError):
        return False
    lines = {ln.strip() for ln in head.splitlines()[:16]}
    return f"# {WRITER_MARK}".encode() in lines or f"comment {WRITER_MARK}".encode() in lines


def check_writable(path: str | os.PathLike, overwrite: bool = False,
                   suffixes: tuple[str, ...] | None = MESH_SUFFIXES) -> Path:
    """Refuse to write ``path`` when it is a folder, has an unsupported suffix (``suffixes``; None:
    any) or is an existing file we did not write (unless ``overwrite``). Returns ``path``.

    Raises:
        IsADirectoryError, ValueError (suffix), FileExistsError (someone else's file); the message
        names the file.
    """
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: unsupported mesh format {path.suffix!r} (use {', '.join(suffixes)})")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file to write")
    if path.exists() and not overwrite and not is_ours(path):
        raise FileExistsError(f"{path} exists and was not written by symnb: not replacing it (choose another "
                              "name, or pass overwrite=True / --overwrite)")
    return path


def check_mesh(path, verts: np.ndarray, faces: np.ndarray) -> None:
    """Refuse to write NaN / inf vertices or face indices outside [0, V) (message names ``path``)."""
    if not np.isfinite(verts).all():
        raise ValueError(f"refusing to write {path}: vertex coordinates contain NaN or inf")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError(f"refusing to write {path}: face index out of range [0, {len(verts)}) "
                         f"(got {int(faces.min())} .. {int(faces.max())})")


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _finish(path: Path, verts, faces) -> tuple[torch.Tensor, torch.Tensor]:
    v = np.array(_as_numpy(verts), dtype=np.float32).reshape(-1, 3)  # a writable copy
    f = np.array(_as_numpy(faces), dtype=np.int64).reshape(-1, 3)
    if len(v) == 0 or len(f) == 0:
        raise MeshFormatError(f"{path}: mesh has no vertices or no faces")
    if not np.isfinite(v).all():
        raise MeshFormatError(f"{path}: vertex coordinates contain NaN or inf")
    if f.min() < 0 or f.max() >= len(v):
        raise MeshFormatError(f"{path}: face index out of range [0, {len(v)})")
    return torch.from_numpy(v), torch.from_numpy(f)


# ------------------------------------------------------------------------------------------------ OFF


def _tokens(line: bytes) -> list[bytes]:
    return line.split(b"#")[0].split()


def _off_header(path: Path, data: bytes) -> tuple[int, int, int, bytes]:
    """(n_verts, n_faces, line number of the counts line, body after the counts line)."""
    stream = io.BytesIO(data)
    lineno, head = 0, None
    while head is None:
        line = stream.readline()
        if not line:
            raise MeshFormatError(f"{path}: missing OFF header")
        lineno += 1
        head = _tokens(line) or None
    if not head[0].upper().endswith(b"OFF"):
        raise MeshFormatError(f"{path}: missing OFF header")
    counts = head[1:]
    while not counts:
        line = stream.readline()
        if not line:
            raise MeshFormatError(f"{path}: OFF file has no counts line")
        lineno += 1
        counts = _tokens(line)
    try:
        nv, nf = int(counts[0]), int(counts[1])
    except (ValueError, IndexError):
        raise MeshFormatError(f"{path}: line {lineno}: bad OFF counts line {b' '.join(counts)!r}") from None
    if nv < 0 or nf < 0:
        raise MeshFormatError(f"{path}: line {lineno}: negative OFF counts")
    return nv, nf, lineno, stream.read()


def _off_check(body: bytes, nv: int, nf: int, first: int) -> tuple[str | None, int]:
    """Why and where the OFF body (starting after line ``first``) is malformed (or None), and the
    byte offset where its last face line ends (what follows may only be comments)."""
    seen, offset, end = 0, 0, 0
    for i, raw in enumerate(body.splitlines(keepends=True), start=first + 1):
        offset += len(raw)
        t = _tokens(raw)
        if not t:
            continue
        if seen < nv:
            try:
                [float(x) for x in t]
            except ValueError:
                return f"line {i}: bad vertex {raw.strip()[:60]!r}", end
            if len(t) < 3:
                return f"line {i}: vertex with {len(t)} coordinates", end
        elif seen < nv + nf:
            try:
                n = int(t[0])
                [int(x) for x in t[1 : 1 + n]]
            except ValueError:
                return f"line {i}: bad face {raw.strip()[:60]!r}", end
            extra = len(t) - 1 - n
            if n < 3:
                return f"line {i}: face with {n} corners", end
            if extra not in (0, 3, 4):  # 3 or 4 extra values are a face colour
                return f"line {i}: face count {n} does not match its {len(t) - 1} indices", end
        else:
            return f"line {i}: data after the {nf} faces", end
        seen += 1
        end = offset
    if seen < nv + nf:
        return f"OFF file truncated (expected {nv} vertices and {nf} faces, found {seen} of those lines)", end
    return None, end


def _read_off(path: Path, data: bytes):
    from iopath.common.file_io import PathManager
    from pytorch3d.io.off_io import MeshOffFormat  # the interpreter IO().load_mesh uses for .off

    def parse(body: bytes):
        stream = io.BytesIO(b"OFF\n%d %d 0\n" % (nv, nf) + body)
        return MeshOffFormat().read(stream, include_textures=False, device="cpu", path_manager=PathManager())

    nv, nf, first, body = _off_header(path, data)
    try:
        mesh = parse(body)
    except ValueError as err:
        where, end = _off_check(body, nv, nf, first)
        if where is not None:
            raise MeshFormatError(f"{path}: {where}") from err
        if not str(err).startswith("Extra data"):
            raise
        mesh = parse(body[:end])  # PyTorch3D rejects comments after the last face
    return mesh.verts_packed(), mesh.faces_packed()


# ------------------------------------------------------------------------------------------------ OBJ

_RELATIVE_OR_ZERO = re.compile(r"^[ \t]*f(?=[ \t]).*?[ \t](-|0+(?=/|[ \t]|$))", re.M)


def _obj_absolute(path: Path, text: str) -> str:
    """Rewrite negative (relative) and reject zero vertex indices of face lines."""
    if not _RELATIVE_OR_ZERO.search(text):
        return text
    out, nv = [], 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s.startswith("v "):  # PyTorch3D's test for a vertex line
            nv += 1
        elif s.startswith("f "):
            toks = s.split()[1:]
            for k, tok in enumerate(toks):
                parts = tok.split("/")
                try:
                    i = int(parts[0])
                except ValueError:
                    continue  # PyTorch3D reports it
                if i == 0:
                    raise MeshFormatError(f"{path}: line {lineno}: OBJ vertex index 0 (indices start at 1)")
                if i < 0:
                    if i + nv < 0:
                        raise MeshFormatError(f"{path}: line {lineno}: face index out of range [0, {nv})")
                    parts[0] = str(i + nv + 1)
                    toks[k] = "/".join(parts)
            line = "f " + " ".join(toks)
        out.append(line)
    return "\n".join(out) + "\n"


def _read_obj(path: Path, data: bytes):
    from pytorch3d.io import load_obj

    text = _obj_absolute(path, data.decode("utf-8", errors="replace"))
    verts, faces, _ = load_obj(io.StringIO(text), load_textures=False)
    return verts, faces.verts_idx


# ------------------------------------------------------------------------------------------------ PLY


def _read_ply(path: Path, data: bytes):
    from pytorch3d.io import load_ply

    if b"end_header" not in data:
        raise MeshFormatError(f"{path}: truncated or corrupt PLY file (no end_header line)")
    return load_ply(io.BytesIO(data))


# ----------------------------------------------------------------------------------------------- API


def load_mesh(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a triangle mesh from .off, .obj or .ply (PyTorch3D's readers, see the module docstring).

    Returns:
        verts (V, 3) float32 and faces (F, 3) int64.

    Raises:
        FileNotFoundError: no such file. MeshFormatError (a ValueError): unknown suffix, corrupt,
        truncated or empty file, NaN coordinates, face indices out of range; the message names the
        file (and for OFF / OBJ structure errors the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such mesh file: {path}")
    readers = {".off": _read_off, ".obj": _read_obj, ".ply": _read_ply}
    suffix = path.suffix.lower()
    if suffix not in readers:
        raise MeshFormatError(f"{path}: unsupported mesh format {suffix!r} (use {', '.join(MESH_SUFFIXES)})")
    data = path.read_bytes()
    if not data.strip():
        raise MeshFormatError(f"{path}: empty file: mesh has no vertices or no faces")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch3D warns about bad indices: _finish raises
            verts, faces = readers[suffix](path, data)
    except MeshFormatError:
        raise
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - PyTorch3D's parsers raise assorted errors
        msg = str(err) or type(err).__name__
        kind = "truncated" if re.search(r"not enough|premature|too little", msg, re.I) else "corrupt"
        raise MeshFormatError(f"{path}: {kind} {suffix[1:].upper()} file ({msg})") from err
    return _finish(path, verts, faces)


def save_mesh(path: str | os.PathLike, verts, faces, precision: int = 6, overwrite: bool = False) -> Path:
    """Write a triangle mesh atomically as .off, .obj or ASCII .ply (chosen by the suffix).

    Hand-written rather than PyTorch3D's writers: those format float32 copies and write no
    standard ``OFF`` header; here coordinates keep float64 precision at ``precision`` decimals.

    Args:
        verts: (V, 3) float tensor or array. faces: (F, 3) integer tensor or array (0-based).
        precision: decimals written per coordinate.
        overwrite: replace an existing file even if symnb did not write it (see the module docstring).

    Raises:
        ValueError: NaN / inf vertices, face indices out of range, unsupported suffix.
        FileExistsError: ``path`` exists and is not ours (without ``overwrite``).
    """
    path = Path(path)
    v = _as_numpy(verts).astype(np.float64).reshape(-1, 3)
    f = _as_numpy(faces).astype(np.int64).reshape(-1, 3)
    check_mesh(path, v, f)
    check_writable(path, overwrite)
    suffix = path.suffix.lower()
    fmt = f"%.{precision}f"
    vlines = "\n".join(" ".join(fmt % x for x in row) for row in v)
    if suffix == ".off":
        flines = "\n".join(f"3 {a} {b} {c}" for a, b, c in f)
        text = f"OFF\n# {WRITER_MARK}\n{len(v)} {len(f)} 0\n{vlines}\n{flines}\n"
    elif suffix == ".obj":
        text = f"# {WRITER_MARK}\n" + "".join(f"v {ln}\n" for ln in vlines.split("\n")) + "".join(
            f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in f
        )
    else:
        header = (
            f"ply\nformat ascii 1.0\ncomment {WRITER_MARK}\nelement vertex {len(v)}\nproperty float x\n"
            f"property float y\nproperty float z\nelement face {len(f)}\n"
            "property list uchar int vertex_indices\nend_header\n"
        )
        flines = "\n".join(f"3 {a} {b} {c}" for a, b, c in f)
        text = f"{header}{vlines}\n{flines}\n"
    with atomic_write(path) as fh:
        fh.write(text)
    return path


def pyvista_textured_mesh(polydata, image, device="cpu"):
    """A PyVista surface with texture coordinates and its image as a Meshes with TexturesUV.

    The mesh is triangulated, centred at its bounding-box centre and scaled to unit
    bounding-box diagonal (the canonical frame's size convention).

    Args:
        polydata: pyvista.PolyData with active texture coordinates (one UV per point).
        image: (Ht, Wt, 3) texture, uint8 or float in [0, 1], row 0 at the top (v = 1).

    Returns:
        Meshes with one mesh and TexturesUV (maps (1, Ht, Wt, 3) float).
    """
    from pytorch3d.renderer import TexturesUV
    from pytorch3d.structures import Meshes

    pd = polydata.triangulate()
    tcoords = pd.active_texture_coordinates
    if tcoords is None:
        raise ValueError("polydata has no texture coordinates (active_texture_coordinates is None)")
    verts = torch.tensor(np.asarray(pd.points), dtype=torch.float32)
    faces = torch.tensor(np.asarray(pd.faces).reshape(-1, 4)[:, 1:], dtype=torch.int64)
    lo, hi = verts.min(0).values, verts.max(0).values
    verts = (verts - (lo + hi) / 2) / (hi - lo).norm()
    img = torch.as_tensor(np.array(image))
    if img.ndim != 3 or img.shape[-1] < 3:
        raise ValueError(f"texture image must be (H, W, 3), got shape {tuple(img.shape)}")
    img = img[..., :3].float() / (255.0 if img.dtype == torch.uint8 else 1.0)
    uv = torch.tensor(np.asarray(tcoords), dtype=torch.float32)
    tex = TexturesUV(maps=img[None], faces_uvs=faces[None], verts_uvs=uv[None])
    return Meshes([verts], [faces], textures=tex).to(device)
