"""Interactive viewers built from ipywidgets and :mod:`symnb.viz`: browse a dataset, compare
reconstructions, inspect detected symmetries.

Each class builds its widget tree at construction, exposes it as ``.widget`` (and displays itself
in a notebook), and has plain methods (``show``, ``set_mode``...) that do what the controls do, so
the same code runs headless (papermill, tests) and ``to_matplotlib()`` gives a static picture.
Inputs are plain arrays / tensors / callables, so the viewers work before the model exists.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from . import viz

MODES = ("none", "l2r", "r2l", "cent")
"""Symmetrisation modes: as predicted, left copied onto right, right onto left, both averaged.
"Left" is the x > 0 side of the plane (the normal's side), as in ``symnb.symmetry``."""


def png_bytes(img) -> bytes:
    """PNG of an image: (3, H, W) / (1, H, W) / (H, W) / (H, W, 3) float in [0, 1] or uint8."""
    from PIL import Image

    a = viz.as_numpy(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype.kind == "f":
        a = np.clip(np.nan_to_num(a) * 255 + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


class _Shown:
    """Notebook display through ``.widget``."""

    widget = None

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class DatasetBrowser(_Shown):
    """A sample slider over a dataset: image, mask and the sample's CAD mesh.

    ``dataset[i]`` is a dict with "image" (3, S, S) in [0, 1], "mask" (1, S, S), "class_name",
    "cad_idx" (and optionally "id"); ``dataset.cad_mesh(class_name, cad_idx) -> (verts, faces)``
    (the ``symnb.data.Pascal3DDataset`` contract).
    """

    def __init__(self, dataset, index: int = 0, size: int = 256):
        import ipywidgets as w

        if len(dataset) == 0:
            raise ValueError("DatasetBrowser needs a non-empty dataset")
        self.dataset = dataset
        self.slider = w.IntSlider(value=index, min=0, max=len(dataset) - 1, description="sample")
        self.title = w.HTML()
        self.image = w.Image(format="png", width=size, height=size)
        self.mask = w.Image(format="png", width=size, height=size)
        self.viewer = viz.Viewer({"width": size, "height": size})
        self.mesh_id: int | None = None
        self.slider.observe(lambda ch: self.show(ch["new"]) if ch["new"] != self._index else None,
                            names="value")
        self._index = -1
        self.widget = w.VBox([self.slider, self.title, w.HBox([self.image, self.mask, self.viewer.widget])])
        self.show(index)

    def show(self, index: int) -> dict:
        """Display sample ``index``; returns its item dict."""
        item = self.dataset[int(index)]
        self.item, self._index = item, int(index)
        self.image.value = png_bytes(item["image"])
        self.mask.value = png_bytes(item["mask"])
        name, cad = item["class_name"], int(item["cad_idx"])
        v, f = self.dataset.cad_mesh(name, cad)
        if self.mesh_id is None:
            self.mesh_id = self.viewer.add_mesh(v, f, c="#9ecae1")
        else:
            self.viewer.update_object(self.mesh_id, vertices=v, faces=f)
            self.viewer._update_view()
        self.title.value = f"<b>{item.get('id', index)}</b>: {name}, CAD model {cad}"
        if self.slider.value != index:
            self.slider.value = int(index)
        return item

    def to_matplotlib(self):
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(9, 3))
        for k, key in enumerate(("image", "mask")):
            ax = fig.add_subplot(1, 3, k + 1)
            a = viz.as_numpy(self.item[key])
            ax.imshow(a.transpose(1, 2, 0).squeeze(-1) if a.shape[0] == 1 else a.transpose(1, 2, 0),
                      cmap="gray")
            ax.set_title(key)
            ax.axis("off")
        self.viewer.to_matplotlib(ax=fig.add_subplot(1, 3, 3, projection="3d"), title="CAD")
        return fig


def mirror_symmetrize(verts, mode: str, normal=(1.0, 0.0, 0.0), point=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The comparer's default symmetrization: :func:`symnb.symmetry.symmetrize_nearest` (approximate,
    nearest mirrored partners) for "l2r" / "r2l" / "cent"; "none" copies. Returns (V, 3) float32."""
    from .symmetry import symmetrize_nearest

    v, _ = viz.mesh_arrays(verts)
    if mode not in MODES:
        raise ValueError(f"unknown symmetry mode {mode!r}; expected one of {MODES}")
    if mode == "none":
        return v.copy()
    return symmetrize_nearest(v, mode, normal, point).numpy().astype(np.float32)


class ReconstructionComparer(_Shown):
    """GT and reconstructions side by side, with a symmetry-mode dropdown, an error heat map toggle
    and a symmetry-plane toggle.

    Args:
        gt: (verts (V, 3), faces (F, 3)) of the ground truth (or a Meshes).
        meshes: {name: (verts, faces)} reconstructions, e.g. {"baseline": ..., "reflection": ...}.
        symmetrize: ``fn(verts (V, 3), mode) -> verts`` (default :func:`mirror_symmetrize` about the
            plane), e.g. wrapping ``symnb.symmetry.symmetrize`` with a symmetry map.
        normal, point: the symmetry plane drawn and used by the default ``symmetrize``.
    """

    def __init__(self, gt, meshes: dict, symmetrize: Callable | None = None, normal=(1.0, 0.0, 0.0),
                 point=(0.0, 0.0, 0.0), size: int = 280, vmax: float | None = None):
        import ipywidgets as w

        self.gt = viz.mesh_arrays(*((gt, None) if hasattr(gt, "verts_list") else gt))
        self.meshes = {k: viz.mesh_arrays(*((m, None) if hasattr(m, "verts_list") else m))
                       for k, m in meshes.items()}
        self.normal, self.point = normal, point
        self.symmetrize = symmetrize or (lambda v, mode: mirror_symmetrize(v, mode, normal, point))
        self.vmax = vmax if vmax is not None else 0.05 * float(np.linalg.norm(np.ptp(self.gt[0], 0)))
        self.mode = w.Dropdown(options=MODES, value="none", description="symmetry")
        self.heat = w.Checkbox(value=False, description="error heat map")
        self.plane = w.Checkbox(value=False, description="show plane")
        self.stats = w.HTML()
        self.views = {"GT": viz.Viewer({"width": size, "height": size})}
        self.views["GT"].add_mesh(*self.gt, c="#bbbbbb")
        self.ids = {}
        for name, (v, f) in self.meshes.items():
            self.views[name] = viz.Viewer({"width": size, "height": size})
            self.ids[name] = self.views[name].add_mesh(v, f, c="#9ecae1")
        self.plane_ids: dict[str, int] = {}
        self.errors: dict[str, float] = {}
        self._quiet = False
        for c in (self.mode, self.heat, self.plane):
            c.observe(lambda _: None if self._quiet else self.refresh(), names="value")
        cols = [w.VBox([w.HTML(f"<b>{k}</b>"), v.widget]) for k, v in self.views.items()]
        self.widget = w.VBox([w.HBox([self.mode, self.heat, self.plane]), w.HBox(cols), self.stats])
        self.refresh()

    def current(self, name: str) -> np.ndarray:
        """Vertices (V, 3) of reconstruction ``name`` under the selected symmetry mode."""
        v, _ = self.meshes[name]
        return viz.as_numpy(self.symmetrize(v, self.mode.value), np.float32)

    def set(self, mode: str | None = None, heat: bool | None = None, plane: bool | None = None) -> dict:
        """Set the controls (as a user would) and return the mean distance to GT per mesh."""
        self._quiet = True
        try:
            if mode is not None:
                self.mode.value = mode
            if heat is not None:
                self.heat.value = heat
            if plane is not None:
                self.plane.value = plane
        finally:
            self._quiet = False
        self.refresh()
        return dict(self.errors)

    def refresh(self) -> None:
        rows = []
        for name in self.meshes:
            v = self.current(name)
            err = viz.distance_to_mesh(v, *self.gt)
            self.errors[name] = float(err.mean())
            view = self.views[name]
            view.objects[self.ids[name]].shading.update(colormap="plasma", normalize=[0.0, self.vmax])
            view.update_object(self.ids[name], vertices=v, colors=err if self.heat.value else "#9ecae1")
            rows.append(f"<tr><td>{name}</td><td>{err.mean():.4f}</td><td>{err.max():.4f}</td></tr>")
        for name, view in self.views.items():
            if self.plane.value and name not in self.plane_ids:
                self.plane_ids[name] = viz.plot_symmetry_plane(view, normal=self.normal, point=self.point)
            elif not self.plane.value and name in self.plane_ids:
                view.remove_object(self.plane_ids.pop(name))
        self.stats.value = ("<table><tr><th>mesh</th><th>mean dist. to GT</th><th>max</th></tr>"
                            + "".join(rows) + "</table>")

    def to_matplotlib(self):
        grid = viz.Subplot(1, len(self.views), col_labels=list(self.views))
        for i, view in enumerate(self.views.values()):
            grid[i] = view
        return grid.to_matplotlib()


class SymmetryInspector(_Shown):
    """Pick one of a mesh's detected symmetries: draws its plane (or axis) and colours the mesh by
    the per-vertex symmetry error about it.

    ``symmetries``: objects with ``kind``, ``normal``, ``point``, ``order`` (and optionally
    ``error``), e.g. the output of ``symnb.symmetry.detect_symmetries``.
    """

    def __init__(self, verts, faces, symmetries, size: int = 360, vmax: float | None = None):
        import ipywidgets as w

        self.verts, self.faces = viz.mesh_arrays(verts, faces)
        self.symmetries = list(symmetries)
        self.vmax = vmax if vmax is not None else 0.05 * float(np.linalg.norm(np.ptp(self.verts, 0)))
        labels = [(self._label(i, s), i) for i, s in enumerate(self.symmetries)]
        labels = labels or [("no symmetry found", -1)]
        self.choice = w.Dropdown(options=labels, value=labels[0][1], description="symmetry")
        self.info = w.HTML()
        self.viewer = viz.Viewer({"width": size, "height": size})
        self.mesh_id = self.viewer.add_mesh(self.verts, self.faces, c="#9ecae1")
        self.plane_id: int | None = None
        self.choice.observe(lambda ch: self.select(ch["new"]), names="value")
        self.widget = w.VBox([self.choice, self.viewer.widget, self.info])
        self.select(labels[0][1])

    @staticmethod
    def _label(i: int, s) -> str:
        n = np.round(viz.as_numpy(s.normal, np.float64).reshape(3), 3).tolist()
        order = getattr(s, "order", None)
        return f"{i}: {s.kind} n={n}" + (f" order {order}" if order else "")

    def select(self, index: int) -> np.ndarray | None:
        """Show symmetry ``index``; returns its per-vertex error (V,), None if there is none."""
        if self.plane_id is not None:
            self.viewer.remove_object(self.plane_id)
            self.plane_id = None
        if index < 0:
            self.info.value = "no symmetry to show"
            self.viewer.update_object(self.mesh_id, colors="#9ecae1")
            return None
        s = self.symmetries[index]
        kind = str(s.kind).lower()
        if "rot" in kind or "axis" in kind:  # rotation by 2 pi / order about the axis
            from scipy.spatial.transform import Rotation

            axis = viz.as_numpy(s.normal, np.float64).reshape(3)
            p = viz.as_numpy(s.point, np.float64).reshape(3)
            rot = Rotation.from_rotvec(axis / np.linalg.norm(axis) * 2 * np.pi / max(int(s.order or 2), 1))
            moved = rot.apply(self.verts - p) + p
            err = viz.distance_to_mesh(moved, self.verts, self.faces)
        else:
            err = viz.symmetry_error(self.verts, self.faces, s.normal, s.point)
        self.viewer.objects[self.mesh_id].shading.update(colormap="plasma", normalize=[0.0, self.vmax])
        self.viewer.update_object(self.mesh_id, colors=err)
        self.plane_id = viz.plot_symmetry_plane(self.viewer, s)
        reported = getattr(s, "error", None)
        self.info.value = (f"mean error {err.mean():.4g}, max {err.max():.4g}"
                           + (f" (detector reported {float(reported):.4g})" if reported is not None else ""))
        self.error = err
        return err

    def to_matplotlib(self):
        return self.viewer.to_matplotlib()


class RenderedSamples:
    """A tiny dataset with the ``symnb.data.Pascal3DDataset`` item contract, rendered on the fly.

    For demos and tests before (or without) a generated dataset: sample ``i`` is mesh
    ``meshes[class_name][cad_idx - 1]`` seen from a seeded random viewpoint, shaded with PyTorch3D.
    Items hold "image" (3, S, S) in [0, 1], "mask" (1, S, S) in {0, 1}, "class_name", "cad_idx"
    (1-based), "id"; ``cad_mesh(class_name, cad_idx) -> (verts, faces)``.
    """

    def __init__(self, meshes: dict, n: int = 4, img_size: int = 64, seed: int = 0):
        self.meshes = {k: [viz.mesh_arrays(*m) for m in v] for k, v in meshes.items()}
        rng = np.random.default_rng(seed)
        keys = [(c, i + 1) for c, ms in self.meshes.items() for i in range(len(ms))]
        if not keys:
            raise ValueError("RenderedSamples needs at least one mesh")
        self.index = [(*keys[k % len(keys)], float(rng.uniform(-30, 30)), float(rng.uniform(5, 35)))
                      for k in range(n)]
        self.img_size = img_size

    def __len__(self) -> int:
        return len(self.index)

    def cad_mesh(self, class_name: str, cad_idx: int):
        return self.meshes[class_name][int(cad_idx) - 1]

    def __getitem__(self, i: int) -> dict:
        import torch
        from pytorch3d.renderer import TexturesVertex
        from pytorch3d.structures import Meshes

        from .render import RenderSettings, make_cameras, shaded_renderer

        name, cad, azim, elev = self.index[i]
        v, f = self.cad_mesh(name, cad)
        v = torch.from_numpy(v)
        mesh = Meshes([v], [torch.from_numpy(f)], textures=TexturesVertex([torch.full_like(v, 0.7)]))
        cams = make_cameras(dist=2.2 * float(np.linalg.norm(np.ptp(v.numpy(), 0))), elev=elev, azim=azim)
        s = RenderSettings(image_size=self.img_size, faces_per_pixel=1)
        rgba = shaded_renderer(cams, s)(mesh)[0]
        return {"image": rgba[..., :3].clamp(0, 1).permute(2, 0, 1), "mask": (rgba[..., 3:] > 0.5).float()
                .permute(2, 0, 1), "class_name": name, "cad_idx": torch.tensor(cad), "id": f"{name}_{i:03d}"}
