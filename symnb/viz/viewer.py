"""The viewer: :class:`Viewer` (a scene with meshplot's methods, shown as a pythreejs widget, saved
as standalone HTML, drawn with matplotlib), the deferred IPython display, and :func:`plot`."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np

from .html import b64, save_html, standalone_html
from .scene import (
    SETTINGS,
    SHADING,
    SceneObject,
    _box_edges,
    _mesh_object,
    _point_colors,
    _rgba,
    as_numpy,
    colorbar_html,
    mesh_arrays,
    vertex_normals,
)
from .static import draw_static
from .three import _headlight, _three, look_at_quaternion


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
            corners, edges = _box_edges(self.objects[oid].position)  # what research.add_bbox draws
            self.add_edges(corners, edges, shading={"line_color": sh["line_color"]}, obj=oid)
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


def render_static(verts, faces=None, c=None, uv=None, shading: dict | None = None, texture_data=None,
                  elev: float | None = None, azim: float | None = None, figsize=(5, 5), title=None):
    """A static matplotlib Figure of one mesh / point cloud / edge set (same arguments as :func:`plot`)."""
    view = plot(verts, faces, c, uv, shading=shading, texture_data=texture_data, display=False)
    return view.to_matplotlib(elev=elev, azim=azim, figsize=figsize, title=title)
