"""Renderers: fast vs stock rasterizer inside whole renderers, closed forms, texture modes."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from pytorch3d.renderer import TexturesAtlas, TexturesUV, TexturesVertex
from pytorch3d.structures import Meshes
from pytorch3d.utils import ico_sphere

from symnb.camera import to_pytorch3d
from symnb.raster import FastMeshRasterizer
from symnb.render import (
    RenderSettings,
    make_cameras,
    shaded_renderer,
    silhouette_renderer,
    textured_renderer,
    uv_to_atlas,
)


def _uv_sphere(batch: int = 2, level: int = 2, maps: torch.Tensor | None = None) -> Meshes:
    """Icosphere with a spherical UV map (u = longitude, v = height) and a random texture."""
    s = ico_sphere(level)
    verts = s.verts_packed()[None].expand(batch, -1, -1).contiguous()
    faces = s.faces_packed()[None].expand(batch, -1, -1)
    u = torch.atan2(verts[..., 0], verts[..., 2]) / (2 * math.pi) + 0.5
    uv = torch.stack([u, verts[..., 1] * 0.5 + 0.5], -1)
    if maps is None:
        maps = torch.rand(batch, 16, 16, 3)
    return Meshes(verts=verts, faces=faces, textures=TexturesUV(maps=maps, faces_uvs=faces, verts_uvs=uv))


def _weak_cameras(batch: int, scale: float = 0.8):
    quat = torch.nn.functional.normalize(torch.randn(batch, 4), dim=1)
    return to_pytorch3d(torch.full((batch,), scale), torch.zeros(batch, 2), quat)


def test_settings_validation_and_blur_radius():
    s = RenderSettings(sigma=1e-4)
    assert s.blur_radius == pytest.approx(math.log(1e4 - 1) * 1e-4)
    assert RenderSettings(sigma=0.0).blur_radius == 0.0
    assert s.raster_settings(soft=False).faces_per_pixel == 1
    for bad in ({"image_size": 0}, {"sigma": -1.0}, {"lighting": "sun"}, {"rasterizer": "gpu"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RenderSettings(**bad)


def test_renderers_use_fast_rasterizer():
    cams = make_cameras()
    for r in (silhouette_renderer(cams), shaded_renderer(cams), textured_renderer(cams)):
        assert isinstance(r.rasterizer, FastMeshRasterizer)
        assert r.rasterizer.mode == "auto"


def _render_and_grad(renderer_fn, mesh, channel):
    verts = mesh.verts_padded().clone().requires_grad_(True)
    maps = mesh.textures.maps_padded().detach().clone().requires_grad_(True)
    t = mesh.textures
    tex = TexturesUV(maps=maps, faces_uvs=t.faces_uvs_padded(), verts_uvs=t.verts_uvs_padded())
    img = renderer_fn()(Meshes(verts=verts, faces=mesh.faces_padded(), textures=tex))
    target = torch.linspace(0, 1, img[..., channel].numel()).reshape(img[..., channel].shape)
    (img[..., channel] - target).square().mean().backward()
    return img, verts.grad, maps.grad


@pytest.mark.parametrize(
    "kind,cam_kind",
    [("silhouette", "fov"), ("silhouette", "weak"), ("uv_soft", "weak"), ("uv_hard", "fov"),
     ("atlas_soft", "fov"), ("shaded_soft", "fov")],
)
def test_fast_and_stock_renderers_agree(kind, cam_kind):
    """Whole renderers: images within 1e-6, vertex and texture gradients within 1e-5 relative."""
    torch.manual_seed(0)
    mesh = _uv_sphere()
    cams = make_cameras(elev=torch.tensor([10.0, -20.0]), azim=torch.tensor([30.0, 200.0]), fov=60.0) \
        if cam_kind == "fov" else _weak_cameras(2)
    out = {}
    for impl in ("fast", "stock"):
        s = RenderSettings(image_size=24, faces_per_pixel=8, sigma=2e-4, rasterizer=impl)
        if kind == "silhouette":
            fn, ch = (lambda s=s: silhouette_renderer(cams, s)), 3
        elif kind == "shaded_soft":
            fn, ch = (lambda s=s: shaded_renderer(cams, s, soft=True)), slice(0, 3)
        else:
            mode, hardness = kind.split("_")
            soft = hardness == "soft"
            s = s if soft else replace(s, sigma=0.0)
            fn = lambda s=s, m=mode, soft=soft: textured_renderer(cams, s, mode=m, soft=soft)  # noqa: E731
            ch = slice(0, 3)
        out[impl] = _render_and_grad(fn, mesh, ch)
    (img_a, gv_a, gm_a), (img_b, gv_b, gm_b) = out["fast"], out["stock"]
    assert (img_a - img_b).abs().max() <= 1e-6
    assert (gv_a - gv_b).abs().max() <= 1e-5 * gv_b.abs().max()
    if gm_b is not None:
        assert (gm_a - gm_b).abs().max() <= 1e-5 * gm_b.abs().max()


def test_silhouette_of_sphere_matches_projected_disc():
    """Weak perspective: the unit sphere projects to a disc of radius `scale` (normalised units)."""
    mesh = ico_sphere(3)
    scale = 0.6
    s = RenderSettings(image_size=64, sigma=1e-5, faces_per_pixel=16)
    alpha = silhouette_renderer(_weak_cameras(1, scale), s)(mesh)[0, ..., 3]
    disc = math.pi * scale**2 / 4  # fraction of the [-1, 1]^2 crop
    assert abs(alpha.mean().item() - disc) < 0.03 * disc  # inscribed polyhedron: slightly smaller
    ij = torch.stack(torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij"), -1)
    uv = (2 * ij + 1) / 64 - 1
    inside = uv.norm(dim=-1) < scale - 0.05
    outside = uv.norm(dim=-1) > scale + 0.05
    assert alpha[inside].min() > 0.9 and alpha[inside].mean() > 0.99 and alpha[outside].max() < 0.01


def test_uv_to_atlas_samples_linear_texture_exactly():
    """A texture linear in (u, v) is reproduced exactly by bilinear sampling at cell centroids."""
    H = W = 9
    v_img, u_img = torch.meshgrid(torch.linspace(1, 0, H), torch.linspace(0, 1, W), indexing="ij")
    maps = torch.stack([u_img, v_img, torch.zeros_like(u_img)], -1)[None]  # row 0 is v = 1
    verts_uvs = torch.tensor([[[0.1, 0.2], [0.9, 0.3], [0.4, 0.8]]])
    faces_uvs = torch.tensor([[[0, 1, 2]]])
    R = 3
    atlas = uv_to_atlas(TexturesUV(maps=maps, faces_uvs=faces_uvs, verts_uvs=verts_uvs), R).atlas_padded()
    assert atlas.shape == (1, 1, R, R, 3)
    for i in range(R):
        for j in range(R):
            # PyTorch3D's cell layout: below the diagonal w = ((j, i) + 1/3) / R, above it mirrored
            wx, wy = ((j + 1 / 3) / R, (i + 1 / 3) / R) if i + j < R else \
                ((R - 1 - j + 2 / 3) / R, (R - 1 - i + 2 / 3) / R)
            w = torch.tensor([wx, wy, 1 - wx - wy])
            uv = (w[:, None] * verts_uvs[0]).sum(0)
            assert torch.allclose(atlas[0, 0, i, j, :2], uv, atol=1e-5)


def test_atlas_converges_to_uv_and_loses_detail_at_low_resolution():
    torch.manual_seed(0)
    maps = torch.rand(1, 64, 64, 3)  # fine detail: per-face crops of R x R cannot hold it
    mesh = _uv_sphere(batch=1, level=2, maps=maps)
    cams = make_cameras(elev=15.0, azim=40.0, fov=45.0)
    s = RenderSettings(image_size=48, sigma=0.0, faces_per_pixel=1, lighting="ambient")
    uv = textured_renderer(cams, s, mode="uv")(mesh)
    fg = uv[0, ..., 3] > 0
    errs = []
    for R in (1, 4, 16):
        atlas = textured_renderer(cams, replace(s, atlas_size=R), mode="atlas")(mesh)
        assert torch.equal(atlas[..., 3], uv[..., 3])
        errs.append((atlas[0][fg][:, :3] - uv[0][fg][:, :3]).abs().mean().item())
    assert errs[0] > errs[1] > errs[2]
    assert errs[0] > 2 * errs[2]


def test_ambient_lighting_is_unlit_and_background_is_used():
    colour = torch.tensor([0.2, 0.5, 0.9])
    mesh = _uv_sphere(batch=1, maps=colour.expand(1, 8, 8, 3).clone())
    s = RenderSettings(image_size=32, sigma=0.0, lighting="ambient", background=(0.0, 1.0, 0.0))
    for mode in ("uv", "atlas"):
        img = textured_renderer(make_cameras(fov=45.0), s, mode=mode)(mesh)[0]
        fg = img[..., 3] > 0
        assert fg.float().mean() > 0.2
        assert torch.allclose(img[fg][:, :3], colour.expand(int(fg.sum()), 3), atol=1e-5)
        assert torch.allclose(img[~fg][:, :3], torch.tensor([0.0, 1.0, 0.0]).expand(int((~fg).sum()), 3))


def test_texture_gradients_reach_the_uv_image_in_both_modes():
    mesh = _uv_sphere(batch=1)
    cams = _weak_cameras(1)
    s = RenderSettings(image_size=16, faces_per_pixel=4, sigma=1e-4, lighting="ambient")
    for mode in ("uv", "atlas"):
        *_, g_maps = _render_and_grad(lambda m=mode: textured_renderer(cams, s, mode=m, soft=True), mesh,
                                      slice(0, 3))
        assert g_maps is not None and g_maps.abs().sum() > 0


def test_texture_mode_errors():
    cams = make_cameras()
    s = ico_sphere(1)
    vert_mesh = Meshes([s.verts_packed()], [s.faces_packed()], textures=TexturesVertex([torch.ones(42, 3)]))
    with pytest.raises(TypeError, match="TexturesUV"):
        textured_renderer(cams, mode="uv")(vert_mesh)
    with pytest.raises(TypeError, match="TexturesAtlas or TexturesUV"):
        textured_renderer(cams, mode="atlas")(vert_mesh)
    with pytest.raises(ValueError, match="mode"):
        textured_renderer(cams, mode="nearest")
    with pytest.raises(TypeError, match="TexturesUV"):
        uv_to_atlas(TexturesAtlas(atlas=torch.zeros(1, 80, 2, 2, 3)), 2)
    atlas = TexturesAtlas(torch.rand(1, 80, 2, 2, 3))
    atlas_mesh = Meshes([s.verts_packed()], [s.faces_packed()], textures=atlas)
    img = textured_renderer(cams, RenderSettings(image_size=16, sigma=0.0), mode="atlas")(atlas_mesh)
    assert np.isfinite(img.numpy()).all()


def test_hard_prediction_silhouette_is_the_coverage():
    from symnb.render import render_prediction

    square = torch.tensor([[-0.45, -0.45, 0.0], [0.45, -0.45, 0.0], [0.45, 0.45, 0.0], [-0.45, 0.45, 0.0]])
    square = square[None]
    out = {"verts": square, "faces": torch.tensor([[0, 1, 2], [0, 2, 3]])}
    cam = (torch.ones(1), torch.zeros(1, 2), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    hard = render_prediction(out, RenderSettings(image_size=8), cam, soft=False)
    assert torch.equal(hard.silhouette, hard.coverage[:, 0])  # 0 / 1 (the shader can give NaN at sigma 0)
    assert hard.silhouette[0, 2:6, 2:6].sum() == 12  # the square's 4 x 4 pixels less the diagonal on its edge
    soft = render_prediction(out, RenderSettings(image_size=8), cam)
    assert ((soft.silhouette > 0) & (soft.silhouette < 1)).any()  # blurred edges
