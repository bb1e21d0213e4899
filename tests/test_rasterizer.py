"""FastMeshRasterizer against PyTorch3D's MeshRasterizer: identical pix_to_face, equal zbuf / bary /
dists, equal gradients for vertices and camera parameters, over the option matrix; plus float64
finite differences of the recomputed quantities."""

from __future__ import annotations

import pytest
import torch
from pytorch3d.renderer import (
    FoVOrthographicCameras,
    FoVPerspectiveCameras,
    MeshRasterizer,
    RasterizationSettings,
    look_at_view_transform,
)
from pytorch3d.structures import Meshes
from pytorch3d.utils import ico_sphere

from symnb.camera import to_pytorch3d
from symnb.raster import FastMeshRasterizer, recompute_fragments

VALUE_TOL = 1e-6
GRAD_RTOL = 1e-5


def _mesh(batch: int, level: int = 2, hetero: bool = False, noise: float = 0.08) -> Meshes:
    """Noisy icospheres (320 faces at level 2); hetero mixes levels 1 and 2 (80 / 320 faces)."""
    verts, faces = [], []
    for b in range(batch):
        s = ico_sphere(1 if hetero and b % 2 else level)
        verts.append(s.verts_packed() + noise * torch.randn(s.verts_packed().shape))
        faces.append(s.faces_packed())
    return Meshes(verts, faces)


def _cameras(kind: str, batch: int, params: dict):
    """Cameras whose parameters are leaves in ``params`` (gradients are compared for them)."""
    if kind == "weak":  # symnb.camera's weak-perspective camera (orthographic PyTorch3D cameras)
        params["scale"] = (0.7 + 0.3 * torch.rand(batch)).requires_grad_(True)
        params["trans"] = (0.2 * torch.randn(batch, 2)).requires_grad_(True)
        params["quat"] = torch.nn.functional.normalize(torch.randn(batch, 4), dim=1).requires_grad_(True)
        return to_pytorch3d(params["scale"], params["trans"], params["quat"])
    R, T = look_at_view_transform(2.2, torch.rand(batch) * 60 - 30, torch.rand(batch) * 360)
    params["T"] = T.requires_grad_(True)
    if kind == "fov":
        return FoVPerspectiveCameras(R=R, T=params["T"], fov=45.0)
    return FoVOrthographicCameras(R=R, T=params["T"], scale_xyz=((1.3, 1.3, 1.3),))


def _lookat(cls, dist, elev, azim):
    R, T = look_at_view_transform(dist, elev, azim)
    return cls(R=R, T=T)


def _run(cls, meshes, cam_kind, rs, seed=0):
    torch.manual_seed(seed)
    B = len(meshes)
    params = {}
    cams = _cameras(cam_kind, B, params)
    verts = meshes.verts_padded().detach().clone().requires_grad_(True)
    m = meshes.update_padded(verts)
    rast = cls(cameras=cams, raster_settings=rs)
    frags = rast(m)
    return rast, m, frags, verts, params


def _compare(meshes, cam_kind, rs):
    """Stock vs fast on random cameras of `cam_kind`: values, and gradients wrt verts and camera params."""
    _, _, a, a_verts, a_par = _run(MeshRasterizer, meshes, cam_kind, rs)
    _, _, b, b_verts, b_par = _run(FastMeshRasterizer, meshes, cam_kind, rs)
    _assert_same(a, b, {"verts": a_verts, **a_par}, {"verts": b_verts, **b_par})
    return a


def _compare_fixed(meshes, cams, rs):
    """Stock vs fast with the given cameras (gradients wrt verts); returns both Fragments."""
    runs = []
    for cls in (MeshRasterizer, FastMeshRasterizer):
        verts = meshes.verts_padded().detach().clone().requires_grad_(True)
        runs.append((cls(cameras=cams, raster_settings=rs)(meshes.update_padded(verts)), {"verts": verts}))
    (a, a_leaves), (b, b_leaves) = runs
    _assert_same(a, b, a_leaves, b_leaves)
    return a, b


