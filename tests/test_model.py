"""The reconstruction network: exact symmetry, refinement parameter counts, UV maps, I/O, bad input."""

from __future__ import annotations

import pytest
import torch

from symnb.metrics import index_symmetry_error
from symnb.model import (
    ModelConfig,
    ReconstructionNet,
    export_mesh,
    load_model,
    posthoc_symmetrize,
    refinement_template,
    resolve_symmetry,
    save_model,
    symmetric_uv,
)
from symnb.symmetry import symmetry_map
from symnb.templates import sphere_template

SMALL = dict(img_size=32, template_verts=162, tex_size=16, deform_hidden=64)


def _perturbed(model: ReconstructionNet) -> ReconstructionNet:
    """Give the mean shapes and the deformation head non-trivial values (as after training)."""
    with torch.no_grad():
        model.mean_shape.add_(0.05 * torch.randn_like(model.mean_shape))
        model.deform.out.weight.normal_(0, 0.3)
    return model.eval()


@pytest.mark.parametrize("mode", ["l2r", "r2l", "cent", ["l2r", "cent", "r2l"]])
def test_reflection_output_is_exactly_symmetric(mode):
    model = _perturbed(ReconstructionNet(ModelConfig(symmetry="reflection", sym_mode=mode, **SMALL)))
    out = model(torch.rand(3, 3, 32, 32))
    smap = symmetry_map(model.template)
    err_max, _ = index_symmetry_error(out["verts"], smap)
    assert err_max.max() <= 1e-6
    # the baseline is not symmetric, and its independent half holds all vertices
    base = _perturbed(ReconstructionNet(ModelConfig(symmetry="none", **SMALL)))
    assert index_symmetry_error(base(torch.rand(3, 3, 32, 32))["verts"], smap)[0].min() > 1e-3
    assert model.mean_shape.shape[1] == len(smap.independent) < base.mean_shape.shape[1]


def test_refinement_has_equal_parameter_count_and_about_twice_the_vertices():
    base = ReconstructionNet(ModelConfig(symmetry="none", template_verts=642, texture=False))
    ref = ReconstructionNet(
        ModelConfig(symmetry="reflection", refine=True, template_verts=642, texture=False))
    assert ref.n_params() == base.n_params()
    assert 1.9 <= ref.n_verts / base.n_verts <= 2.1
    v, _ = refinement_template(642)
    assert len(symmetry_map(v).independent) == 642
    out = ref(torch.rand(2, 3, 64, 64))
    assert out["verts"].shape == (2, ref.n_verts, 3)


def test_subdivision_keeps_the_network_and_the_shape():
    model = _perturbed(ReconstructionNet(ModelConfig(symmetry="reflection", **SMALL)))
    n_net = sum(p.numel() for n, p in model.named_parameters() if n != "mean_shape")
    x = torch.rand(2, 3, 32, 32)
    before = model(x)["mean_shape"]
    model.subdivide()
    after = model(x)
    assert sum(p.numel() for n, p in model.named_parameters() if n != "mean_shape") == n_net
    assert after["verts"].shape[1] > before.shape[1]
    # old vertices keep their positions: subdivision only inserts midpoints
    assert torch.allclose(after["mean_shape"][:, : before.shape[1]], before, atol=1e-6)
    assert index_symmetry_error(after["verts"], symmetry_map(model.template))[0].max() <= 1e-6


def test_symmetric_uv_charts_mirror_each_other():
    v, f = sphere_template(642)
    uv, fuv = symmetric_uv(v, f)
    smap = symmetry_map(v)
    V = len(v)
    left = smap.side > 0
    i = torch.nonzero(left).flatten()
    j = smap.mirror[i]
    # a left vertex in the left chart and its mirror in the right chart: u' = 1 - u, same v
    assert torch.allclose(uv[i, 0], 1 - uv[V + j, 0], atol=1e-6)
    assert torch.allclose(uv[i, 1], uv[V + j, 1], atol=1e-6)
    assert uv[i, 0].max() < 0.5 and uv[V + j, 0].min() > 0.5
    assert fuv.max() < 2 * V and fuv.shape == f.shape


