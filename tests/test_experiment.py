"""The experiment layer: validated configs, YAML variants, safe checkpoints, resume rules, seeded
batching through DataLoader workers, registries, and the loss terms that used to be dead knobs."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch

from data_prep import make_dataset as md
from symnb import losses as L
from symnb.config import merge, parse_overrides
from symnb.data import DATASETS, DataConfig, SeededBatchSampler, ToyDataset, build_dataset, collate
from symnb.experiment import EvalConfig, ExperimentConfig, TrainConfig, load_experiment, train, variant_config
from symnb.experiment.objective import compute_losses
from symnb.model import ENCODERS, ModelConfig, ReconstructionNet, load_model, register_encoder
from symnb.model.encoders import ResNetEncoder
from symnb.render import RenderSettings, render_prediction

SMALL = dict(img_size=32, template_verts=162, tex_size=16, deform_hidden=32)


def tiny(out_dir, steps=3, data=None, **model) -> ExperimentConfig:
    return ExperimentConfig(
        name="tiny", out_dir=str(out_dir), model=ModelConfig(**{**SMALL, **model}),
        data=data or DataConfig(name="toy", options={"n": 8}), render=RenderSettings(faces_per_pixel=4),
        train=TrainConfig(steps=steps, batch_size=4, lr=1e-3, log_every=1, ckpt_every=1, progress=False,
                          device="cpu"))


@pytest.fixture(scope="module")
def pascal(tmp_path_factory):
    """A tiny generated Pascal3D+-layout dataset (car, keypoints, flips possible)."""
    return md.make_dataset(tmp_path_factory.mktemp("d") / "ds", classes=("car",), per_class=8, img_size=32,
                           cad_per_class=2, face_budget=400, remesh_resolution=32, progress=False, seed=0)


@pytest.mark.parametrize("cls,kw,field", [
    (ModelConfig, {"symmetry": "Reflection"}, "ModelConfig.symmetry"),
    (ModelConfig, {"n_shapes": 0}, "ModelConfig.n_shapes"),
    (ModelConfig, {"encoder": "vgg"}, "ModelConfig.encoder"),
    (ModelConfig, {"tex_size": 24}, "ModelConfig.tex_size"),
    (ModelConfig, {"template_verts": "many"}, "ModelConfig.template_verts"),
    (TrainConfig, {"render_camera": "GT"}, "TrainConfig.render_camera"),
    (RenderSettings, {"texture_mode": "voxel"}, "RenderSettings.texture_mode"),
    (TrainConfig, {"steps": -5}, "TrainConfig.steps"),
    (TrainConfig, {"steps": 0}, "TrainConfig.steps"),
    (TrainConfig, {"batch_size": -2}, "TrainConfig.batch_size"),
    (TrainConfig, {"log_every": 0}, "TrainConfig.log_every"),
    (TrainConfig, {"device": "gpu"}, "TrainConfig.device"),
    (EvalConfig, {"iou_resolution": 1}, "EvalConfig.iou_resolution"),
    (EvalConfig, {"symmetry": "helix"}, "EvalConfig.symmetry"),
    (DataConfig, {"name": "imagenet"}, "DataConfig.name"),
    (L.LossWeights, {"mask": -1.0}, "LossWeights.mask"),
    (L.LossWeights, {"perceptual_weights": "/no/such/vgg16.pth"}, "perceptual_weights"),
])
def test_every_config_validates_and_names_the_field(cls, kw, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        cls(**kw)


def test_config_values_are_normalised():
    assert DataConfig(classes="car").classes == ("car",)  # one name, not ['c', 'a', 'r']
    assert TrainConfig(lr=1).lr == 1.0 and TrainConfig(subdivide_at=[3]).subdivide_at == (3,)
    cfg = ExperimentConfig(model=ModelConfig(img_size=32))
    assert cfg.render.image_size == 32  # the render size follows the model's input size
    with pytest.raises(ValueError, match="render.image_size 48 differs from model.img_size 32"):
        ExperimentConfig.from_dict({"model": {"img_size": 32}, "render": {"image_size": 48}})
    with pytest.raises(ValueError, match="unknown key"):
        ExperimentConfig.from_dict({"model": {"img_sise": 32}})
    assert parse_overrides(["train.lr=0.01", "model.symmetry=none"]) == {
        "train": {"lr": 0.01}, "model": {"symmetry": "none"}}
    with pytest.raises(ValueError, match="section.key=value"):
        parse_overrides(["oops"])
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_yaml_variants_seeds_and_smoke(tmp_path):
    (tmp_path / "variants").mkdir()
    (tmp_path / "variants" / "mirror.yaml").write_text("model: {symmetry: reflection, sym_mode: cent}\n")
    p = tmp_path / "exp.yaml"
    p.write_text("model: {img_size: 32}\ntrain: {steps: 7}\nvariants:\n  - mirror\n"
                 "  - plain: {model: {symmetry: none}}\nseeds: [0, 1]\nsmoke: {train: {steps: 2}}\n")
    cfg = load_experiment(p)
    assert list(cfg.variants) == ["mirror", "plain"] and cfg.seeds == (0, 1) and cfg.train.steps == 7
    assert load_experiment(p, smoke=True).train.steps == 2
    assert load_experiment(p, overrides={"train": {"steps": 9}}).train.steps == 9
    v = variant_config(cfg, "mirror", seed=1, run_dir=tmp_path / "run")
    assert v.model.symmetry == "reflection" and v.model.sym_mode == "cent" and v.train.seed == 1
    assert v.out_dir == str(tmp_path / "run" / "mirror" / "seed1") and v.train.steps == 7
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        variant_config(cfg, "nope")
    p.write_text("variants: [missing]\n")
    with pytest.raises(ValueError, match="variants/missing.yaml"):
        load_experiment(p)
    p.write_text("a: &x [1, 2]\nb: *x\n")
    with pytest.raises(ValueError, match="aliases"):
        load_experiment(p)


def test_checkpoints_are_plain_data_and_never_run_code(tmp_path):
    res = train(tiny(tmp_path / "run", steps=2))
    loaded = load_model(res.model_path)  # weights_only=True
    assert loaded.n_params() == res.model.n_params()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"config": {}, "state_dict": Evil()}))
    with pytest.raises(ValueError, match="evil.pt"):
        load_model(bad)
    assert not marker.exists()
    torch.save({"config": {}, "state_dict": {}, "payload": Evil()}, tmp_path / "evil2.pt")
    marker.unlink(missing_ok=True)
    with pytest.raises(ValueError, match="evil2.pt"):
        load_model(tmp_path / "evil2.pt")
    assert not marker.exists()
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_model(tmp_path / "empty.pt")


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    cfg = tiny(tmp_path / "run", steps=2)
    train(cfg)
    longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=3))
    assert train(longer).steps == 3  # more steps of the same run: resumes
    other = dataclasses.replace(longer, model=ModelConfig(**SMALL, symmetry="reflection"))
    with pytest.raises(ValueError, match=r"another config \(differs in: model.symmetry"):
        train(other)
    lr = dataclasses.replace(longer, train=dataclasses.replace(longer.train, lr=0.5, steps=4))
    with pytest.raises(ValueError, match="train.lr"):
        train(lr)
    assert train(lr, resume="force").steps == 4
    assert train(other, resume=False).model.symmetry == "reflection"


def test_config_differences_of_added_removed_and_free_fields():
    from symnb.experiment.checkpoint import config_differences

    cur = ExperimentConfig().to_dict()
    old = {k: dict(v) if isinstance(v, dict) else v for k, v in cur.items()}
    old["render"]["camera"] = "gt"  # a field the configs no longer have (moved to train.render_camera)
    del old["train"]["render_camera"]  # added since, at its default
    old["reference"] = "baseline"  # free: only the runner's tables read it
    assert config_differences(old, cur) == []
    old["render"]["dropped"] = 1  # a field the configs no longer have at all
    assert config_differences(old, cur) == []
    cur["train"]["render_camera"] = "pred"  # not what the old run did (it rendered with "gt")
    cur["train"]["lr"] = 0.5
    assert config_differences(old, cur) == ["train.lr", "train.render_camera"]
    old["render"]["camera"] = "pred"  # a run trained through its predicted camera ...
    cur["train"]["render_camera"] = "gt"  # ... is not resumed under the annotated one
    assert config_differences(old, cur) == ["train.lr", "train.render_camera"]


def test_sampler_state_resumes_and_shards():
    full = list(SeededBatchSampler(10, 4, seed=3, steps=5))
    sampler = SeededBatchSampler(10, 4, seed=3, steps=5)
    first = [b for _, b in zip(range(2), sampler, strict=False)]
    rest = list(SeededBatchSampler(10, 4, seed=3, steps=5, start=sampler.state_dict()["step"]))
    assert first + rest == full
    halves = [list(SeededBatchSampler(10, 4, 3, 5, rank=r, world_size=2)) for r in range(2)]
    assert [a + b for a, b in zip(*halves, strict=True)] == full
    with pytest.raises(ValueError, match="divisible"):
        SeededBatchSampler(10, 3, 0, 1, world_size=2)


def test_seeded_augmentation_is_the_same_with_loader_workers(tmp_path, pascal):
    data = DataConfig(root=str(pascal), classes=("car",), flip=True)
    ds = build_dataset(data, "train", 32)
    assert torch.equal(ds[(0, 5)]["image"], ds[(0, 5)]["image"])
    flips = {bool(ds[(0, s)]["flipped"]) for s in range(12)}
    assert flips == {True, False}  # the seed decides the flip
    states = []
    for workers in (0, 2):
        cfg = tiny(tmp_path / f"w{workers}", data=dataclasses.replace(data, num_workers=workers))
        states.append(train(cfg).model.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_registries():
    assert {"pascal3d", "toy"} <= set(DATASETS) and "resnet18" in ENCODERS
    toy = build_dataset(DataConfig(name="toy", options={"n": 3}), "test", 32)
    assert isinstance(toy, ToyDataset) and len(toy) == 3 and toy[0]["image"].shape == (3, 32, 32)

    @register_encoder("resnet18_test")
    class Same(ResNetEncoder):
        pass

    try:
        model = ReconstructionNet(ModelConfig(encoder="resnet18_test", **SMALL))
        assert isinstance(model.encoder, Same)
    finally:
        ENCODERS.pop("resnet18_test")


def _batch_and_outputs(pascal, n_kp):
    ds = build_dataset(DataConfig(root=str(pascal), classes=("car",)), "train", 32)
    batch = collate([ds[i] for i in range(2)])
    torch.manual_seed(0)
    model = ReconstructionNet(ModelConfig(n_keypoints=n_kp, **SMALL))
    return batch, model(batch["image"])


def test_keypoint_weight_changes_the_loss(pascal):
    batch, out = _batch_and_outputs(pascal, n_kp=8)
    assert out["kp3d"].shape == (2, 8, 3) and batch["kp"].shape[1] == 8
    s = RenderSettings(image_size=32)
    w0 = L.LossWeights()
    t0, logs0 = compute_losses(out, batch, w0, s)
    t1, logs1 = compute_losses(out, batch, dataclasses.replace(w0, keypoint=2.0), s)
    assert "keypoint" in logs1 and logs1["keypoint"] > 0
    assert torch.isclose(t1 - t0, torch.tensor(2.0 * logs1["keypoint"]), atol=1e-4)
    with pytest.raises(ValueError, match="n_keypoints"):
        b2, o2 = _batch_and_outputs(pascal, n_kp=0)
        compute_losses(o2, b2, dataclasses.replace(w0, keypoint=1.0), s)


def test_render_camera_decides_whether_the_mask_term_trains_the_camera(pascal):
    batch, out = _batch_and_outputs(pascal, n_kp=0)
    w = L.LossWeights(**{**{k: 0.0 for k in L.LossWeights.term_names()}, "mask": 1.0})  # the mask term alone
    s = RenderSettings(image_size=32)
    grads = {}
    for camera in ("gt", "pred", "pred_detached"):
        total, _ = compute_losses(out, batch, w, s, camera)
        grads[camera] = torch.autograd.grad(total, (out["scale"], out["verts"]), retain_graph=True,
                                            allow_unused=True)
    assert grads["pred"][0] is not None and grads["pred"][0].abs().sum() > 0  # through the predicted camera
    for camera in ("gt", "pred_detached"):  # the camera head gets no gradient from the masks
        assert grads[camera][0] is None or not grads[camera][0].any()
        assert grads[camera][1].abs().sum() > 0  # the shape still does
    with pytest.raises(ValueError, match="camera must be one of"):
        compute_losses(out, batch, w, s, "annotated")


def test_keypoints_are_projected_with_the_render_camera(pascal):
    """As CMR's proj_cam: with the annotated camera the keypoint term trains the shape, not the camera."""
    batch, out = _batch_and_outputs(pascal, n_kp=8)
    w = L.LossWeights(**{**{k: 0.0 for k in L.LossWeights.term_names()}, "keypoint": 1.0})
    s = RenderSettings(image_size=32)
    for camera, reaches_camera in (("gt", False), ("pred", True)):
        total, _ = compute_losses(out, batch, w, s, camera)
        g_cam, g_kp = torch.autograd.grad(total, (out["scale"], out["kp3d"]), retain_graph=True,
                                          allow_unused=True)
        assert (g_cam is not None and bool(g_cam.any())) == reaches_camera, camera
        assert g_kp.abs().sum() > 0


