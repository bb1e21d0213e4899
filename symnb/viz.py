"""Mesh viewers with meshplot's calling conventions, on pythreejs, plus headless pictures.

``plot(v, f, c, uv, shading)`` returns a :class:`Viewer` (a pythreejs widget in JupyterLab) whose
methods are meshplot's: ``add_mesh``, ``add_points``, ``add_lines``, ``add_edges``, ``add_text``,
``update_object``, ``remove_object``, ``reset``, ``to_html``, ``save``. ``subplot(..., s=[rows, cols,
idx], data=...)`` fills a grid of viewers. On top of that:

- ``to_html`` / ``save`` write a standalone page: three.js (the copy pythreejs ships) and the scene,
  as base64 arrays, are inlined, so it works without a kernel and without internet.
- ``to_matplotlib`` / :func:`render_static` draw the same scene with matplotlib (Lambert-shaded
  ``Poly3DCollection``) for reports and headless runs (papermill, CI).
- research helpers: :func:`mesh_table`, :func:`plot_overlay` (transparent prediction over solid
  ground truth), :func:`add_bbox`, :func:`add_path`, :func:`plot_symmetry_plane`,
  :func:`distance_to_mesh` and :func:`symmetry_error` (per-vertex error colour maps).

Inputs may be numpy arrays, torch tensors or PyTorch3D ``Meshes`` (first mesh of the batch).
Shapes: ``v`` (V, 3) (or (V, 2), lifted to z = 0); ``f`` (F, 3) triangles or (K, 2) edges;
``c`` a colour name, an RGB triple, (V,) / (F,) scalars mapped through ``shading["colormap"]``
(with a colour bar) or (V, 3) / (F, 3) RGB in [0, 1]; ``uv`` (V, 2) with ``texture_data`` (H, W, 3)
an image whose row 0 is its top (v = 1).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from .viz_html import b64, save_html, standalone_html, three_js_source  # noqa: F401
from .viz_static import draw_static, foreground_fraction, object_faces, rgb  # noqa: F401

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


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) of a triangle mesh."""
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)


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
            return _unique_edges(self.index)
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


# ----------------------------------------------------------------------------- pythreejs objects
def _three(obj: SceneObject, diag: float):
    """Build the pythreejs object of a SceneObject (imported lazily: plain drawing needs no widgets)."""
    import pythreejs as p3

    sh = obj.shading
    attrs = {"position": p3.BufferAttribute(obj.position.astype(np.float32), normalized=False)}
    if obj.color is not None:
        attrs["color"] = p3.BufferAttribute(obj.color.astype(np.float32), normalized=False)
    vc = "VertexColors" if obj.color is not None else "NoColors"
    if obj.kind == "mesh":
        attrs["normal"] = p3.BufferAttribute(vertex_normals(obj.position, obj.index), normalized=False)
        mat = dict(vertexColors=vc, side=sh["side"], roughness=sh["roughness"], metalness=sh["metalness"],
                   flatShading=bool(sh["flat"]), transparent=sh["opacity"] < 1, opacity=sh["opacity"],
                   depthWrite=sh["opacity"] >= 1, polygonOffset=True, polygonOffsetFactor=1,
                   polygonOffsetUnits=5, color="#ffffff" if obj.color is not None else obj.base_color)
        if obj.uv is not None:
            attrs["uv"] = p3.BufferAttribute(obj.uv.astype(np.float32), normalized=False)
            mat.update(color="#ffffff", map=p3.DataTexture(
                data=_rgba(obj.texture[::-1]), format="RGBAFormat", type="UnsignedByteType",
                minFilter="LinearFilter", magFilter="LinearFilter", generateMipmaps=False))
        geom = p3.BufferGeometry(attributes=attrs, index=p3.BufferAttribute(
            obj.index.astype(np.uint32).ravel(), normalized=False))
        mesh = p3.Mesh(geometry=geom, material=p3.MeshStandardMaterial(**mat))
        if sh["wireframe"]:
            edges = _unique_edges(obj.index)
            seg = obj.position[edges.ravel()]
            mesh.add(p3.LineSegments(
                p3.BufferGeometry(attributes={"position": p3.BufferAttribute(seg, normalized=False)}),
                p3.LineBasicMaterial(color=sh["wire_color"], linewidth=sh["wire_width"])))
        return mesh
    if obj.kind == "points":
        size = sh["point_size"] or 0.02 * diag
        mat = dict(size=size, vertexColors=vc, color="#ffffff" if obj.color is not None else obj.base_color)
        if sh["point_shape"] == "circle":
            mat.update(map=p3.DataTexture(data=_disc(), format="RGBAFormat", type="UnsignedByteType",
                                          minFilter="LinearFilter", generateMipmaps=False),
                       alphaTest=0.5, transparent=True)
        return p3.Points(p3.BufferGeometry(attributes=attrs), p3.PointsMaterial(**mat))
    if obj.kind == "lines":
        mat = dict(linewidth=sh["line_width"], vertexColors=vc,
                   color="#ffffff" if obj.color is not None else obj.base_color)
        return p3.LineSegments(p3.BufferGeometry(attributes=attrs), p3.LineBasicMaterial(**mat))
    size = sh["text_size"] or 0.06 * diag
    tex = p3.TextTexture(string=obj.text, color=obj.base_color, size=64, squareTexture=False)
    sprite = p3.Sprite(material=p3.SpriteMaterial(map=tex, transparent=True), position=tuple(
        map(float, obj.position[0])))
    sprite.scale = (size * 0.6 * max(len(obj.text), 1), size, 1.0)
    return sprite


