"""symnb.viz and symnb.widgets: input handling, colours, geometry helpers against closed forms and
brute force, the viewer's bookkeeping, the standalone HTML payload and the matplotlib pictures."""

from __future__ import annotations

import base64
import json
import re

import matplotlib
import numpy as np
import pytest
import torch
from pytorch3d.structures import Meshes
from pytorch3d.utils import ico_sphere
from scipy.spatial.transform import Rotation

from symnb import viz, widgets

matplotlib.use("Agg")


@pytest.fixture
def sphere():
    m = ico_sphere(2)
    return m.verts_list()[0], m.faces_list()[0]


def _payload(page: str) -> dict:
    m = re.search(r"var D = (\{.*?\});\n", page, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def _decode(s: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=dtype)


# ------------------------------------------------------------------------------------------ inputs
def test_mesh_arrays_accepts_numpy_torch_and_meshes(sphere):
    v, f = sphere
    a = viz.mesh_arrays(v.numpy(), f.numpy())
    b = viz.mesh_arrays(v, f)
    c = viz.mesh_arrays(Meshes([v], [f]))
    for x in (b, c):
        np.testing.assert_array_equal(a[0], x[0])
        np.testing.assert_array_equal(a[1], x[1])
    assert a[0].dtype == np.float32 and a[1].dtype == np.int64
    flat, _ = viz.mesh_arrays(np.ones((4, 2)))
    np.testing.assert_array_equal(flat[:, 2], 0)


@pytest.mark.parametrize(
    "verts, faces, match",
    [
        (np.ones((4, 4)), None, "shape"),
        (np.array([[0, 0, np.nan]] * 3), None, "NaN"),
        (np.zeros((3, 3)), np.array([[0, 1, 3]]), "span"),
        (np.zeros((3, 3)), np.array([[0.0, 1.0, 2.0]]), "integer"),
    ],
)
def test_mesh_arrays_rejects_bad_input(verts, faces, match):
    with pytest.raises(ValueError, match=match):
        viz.mesh_arrays(verts, faces)


def test_scalar_colors_follow_the_colormap():
    vals = np.array([0.0, 5.0, 10.0, np.nan, 20.0])
    rgb, lo, hi = viz.scalar_colors(vals, "viridis", vmax=10.0)
    cmap = matplotlib.colormaps["viridis"]
    assert (lo, hi) == (0.0, 10.0)
    np.testing.assert_allclose(rgb[0], cmap(0.0)[:3], atol=1e-6)
    np.testing.assert_allclose(rgb[1], cmap(0.5)[:3], atol=1e-6)
    np.testing.assert_allclose(rgb[4], cmap(1.0)[:3], atol=1e-6)  # clipped at vmax
    np.testing.assert_allclose(rgb[3], 0.5)  # NaN -> grey


def test_vertex_normals_of_a_sphere_point_outwards(sphere):
    v, f = (x.numpy() for x in sphere)
    n = viz.vertex_normals(v, f)
    cos = (n * v / np.linalg.norm(v, axis=1, keepdims=True)).sum(1)
    assert cos.min() > 0.99


def _numpy_vertex_normals(verts, faces):
    """The formula viz.vertex_normals had before it used PyTorch3D: summed face cross products."""
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@pytest.mark.parametrize("scale", [1.0, 1e-4, 1e3])
def test_vertex_normals_match_the_area_weighted_formula(sphere, scale):
    """Meshes.verts_normals_packed is the same area-weighted sum (renormalized for tiny meshes)."""
    v, f = (x.numpy() for x in sphere)
    v = (v + 0.1 * np.random.default_rng(0).normal(size=v.shape)).astype(np.float32) * scale
    v = np.concatenate([v, [[5.0 * scale, 0, 0]]]).astype(np.float32)  # a vertex on no face: (0, 0, 0)
    n = viz.vertex_normals(v, f)
    assert n.dtype == np.float32 and n.shape == v.shape
    np.testing.assert_allclose(n, _numpy_vertex_normals(v, f), atol=1e-5)
    np.testing.assert_array_equal(n[-1], 0)
    np.testing.assert_allclose(np.linalg.norm(n[:-1], axis=1), 1, atol=1e-5)
    unindexed = v[f].reshape(-1, 3)  # face-coloured meshes: per-face normals
    idx = np.arange(len(unindexed)).reshape(-1, 3)
    np.testing.assert_allclose(viz.vertex_normals(unindexed, idx), _numpy_vertex_normals(unindexed, idx),
                               atol=1e-5)
    np.testing.assert_allclose(viz.vertex_normals(v.astype(np.float64), f), n, atol=1e-5)
    np.testing.assert_array_equal(viz.vertex_normals(v, f[:0]), np.zeros_like(v))


def test_unique_edges_match_numpy_unique(sphere):
    """Meshes.edges_packed gives np.unique's sorted (i < j) edges."""
    v, f = (x.numpy() for x in sphere)
    for faces in (f, np.arange(3 * len(f)).reshape(-1, 3), f[:0]):
        old = np.unique(np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1), axis=0)
        np.testing.assert_array_equal(viz._unique_edges(faces), old)
        assert viz._unique_edges(faces).dtype == np.int64
    assert len(viz._unique_edges(f, v)) == 3 * len(f) // 2  # closed surface: E = 3F / 2
    o = viz.plot(v, f, shading={"wireframe": True}, display=False).objects[0]
    np.testing.assert_array_equal(o.wireframe_edges(), viz._unique_edges(f))


