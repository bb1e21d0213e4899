"""The reconstruction network: exact symmetry, refinement parameter counts, UV maps, I/O, bad input."""

from __future__ import annotations

import pytest
import torch

from symnb.model import (
    ModelConfig,
    ReconstructionNet,
    export_mesh,
    load_model,
    resolve_group,
    resolve_symmetry,
    save_model,
    symmetric_uv,
)
from symnb.symmetry import (
    SymmetryMap,
    expand,
    index_symmetry_error,
    invariant_dimension,
    n_free_params,
    symmetry_map,
    template_for,
)
from symnb.symmetry.templates import refinement_template, sphere_template, uv_sphere

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
        sym = model.posthoc_symmetrize(verts, mode)
        assert index_symmetry_error(sym, smap)[0].max() <= 1e-6
    left = smap.side > 0
    assert torch.equal(model.posthoc_symmetrize(verts, "l2r")[:, left], verts[:, left])
    right = smap.side < 0
    assert torch.equal(model.posthoc_symmetrize(verts, "r2l")[:, right], verts[:, right])


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


# ------------------------------------------------------------------ two planes and n-fold rotation

GROUPS = [("two_planes", 0, "cent"), ("two_planes", 0, "l2r"), ("rotation", 8, "cent"),
          ("rotation", 6, "l2r"), ("rotation", 5, "cent")]


@pytest.mark.parametrize("sym,order,mode", GROUPS)
def test_group_output_is_exactly_invariant_with_free_mean_shape_parameters(sym, order, mode):
    cfg = ModelConfig(symmetry=sym, sym_order=order, sym_mode=mode, n_shapes=2, **SMALL)
    model = ReconstructionNet(cfg)
    # the template is the representation's invariant template; the mean shape starts as the sphere
    v, _ = template_for(sym, 162, order or None)
    assert torch.allclose(model.template, torch.nn.functional.normalize(v, dim=-1))
    assert torch.allclose(model.full_mean_shapes(), model.template * cfg.template_radius, atol=1e-6)
    _perturbed(model)
    out = model(torch.rand(3, 3, 32, 32))
    assert out["verts"].shape == (3, model.n_verts, 3)
    # exact invariance under every group element (a map rebuilt from the template, not the model's)
    gmap = symmetry_map(model.template, sym, order or None)
    for g in range(len(gmap.matrices)):
        one = SymmetryMap(**{**vars(gmap), "matrices": gmap.matrices[g:g + 1], "perms": gmap.perms[g:g + 1]})
        assert index_symmetry_error(out["verts"], one)[0].max() <= 1e-6
    assert index_symmetry_error(out["verts"], gmap)[0].max() <= 1e-6
    # without the group maps the same network is not invariant, so the check has teeth
    _, feat = model.encoder(torch.rand(3, 3, 32, 32))
    probs = torch.softmax(model.classifier(feat), dim=-1)
    raw = model.template + model.deform(torch.cat([feat, probs], 1), model.template)
    assert index_symmetry_error(raw, gmap)[0].min() > 1e-3
    # the mean shapes hold the orbit representatives (3 coordinates each, as the reflection scheme);
    # their free coordinates, counted independently by the character formula, are exactly the rank
    # of the map from stored to expanded mean shapes: the other stored coordinates are inert
    n_free = n_free_params(gmap)
    assert n_free == invariant_dimension(gmap) < 3 * model.n_verts
    K = len(gmap.independent)
    assert model.mean_shape.shape == (cfg.n_shapes, K, 3)
    jac = torch.autograd.functional.jacobian(lambda m: expand(m, model.smap), model.mean_shape[0].detach())
    assert int(torch.linalg.matrix_rank(jac.reshape(model.n_verts * 3, K * 3).double())) == n_free
    net = sum(p.numel() for n, p in model.named_parameters() if n != "mean_shape")
    assert model.n_params() == net + cfg.n_shapes * 3 * K
    base = ReconstructionNet(ModelConfig(symmetry="none", n_shapes=2, **SMALL))
    assert base.n_params() - model.n_params() == cfg.n_shapes * 3 * (base.n_verts - K)
    # the mean shapes get gradients through expand
    out["verts"].sum().backward()
    assert model.mean_shape.grad is not None and model.mean_shape.grad.abs().sum() > 0