def test_symmetric_texture_is_mirrored():
    model = ReconstructionNet(ModelConfig(symmetry="reflection", symmetric_texture=True, **SMALL)).eval()
    tex = model(torch.rand(2, 3, 32, 32))["texture"]
    assert tex.shape == (2, 3, 16, 32)
    assert torch.equal(tex, tex.flip(-1))


def test_posthoc_symmetrization_modes():
    model = _perturbed(ReconstructionNet(ModelConfig(symmetry="none", **SMALL)))
    verts = model(torch.rand(2, 3, 32, 32))["verts"]
    smap = symmetry_map(model.template)
    for mode in ("l2r", "r2l", "cent"):
        sym = posthoc_symmetrize(verts, model.template, mode)
        assert index_symmetry_error(sym, smap)[0].max() <= 1e-6
    left = smap.side > 0
    assert torch.equal(posthoc_symmetrize(verts, model.template, "l2r")[:, left], verts[:, left])
    right = smap.side < 0
    assert torch.equal(posthoc_symmetrize(verts, model.template, "r2l")[:, right], verts[:, right])


def test_auto_symmetry_from_cad_models():
    v, f = sphere_template(162)
    box = v * torch.tensor([0.3, 0.2, 0.5])
    assert resolve_symmetry(ModelConfig(symmetry="auto"), [(box, f)]) == "reflection"
    assert resolve_symmetry(ModelConfig(symmetry="auto"), None) == "reflection"
    assert resolve_symmetry(ModelConfig(symmetry="none"), [(box, f)]) == "none"


def test_reconstruct_any_size_and_load_round_trip(tmp_path):
    model = _perturbed(ReconstructionNet(ModelConfig(symmetry="reflection", **SMALL)))
    imgs = torch.rand(2, 3, 50, 70)
    out = model.reconstruct(imgs)
    assert out["verts"].shape == (2, model.n_verts, 3) and out["faces"].shape[1] == 3
    assert out["scale"].shape == (2,) and out["trans"].shape == (2, 2)
    assert torch.allclose(out["quat"].norm(dim=-1), torch.ones(2), atol=1e-5)
    assert out["texture"].shape == (2, 3, 16, 32)
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    again = loaded.reconstruct(imgs)
    assert torch.allclose(again["verts"], out["verts"], atol=1e-6)
    assert loaded.n_params() == model.n_params() and loaded.symmetry == "reflection"
    # a subdivided model round-trips too
    model.subdivide()
    loaded = load_model(save_model(model, tmp_path / "s.pt"))
    assert torch.allclose(loaded.reconstruct(imgs)["verts"], model.reconstruct(imgs)["verts"], atol=1e-6)


def test_bad_inputs_raise_clear_errors(tmp_path):
    model = ReconstructionNet(ModelConfig(**SMALL))
    bad = torch.rand(1, 3, 32, 32)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.reconstruct(bad)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.reconstruct(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.reconstruct(torch.rand(1, 3, 32, 32) * 255)
    with pytest.raises(TypeError):
        model.reconstruct(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="sym_mode"):
        ModelConfig(symmetry="reflection", sym_mode="up2down")
    with pytest.raises(ValueError, match="refine"):
        ModelConfig(symmetry="none", refine=True)


def test_export_obj_with_texture_and_ply(tmp_path):
    from pytorch3d.io import load_obj

    model = ReconstructionNet(ModelConfig(**SMALL)).eval()
    out = model.reconstruct(torch.rand(1, 3, 32, 32))
    p = export_mesh(tmp_path / "a.obj", out["verts"][0], out["faces"], out["texture"][0], out["verts_uvs"],
                    out["faces_uvs"])
    verts, faces, aux = load_obj(p)
    assert torch.allclose(verts, out["verts"][0], atol=1e-5)
    assert torch.equal(faces.verts_idx, out["faces"])
    assert aux.texture_images and next(iter(aux.texture_images.values())).shape == (16, 32, 3)
    assert torch.allclose(aux.verts_uvs, out["verts_uvs"], atol=1e-5)
    ply = export_mesh(tmp_path / "a.ply", out["verts"][0], out["faces"], out["texture"][0], out["verts_uvs"],
                      out["faces_uvs"]).read_text().splitlines()
    assert f"element vertex {model.n_verts}" in ply and "property uchar red" in ply
    with pytest.raises(ValueError, match="unsupported"):
        export_mesh(tmp_path / "a.stl", out["verts"][0], out["faces"])