def test_public_names_survive_the_split():
    """Everything importable from the single symnb/viz.py module is importable from the package."""
    names = ("plot subplot Viewer Subplot SceneObject SETTINGS SHADING as_numpy mesh_arrays scalar_colors "
             "colorbar_html vertex_normals look_at_quaternion add_bbox add_path plot_overlay "
             "plot_symmetry_plane distance_to_mesh reflect symmetry_error plot_error mesh_table "
             "render_static b64 save_html standalone_html three_js_source draw_static foreground_fraction "
             "object_faces rgb _PENDING _checkers _disc _display _flush_pending _headlight _mesh_object "
             "_point_colors _rgba _three _unique_edges").split()
    assert [n for n in names if not hasattr(viz, n)] == []
    assert callable(viz.subplot) and callable(viz.plot)  # not shadowed by submodules
    assert viz.PAGE_TEMPLATE.is_file() and viz.PAGE_TEMPLATE.parent.name == "viz"


# ------------------------------------------------------------------------------------------ geometry
def test_distance_to_mesh_closed_form_triangle():
    tri_v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    tri_f = np.array([[0, 1, 2]])
    pts = np.array([[0.2, 0.2, 0.3],  # above the interior: |z|
                    [0.1, 0.1, -0.7],
                    [2.0, 0.0, 0.0],  # beyond vertex (1, 0, 0): distance 1
                    [0.5, -1.0, 0.0],  # below edge y = 0: distance 1
                    [1.0, 1.0, 0.0]])  # beyond the hypotenuse: sqrt(2)/2
    expected = [0.3, 0.7, 1.0, 1.0, np.sqrt(2) / 2]
    np.testing.assert_allclose(viz.distance_to_mesh(pts, tri_v, tri_f), expected, atol=1e-5)


def test_distance_to_point_cloud_matches_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(300, 3))
    brute = np.linalg.norm(a[:, None] - b[None], axis=-1).min(1)
    np.testing.assert_allclose(viz.distance_to_mesh(a, b), brute, rtol=1e-5)


def test_distance_to_sphere_surface_is_radial(sphere):
    v, f = sphere
    dirs = torch.nn.functional.normalize(torch.randn(50, 3), dim=1)
    d = viz.distance_to_mesh(1.5 * dirs, v, f)
    # the icosphere is inscribed in the unit sphere: distance within [0.5, 0.5 + sagitta]
    assert d.min() >= 0.5 - 1e-5 and d.max() < 0.5 + 0.05