def test_group_save_load_round_trip_and_device_move(tmp_path):
    model = _perturbed(ReconstructionNet(ModelConfig(symmetry="rotation", sym_order=8, **SMALL)))
    imgs = torch.rand(2, 3, 40, 48)
    out = model.reconstruct(imgs)
    loaded = load_model(save_model(model, tmp_path / "r.pt"))
    assert loaded.symmetry == "rotation" and loaded.config.sym_order == 8
    assert loaded.n_params() == model.n_params()
    assert torch.allclose(loaded.reconstruct(imgs)["verts"], out["verts"], atol=1e-6)
    # subdivision keeps the old vertices and the invariance; the subdivided model round-trips too
    before = model(imgs[..., :32, :32])["mean_shape"]
    model.subdivide()
    after = model.reconstruct(imgs)
    assert torch.allclose(model(imgs[..., :32, :32])["mean_shape"][:, : before.shape[1]], before, atol=1e-6)
    assert index_symmetry_error(after["verts"], model.smap)[0].max() <= 1e-6
    loaded = load_model(save_model(model, tmp_path / "s.pt"))
    assert torch.allclose(loaded.reconstruct(imgs)["verts"], after["verts"], atol=1e-6)
    moved = model.smap.to("meta")
    assert isinstance(moved, SymmetryMap) and moved.perms.device.type == "meta"
    assert model.smap.to("cpu") is model.smap


def test_group_training_steps_decrease_the_loss(tmp_path):
    from symnb.data import ToyDataset
    from symnb.experiment import ExperimentConfig, TrainConfig, train
    from symnb.render import RenderSettings

    toy = ToyDataset(n=4, img_size=32, seed=0)
    for sym, order in (("two_planes", 0), ("rotation", 8)):
        cfg = ExperimentConfig(
            name=sym, out_dir=str(tmp_path / sym),
            model=ModelConfig(symmetry=sym, sym_order=order, img_size=32, template_verts=162, tex_size=16,
                              deform_hidden=64),
            render=RenderSettings(faces_per_pixel=4),
            train=TrainConfig(steps=8, batch_size=4, lr=1e-3, log_every=1, ckpt_every=8, progress=False,
                              device="cpu", render_camera="gt"))  # shape learning alone
        res = train(cfg, dataset=toy)
        first, last = res.history[0], res.history[-1]
        assert last["mask"] < first["mask"] and last["loss"] < first["loss"]
        model = load_model(res.model_path)
        assert model.symmetry == sym
        verts = model.reconstruct(toy[0]["image"])["verts"]
        assert index_symmetry_error(verts, model.smap)[0].max() <= 1e-6


def test_auto_symmetry_picks_rotation_or_two_planes():
    v, f = uv_sphere(8, 16)
    cylinder = v * torch.tensor([0.3, 0.5, 0.3])  # continuous rotation about y (order 0)
    assert resolve_group(ModelConfig(symmetry="auto"), [(cylinder, f)]) == ("rotation", 8)
    assert resolve_group(ModelConfig(symmetry="auto", auto_order=6), [(cylinder, f)]) == ("rotation", 6)
    box = sphere_template(162)[0] * torch.tensor([0.3, 0.2, 0.5])
    bf = sphere_template(162)[1]
    assert resolve_group(ModelConfig(symmetry="auto"), [(box, bf)]) == ("reflection", 1)
    assert resolve_group(ModelConfig(symmetry="auto", auto_two_planes=True), [(box, bf)]) == ("two_planes", 1)
    # majority vote: two boxes outvote one cylinder
    votes = [(box, bf), (cylinder, f), (box, bf)]
    assert resolve_symmetry(ModelConfig(symmetry="auto"), votes) == "reflection"
    model = ReconstructionNet(ModelConfig(symmetry="auto", sym_mode=["l2r", "r2l"], **SMALL), [(cylinder, f)])
    assert model.symmetry == "rotation" and model.config.sym_order == 8 and model.config.sym_mode == "cent"
    verts = _perturbed(model)(torch.rand(1, 3, 32, 32))["verts"]
    assert index_symmetry_error(verts, model.smap)[0].max() <= 1e-6


def test_group_config_errors():
    with pytest.raises(ValueError, match="sym_order"):
        ModelConfig(symmetry="rotation")
    with pytest.raises(ValueError, match="sym_mode"):
        ModelConfig(symmetry="two_planes", sym_mode="r2l")
    with pytest.raises(ValueError, match="refine"):
        ModelConfig(symmetry="rotation", sym_order=4, refine=True)
    with pytest.raises(ValueError, match="symmetry must be"):
        ModelConfig(symmetry="three_planes")