def test_perceptual_weight_changes_the_loss(tmp_path, pascal):
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg16_features.pth"
    torch.save({f"features.{k}": v for k, v in vgg.features[:23].state_dict().items()}, path)
    w = L.LossWeights(perceptual=0.5, perceptual_weights=str(path))
    batch, out = _batch_and_outputs(pascal, n_kp=0)
    s = RenderSettings(image_size=32)
    t0, _ = compute_losses(out, batch, dataclasses.replace(w, perceptual=0.0), s)
    t1, logs = compute_losses(out, batch, w, s, perceptual=L.PerceptualLoss(str(path)))
    assert logs["perceptual"] > 0
    assert torch.isclose(t1 - t0, torch.tensor(0.5 * logs["perceptual"]), atol=1e-4)
    torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a VGG-16"):
        L.PerceptualLoss(str(tmp_path / "other.pth"))


def test_learning_rate_schedule_closed_form():
    from symnb.experiment.train import learning_rate

    tc = TrainConfig(steps=100, lr=1.0, lr_schedule="cosine", min_lr=0.1, warmup=10)
    assert learning_rate(tc, 0) == pytest.approx(0.1) and learning_rate(tc, 9) == pytest.approx(1.0)
    assert learning_rate(tc, 10) == pytest.approx(1.0)
    assert learning_rate(tc, 55) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the cosine
    assert learning_rate(tc, 100) == pytest.approx(0.1)
    assert learning_rate(TrainConfig(lr=0.3), 50) == 0.3
    with pytest.raises(ValueError, match="val_every"):
        TrainConfig(select="val_mask_iou")