def _assert_same(a, b, a_leaves: dict, b_leaves: dict):
    """Identical pix_to_face, values within VALUE_TOL, gradients of a random linear loss within GRAD_RTOL."""
    assert torch.equal(a.pix_to_face, b.pix_to_face)
    assert (a.pix_to_face >= 0).any(), "degenerate test case: nothing rasterized"
    for name in ("zbuf", "bary_coords", "dists"):
        diff = (getattr(a, name) - getattr(b, name)).abs().max().item()
        assert diff <= VALUE_TOL, f"{name} differs by {diff}"
    g = torch.Generator().manual_seed(1)
    up = {n: torch.randn(getattr(a, n).shape, generator=g) for n in ("zbuf", "bary_coords", "dists")}
    grads = []
    for frags, leaves in ((a, a_leaves), (b, b_leaves)):
        loss = sum((getattr(frags, n) * u).sum() for n, u in up.items())
        grads.append(torch.autograd.grad(loss, list(leaves.values())))
    for name, ga, gb in zip(a_leaves, *grads, strict=True):
        rel = ((ga - gb).abs().max() / ga.abs().max().clamp(min=1e-12)).item()
        assert rel <= GRAD_RTOL, f"gradient wrt {name}: relative difference {rel}"


CASES = [
    # (camera, image_size, blur_radius, faces_per_pixel, extra settings)
    ("fov", 16, 0.0, 1, {}),
    ("fov", 24, 0.0, 5, {}),
    ("fov", 20, 2e-3, 5, {}),  # perspective_correct and clip_barycentric_coords on by default
    ("fov", 20, 2e-3, 8, {"perspective_correct": False}),
    ("fov", 20, 2e-3, 8, {"clip_barycentric_coords": False}),
    ("fov", 16, 0.0, 3, {"clip_barycentric_coords": True}),
    ("fov", 20, 1e-3, 50, {}),
    ("fov", 20, 2e-3, 5, {"cull_backfaces": True}),
    ("ortho", 16, 0.0, 1, {}),
    ("ortho", 20, 2e-3, 25, {}),
    ("ortho", 20, 2e-3, 5, {"perspective_correct": True}),
    ("ortho", 16, 1e-3, 4, {"cull_backfaces": True, "clip_barycentric_coords": False}),
    ("weak", 16, 0.0, 1, {}),
    ("weak", 20, 1e-3, 25, {}),
    ("weak", (16, 24), 1e-3, 5, {}),  # non-square: the longer side spans a wider NDC range
    ("fov", (20, 12), 2e-3, 5, {}),
]


@pytest.fixture(params=["numba", "torch"])
def backend(request, monkeypatch):
    """Both CPU implementations of the fast rasterizer (compiled loops, vectorised tensor operations)."""
    import symnb.raster.rasterizer as sr

    monkeypatch.setattr(sr, "CPU_BACKEND", request.param)
    return request.param


@pytest.mark.parametrize("cam_kind,size,blur,fpp,extra", CASES)
def test_matches_pytorch3d(cam_kind, size, blur, fpp, extra, backend):
    rs = RasterizationSettings(image_size=size, blur_radius=blur, faces_per_pixel=fpp, **extra)
    _compare(_mesh(2), cam_kind, rs)


@pytest.mark.parametrize("cam_kind", ["fov", "weak"])
def test_heterogeneous_batch(cam_kind, backend):
    rs = RasterizationSettings(image_size=20, blur_radius=2e-3, faces_per_pixel=6)
    a = _compare(_mesh(3, hetero=True), cam_kind, rs)
    assert a.pix_to_face.max() >= 320  # faces of the later meshes are indexed in packed order


def test_z_clipping_of_faces_crossing_the_near_plane():
    """A perspective camera inside the mesh: faces crossing z = znear / 2 are clipped and split."""
    from pytorch3d.renderer.mesh.clip import ClipFrustum, clip_faces

    torch.manual_seed(0)
    mesh = _mesh(1, level=2, noise=0.0)
    R, T = look_at_view_transform(0.7, 10.0, 30.0)  # closer than the unit sphere's surface
    cams = FoVPerspectiveCameras(R=R, T=T, fov=60.0, znear=0.5)
    rs = RasterizationSettings(image_size=16, faces_per_pixel=3)
    mp = MeshRasterizer(cameras=cams).transform(mesh)
    clipped = clip_faces(
        mp.verts_packed()[mp.faces_packed()], mp.mesh_to_faces_packed_first_idx(),
        mp.num_faces_per_mesh(), ClipFrustum(z_clip_value=0.25, perspective_correct=True),
    )
    assert (clipped.clipped_faces_neighbor_idx >= 0).any(), "no face was split: test not exercised"
    _compare_fixed(mesh, cams, rs)