def test_reflect_and_symmetry_error(sphere):
    v, f = sphere
    x = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    n, p = np.array([1.0, 2.0, 2.0]) / 3, np.array([0.5, 0.0, 0.0])
    np.testing.assert_allclose(viz.reflect(viz.reflect(x, n, p), n, p), x, atol=1e-5)
    y = viz.reflect(x, n, p)
    np.testing.assert_allclose((x - p) @ n, -((y - p) @ n), atol=1e-5)  # signed distance flips
    assert viz.symmetry_error(v, f, normal=(1, 0, 0)).max() < 1e-5  # the icosphere is x-symmetric
    squashed = v.clone()
    squashed[squashed[:, 0] > 0, 0] *= 0.7  # the x > 0 half pushed in: asymmetric about x = 0
    err = viz.symmetry_error(squashed, f, normal=(1, 0, 0))
    assert err.max() > 0.2 and viz.symmetry_error(squashed, f, normal=(0, 1, 0)).max() < 1e-5


def test_mirror_symmetrize_modes(sphere):
    v, f = sphere
    noisy = v + 0.02 * torch.randn_like(v)
    base = viz.symmetry_error(noisy, f).mean()
    for mode in ("l2r", "r2l"):
        out = widgets.mirror_symmetrize(noisy, mode)
        assert viz.symmetry_error(out, f).mean() < 0.05 * base  # one side copied: symmetric
    left = noisy[:, 0] > 0
    np.testing.assert_array_equal(widgets.mirror_symmetrize(noisy, "l2r")[left.numpy()], noisy[left].numpy())
    cent = widgets.mirror_symmetrize(noisy, "cent")
    assert viz.symmetry_error(cent, f).mean() < 0.05 * base
    np.testing.assert_array_equal(widgets.mirror_symmetrize(noisy, "none"), noisy.numpy())
    with pytest.raises(ValueError, match="mode"):
        widgets.mirror_symmetrize(noisy, "up")


def test_camera_sees_the_whole_scene(sphere):
    v, f = sphere
    view = viz.Viewer({"view": (1.0, -2.0, 0.5)})
    view.add_mesh(v * torch.tensor([3.0, 1.0, 0.5]) + 7, f)
    cam = view.camera()
    eye, target = np.array(cam["position"]), np.array(cam["target"])
    lo, hi = view._bounds()
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    axis = (target - eye) / np.linalg.norm(target - eye)
    rays = (corners - eye) / np.linalg.norm(corners - eye, axis=1, keepdims=True)
    assert np.degrees(np.arccos(rays @ axis)).max() < cam["fov"] / 2
    np.testing.assert_allclose(axis, -np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5]))
    # the quaternion turns three.js's camera (looking down -z, y up) onto that axis
    q = viz.look_at_quaternion(eye, target)
    np.testing.assert_allclose(Rotation.from_quat(q).apply([0, 0, -1]), axis, atol=1e-9)
    assert Rotation.from_quat(q).apply([1, 0, 0])[1] == pytest.approx(0, abs=1e-9)  # no roll


# ------------------------------------------------------------------------------------------ viewer
def test_plot_dispatches_on_faces(sphere):
    v, f = sphere
    pts = viz.plot(v, None, display=False)
    assert [o.kind for o in pts.objects.values()] == ["points"]
    edges = torch.tensor([[0, 1], [2, 3]])
    e = viz.plot(v, edges, display=False).objects[0]
    assert e.kind == "lines" and e.position.shape == (4, 3)
    np.testing.assert_array_equal(e.position[2:], v[[2, 3]].numpy())
    mesh = viz.plot(v, f, c=v[:, 1], display=False).objects[0]
    assert mesh.kind == "mesh" and mesh.colorbar == ("viridis", pytest.approx(-1.0, abs=1e-3),
                                                    pytest.approx(1.0, abs=1e-3))


