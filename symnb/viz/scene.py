"""Scene data shared by the widget, the standalone page and matplotlib: viewer / shading defaults,
input conversion (arrays, tensors, PyTorch3D ``Meshes``), colours, normals, and :class:`SceneObject`
(one drawable as plain arrays) built from meshplot-style arguments."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import matplotlib
import numpy as np
import torch

SETTINGS = {"width": 600, "height": 600, "background": "#ffffff", "fov": 30.0, "scale": 1.5,
            "antialias": True, "view": (0.6, 0.4, 1.0)}
"""Viewer settings (meshplot's names); ``view``: direction from the target to the camera, y up."""

SHADING = {"flat": True, "wireframe": False, "wire_width": 0.03, "wire_color": "black",
           "side": "DoubleSide", "colormap": "viridis", "normalize": [None, None], "bbox": False,
           "roughness": 0.5, "metalness": 0.25, "reflectivity": 1.0, "line_width": 1.0,
           "line_color": "black", "point_color": "red", "point_size": None, "point_shape": "circle",
           "text_color": "red", "text_size": None, "opacity": 1.0, "colorbar": True,
           "default_color": "#ffdf00"}
"""Per-object shading (meshplot's names and defaults, plus ``opacity``, ``colorbar``,
``default_color``, ``text_size``); ``point_size`` / ``text_size`` None: 2% / 6% of the scene diagonal."""


# ----------------------------------------------------------------------------- inputs and colours
def as_numpy(x, dtype=None) -> np.ndarray | None:
    """numpy copy of an array, torch tensor (detached, on CPU) or nested list; None stays None."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(dtype) if dtype is not None else x


def mesh_arrays(v, f=None) -> tuple[np.ndarray, np.ndarray | None]:
    """(verts (V, 3) float32, faces (F, k) int64 or None) from arrays, tensors or a PyTorch3D Meshes."""
    if hasattr(v, "verts_list") and hasattr(v, "faces_list"):
        if len(v) == 0:
            raise ValueError("empty Meshes batch: nothing to plot")
        v, f = v.verts_list()[0], v.faces_list()[0] if f is None else f
    verts = as_numpy(v, np.float32)
    if verts.ndim != 2 or verts.shape[1] not in (2, 3):
        raise ValueError(f"vertices must have shape (V, 3) or (V, 2), got {verts.shape}")
    if verts.shape[1] == 2:
        verts = np.concatenate([verts, np.zeros((len(verts), 1), np.float32)], 1)
    if not np.isfinite(verts).all():
        raise ValueError(f"vertices contain {int((~np.isfinite(verts)).sum())} NaN/inf values")
    faces = as_numpy(f)
    if faces is not None:
        if faces.ndim != 2 or faces.shape[1] not in (2, 3) or faces.dtype.kind not in "iu":
            raise ValueError(f"faces must be integer (F, 3) triangles or (K, 2) edges, got "
                             f"{faces.shape} {faces.dtype}")
        faces = faces.astype(np.int64)
        if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
            raise ValueError(f"face indices span [{faces.min()}, {faces.max()}] but there are "
                             f"{len(verts)} vertices")
    return verts, faces


def scalar_colors(values, colormap="viridis", vmin=None, vmax=None) -> tuple[np.ndarray, float, float]:
    """Map (N,) scalars to (N, 3) float32 RGB; NaNs become grey. Returns (rgb, vmin, vmax)."""
    values = as_numpy(values, np.float64).reshape(-1)
    finite = values[np.isfinite(values)]
    lo = float(vmin) if vmin is not None else float(finite.min()) if finite.size else 0.0
    hi = float(vmax) if vmax is not None else float(finite.max()) if finite.size else 1.0
    t = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
    out = matplotlib.colormaps[colormap](np.clip(t, 0, 1))[:, :3].astype(np.float32)
    out[~np.isfinite(values)] = 0.5
    return out, lo, hi


def colorbar_html(colormap: str, vmin: float, vmax: float, label: str = "", width: int = 240) -> str:
    """A CSS-gradient colour bar with its range, used both in the widget and in saved HTML."""
    cmap = matplotlib.colormaps[colormap]
    stops = ", ".join(matplotlib.colors.to_hex(cmap(t)) for t in np.linspace(0, 1, 9))
    label = html.escape(label)
    return (f'<div class="symnb-colorbar" style="font:12px sans-serif;width:{width}px;margin:4px">'
            f'<div style="height:12px;background:linear-gradient(to right, {stops})"></div>'
            f'<div style="display:flex;justify-content:space-between"><span>{vmin:.4g}</span>'
            f'<span>{label}</span><span>{vmax:.4g}</span></div></div>')


def rgb(color) -> np.ndarray:
    """(3,) float RGB in [0, 1] of a matplotlib colour (name, hex) or an RGB triple."""
    return np.asarray(matplotlib.colors.to_rgb(color), dtype=np.float32)


def _meshes(verts: np.ndarray, faces: np.ndarray):
    """A one-mesh PyTorch3D ``Meshes`` of numpy arrays (float vertices, int64 faces), on the CPU."""
    from pytorch3d.structures import Meshes

    v = np.asarray(verts)
    v = torch.tensor(v if v.dtype.kind == "f" else v.astype(np.float64))
    return Meshes([v], [torch.tensor(np.asarray(faces), dtype=torch.int64)])


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) of a triangle mesh (``Meshes.verts_normals_packed``).

    PyTorch3D normalizes with eps 1e-6, which would leave the normals of very small meshes (edges
    under ~1e-3) shorter than 1; they are renormalized here. Vertices on no face get (0, 0, 0).
    """
    if len(faces) == 0:
        return np.zeros(np.shape(verts), np.float32)
    n = _meshes(verts, faces).verts_normals_packed().numpy()
    return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _unique_edges(faces: np.ndarray, verts: np.ndarray | None = None) -> np.ndarray:
    """(E, 2) int64 unique edges (i < j, sorted) of (F, 3) triangles (``Meshes.edges_packed``)."""
    faces = np.asarray(faces, np.int64)
    if len(faces) == 0:
        return np.zeros((0, 2), np.int64)
    if verts is None:  # only the vertex count matters
        verts = np.zeros((int(faces.max()) + 1, 3), np.float32)
    return _meshes(verts, faces).edges_packed().numpy()


def _box_edges(verts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 corners (8, 3) and 12 edges (12, 2) of the axis-aligned bounding box of ``verts``."""
    lo, hi = verts.min(0), verts.max(0)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    edges = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7],
                      [0, 4], [1, 5], [2, 6], [3, 7]])
    return corners, edges


@dataclass
class SceneObject:
    """One drawable, as plain arrays (what the widget, the HTML page and matplotlib all draw).

    ``position`` (N, 3) float32: vertices (mesh, points) or segment end points in pairs (lines);
    ``index`` (F, 3) int64 triangles or None (face-coloured meshes are unindexed, 3 rows a face);
    ``color`` (N, 3) float32 per-row RGB or None to use ``base_color``.
    """

    kind: str  # "mesh" | "points" | "lines" | "text"
    position: np.ndarray
    index: np.ndarray | None = None
    color: np.ndarray | None = None
    base_color: str = "#ffdf00"
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None  # (H, W, 3) uint8, row 0 = top
    shading: dict = field(default_factory=dict)
    colorbar: tuple | None = None  # (colormap, vmin, vmax)
    text: str = ""
    source: tuple = ()  # the (verts, faces, colours) it was built from, for update_object
    widget: Any = None

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.position.min(0), self.position.max(0)

    def wireframe_edges(self) -> np.ndarray | None:
        """(E, 2) unique edges when the mesh is drawn with a wireframe, else None."""
        if self.kind == "mesh" and self.shading.get("wireframe"):
            return _unique_edges(self.index, self.position)
        return None


def _mesh_object(v, f, c, uv, texture_data, sh) -> SceneObject:
    v, f = mesh_arrays(v, f)
    if f is None or f.shape[1] != 3:
        raise ValueError("add_mesh needs (F, 3) triangle faces")
    c = c if isinstance(c, str) else as_numpy(c)
    obj = SceneObject("mesh", v, f, base_color=sh["default_color"], shading=sh, source=(v, f, c))
    if uv is not None:
        obj.uv = as_numpy(uv, np.float32)
        if obj.uv.shape != (len(v), 2):
            raise ValueError(f"uv must have shape ({len(v)}, 2), got {obj.uv.shape}")
        tex = _checkers() if texture_data is None else as_numpy(texture_data)
        if tex.ndim == 3 and tex.shape[0] in (3, 4) and tex.shape[2] not in (3, 4):
            tex = tex.transpose(1, 2, 0)  # (3, H, W) tensor image
        if tex.dtype.kind == "f":
            tex = np.clip(tex * 255 + 0.5, 0, 255)
        obj.texture = tex[..., :3].astype(np.uint8)
    elif c is None:
        pass
    elif isinstance(c, str) or c.size == 3 and c.shape[-1] == 3 and len(v) != 1:
        obj.base_color = matplotlib.colors.to_hex(rgb(c))
    elif c.ndim == 2 and c.shape[1] == 3 and len(c) in (len(v), len(f)):
        obj.color = np.clip(c.astype(np.float32), 0, 1)
    elif c.size in (len(v), len(f)):
        lo, hi = sh["normalize"]
        obj.color, lo, hi = scalar_colors(c, sh["colormap"], lo, hi)
        obj.colorbar = (sh["colormap"], lo, hi)
    else:
        raise ValueError(f"colours of shape {c.shape} match neither the {len(v)} vertices nor the "
                         f"{len(f)} faces")
    if obj.color is not None and len(obj.color) == len(f) != len(v):  # per face: unindex
        obj.position, obj.color = v[f].reshape(-1, 3), np.repeat(obj.color, 3, 0)
        obj.index = np.arange(3 * len(f)).reshape(-1, 3)
    return obj


def _point_colors(obj: SceneObject, c, sh) -> None:
    c = c if c is None or isinstance(c, str) else as_numpy(c)
    n = len(obj.position)
    if c is None:
        obj.base_color = matplotlib.colors.to_hex(sh["point_color"])
    elif isinstance(c, str) or c.size == 3 and n != 3:
        obj.base_color = matplotlib.colors.to_hex(rgb(c))
    elif c.ndim == 2 and c.shape == (n, 3):
        obj.color = np.clip(c.astype(np.float32), 0, 1)
    elif c.size == n:
        obj.color, lo, hi = scalar_colors(c, sh["colormap"], *sh["normalize"])
        obj.colorbar = (sh["colormap"], lo, hi)
    else:
        raise ValueError(f"point colours of shape {c.shape} do not match {n} points")


def _checkers(n: int = 8, size: int = 128) -> np.ndarray:
    ij = np.indices((size, size)) // (size // n)
    return np.where(((ij[0] + ij[1]) % 2)[..., None] == 0, 230, 60).repeat(3, -1).astype(np.uint8)


def _rgba(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> contiguous (H, W, 4) uint8 with opaque alpha."""
    return np.ascontiguousarray(np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], -1))

