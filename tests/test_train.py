"""The real training loop on a tiny config: learning, logs, checkpoints, exact resume, configs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from symnb.data import ToyDataset, batch_indices, collate
from symnb.experiment import ExperimentConfig, TrainConfig, train
from symnb.experiment.config import load_experiment
from symnb.losses import LossWeights
from symnb.model import ModelConfig, load_model
from symnb.render import RenderSettings, make_textures, render_prediction


@pytest.fixture(scope="module")
def toy():
    return ToyDataset(n=12, img_size=32, seed=0)


class Crash(Exception):
    """Raised by :func:`crash_at` to interrupt a training run."""


def crash_at(n: int):
    """A training callback that interrupts the run at step ``n``, after that step's checkpoint (if any)."""
    def callback(step, logs):
        if step == n:
            raise Crash
    return callback


def tiny(out_dir, steps=4, **model) -> ExperimentConfig:
    return ExperimentConfig(
        name="tiny", out_dir=str(out_dir),
        model=ModelConfig(img_size=32, template_verts=162, tex_size=16, deform_hidden=64, **model),
        render=RenderSettings(faces_per_pixel=4),
        train=TrainConfig(steps=steps, batch_size=4, lr=1e-3, log_every=1, ckpt_every=2, progress=False,
                          device="cpu"),
    )


def test_training_loop_learns_and_writes_logs(tmp_path, toy):
    cfg = tiny(tmp_path / "run", steps=12, symmetry="reflection")
    four = torch.utils.data.Subset(toy, range(4))  # every batch holds the same 4 images: loss must fall
    res = train(cfg, dataset=four)
    assert res.steps == 12 and len(res.history) == 12
    first, last = res.history[0], res.history[-1]
    assert last["mask"] < first["mask"]  # the silhouette fit improves
    assert last["loss"] < first["loss"]
    for name in ("metrics.csv", "metrics.json", "checkpoint.pt", "model.pt"):
        assert (tmp_path / "run" / name).is_file()
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 13
    model = load_model(res.model_path)
    out = model.reconstruct(toy[0]["image"])
    assert out["verts"].shape == (1, model.n_verts, 3)


def test_resume_after_interruption_reaches_identical_weights(tmp_path, toy):
    full = train(tiny(tmp_path / "full", steps=5), dataset=toy).model.state_dict()
    cfg = tiny(tmp_path / "resumed", steps=5)
    with pytest.raises(Crash):
        train(cfg, dataset=toy, callback=crash_at(3))  # checkpoint of step 2 survives
    resumed = train(cfg, dataset=toy)
    assert resumed.steps == 5 and [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5]
    state = resumed.model.state_dict()
    assert state.keys() == full.keys()
    for k in full:
        assert torch.equal(state[k], full[k]), k


def test_camera_steps_train_the_encoder_and_camera_alone_then_the_full_objective(tmp_path, toy):
    from symnb.experiment.train import learning_rate
    from symnb.model import ReconstructionNet

    cfg = tiny(tmp_path / "cam", steps=2)
    cfg.train = dataclasses.replace(cfg.train, camera_steps=3, lr_schedule="cosine", min_lr=0.1, val_every=1,
                                    val_items=2, select="val_rot_err", tensorboard=False)
    torch.manual_seed(cfg.train.seed)
    start = ReconstructionNet(cfg.model).state_dict()
    seen = []
    res = train(cfg, dataset=toy, callback=lambda step, logs: seen.append((step, dict(logs))),
                val_dataset=toy, train_eval_dataset=toy)
    assert res.steps == 5 and [s for s, _ in seen] == [1, 2, 3, 4, 5]
    # validated at the camera phase's end and at every full step; the weights kept are a full step's
    assert [row["step"] for row in res.val_history] == [3, 4, 5] and res.best_step in (4, 5)
    assert all("mask" not in logs and "camera" in logs and "silhouette" in logs for _, logs in seen[:3])
    assert all("mask" in logs for _, logs in seen[3:])
    # each phase runs the cosine over its own length
    tc = cfg.train
    assert [round(learning_rate(tc, s), 6) for s in (0, 2, 3, 4)] == [
        1e-3, round(1e-4 + 0.9e-3 * 0.25, 6), 1e-3, round(1e-4 + 0.9e-3 * 0.5, 6)]  # cos(2/3 pi) = -0.5

    cam_only = tiny(tmp_path / "cam_only", steps=1)  # no full step: nothing but the image-only parts moves
    cam_only.train = dataclasses.replace(cam_only.train, camera_steps=2, steps=1)
    with pytest.raises(Crash):
        train(cam_only, dataset=toy, callback=crash_at(2))  # after the camera phase's checkpoint
    moved = ReconstructionNet(cam_only.model)
    ck = torch.load(tmp_path / "cam_only" / "checkpoint.pt", weights_only=False)
    moved.load_state_dict(ck["model"])
    after = moved.state_dict()
    changed = {k.split(".")[0] for k in start if start[k].dtype.is_floating_point
               and "running" not in k and not torch.equal(start[k], after[k])}
    assert changed == {"encoder", "camera", "silhouette"}, changed
    # a fine-tune starts from a trained encoder: no camera steps
    assert dataclasses.replace(tc, init_from="model.pt").total_steps == tc.steps
    with pytest.raises(ValueError, match="camera_steps needs a camera or silhouette"):
        ExperimentConfig(loss=LossWeights(camera=0, silhouette=0), train=tc)