def test_face_colours_unindex_the_mesh(sphere):
    v, f = sphere
    c = np.arange(len(f), dtype=float)
    o = viz.plot(v, f, c=c, display=False).objects[0]
    assert o.position.shape == (3 * len(f), 3) and o.color.shape == (3 * len(f), 3)
    np.testing.assert_array_equal(o.position.reshape(-1, 3, 3), v[f].numpy())
    np.testing.assert_array_equal(o.color[0::3], o.color[1::3])  # one colour per face
    rgb = viz.plot(v, f, c="red", display=False).objects[0]
    assert rgb.base_color == "#ff0000" and rgb.color is None
    with pytest.raises(ValueError, match="match neither"):
        viz.plot(v, f, c=np.ones(7), display=False)


def test_viewer_methods(sphere):
    v, f = sphere
    view = viz.Viewer()
    m = view.add_mesh(v, f, shading={"bbox": True})
    p = view.add_points(v[:5], c=np.arange(5.0))
    t = view.add_text("hello")
    assert sorted(view.objects) == [0, 1, 2, 3] and view.objects[1].kind == "lines"  # the bbox
    assert len(view.objects[1].position) == 24
    other = viz.Viewer()
    np.testing.assert_array_equal(view.objects[1].position, other.objects[viz.add_bbox(other, v)].position)
    view.update_object(m, vertices=v * 2)
    np.testing.assert_allclose(view.objects[m].position, 2 * v.numpy())
    view.update_object(p, colors="blue")
    assert view.objects[p].base_color == "#0000ff" and view.objects[p].color is None
    view.remove_object(m)  # takes its bounding box along
    assert sorted(view.objects) == [p, t]
    with pytest.raises(KeyError, match="valid ids"):
        view.remove_object(m)
    with pytest.raises(ValueError, match="unknown shading"):
        view.add_points(v, shading={"colour": "red"})
    view.reset()
    assert view.objects == {}


def test_widget_tracks_the_scene(sphere):
    v, f = sphere
    view = viz.plot(v, f, c=v[:, 0], display=False)
    w = view.widget
    assert "symnb-colorbar" in view._bars.value
    n0 = len(view._scene.children)
    i = view.add_points(v)
    assert len(view._scene.children) == n0 + 1 and view.objects[i].widget in view._scene.children
    view.remove_object(i)
    assert len(view._scene.children) == n0
    view.update_object(0, colors="red")
    assert view._bars.value == "" and w is view.widget


def test_standalone_html_is_offline_and_holds_the_data(sphere):
    v, f = sphere
    view = viz.plot(v, f, c=v[:, 2], display=False)
    page = view.to_html()
    assert 'REVISION="97"' in page  # three.js inlined
    assert not re.search(r"<script[^>]+src=", page) and "https://" not in page.split("var D")[1]
    data = _payload(page)
    obj = data["cells"][0]["scene"]["objects"][0]
    np.testing.assert_array_equal(_decode(obj["position"], np.float32).reshape(-1, 3), v.numpy())
    np.testing.assert_array_equal(_decode(obj["index"], np.uint32).reshape(-1, 3), f.numpy())
    assert len(data["cells"][0]["scene"]["colorbars"]) == 1


def test_texture_rows_flip_for_three_js(sphere):
    v, f = sphere
    img = np.zeros((4, 8, 3), np.uint8)
    img[0] = 255  # top row white
    uv = np.full((len(v), 2), 0.5, np.float32)
    view = viz.plot(v, f, uv=uv, texture_data=img, display=False)
    tex = view.scene_json()["objects"][0]["texture"]
    data = _decode(tex["data"], np.uint8).reshape(tex["h"], tex["w"], 4)
    assert (data[-1, :, :3] == 255).all() and (data[0, :, :3] == 0).all()  # v = 1 (top) is the last row
    top = viz.plot(v, f, uv=np.tile([[0.5, 1.0]], (len(v), 1)), texture_data=img, display=False)
    _, colours = viz.object_faces(top.objects[0], np.array([0.0, 0.0, 1.0], np.float32))
    assert colours[:, :3].min() > 0.4  # sampled from the white top row, then shaded