def _rgba(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> contiguous (H, W, 4) uint8 with opaque alpha."""
    return np.ascontiguousarray(np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], -1))


def _disc(n: int = 32) -> np.ndarray:
    r = np.hypot(*(np.indices((n, n)) - (n - 1) / 2)) <= n / 2
    return np.where(r[..., None], 255, 0).repeat(4, -1).astype(np.uint8)


def _unique_edges(faces: np.ndarray) -> np.ndarray:
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1)
    return np.unique(e, axis=0)


def look_at_quaternion(eye, target, up=(0.0, 1.0, 0.0)) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) turning a three.js camera (looking down its -z) at ``target``."""
    from scipy.spatial.transform import Rotation

    z = np.asarray(eye, float) - np.asarray(target, float)
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-9 else np.cross([0.0, 0.0, 1.0], z)
    y = np.cross(z, x)
    return tuple(float(q) for q in Rotation.from_matrix(np.stack([x, y, z], 1)).as_quat())


def _headlight(p3):
    """A directional light riding on the camera, shining along the view direction.

    Its ``target`` and ``shadow`` are made here: left unset, pythreejs 2.4's front end creates them
    itself and the kernel then answers with an invalid state ("Error setting state: t.on is not a
    function" in the browser console, once per viewer).
    """
    target = p3.Object3D(position=[0.0, 0.0, -1.0])
    shadow = p3.DirectionalLightShadow(camera=p3.OrthographicCamera(-5, 5, 5, -5, 0.5, 500))
    return p3.DirectionalLight(color="white", position=[0.0, 0.0, 1.0], intensity=0.6, target=target,
                               shadow=shadow), target


# ----------------------------------------------------------------------------- the viewer
class Viewer:
    """A 3D scene with meshplot's methods; shows as a pythreejs widget, saves as standalone HTML.

    Object ids are integers returned by the ``add_*`` methods. ``objects`` maps them to
    :class:`SceneObject` (plain arrays), which is what ``to_html`` and ``to_matplotlib`` draw.
    """

    def __init__(self, settings: dict | None = None):
        self.settings = {**SETTINGS, **(settings or {})}
        self.objects: dict[int, SceneObject] = {}
        self._count = 0
        self._widget = None
        self._displayed = False

    # -- building -------------------------------------------------------------------------------
    def _shading(self, shading: dict | None) -> dict:
        unknown = set(shading or {}) - set(SHADING) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown shading keys {sorted(unknown)}; known: {sorted(SHADING)}")
        return {**SHADING, **(shading or {})}

    def _add(self, obj: SceneObject, parent: int | None = None) -> int:
        if parent is not None:  # meshplot's `obj=` attaches helpers (bounding box) to an object
            self.objects[parent].shading.setdefault("children", []).append(self._count)
        self.objects[self._count] = obj
        self._count += 1
        if self._widget is not None:
            obj.widget = _three(obj, self._diag())
            self._scene.add(obj.widget)
            self._update_view()
            self._refresh_colorbars()
        return self._count - 1

    def add_mesh(self, v, f=None, c=None, uv=None, n=None, shading: dict | None = None,
                 texture_data=None) -> int:
        """Add a triangle mesh (``n``, normals, is accepted for meshplot compatibility and recomputed)."""
        sh = self._shading(shading)
        oid = self._add(_mesh_object(v, f, c, uv, texture_data, sh))
        if sh["bbox"]:
            add_bbox(self, self.objects[oid].position, shading={"line_color": sh["line_color"]}, obj=oid)
        return oid

    def add_points(self, points, c=None, shading: dict | None = None, obj=None) -> int:
        """Add a point cloud: points (N, 3) or (N, 2), colours as for meshes."""
        sh = self._shading(shading)
        pts, _ = mesh_arrays(np.atleast_2d(as_numpy(points, np.float32)))
        o = SceneObject("points", pts, shading=sh)
        _point_colors(o, c, sh)
        return self._add(o, obj)

    def add_lines(self, beginning, ending, shading: dict | None = None, obj=None, c=None) -> int:
        """Add segments from ``beginning`` (K, 3) to ``ending`` (K, 3); ``c`` per segment RGB/scalars."""
        b, _ = mesh_arrays(np.atleast_2d(as_numpy(beginning, np.float32)))
        e, _ = mesh_arrays(np.atleast_2d(as_numpy(ending, np.float32)))
        if b.shape != e.shape:
            raise ValueError(f"line beginnings {b.shape} and endings {e.shape} differ")
        sh = self._shading(shading)
        o = SceneObject("lines", np.stack([b, e], 1).reshape(-1, 3), shading=sh,
                        base_color=matplotlib.colors.to_hex(sh["line_color"]))
        if c is not None:
            c = as_numpy(c)
            _point_colors(o, np.repeat(c.reshape(len(b), -1), 2, 0).squeeze(-1) if c.ndim == 1
                          else np.repeat(c, 2, 0), sh)
        return self._add(o, obj)

    def add_edges(self, vertices, edges, shading: dict | None = None, obj=None, c=None) -> int:
        """Add the edges (K, 2) between ``vertices`` (V, 3)."""
        v, e = mesh_arrays(vertices, edges)
        if e is None or e.shape[1] != 2:
            raise ValueError("add_edges needs (K, 2) edge indices")
        return self.add_lines(v[e[:, 0]], v[e[:, 1]], shading=shading, obj=obj, c=c)

    def add_text(self, text: str, position=None, shading: dict | None = None) -> int:
        """Add a text label at ``position`` (3,) (default: above the scene's bounding box)."""
        sh = self._shading(shading)
        if position is None:
            lo, hi = self._bounds()
            position = [(lo[0] + hi[0]) / 2, hi[1] + 0.08 * self._diag(), (lo[2] + hi[2]) / 2]
        o = SceneObject("text", as_numpy(position, np.float32).reshape(1, 3), shading=sh, text=str(text),
                        base_color=matplotlib.colors.to_hex(sh["text_color"]))
        return self._add(o)

    def update_object(self, oid: int = 0, vertices=None, colors=None, faces=None) -> None:
        """Replace an object's vertices, colours and/or faces (its shading is kept)."""
        old = self._get(oid)
        if old.kind == "mesh":
            v, f, c = old.source
            new = _mesh_object(v if vertices is None else vertices, f if faces is None else faces,
                               c if colors is None else colors, old.uv, old.texture, old.shading)
        else:
            new = SceneObject(old.kind, old.position, shading=old.shading, base_color=old.base_color,
                              color=old.color, colorbar=old.colorbar, text=old.text)
            if vertices is not None:
                new.position = as_numpy(vertices, np.float32).reshape(old.position.shape)
            if colors is not None:
                new.color = None
                _point_colors(new, colors, old.shading)
        self._replace(oid, new)

    def remove_object(self, oid: int) -> None:
        """Remove an object (and helpers attached to it) from the scene."""
        obj = self._get(oid)
        for child in obj.shading.get("children", []):
            if child in self.objects:
                self.remove_object(child)
        if obj.widget is not None:
            self._scene.remove(obj.widget)
        del self.objects[oid]
        if self._widget is not None:
            self._update_view()
            self._refresh_colorbars()

    def reset(self) -> None:
        """Remove every object."""
        for oid in list(self.objects):
            if oid in self.objects:
                self.remove_object(oid)

    def _get(self, oid: int) -> SceneObject:
        if oid not in self.objects:
            raise KeyError(f"no object {oid}; valid ids are {sorted(self.objects)}")
        return self.objects[oid]

    def _replace(self, oid: int, new: SceneObject) -> None:
        old = self.objects[oid]
        new.shading = old.shading
        self.objects[oid] = new
        if old.widget is not None:
            self._scene.remove(old.widget)
            new.widget = _three(new, self._diag())
            self._scene.add(new.widget)
            self._refresh_colorbars()

    # -- geometry of the view ---------------------------------------------------------------------
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        objs = [o for o in self.objects.values() if o.kind != "text"] or list(self.objects.values())
        if not objs:
            return -np.ones(3) / 2, np.ones(3) / 2
        return (np.min([o.bounds[0] for o in objs], 0).astype(float),
                np.max([o.bounds[1] for o in objs], 0).astype(float))

    def _diag(self) -> float:
        lo, hi = self._bounds()
        return float(np.linalg.norm(hi - lo)) or 1.0

    def camera(self) -> dict:
        """Camera looking at the scene's box centre from ``settings["view"]``, ``scale`` diagonals away."""
        lo, hi = self._bounds()
        target = (lo + hi) / 2
        d = np.asarray(self.settings["view"], float)
        # the bounding sphere fits the field of view at scale 4/3; meshplot's default 1.5 leaves a margin
        dist = 0.75 * self.settings["scale"] * self._diag() / 2 / np.sin(np.radians(self.settings["fov"]) / 2)
        pos = target + d / np.linalg.norm(d) * dist
        return {"position": pos.tolist(), "target": target.tolist(), "up": [0.0, 1.0, 0.0],
                "fov": float(self.settings["fov"]), "near": dist / 100, "far": dist * 100}

    # -- widget -----------------------------------------------------------------------------------
    @property
    def widget(self):
        """The ipywidgets view: a pythreejs Renderer, with colour bars under it (built on first use)."""
        if self._widget is None:
            import ipywidgets as w
            import pythreejs as p3

            s = self.settings
            self._light, target = _headlight(p3)
            self._cam = p3.PerspectiveCamera(aspect=s["width"] / s["height"], fov=s["fov"],
                                             children=[self._light, target])
            self._orbit = p3.OrbitControls(controlling=self._cam)
            self._scene = p3.Scene(children=[self._cam, p3.AmbientLight(intensity=0.5)],
                                   background=s["background"])
            self._renderer = p3.Renderer(camera=self._cam, scene=self._scene, controls=[self._orbit],
                                         width=s["width"], height=s["height"], antialias=s["antialias"])
            self._bars = w.HTML()
            self._widget = w.VBox([self._renderer, self._bars])
            diag = self._diag()
            for obj in self.objects.values():
                obj.widget = _three(obj, diag)
                self._scene.add(obj.widget)
            self._update_view()
            self._refresh_colorbars()
        return self._widget

    def _update_view(self) -> None:
        cam = self.camera()
        self._cam.position, self._cam.near, self._cam.far = cam["position"], cam["near"], cam["far"]
        self._cam.quaternion = look_at_quaternion(cam["position"], cam["target"], cam["up"])
        self._orbit.target = cam["target"]

    def _refresh_colorbars(self) -> None:
        self._bars.value = "".join(colorbar_html(*o.colorbar) for o in self.objects.values()
                                   if o.colorbar is not None and o.shading["colorbar"])

    def _repr_mimebundle_(self, **kwargs):
        if self._displayed:  # plot() already displayed it: echo a summary only
            return {"text/plain": repr(self)}
        self._displayed = True
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        kinds = [o.kind for o in self.objects.values()]
        return f"<symnb.viz.Viewer: {len(kinds)} objects {kinds}>"

    # -- export -----------------------------------------------------------------------------------
    def scene_json(self) -> dict:
        """The scene as JSON-able data (arrays base64-encoded) for the standalone HTML page."""
        objs = []
        diag = self._diag()
        for o in self.objects.values():
            sh = o.shading
            d = {"kind": o.kind, "position": b64(o.position, np.float32), "base_color": o.base_color,
                 "opacity": float(sh["opacity"]), "flat": bool(sh["flat"]), "text": o.text,
                 "point_size": float(sh["point_size"] or 0.02 * diag),
                 "circle": sh["point_shape"] == "circle",
                 "text_size": float(sh["text_size"] or 0.06 * diag), "roughness": float(sh["roughness"]),
                 "metalness": float(sh["metalness"]), "wireframe": bool(sh["wireframe"]),
                 "wire_color": matplotlib.colors.to_hex(sh["wire_color"])}
            if o.kind == "mesh":
                d["index"] = b64(o.index, np.uint32)
                d["normal"] = b64(vertex_normals(o.position, o.index), np.float32)
                if o.wireframe_edges() is not None:
                    d["edges"] = b64(o.wireframe_edges(), np.uint32)
            if o.color is not None:
                d["color"] = b64(o.color, np.float32)
            if o.uv is not None:
                d["uv"] = b64(o.uv, np.float32)
                h, w = o.texture.shape[:2]
                d["texture"] = {"w": w, "h": h, "data": b64(_rgba(o.texture[::-1]), np.uint8)}
            objs.append(d)
        bars = [colorbar_html(*o.colorbar) for o in self.objects.values()
                if o.colorbar is not None and o.shading["colorbar"]]
        s = self.settings
        return {"width": s["width"], "height": s["height"], "background": s["background"],
                "camera": self.camera(), "objects": objs, "colorbars": bars}

    def to_html(self, imports: bool = True, html_frame: bool = True, title: str = "symnb viewer") -> str:
        """Standalone HTML of this scene (three.js inlined: needs neither a kernel nor internet).

        ``imports`` and ``html_frame`` are meshplot's arguments, accepted for compatibility: the page
        is always complete.
        """
        return standalone_html([[self]], title=title)

    def save(self, filename: str | os.PathLike = "viewer.html") -> Path:
        """Write :meth:`to_html` to ``filename`` (".html" appended if missing), atomically."""
        return save_html(self.to_html(), filename)

    def to_matplotlib(self, ax=None, elev: float | None = None, azim: float | None = None,
                      figsize=(5, 5), title: str | None = None):
        """Draw the scene with matplotlib (headless); returns the Figure."""
        return draw_static([[self]], axes=None if ax is None else np.array([[ax]]), elev=elev, azim=azim,
                            figsize=figsize, titles=[[title]])


# ----------------------------------------------------------------------------- meshplot entry points
_PENDING: list = []


def _display(obj) -> None:
    """Show ``obj`` at the end of the running IPython cell (no-op outside IPython).

    Like matplotlib's inline figures, viewers made by :func:`plot` appear once the cell has run, so
    the ``add_*`` calls that follow in the same cell reach the browser with the first picture rather
    than as live scene edits. A viewer the cell returns as its value is shown there, once.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    if not any(getattr(cb, "__name__", "") == "_flush_pending" for cb in ip.events.callbacks["post_execute"]):
        ip.events.register("post_execute", _flush_pending)
    _PENDING.append(obj)


def _flush_pending() -> None:
    from IPython.display import display

    while _PENDING:
        obj = _PENDING.pop(0)
        if not obj._displayed:
            display(obj.widget)
            obj._displayed = True


def plot(v, f=None, c=None, uv=None, n=None, shading: dict | None = None, plot: Viewer | None = None,
         return_plot: bool = True, filename: str = "", texture_data=None, display: bool = True) -> Viewer:
    """meshplot's ``plot``: a new viewer (or ``plot=`` an existing one, reset) showing one object.

    ``f=None`` draws a point cloud, (K, 2) ``f`` draws edges, (F, 3) ``f`` a mesh. In IPython the
    viewer is shown when the cell finishes (``display=False`` to skip); ``filename`` also saves it
    as HTML. Unlike meshplot the viewer is always returned (``return_plot`` is accepted and ignored).
    """
    shading = dict(shading or {})
    settings = {k: shading.pop(k) for k in list(shading) if k in SETTINGS}
    view = plot if plot is not None else Viewer(settings)
    if plot is not None:
        view.reset()
    v_arr, f_arr = mesh_arrays(v, f)
    if f_arr is None:
        view.add_points(v_arr, c, shading=shading)
    elif f_arr.shape[1] == 2:
        view.add_edges(v_arr, f_arr, shading=shading, c=c)
    else:
        view.add_mesh(v_arr, f_arr, c, uv=uv, n=n, shading=shading, texture_data=texture_data)
    if filename:
        view.save(filename)
    if display and plot is None:
        _display(view)
    return view


class Subplot:
    """A grid of viewers (meshplot's ``subplot`` result), with optional row / column labels."""

    def __init__(self, rows: int, cols: int, row_labels=None, col_labels=None):
        self.shape = (rows, cols)
        self.views: list[list[Viewer | None]] = [[None] * cols for _ in range(rows)]
        self.row_labels, self.col_labels = row_labels, col_labels
        self._widget = None
        self._displayed = False

    def __setitem__(self, idx: int, view: Viewer) -> None:
        r, c = divmod(int(idx), self.shape[1])
        if r >= self.shape[0]:
            raise IndexError(f"subplot index {idx} outside a {self.shape[0]}x{self.shape[1]} grid")
        self.views[r][c] = view
        if self._widget is not None:
            self._widget.children = self._cells()

    def _cells(self) -> list:
        import ipywidgets as w

        cells = []
        if self.col_labels:
            cells += [w.HTML("")] * bool(self.row_labels) + [w.HTML(f"<b>{html.escape(str(t))}</b>")
                                                             for t in self.col_labels]
        for r, row in enumerate(self.views):
            if self.row_labels:
                cells.append(w.HTML(f"<b>{html.escape(str(self.row_labels[r]))}</b>"))
            cells += [v.widget if v is not None else w.HTML("") for v in row]
        return cells

    @property
    def widget(self):
        if self._widget is None:
            import ipywidgets as w

            cols = ("max-content " if self.row_labels else "") + " ".join(["max-content"] * self.shape[1])
            self._widget = w.GridBox(self._cells(), layout=w.Layout(grid_template_columns=cols))
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        if self._displayed:
            return {"text/plain": repr(self)}
        self._displayed = True
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        n = sum(v is not None for row in self.views for v in row)
        return f"<symnb.viz.Subplot {self.shape[0]}x{self.shape[1]}, {n} viewers>"

    def to_html(self, imports: bool = True, html_frame: bool = True, title: str = "symnb viewers") -> str:
        return standalone_html(self.views, title=title, row_labels=self.row_labels,
                               col_labels=self.col_labels)

    def save(self, filename: str | os.PathLike = "subplot.html") -> Path:
        return save_html(self.to_html(), filename)

    def to_matplotlib(self, elev=None, azim=None, cell_size: float = 3.0):
        titles = [[None] * self.shape[1] for _ in range(self.shape[0])]
        if self.col_labels:
            titles[0] = [str(t) for t in self.col_labels]
        fig = draw_static(self.views, elev=elev, azim=azim, titles=titles,
                           figsize=(cell_size * self.shape[1], cell_size * self.shape[0]))
        if self.row_labels:
            for r, label in enumerate(self.row_labels):
                fig.axes[r * self.shape[1]].text2D(-0.05, 0.5, str(label), rotation=90, va="center",
                                                   transform=fig.axes[r * self.shape[1]].transAxes)
        return fig


def subplot(v, f=None, c=None, uv=None, shading: dict | None = None, s=(1, 1, 0), data: Subplot | None = None,
            texture_data=None, display: bool = True) -> Subplot:
    """meshplot's ``subplot``: put a new viewer at index ``s[2]`` of an ``s[0]`` x ``s[1]`` grid.

    The first call (``data=None``) creates (and in IPython displays) the grid; pass its result as
    ``data`` to fill the other cells, which then appear in the displayed grid.
    """
    shading = {"width": 300, "height": 300, **(shading or {})}
    view = plot(v, f, c, uv, shading=shading, texture_data=texture_data, display=False)
    grid = data if data is not None else Subplot(int(s[0]), int(s[1]))
    if tuple(grid.shape) != (int(s[0]), int(s[1])):
        raise ValueError(f"s={list(s)} does not match the existing {grid.shape} grid")
    grid[int(s[2])] = view
    if data is None and display:
        _display(grid)
    return grid

# ----------------------------------------------------------------------------- research helpers
def add_bbox(view: Viewer, verts, shading: dict | None = None, obj: int | None = None) -> int:
    """Draw the axis-aligned bounding box of ``verts`` (N, 3) as 12 edges; returns its object id."""
    v, _ = mesh_arrays(verts)
    lo, hi = v.min(0), v.max(0)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    edges = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7],
                      [0, 4], [1, 5], [2, 6], [3, 7]])
    return view.add_edges(corners, edges, shading=shading, obj=obj)