def test_validation_curves_and_best_model_selection(tmp_path):
    cfg = tiny(tmp_path / "run", steps=6)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, val_every=2, val_items=4, select="val_rot_err", lr_schedule="cosine"))
    res = train(cfg)
    assert [r["step"] for r in res.val_history] == [2, 4, 6]
    for k in ("val_mask_iou", "val_iou_3d_drc", "val_rot_err", "train_mask_iou", "train_rot_err"):
        assert all(k in r for r in res.val_history)
    best = min(res.val_history, key=lambda r: r["val_rot_err"])
    assert res.best_step == best["step"]
    chosen, best_file = load_model(res.model_path), load_model(tmp_path / "run" / "best.pt")
    for k, v in chosen.state_dict().items():
        assert torch.equal(v, best_file.state_dict()[k]), k
    assert (tmp_path / "run" / "val_metrics.csv").read_text().count("\n") == 4
    lrs = [h["lr"] for h in res.history]
    assert lrs[0] == pytest.approx(1e-3) and lrs == sorted(lrs, reverse=True)


def test_paired_bootstrap_differences():
    import numpy as np
    import pandas as pd

    from symnb.experiment.stats import paired_differences

    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(200)]
    base = [pd.DataFrame({"id": ids, "m": rng.normal(0.5, 0.1, 200)}) for _ in range(3)]
    better = [pd.DataFrame({"id": ids, "m": b.m + 0.05 + rng.normal(0, 0.02, 200)}) for b in base]
    same = [pd.DataFrame({"id": ids[::-1], "m": b.m.to_numpy()[::-1]}) for b in base]  # pairs by id
    table = paired_differences({"baseline": base, "better": better, "same": same}, "baseline", ["m"],
                               n_boot=500).set_index("variant")
    assert table.loc["better", "mean_diff"] == pytest.approx(0.05, abs=0.005)
    assert table.loc["better", "ci_low"] < 0.05 < table.loc["better", "ci_high"]
    assert table.loc["better", "significant"]
    assert table.loc["better", "ci_high"] - table.loc["better", "ci_low"] < 0.01
    assert table.loc["same", "mean_diff"] == 0 and not table.loc["same", "significant"]
    assert (table.n_seeds == 3).all() and (table.n_images == 200).all()