def test_fine_tuning_transfers_a_baseline_into_the_reflection_and_refinement_schemes():
    from symnb.model import resample_on_template, transfer
    from symnb.symmetry import symmetrize

    base = _perturbed(ReconstructionNet(ModelConfig(symmetry="none", n_shapes=2, **SMALL)))
    ellipsoid = base.template * torch.tensor([0.3, 0.2, 0.4])  # a mean shape linear in the position
    base.set_mean_shapes(torch.stack([ellipsoid, ellipsoid + 0.05 * torch.randn_like(ellipsoid)]))
    imgs = torch.rand(2, 3, 32, 32)
    for cfg in (ModelConfig(symmetry="reflection", n_shapes=2, **SMALL),
                ModelConfig(symmetry="reflection", refine=True, n_shapes=2, **SMALL)):
        model = ReconstructionNet(cfg)
        skipped = transfer(model, base)
        assert skipped == ["faces", "faces_uvs", "template", "verts_uvs"]  # the template, not the network
        for k, v in base.state_dict().items():
            if k not in ("mean_shape", "template", "faces", "verts_uvs", "faces_uvs"):
                assert torch.equal(model.state_dict()[k], v), k  # same architecture, same weights
        assert model.n_params() == ReconstructionNet(cfg).n_params()
        full = model.full_mean_shapes()
        smap = symmetry_map(model.template)
        assert index_symmetry_error(full, smap)[0].max() <= 1e-6
        if not cfg.refine:  # same template: the mean shapes are the baseline's, symmetrized
            expected = symmetrize(base.full_mean_shapes(), smap, "cent")
            assert torch.allclose(full, expected, atol=1e-6)
        else:  # the ~2x template: the linear (ellipsoid) mean shape is interpolated on its surface
            assert model.n_verts > 1.9 * base.n_verts
            target = model.template * torch.tensor([0.3, 0.2, 0.4])
            assert (full[0] - target).norm(dim=-1).max() < 0.02
        out = model.reconstruct(imgs)
        assert index_symmetry_error(out["verts"], smap)[0].max() <= 1e-6
    same = resample_on_template(base.full_mean_shapes(), base.template, base.faces, base.template)
    assert torch.allclose(same, base.full_mean_shapes(), atol=1e-6)
    with pytest.raises(ValueError, match="mean shapes"):
        transfer(ReconstructionNet(ModelConfig(n_shapes=3, **SMALL)), base)
    model = ReconstructionNet(ModelConfig(symmetry="reflection", n_shapes=2, **SMALL))
    transfer(model, base, ["l2r", "r2l"])  # one symmetrize mode per mean shape
    smap = symmetry_map(model.template)
    src = base.full_mean_shapes()
    expected = torch.stack([symmetrize(src[0], smap, "l2r"), symmetrize(src[1], smap, "r2l")])
    assert torch.allclose(model.full_mean_shapes(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="modes for 2 mean shapes"):
        transfer(model, base, ["l2r"])


def test_keep_side_keeps_the_free_half_off_the_plane():
    from symnb.model.network import SIDE_MARGIN

    torch.manual_seed(0)
    free = ReconstructionNet(ModelConfig(symmetry="reflection", **SMALL)).eval()
    full = free.full_mean_shapes().detach()
    full[:, free.smap.independent[::3], 0] *= -1  # every third free vertex on the wrong side of x = 0
    free.set_mean_shapes(full)
    kept = ReconstructionNet(ModelConfig(symmetry="reflection", keep_side=True, **SMALL)).eval()
    kept.load_state_dict(free.state_dict())
    img = torch.rand(2, 3, 32, 32)
    a, b = free(img)["verts"], kept(img)["verts"]
    side = free.smap.side
    assert (a[:, side > 0, 0] < 0).any()  # the unconstrained half crosses the plane
    assert (b[:, side > 0, 0] >= SIDE_MARGIN - 1e-6).all()
    assert (b[:, side < 0, 0] <= -SIDE_MARGIN + 1e-6).all()
    assert index_symmetry_error(b, free.smap)[0].max() <= 1e-6
    ok = a[:, side > 0, 0] >= SIDE_MARGIN  # vertices already on their side do not move
    assert torch.equal(a[:, side > 0][ok], b[:, side > 0][ok])


def test_smooth_mean_shape_coordinates_round_trip_and_move_neighbourhoods():
    from symnb.model.network import smoothing_operator

    model = ReconstructionNet(ModelConfig(symmetry="reflection", n_shapes=2, **SMALL))
    target = model.template * torch.tensor([0.3, 0.1, 0.4])
    model.set_mean_shapes(torch.stack([target, target * 0.5]))
    assert torch.allclose(model.full_mean_shapes()[0], target, atol=1e-5)
    # one coordinate of u moves its vertex's whole neighbourhood (plain coordinates would move one vertex)
    S = smoothing_operator(model.faces, model.n_verts, 10.0)
    assert torch.allclose(S.sum(1), torch.ones(model.n_verts), atol=1e-4)  # rows average: constants pass
    assert (S[0] > 1e-3).sum() > 10
    plain = ReconstructionNet(ModelConfig(symmetry="reflection", mean_shape_smoothing=0.0, **SMALL))
    assert plain.smoother.numel() == 0
    plain.set_mean_shapes(target[None])
    assert torch.allclose(plain.mean_shape[0], target[plain.smap.independent], atol=1e-6)


def test_viewpoint_head_and_silhouette_decoder_outputs():
    model = ReconstructionNet(ModelConfig(n_shapes=2, view_bins=(8, 6, 4), **SMALL))
    out = model(torch.rand(3, 3, 32, 32))
    assert out["az_logits"].shape == (3, 8) and out["el_residual"].shape == (3, 6)
    assert out["roll_logits"].shape == (3, 4) and out["silhouette_logits"].shape == (3, 1, 32, 32)
    assert torch.allclose(out["R"] @ out["R"].transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-5)
    model.eval()
    assert "silhouette_logits" not in model(torch.rand(1, 3, 32, 32))  # training only
    hyp = ReconstructionNet(ModelConfig(camera_head="hypotheses", cam_hypotheses=4, **SMALL))
    assert hyp(torch.rand(2, 3, 32, 32))["R_hyp"].shape == (2, 4, 3, 3)
    mean_in = ReconstructionNet(ModelConfig(deform_input="mean_shape", offset_smoothing=5.0, **SMALL))
    assert mean_in(torch.rand(2, 3, 32, 32))["offsets"].shape == (2, 162, 3)
    with pytest.raises(ValueError, match="view_bins"):
        ModelConfig(view_bins=(8, 6))


def test_refine_camera_recovers_a_shifted_and_scaled_camera():
    from pytorch3d.transforms import euler_angles_to_matrix, matrix_to_quaternion

    from symnb.model.refine import refine_camera
    from symnb.render import RenderSettings, render_prediction

    v, f = sphere_template(162)
    verts = (v * torch.tensor([0.4, 0.15, 0.25]))[None].expand(2, -1, -1)  # an ellipsoid
    angles = torch.tensor([[3.0, 0.6, 0.0], [2.9, -1.0, 0.1]])
    quat = matrix_to_quaternion(euler_angles_to_matrix(angles, "XYZ"))
    true_s, true_t = torch.tensor([1.2, 0.9]), torch.tensor([[0.1, -0.05], [-0.08, 0.04]])
    target = render_prediction({"verts": verts, "faces": f}, RenderSettings(image_size=32),
                               (true_s, true_t, quat)).silhouette
    s0, t0 = true_s * torch.tensor([1.25, 0.8]), true_t + torch.tensor([[-0.1, 0.08], [0.1, -0.1]])
    s, t = refine_camera(verts, f, s0, t0, quat, target, steps=60, lr=0.02)
    assert not s.requires_grad and not t.requires_grad
    assert ((s / true_s).log().abs() < 0.3 * (s0 / true_s).log().abs()).all()  # most of the error removed
    assert ((t - true_t).norm(dim=-1) < 0.3 * (t0 - true_t).norm(dim=-1)).all()
    with pytest.raises(ValueError, match="target"):
        refine_camera(verts, f, s0, t0, quat, target[:1])


def test_camera_refinement_runs_at_inference_only_and_moves_scale_and_translation_alone():
    torch.manual_seed(0)
    model = _perturbed(ReconstructionNet(ModelConfig(**SMALL)))
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        plain = model(images)
        model.config = ModelConfig(**SMALL, camera_refine_steps=5)
        refined = model(images)
    assert torch.equal(plain["verts"], refined["verts"]) and torch.equal(plain["quat"], refined["quat"])
    assert not torch.equal(plain["scale"], refined["scale"])
    assert not torch.equal(plain["trans"], refined["trans"])
    with torch.no_grad():  # the per-call override: 0 steps gives the unrefined camera, > 0 refines
        off = model(images, camera_refine_steps=0)
        assert torch.equal(off["scale"], plain["scale"]) and torch.equal(off["trans"], plain["trans"])
        assert torch.equal(model.reconstruct(images, camera_refine_steps=5)["scale"], refined["scale"])
        with pytest.raises(ValueError, match="camera_refine_steps=-1"):
            model(images, camera_refine_steps=-1)
        mean = model(images, mean_shape_only=True)  # the camera is refined for the mean shape
        assert torch.equal(mean["verts"], refined["mean_shape"]) and not mean["offsets"].any()
        assert not torch.equal(mean["scale"], refined["scale"])
        assert torch.equal(mean["quat"], refined["quat"])
    model.train()
    torch.manual_seed(1)
    a = model(images)["scale"]
    model.config = ModelConfig(**SMALL)
    torch.manual_seed(1)
    assert torch.equal(a, model(images)["scale"])  # training: no refinement
    with pytest.raises(ValueError, match="silhouette_decoder"):
        ModelConfig(camera_refine_steps=5, silhouette_decoder=False)