def test_depth_ties_keep_pytorch3d_order(backend):
    """Coincident duplicated faces tie in depth: the lower face index must come first."""
    s = ico_sphere(1)
    f = s.faces_packed()
    mesh = Meshes([s.verts_packed()], [torch.cat([f, f.flip(0)])])
    rs = RasterizationSettings(image_size=16, faces_per_pixel=4, blur_radius=1e-3)
    cams = _lookat(FoVOrthographicCameras, 2.0, 20.0, 40.0)
    a = MeshRasterizer(cameras=cams, raster_settings=rs)(mesh)
    b = FastMeshRasterizer(cameras=cams, raster_settings=rs)(mesh)
    assert torch.equal(a.pix_to_face, b.pix_to_face)


def test_kernel_forward_option_and_stock_mode_agree():
    mesh = _mesh(2)
    rs = RasterizationSettings(image_size=16, blur_radius=1e-3, faces_per_pixel=5)
    cams = _lookat(FoVPerspectiveCameras, 2.2, 10.0, 60.0)
    ref = MeshRasterizer(cameras=cams, raster_settings=rs)(mesh)
    for kw in ({"vectorised_forward": False}, {"mode": "stock"}):
        out = FastMeshRasterizer(cameras=cams, raster_settings=rs, **kw)(mesh)
        assert torch.equal(ref.pix_to_face, out.pix_to_face)
        assert torch.equal(ref.zbuf, out.zbuf)
    with pytest.raises(ValueError, match="mode"):
        FastMeshRasterizer(cameras=cams, raster_settings=rs, mode="gpu")