def test_bootstrap_interval_of_a_mean():
    import numpy as np

    from symnb.experiment.stats import bootstrap_interval

    rng = np.random.default_rng(0)
    small, large = rng.normal(2.0, 3.0, (1, 32)), rng.normal(2.0, 3.0, (1, 512))
    lo_s, hi_s = bootstrap_interval(small, n_boot=1000)
    lo_l, hi_l = bootstrap_interval(large, n_boot=1000)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    # the width follows the standard error 1.96 * 2 * 3 / sqrt(n) within 15%
    assert (hi_l - lo_l) == pytest.approx(2 * 1.96 * 3.0 / np.sqrt(512), rel=0.15)
    assert (hi_s - lo_s) / (hi_l - lo_l) == pytest.approx(4.0, rel=0.3)
    assert bootstrap_interval(np.full((2, 5), 1.5)) == (1.5, 1.5)
    assert bootstrap_interval(small, rng=7) == bootstrap_interval(small, rng=np.random.default_rng(7))
    with pytest.raises(ValueError, match=r"\(seeds, images\) array"):
        bootstrap_interval(np.zeros(5))


def test_incomplete_checkpoint_is_refused_with_a_hint(tmp_path):
    cfg = tiny(tmp_path / "inc")
    (tmp_path / "inc").mkdir()
    torch.save({"model": {}, "experiment": cfg.to_dict()}, tmp_path / "inc" / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"not a complete training checkpoint \(no optimizer.*--fresh"):
        train(cfg)