def test_resume_from_the_camera_phase_reaches_identical_weights(tmp_path, toy):
    def cfg(name):
        c = tiny(tmp_path / name, steps=2)
        c.train = dataclasses.replace(c.train, camera_steps=3)
        return c

    full = train(cfg("full"), dataset=toy).model.state_dict()
    with pytest.raises(Crash):
        train(cfg("resumed"), dataset=toy, callback=crash_at(3))  # the checkpoint of camera step 2 survives
    resumed = train(cfg("resumed"), dataset=toy)
    assert resumed.steps == 5 and [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5]
    state = resumed.model.state_dict()
    for k in full:
        assert torch.equal(state[k], full[k]), k


def test_subdivision_during_training_and_resume(tmp_path, toy):
    cfg = tiny(tmp_path / "sub", steps=4, symmetry="reflection")
    cfg.train = dataclasses.replace(cfg.train, subdivide_at=(2,))
    res = train(cfg, dataset=toy)
    assert res.model.n_verts > 162
    cfg.train = dataclasses.replace(cfg.train, steps=5)
    again = train(cfg, dataset=toy)  # resumes from the subdivided checkpoint
    assert again.steps == 5 and again.model.n_verts == res.model.n_verts


def test_batch_order_is_a_seeded_permutation_per_epoch():
    idx = [batch_indices(10, 3, s, seed=1) for s in range(3)]
    flat = sum(idx, [])
    assert len(set(flat)) == 9 and all(len(b) == 3 for b in idx)
    assert batch_indices(10, 3, 1, seed=1) == idx[1]
    assert batch_indices(10, 3, 1, seed=2) != idx[1] or batch_indices(10, 3, 0, seed=2) != idx[0]


def test_uv_and_atlas_textures_render_a_constant_colour(toy):
    from symnb.model import ReconstructionNet

    model = ReconstructionNet(tiny("x").model).eval()
    batch = collate([toy[i] for i in range(2)])
    out = model(batch["image"])
    out["texture"] = torch.zeros_like(out["texture"]) + torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1)
    for mode in ("uv", "atlas"):
        r = render_prediction(out, RenderSettings(image_size=32, texture_mode=mode), soft=False)
        cov = r.coverage[:, 0] > 0
        assert cov.any()
        rgb = r.rgb.permute(0, 2, 3, 1)[cov]
        assert torch.allclose(rgb, torch.tensor([0.2, 0.5, 0.9]).expand_as(rgb), atol=1e-5), mode
    with pytest.raises(ValueError, match="texture mode"):
        make_textures(out["texture"], out["verts_uvs"], out["faces_uvs"], "voxel")


def test_atlas_texture_converges_to_uv_texture(toy):
    # a texture varying in both u and v: an atlas read upside down or mirrored would not converge
    from symnb.model import ReconstructionNet

    model = ReconstructionNet(tiny("x").model).eval()
    out = model(collate([toy[i] for i in range(2)])["image"])
    T, W = out["texture"].shape[-2:]
    v = torch.linspace(0, 1, T).view(T, 1).expand(T, W)
    u = torch.linspace(0, 1, W).view(1, W).expand(T, W)
    out["texture"] = torch.stack([v, u, 1 - v], 0).expand_as(out["texture"]).contiguous()
    settings = RenderSettings(image_size=48)
    uv = render_prediction(out, settings, soft=False)
    cov = uv.coverage[:, 0] > 0
    errors = []
    for R in (1, 8):
        atlas = render_prediction(out, settings, soft=False, texture_mode="atlas", atlas_size=R)
        errors.append((atlas.rgb - uv.rgb).abs().permute(0, 2, 3, 1)[cov].mean().item())
    assert errors[1] < errors[0] and errors[1] < 0.02, errors


def test_fast_and_stock_rasterizer_give_the_same_silhouette(toy):
    from symnb.model import ReconstructionNet

    model = ReconstructionNet(tiny("x").model).eval()
    out = model(collate([toy[i] for i in range(2)])["image"])
    s = RenderSettings(image_size=32)
    a = render_prediction(dict(out, texture=None), s, rasterizer="fast").silhouette
    b = render_prediction(dict(out, texture=None), s, rasterizer="stock").silhouette
    assert torch.allclose(a, b, atol=1e-5)


def test_configs_from_yaml_and_unknown_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: {symmetry: reflection, sym_mode: cent}\ntrain: {steps: 7, subdivide_at: [3]}\n")
    cfg = load_experiment(p)
    assert cfg.model.symmetry == "reflection" and cfg.model.sym_mode == "cent"
    assert cfg.train.steps == 7 and cfg.train.subdivide_at == (3,)
    assert cfg.loss.mask == 100.0  # untouched sections keep their defaults
    with pytest.raises(ValueError, match="bogus"):
        ExperimentConfig.from_dict({"train": {"bogus": 1}})
    with pytest.raises(FileNotFoundError):
        load_experiment(tmp_path / "missing.yaml")


def test_empty_dataset_raises(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        train(tiny(tmp_path / "e"), dataset=[])


def test_auto_symmetry_uses_the_datasets_cad_models(tmp_path, toy):
    cfg = tiny(tmp_path / "auto", steps=1, symmetry="auto")
    res = train(cfg, dataset=toy)
    assert res.model.symmetry == "reflection"  # the toy ellipsoids are symmetric about x = 0
    assert load_model(res.model_path).symmetry == "reflection"