def add_path(view: Viewer, points, c="red", shading: dict | None = None) -> tuple[int, int]:
    """Highlight a polyline through ``points`` (N, 3): its segments and its points. Returns both ids."""
    p, _ = mesh_arrays(points)
    sh = {"line_color": c, "point_color": c, **(shading or {})}
    return view.add_lines(p[:-1], p[1:], shading=sh), view.add_points(p, shading=sh)


def plot_overlay(pred_v, pred_f, gt_v, gt_f=None, opacity: float = 0.35, pred_color="#d62728",
                 gt_color="#bbbbbb", view: Viewer | None = None, display: bool = True) -> Viewer:
    """Prediction drawn transparent over the solid ground truth (the research's overlay figure)."""
    view = view if view is not None else Viewer()
    gt_v, gt_f = mesh_arrays(gt_v, gt_f)
    view.add_mesh(gt_v, gt_f, c=gt_color)
    view.add_mesh(pred_v, pred_f, c=pred_color, shading={"opacity": opacity})
    if display:
        _display(view)
    return view


def plot_symmetry_plane(view: Viewer, symmetry=None, normal=(1.0, 0.0, 0.0), point=(0.0, 0.0, 0.0),
                        size: float | None = None, color="#1f77b4", opacity: float = 0.3) -> int:
    """Draw a symmetry as a translucent square plane or, for rotations, as an axis line.

    ``symmetry``: any object with ``kind``, ``normal``, ``point`` (and ``order``), e.g.
    ``symnb.symmetry.Symmetry``; a kind containing "rot" or "axis" is drawn as the axis through
    ``point`` along ``normal``, anything else as the plane through ``point`` with that ``normal``.
    ``size``: side of the square / length of the axis (default 1.2 scene diagonals).
    """
    kind = "reflection"
    if symmetry is not None:
        kind = str(getattr(symmetry, "kind", "reflection"))
        normal, point = symmetry.normal, symmetry.point
    n = as_numpy(normal, np.float64).reshape(3)
    if not np.isfinite(n).all() or np.linalg.norm(n) < 1e-12:
        raise ValueError(f"symmetry normal must be a finite non-zero 3-vector, got {n}")
    n = n / np.linalg.norm(n)
    p = as_numpy(point, np.float64).reshape(3)
    size = size or 1.2 * view._diag()
    if "rot" in kind.lower() or "axis" in kind.lower():
        return view.add_lines(p - n * size / 2, p + n * size / 2,
                              shading={"line_color": color, "line_width": 3.0})
    a = np.cross(n, [0.0, 1.0, 0.0] if abs(n[1]) < 0.9 else [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(n, a)
    corners = np.array([p + size / 2 * (sa * a + sb * b) for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    return view.add_mesh(corners, np.array([[0, 1, 2], [0, 2, 3]]), c=color,
                         shading={"opacity": opacity, "flat": True})


def distance_to_mesh(points, verts, faces=None) -> np.ndarray:
    """Per-point Euclidean distance (N,) from ``points`` (N, 3) to a triangle mesh's surface.

    Exact point-to-triangle distances (:func:`symnb.geometry.point_mesh_closest`); with
    ``faces=None`` the distance to the nearest of ``verts`` (a point cloud, scipy KD-tree).
    """
    import torch

    from .geometry import point_mesh_closest

    pts, _ = mesh_arrays(points)
    v, f = mesh_arrays(verts, faces)
    if f is None:
        from scipy.spatial import cKDTree

        return cKDTree(v).query(pts)[0].astype(np.float32)
    dist = point_mesh_closest(torch.from_numpy(pts), torch.from_numpy(v), torch.from_numpy(f).long())[0]
    return dist.numpy().astype(np.float32)


def reflect(verts, normal=(1.0, 0.0, 0.0), point=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Mirror ``verts`` (N, 3) across the plane through ``point`` with ``normal`` (numpy in, numpy out)."""
    import torch

    from .symmetry import reflect as reflect_torch

    v, _ = mesh_arrays(verts)
    n, p = as_numpy(normal, np.float64).reshape(3), as_numpy(point, np.float64).reshape(3)
    return reflect_torch(torch.from_numpy(v).double(), n, p).numpy().astype(np.float32)


def symmetry_error(verts, faces, normal=(1.0, 0.0, 0.0), point=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Per-vertex geometric symmetry error (V,): distance of each mirrored vertex to the surface."""
    v, f = mesh_arrays(verts, faces)
    return distance_to_mesh(reflect(v, normal, point), v, f)


def plot_error(verts, faces, ref_verts=None, ref_faces=None, error=None, colormap: str = "plasma",
               vmax: float | None = None, view: Viewer | None = None, display: bool = True) -> Viewer:
    """Heat map of a per-vertex error: ``error`` (V,), or the distance to ``ref_verts``/``ref_faces``."""
    v, f = mesh_arrays(verts, faces)
    if error is None:
        if ref_verts is None:
            raise ValueError("plot_error needs `error` or a reference mesh")
        error = distance_to_mesh(v, ref_verts, ref_faces)
    view = view if view is not None else Viewer()
    view.add_mesh(v, f, c=as_numpy(error, np.float32),
                  shading={"colormap": colormap, "normalize": [0.0, vmax]})
    if display:
        _display(view)
    return view


def mesh_table(meshes, row_labels=None, col_labels=None, colors=None, shading: dict | None = None,
               size: int = 220, display: bool = True) -> Subplot:
    """A grid of meshes (e.g. samples x variants): ``meshes[r][c]`` is ``(v, f)``, a Meshes, or None.

    ``colors[r][c]`` (optional) is passed as ``c`` to each cell. Returns a :class:`Subplot`.
    """
    rows = len(meshes)
    cols = max((len(r) for r in meshes), default=0)
    if rows == 0 or cols == 0:
        raise ValueError("mesh_table needs at least one mesh")
    grid = Subplot(rows, cols, row_labels=row_labels, col_labels=col_labels)
    for r, row in enumerate(meshes):
        for c, m in enumerate(row):
            if m is None:
                continue
            v, f = (m, None) if hasattr(m, "verts_list") else m
            col = None if colors is None else colors[r][c]
            grid[r * cols + c] = plot(v, f, col, shading={"width": size, "height": size, **(shading or {})},
                                      display=False)
    if display:
        _display(grid)
    return grid


def render_static(verts, faces=None, c=None, uv=None, shading: dict | None = None, texture_data=None,
                  elev: float | None = None, azim: float | None = None, figsize=(5, 5), title=None):
    """A static matplotlib Figure of one mesh / point cloud / edge set (same arguments as :func:`plot`)."""
    view = plot(verts, faces, c, uv, shading=shading, texture_data=texture_data, display=False)
    return view.to_matplotlib(elev=elev, azim=azim, figsize=figsize, title=title)