def test_fine_tune_variants_smoke_and_seed_folders(tmp_path):
    from symnb.experiment.jobs import _source
    from symnb.experiment.report import steps_to_reach

    p = tmp_path / "exp.yaml"
    p.write_text("train: {steps: 7}\nvariants:\n  - base: {}\n"
                 "  - ft: {train: {init_from: '@base', steps: 5}}\n"
                 "  - ft2: {train: {init_from: '@ft'}}\nseeds: [0]\nsmoke: {train: {steps: 2}}\n")
    cfg = load_experiment(p)
    assert [_source(cfg, v) for v in ("base", "ft", "ft2")] == [None, "base", "ft"]
    ft = variant_config(cfg, "ft", seed=0, run_dir=tmp_path / "run")
    assert ft.train.steps == 5 and ft.train.init_from == str(tmp_path / "run" / "base" / "model.pt")
    assert variant_config(load_experiment(p, smoke=True), "ft", 0).train.steps == 2  # smoke wins
    other = variant_config(cfg, "ft", seed=3, run_dir=tmp_path / "run")  # a seed the config does not list
    assert other.out_dir == str(tmp_path / "run" / "ft" / "seed3")
    assert other.train.init_from == str(tmp_path / "run" / "base" / "seed3" / "model.pt")
    # a curve reaches its own final value exactly (no drift of a running sum)
    vals = [0.1 * k + 0.2907 for k in range(8)]
    hist = {"a": [[{"step": i, "m": v} for i, v in enumerate(vals)]]}
    assert steps_to_reach(hist, "m", vals[-1], window=1) == {"a": 7.0}