def test_subplot_and_mesh_table(sphere):
    v, f = sphere
    grid = viz.subplot(v, f, s=[2, 2, 0], display=False)
    viz.subplot(v, None, s=[2, 2, 3], data=grid, display=False)
    assert grid.views[0][0] is not None and grid.views[1][1].objects[0].kind == "points"
    assert grid.views[0][1] is None
    with pytest.raises(ValueError, match="does not match"):
        viz.subplot(v, f, s=[1, 2, 0], data=grid, display=False)
    with pytest.raises(IndexError):
        grid[4] = grid.views[0][0]
    table = viz.mesh_table([[(v, f), None], [Meshes([v], [f]), (v * 2, f)]], row_labels=["a", "b"],
                           col_labels=["x", "y"], display=False)
    assert table.shape == (2, 2) and table.views[0][1] is None
    data = _payload(table.to_html())
    assert sum(c["scene"] is not None for c in data["cells"]) == 3 and data["row_labels"] == ["a", "b"]
    assert len(table.widget.children) == 3 * 3  # labels row + column, 2x2 cells


def test_static_pictures_draw_the_mesh(sphere):
    v, f = sphere
    fig = viz.render_static(v, f, c="red")
    frac = viz.foreground_fraction(fig)
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    reddish = ((img[..., 0] > img[..., 1] + 60) & (img[..., 0] > img[..., 2] + 60)).mean()
    assert 0.05 < frac < 0.8 and reddish > 0.8 * frac
    empty = viz.Viewer().to_matplotlib()
    assert viz.foreground_fraction(empty) < 0.01
    shades = np.unique(img[(img[..., 0] > img[..., 1] + 60)][:, 0])
    assert len(shades) > 10  # Lambert shading, not a flat silhouette


def test_symmetry_plane_and_axis(sphere):
    v, f = sphere
    view = viz.plot(v, f, display=False)
    from types import SimpleNamespace

    plane = SimpleNamespace(kind="reflection", normal=torch.tensor([0.0, 0.0, 2.0]),
                            point=torch.tensor([0.0, 0.0, 0.1]), order=None)
    pid = viz.plot_symmetry_plane(view, plane)
    quad = view.objects[pid].source[0]
    np.testing.assert_allclose(quad[:, 2], 0.1, atol=1e-6)  # lies in the plane z = 0.1
    axis = SimpleNamespace(kind="rotation", normal=(0, 1, 0), point=(0, 0, 0), order=4)
    aid = viz.plot_symmetry_plane(view, axis)
    seg = view.objects[aid].position
    np.testing.assert_allclose(seg[:, [0, 2]], 0, atol=1e-6)
    with pytest.raises(ValueError, match="non-zero"):
        viz.plot_symmetry_plane(view, normal=(0, 0, 0))


# ------------------------------------------------------------------------------------------ widgets
class _FakeDataset:
    """The symnb.data.Pascal3DDataset item contract, with icospheres as CAD models."""

    def __len__(self):
        return 3

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"image": torch.rand(3, 16, 16, generator=g), "mask": torch.ones(1, 16, 16),
                "class_name": "car", "cad_idx": torch.tensor(i + 1), "id": f"car_{i}"}

    def cad_mesh(self, class_name, cad_idx):
        m = ico_sphere(int(cad_idx) - 1)
        return m.verts_list()[0], m.faces_list()[0]


def test_dataset_browser_follows_the_slider():
    b = widgets.DatasetBrowser(_FakeDataset(), size=64)
    assert b.item["id"] == "car_0" and len(b.viewer.objects[b.mesh_id].position) == 12
    b.slider.value = 2  # as a user would
    assert b.item["id"] == "car_2" and len(b.viewer.objects[b.mesh_id].position) == 162
    assert b.image.value[:4] == b"\x89PNG" and "car_2" in b.title.value
    assert viz.foreground_fraction(b.to_matplotlib()) > 0.05  # image, mask and mesh panels
    with pytest.raises(ValueError, match="non-empty"):
        widgets.DatasetBrowser([])