@pytest.mark.parametrize("pc,clip", [(False, False), (True, False), (True, True), (False, True)])
def test_gradcheck_float64(pc, clip):
    """Finite differences in float64 of zbuf, barycentrics and distances w.r.t. face vertices."""
    torch.manual_seed(3)
    mesh = _mesh(1, level=0, noise=0.05)
    cams = _lookat(FoVPerspectiveCameras, 2.0, 15.0, 25.0)
    rs = RasterizationSettings(image_size=8, faces_per_pixel=3, blur_radius=1e-2 if clip else 0.0)
    rast = MeshRasterizer(cameras=cams, raster_settings=rs)
    mp = rast.transform(mesh)
    fv = mp.verts_packed()[mp.faces_packed()].detach().double()
    p2f = FastMeshRasterizer(cameras=cams, raster_settings=rs)(mesh).pix_to_face
    assert (p2f >= 0).sum() > 10
    fv.requires_grad_(True)

    def fn(x):
        return recompute_fragments(x, p2f, pc, clip)

    assert torch.autograd.gradcheck(fn, (fv,), eps=1e-7, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_float64_recompute_matches_float32():
    mesh = _mesh(1)
    cams = _lookat(FoVPerspectiveCameras, 2.2, 10.0, 60.0)
    rs = RasterizationSettings(image_size=16, faces_per_pixel=2)
    rast = FastMeshRasterizer(cameras=cams, raster_settings=rs)
    frags = rast(mesh)
    mp = rast.transform(mesh)
    fv = mp.verts_packed()[mp.faces_packed()]
    z64, b64, d64 = recompute_fragments(fv.double(), frags.pix_to_face, True, False)
    assert z64.dtype == torch.float64
    assert torch.allclose(z64.float(), frags.zbuf, atol=1e-5)
    assert torch.allclose(b64.float(), frags.bary_coords, atol=1e-4)


def test_cull_to_frustum_and_empty_meshes():
    """A mesh half outside the view (culled faces), an empty mesh, and one entirely out of view."""
    s = ico_sphere(2)
    meshes = Meshes(
        [s.verts_packed() + torch.tensor([0.9, 0.0, 0.0]), torch.zeros(0, 3), s.verts_packed() + 20.0],
        [s.faces_packed(), torch.zeros(0, 3, dtype=torch.int64), s.faces_packed()],
    )
    R, T = look_at_view_transform(2.5, 0.0, 0.0)
    cams = FoVPerspectiveCameras(R=R, T=T)
    rs = RasterizationSettings(image_size=16, faces_per_pixel=4, blur_radius=1e-3, cull_to_frustum=True)
    _, b = _compare_fixed(meshes, cams, rs)
    hits = (b.pix_to_face >= 0).sum(dim=(1, 2, 3))
    assert hits[0] > 0 and hits[1] == 0 and hits[2] == 0


def test_pair_backward_equals_kernel_backward_including_clamped_denominators():
    """recompute_fragments' backward against ``_C.rasterize_meshes_backward`` on the same pairs.

    Perspective correction with blur reaches pixels beyond some faces' horizon line, where the
    kernel clamps the perspective denominator at 1e-8 and its float32 backward is ill-conditioned;
    the kernel-order evaluation reproduces even those gradients.
    """
    from pytorch3d import _C

    from symnb.raster.kernels import edge_function, offset_area, pixel_centers, unpack

    torch.manual_seed(0)
    mesh = _mesh(2, level=2)
    R, T = look_at_view_transform(2.2, [10.0, -25.0], [60.0, 250.0])
    cams = FoVPerspectiveCameras(R=R, T=T)
    rs = RasterizationSettings(image_size=16, blur_radius=2e-3, faces_per_pixel=6)
    rast = MeshRasterizer(cameras=cams, raster_settings=rs)
    mp = rast.transform(mesh)
    fv = mp.verts_packed()[mp.faces_packed()].detach()
    p2f = rast(mesh).pix_to_face
    # some kept pairs have a clamped perspective denominator
    n, y, x, k = (p2f >= 0).nonzero().T
    v = fv[p2f[n, y, x, k]]
    px, py = pixel_centers(16, 16)[15 - x], pixel_centers(16, 16)[15 - y]
    x0, y0, z0, x1, y1, z1, x2, y2, z2 = unpack(v)
    area = offset_area(edge_function(x2, y2, x0, y0, x1, y1))
    w = [edge_function(px, py, *a) / area for a in ((x1, y1, x2, y2), (x2, y2, x0, y0), (x0, y0, x1, y1))]
    assert ((w[0] * z1 * z2 + w[1] * z0 * z2 + w[2] * z0 * z1) < 1e-8).any(), "no clamped pair: not exercised"
    g = torch.Generator().manual_seed(5)
    up = [torch.randn(s, generator=g) for s in (p2f.shape, (*p2f.shape, 3), p2f.shape)]
    for pc, clip in ((True, True), (True, False), (False, True), (False, False)):
        ref = _C.rasterize_meshes_backward(fv, p2f, up[0], up[1], up[2], pc, clip)
        x_ = fv.clone().requires_grad_(True)
        zbuf, bary, dists = recompute_fragments(x_, p2f, pc, clip)
        ours, = torch.autograd.grad((zbuf * up[0]).sum() + (bary * up[1]).sum() + (dists * up[2]).sum(), x_)
        assert (ours - ref).abs().max() <= 1e-6 * ref.abs().max(), (pc, clip)


def test_grouped_and_fallback_forward(monkeypatch):
    """Batches beyond MAX_PAIRS candidate pairs go in groups of meshes; one huge mesh uses the kernel."""
    import symnb.raster.pairs as rp
    import symnb.raster.rasterizer as sr

    monkeypatch.setattr(sr, "CPU_BACKEND", "torch")  # the grouping belongs to the vectorised forward
    mesh = _mesh(3, hetero=True)
    cams = _lookat(FoVPerspectiveCameras, 2.2, 10.0, 60.0)
    rs = RasterizationSettings(image_size=16, blur_radius=1e-3, faces_per_pixel=5)
    ref = MeshRasterizer(cameras=cams, raster_settings=rs)(mesh)
    calls = []
    top_k = rp._pairs_top_k
    monkeypatch.setattr(rp, "_pairs_top_k", lambda *a, **k: calls.append(a[1:3]) or top_k(*a, **k))
    for limit, n_groups in ((10**9, 1), (2000, 3), (10, 0)):  # 10: a single mesh exceeds the limit
        calls.clear()
        monkeypatch.setattr(sr, "MAX_PAIRS", limit)
        out = FastMeshRasterizer(cameras=cams, raster_settings=rs)(mesh)
        assert len(calls) == n_groups
        assert torch.equal(ref.pix_to_face, out.pix_to_face)
        assert torch.equal(ref.zbuf, out.zbuf) and torch.equal(ref.dists, out.dists)


@pytest.mark.parametrize("pc", [False, True])
def test_numba_and_torch_backends_agree_bit_for_bit(pc, monkeypatch):
    """The compiled loops and the tensor transcription: identical forward values, gradients up to the
    order of summation, on a training-sized batch (8 meshes, 64 px, blur, 8 faces per pixel)."""
    import symnb.raster.rasterizer as sr

    torch.manual_seed(2)
    mesh = _mesh(8, level=3, noise=0.03)
    rs = RasterizationSettings(image_size=64, blur_radius=9e-4, faces_per_pixel=8, perspective_correct=pc)
    runs = []
    for name in ("numba", "torch"):
        monkeypatch.setattr(sr, "CPU_BACKEND", name)
        runs.append(_run(FastMeshRasterizer, mesh, "weak", rs))
    (_, _, a, a_verts, a_par), (_, _, b, b_verts, b_par) = runs
    for name in ("pix_to_face", "zbuf", "bary_coords", "dists"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.pix_to_face[..., 7] >= 0).any(), "no pixel keeps 8 faces: the top-K insertion is not exercised"
    _assert_same(a, b, {"verts": a_verts, **a_par}, {"verts": b_verts, **b_par})


_RENDER_SCRIPT = """
import torch
from pytorch3d.renderer import FoVOrthographicCameras, RasterizationSettings
from pytorch3d.utils import ico_sphere
from symnb.raster import FastMeshRasterizer

def render(_=None):
    rs = RasterizationSettings(image_size=16, blur_radius=1e-3, faces_per_pixel=4)
    m = ico_sphere(1).extend(2)
    v = m.verts_padded().requires_grad_(True)
    frags = FastMeshRasterizer(FoVOrthographicCameras(), rs, mode="fast")(m.update_padded(v))
    frags.zbuf.sum().backward()
    return frags.pix_to_face, frags.zbuf.detach(), v.grad
"""


def _run_script(tmp_path, main: str) -> str:
    """stdout of a fresh Python process running :data:`_RENDER_SCRIPT` and then ``main``."""
    import subprocess
    import sys

    script = tmp_path / "render_script.py"
    script.write_text(_RENDER_SCRIPT + main)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_rasterizing_keeps_torch_thread_count_in_a_fresh_process(tmp_path):
    """numba's OpenMP layer shares torch's OpenMP runtime and sets its thread count to all cores when it
    starts (first rasterization of a process); the rasterizer puts torch's own setting back, so the
    one-thread processes of ``--jobs N`` stay on one core each."""
    out = _run_script(tmp_path, "torch.set_num_threads(1)\nassert (render()[0] >= 0).any()\n"
                                "print(torch.get_num_threads())\n")
    assert out.split()[-1] == "1"


def test_rasterizing_in_dataloader_workers_forked_after_the_parent_rasterized(tmp_path):
    """numba terminates a process forked from one that ran its OpenMP parallel loops if it runs them
    again; forked DataLoader workers that render (a dataset rendering on the fly) use the serial loops
    and get the parent's values and gradients exactly."""
    main = """
if __name__ == "__main__":
    parent = render()
    loader = torch.utils.data.DataLoader([0, 1], batch_size=1, num_workers=2, collate_fn=lambda b: render(),
                                         multiprocessing_context="fork", timeout=120)
    for child in loader:
        assert all(torch.equal(a, b) for a, b in zip(parent, child))
    print("ok")
"""
    assert _run_script(tmp_path, main).split()[-1] == "ok"
