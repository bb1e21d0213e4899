"""Projected textures (symnb.model.texture): texel map, round trip through the renderer, mirror fill."""

import math

import pytest
import torch

from symnb.model import ModelConfig, ReconstructionNet
from symnb.model.texture import ProjectedTexture, texel_surface_map, texel_uvs
from symnb.model.uv import UV_MAPS
from symnb.render import RenderSettings, render_prediction
from symnb.symmetry import template_for

SMALL = dict(img_size=32, encoder="small", template_verts=162, tex_size=16, n_shapes=1, cam_hypotheses=1)
SIDE = torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # world -> camera, looking at the +x side


def _smooth_image(size=64, batch=1):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = torch.stack([0.5 + 0.5 * torch.sin(6 * xx), 0.5 + 0.5 * torch.cos(5 * yy), xx * yy])
    return img[None].repeat(batch, 1, 1, 1)


def test_texels_inside_a_uv_triangle_are_its_barycentric_points():
    v, f = template_for("none", 162, 1)
    for name, uv_map in UV_MAPS.items():
        uv, fuv = uv_map(v, f)
        face, bary, inside = texel_surface_map(uv, fuv, 16, 32)
        assert face.shape == (16, 32) and bary.shape == (16, 32, 3)
        assert torch.all(bary >= 0) and torch.allclose(bary.sum(-1), torch.ones(16, 32))
        rebuilt = (bary[..., None].double() * uv.double()[fuv[face]]).sum(-2)  # (16, 32, 2)
        err = (rebuilt - texel_uvs(16, 32))[inside].abs().max()
        assert err < 1e-5, name
        assert inside.float().mean() > 0.6, f"{name}: most texels lie on the surface"


def test_symmetric_uv_map_spreads_texels_evenly():
    # the equal-area symmetric map gives every face about the same number of texels; the spherical
    # one crowds them at the poles
    v, f = template_for("none", 642, 1)
    counts = {}
    for name, uv_map in UV_MAPS.items():
        face, _, inside = texel_surface_map(*uv_map(v, f), 32, 64)
        counts[name] = torch.bincount(face[inside], minlength=len(f)).float()
    assert counts["symmetric"].max() <= 4 < counts["spherical"].max()
    assert (counts["symmetric"] == 0).float().mean() < 0.2


def test_projected_texture_renders_back_the_input_image():
    # project an image onto the predicted meshes, render them with the same camera: the visible
    # surface shows the image again (up to bilinear resampling of a 32 x 64 UV image)
    torch.manual_seed(0)
    for uv_map in UV_MAPS:
        cfg = ModelConfig(**{**SMALL, "img_size": 64, "tex_size": 32, "template_verts": 642},
                          texture_source="projection", uv_map=uv_map)
        model = ReconstructionNet(cfg).eval()
        img = _smooth_image(64, 2)
        with torch.no_grad():
            out = model(img)
        r = render_prediction(out, RenderSettings(image_size=64), soft=False)
        cov = r.coverage[:, 0] > 0
        assert cov.sum() > 200
        d = (r.rgb - img).permute(0, 2, 3, 1)[cov]
        psnr = 10 * math.log10(1 / float((d ** 2).mean()))
        assert psnr > 30, (uv_map, psnr)
        # a learned-texture network of the same settings is far from it (a constant colour is ~10 dB)
        assert out["texture"].shape == (2, 3, 32, 64) and not out["texture"].requires_grad