def test_reconstruction_comparer(sphere):
    v, f = sphere
    torch.manual_seed(0)
    noisy = v + 0.02 * torch.randn_like(v)
    cmp = widgets.ReconstructionComparer((v, f), {"baseline": (noisy, f), "exact": (v, f)})
    errs = cmp.set(mode="none")
    assert errs["exact"] < 1e-6
    assert errs["baseline"] == pytest.approx(float(viz.distance_to_mesh(noisy, v, f).mean()), rel=1e-6)
    assert cmp.set(mode="cent")["baseline"] < errs["baseline"]  # averaging with the mirror removes noise
    cmp.set(heat=True, plane=True)
    obj = cmp.views["baseline"].objects[cmp.ids["baseline"]]
    assert obj.colorbar is not None and len(cmp.views["GT"].objects) == 2
    cmp.plane.value = False  # the checkbox itself
    assert all(len(view.objects) == 1 for view in cmp.views.values())
    assert viz.foreground_fraction(cmp.to_matplotlib()) > 0.02
    cmp.mode.value = "l2r"
    np.testing.assert_allclose(cmp.views["baseline"].objects[cmp.ids["baseline"]].position,
                               widgets.mirror_symmetrize(noisy, "l2r"))


def test_symmetry_inspector(sphere):
    from types import SimpleNamespace

    v, f = sphere
    squashed = v.clone()
    squashed[squashed[:, 2] > 0, 2] *= 0.6  # keeps x = 0 symmetry, breaks z = 0
    syms = [SimpleNamespace(kind="reflection", normal=(1, 0, 0), point=(0, 0, 0), order=None, error=0.0),
            SimpleNamespace(kind="reflection", normal=(0, 0, 1), point=(0, 0, 0), order=None, error=0.3),
            SimpleNamespace(kind="rotation", normal=(0, 0, 1), point=(0, 0, 0), order=2, error=0.0)]
    ins = widgets.SymmetryInspector(squashed, f, syms)
    assert ins.error.max() < 1e-5
    assert ins.select(1).max() > 0.1
    ins.choice.value = 2  # 180 degrees about z keeps the squashed sphere: x -> -x, y -> -y
    assert ins.error.max() < 1e-5 and len(ins.viewer.objects) == 2
    assert viz.foreground_fraction(ins.to_matplotlib()) > 0.02
    empty = widgets.SymmetryInspector(v, f, [])
    assert empty.plane_id is None and "no symmetry" in empty.info.value


def test_rendered_samples_follow_the_dataset_contract(sphere):
    ds = widgets.RenderedSamples({"ball": [sphere]}, n=2, img_size=32)
    item = ds[1]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert 0.1 < float(item["mask"].mean()) < 0.9 and set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    v, _ = ds.cad_mesh(item["class_name"], item["cad_idx"])
    np.testing.assert_array_equal(v, sphere[0].numpy())


@pytest.mark.parametrize("view, right", [((0.0, 0.0, 1.0), "red"), ((0.0, 0.0, -1.0), "blue")])
def test_static_picture_keeps_handedness(view, right):
    """Seen from +z (three.js default: x right, y up) +x is on the right; seen from -z it is on the left."""
    v = viz.Viewer({"view": view})
    v.add_points([[1.0, 0.0, 0.0]], c="red", shading={"point_shape": "square"})
    v.add_points([[-1.0, 0.0, 0.0]], c="blue")
    v.add_points([[0.0, 1.0, 0.0]], c="lime")
    fig = v.to_matplotlib()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    where = {}
    for name, (r, g, b) in {"red": (255, 0, 0), "blue": (0, 0, 255), "lime": (0, 255, 0)}.items():
        ys, xs = np.nonzero(np.abs(img - [r, g, b]).max(-1) < 60)
        where[name] = (xs.mean(), ys.mean())
    left = "blue" if right == "red" else "red"
    assert where[right][0] > where[left][0] + 20
    assert where["lime"][1] < where["red"][1] - 20  # y up is up in the picture