def test_an_untrained_variant_is_its_source_with_another_texture(tmp_path):
    # train.steps 0 with init_from: the transferred network as is (the texture ablations); the smoke
    # section's steps do not turn it into a training
    src = train(tiny(tmp_path / "src", symmetry="reflection"))
    cfg = tiny(tmp_path / "tex", symmetry="reflection", texture_source="projection")
    tc = dataclasses.replace(cfg.train, steps=0, init_from=str(src.model_path))
    cfg = dataclasses.replace(cfg, train=tc)
    res = train(cfg)
    assert res.steps == 0 and res.history == []
    a, b = load_model(src.model_path), load_model(res.model_path)
    assert b.texture is None and b.projector is not None
    img = torch.rand(2, 3, 32, 32)
    oa, ob = a.reconstruct(img), b.reconstruct(img)
    assert torch.equal(oa["verts"], ob["verts"]) and torch.equal(oa["R"], ob["R"])
    assert not torch.equal(oa["texture"], ob["texture"])
    p = tmp_path / "exp.yaml"
    p.write_text("variants:\n  - base: {}\n  - tex: {train: {init_from: '@base', steps: 0}}\n"
                 "smoke: {train: {steps: 2}}\n")
    assert variant_config(load_experiment(p, smoke=True), "tex", 0).train.steps == 0
    assert variant_config(load_experiment(p, smoke=True), "base", 0).train.steps == 2


def test_cross_view_term_renders_each_shape_through_its_partners_camera(pascal):
    batch, out = _batch_and_outputs(pascal, n_kp=0)
    w = L.LossWeights(**{**{k: 0.0 for k in L.LossWeights.term_names()}, "cross_view": 1.0})
    s = RenderSettings(image_size=32)
    batch["class_idx"], batch["cad_idx"] = torch.tensor([0, 0]), torch.tensor([1, 1])  # two views of one CAD
    total, logs = compute_losses(out, batch, w, s)
    swapped = render_prediction({"verts": out["verts"], "faces": out["faces"]}, s,
                                (batch["scale"].flip(0), batch["trans"].flip(0), batch["quat"].flip(0)))
    assert torch.isclose(total, L.mask_loss(swapped.silhouette, batch["mask"].flip(0)[:, 0]))
    assert torch.autograd.grad(total, out["verts"], retain_graph=True)[0].abs().sum() > 0
    batch["cad_idx"] = torch.tensor([1, 2])  # no other view of either instance: the term is 0
    total, logs = compute_losses(out, batch, w, s)
    assert float(total) == 0 and logs["cross_view"] == 0


def test_transfer_fitting_keeps_the_side_that_fits_the_training_masks(pascal):
    from symnb.experiment.train import transfer_fitting
    from symnb.symmetry import symmetrize

    ds = build_dataset(DataConfig(root=str(pascal), classes=("car",)), "train", 32)
    torch.manual_seed(0)
    base = ReconstructionNet(ModelConfig(symmetry="none", n_shapes=1, **SMALL))
    body = base.template * torch.tensor([0.25, 0.2, 0.45])  # a car-like ellipsoid ...
    body[:, 0] = torch.where(body[:, 0] > 0, 0.02 * body[:, 0], body[:, 0])  # ... with one side flattened
    base.set_mean_shapes(body[None])
    torch.nn.init.zeros_(base.deform.out.weight)  # no offsets: the mean shape alone
    model = ReconstructionNet(ModelConfig(symmetry="reflection", n_shapes=1, **SMALL))
    modes, fits = transfer_fitting(model, base, ds, RenderSettings(image_size=32), n_images=4)
    assert set(fits) == {"0:cent", "0:l2r", "0:r2l"} and modes == [max(("cent", "l2r", "r2l"),
                                                                        key=lambda m: fits[f"0:{m}"])]
    full = model.full_mean_shapes()[0].detach()
    assert torch.allclose(full, symmetrize(body, model.smap, modes[0]), atol=1e-5)
    assert float(full[:, 0].max()) > 0.2  # the full side kept and mirrored, not the flat one or the blend
    plain = ReconstructionNet(ModelConfig(symmetry="none", n_shapes=1, **SMALL))
    same, none = transfer_fitting(plain, base, ds, RenderSettings(image_size=32))
    assert same == ["cent"] and none == {}  # no group: nothing to choose