def test_hidden_texels_take_their_mirror_colour_or_the_mean_visible_colour():
    v, f = template_for("reflection", 162, 1)
    uv, fuv = UV_MAPS["symmetric"](v, f)
    img = _smooth_image(32)
    args = (img, 0.4 * v[None], SIDE[None], torch.tensor([1.5]), torch.zeros(1, 2))
    plain = ProjectedTexture(uv, fuv, f, v, 16, 32)(*args)
    mirrored = ProjectedTexture(uv, fuv, f, v, 16, 32, mirror=True)(*args)
    vis = plain["visible"][0, 0]
    W = vis.shape[1]
    # seen from +x: the left chart (u < 0.5) faces the camera, the right chart is hidden
    assert vis[:, : W // 2].float().mean() > 0.4 and not vis[:, W // 2:].any()
    hidden = ~vis & vis.flip(-1)  # hidden texels whose mirror is visible
    assert hidden.sum() > 50
    tex_p, tex_m = plain["texture"][0], mirrored["texture"][0]
    assert torch.equal(tex_m[:, hidden], tex_m.flip(-1)[:, hidden])  # the mirror texel's colour
    fill = tex_p[:, vis].mean(1)  # without the mirror: the mean visible colour
    assert torch.allclose(tex_p[:, ~vis], fill[:, None].expand(-1, int((~vis).sum())), atol=1e-6)
    assert torch.equal(tex_m[:, vis], tex_p[:, vis])  # visible texels are the image's in both


def test_texture_flow_copies_image_colours_and_hidden_texels_take_the_mirror_flow():
    """CMR's texture flow: the UV image is the input image sampled at the flow's positions; with a
    symmetric texture a texel the predicted camera cannot see samples where its visible mirror texel
    does, and every other texel keeps its own flow."""
    torch.manual_seed(0)
    img = _smooth_image(32, 2)
    flows = {}
    for mirror in (False, True):
        torch.manual_seed(0)
        model = ReconstructionNet(ModelConfig(**SMALL, symmetry="reflection", texture_source="flow",
                                              symmetric_texture=mirror)).eval()
        out = model(img)
        flow, tex = out["texture_flow"], out["texture"]
        assert flow.shape == (2, 2, 16, 32) and tex.shape == (2, 3, 16, 32)
        expected = torch.nn.functional.grid_sample(img, flow.permute(0, 2, 3, 1), align_corners=False)
        assert torch.allclose(tex, expected, atol=1e-6)
        flows[mirror] = flow
        if mirror:
            _, vis = model.projector.project(out["verts"], out["R"], out["scale"], out["trans"])
    filled = ~vis & vis.flip(-1)  # (2, 1, 16, 32)
    assert filled.sum() > 20 and (vis.sum((1, 2, 3)) > 50).all()
    same = ~filled.expand_as(flows[True])
    assert torch.equal(flows[True][same], flows[False][same])
    mirrored = flows[False].flip(-1)[filled.expand_as(flows[True])]
    assert torch.equal(flows[True][filled.expand_as(flows[True])], mirrored)


@pytest.mark.parametrize("base", ["none", "projection"])
def test_texture_flow_learns_through_the_renderer(base):
    """A few steps on one batch with the training objective: CMR's flow moves onto the object (the
    barrier term falls); a projected flow's correction moves it to where the annotated camera sees the
    texels (the cycle term falls); with both the rendered texture approaches the image."""
    from symnb import losses as L
    from symnb.experiment.objective import compute_losses

    torch.manual_seed(0)
    model = ReconstructionNet(ModelConfig(**SMALL, texture_source="flow", flow_base=base))
    img = _smooth_image(32, 4)
    img[:, :, :8] = 1.0  # a white top band: the flow must stay off it (outside the mask)
    mask = torch.zeros(4, 1, 32, 32)
    mask[..., 8:28, 6:26] = 1
    batch = {"image": img, "mask": mask, "scale": torch.full((4,), 1.5), "trans": torch.zeros(4, 2),
             "quat": torch.tensor([[1.0, 0, 0, 0]]).repeat(4, 1)}
    weights = L.LossWeights(camera=0, silhouette=0)
    opt = torch.optim.Adam(model.texture.parameters(), lr=3e-3)
    logs = []
    for _ in range(40):
        loss, log = compute_losses(model(img), batch, weights, RenderSettings(image_size=32))
        opt.zero_grad()
        loss.backward()
        opt.step()
        logs.append(log)
    first, last = logs[0], logs[-1]
    moved = "texture_dt" if base == "none" else "texture_cycle"
    assert last[moved] < 0.5 * first[moved], (first, last)
    assert last["colour"] + last["pixel"] < 0.7 * (first["colour"] + first["pixel"]), (first, last)
