"""Evaluation: perfect predictions score perfectly, viewpoint angles, ICP, per-class tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from pytorch3d.transforms import euler_angles_to_matrix

from symnb.camera import viewpoint_angles
from symnb.data import ToyDataset
from symnb.experiment.evaluate import EvalConfig, _icp_align, angle_diff, evaluate, per_class
from symnb.model import ModelConfig, ReconstructionNet


@pytest.fixture(scope="module")
def toy():
    return ToyDataset(n=3, img_size=32, seed=1)


def _oracle(toy, i: int) -> ReconstructionNet:
    """A network whose mean shape is item i's CAD model (same 162-vertex template) and no deformation."""
    model = ReconstructionNet(ModelConfig(img_size=32, template_verts=162, tex_size=16, deform_hidden=32))
    cad_v, _ = toy.cad_mesh("toy", i + 1)
    with torch.no_grad():
        model.set_mean_shapes(cad_v[None])
        model.deform.out.weight.zero_()
    return model.eval()


def test_perfect_shape_scores_perfectly(toy, tmp_path):
    model = _oracle(toy, 0)
    sub = torch.utils.data.Subset(toy, [0])
    sub.cad_mesh = toy.cad_mesh
    df = evaluate(model, sub, EvalConfig(iou_resolution=32, n_samples=2000, save_meshes=1), out_dir=tmp_path,
                  progress=False)
    row = df.iloc[0]
    assert row.cad_idx == int(sub[0]["cad_idx"])  # each row names its CAD model (flips_by_half_turn)
    assert row.iou_3d > 0.97 and row.iou_3d_icp > 0.95
    assert row.chamfer < 1e-3 and row.hausdorff < 0.03
    assert row.symmetry_error < 1e-6  # the toy ellipsoid is symmetric about x = 0
    assert (tmp_path / "meshes" / f"{row.id}.obj").is_file()
    # a different item's shape scores worse
    other = evaluate(_oracle(toy, 1), sub, EvalConfig(iou_resolution=32, n_samples=2000, icp=False),
                     progress=False).iloc[0]
    assert other.iou_3d < row.iou_3d and other.chamfer > row.chamfer


def test_mean_shape_only_and_posthoc_best(toy):
    model = _oracle(toy, 0)
    with torch.no_grad():
        model.deform.out.weight.normal_(0, 0.5)
    cfg = EvalConfig(iou_resolution=16, n_samples=500, icp=False, geom_symmetry=False)
    deformed = evaluate(model, toy, cfg, progress=False)
    mean_only = evaluate(model, toy, cfg, mean_shape_only=True, progress=False)
    assert mean_only.iou_3d.iloc[0] > deformed.iou_3d.iloc[0]
    best = evaluate(model, toy, cfg, symmetrize="best", progress=False)
    assert (best.symmetry_error < 1e-6).all() and (deformed.symmetry_error > 1e-3).all()
    with pytest.raises(ValueError, match="symmetrize"):
        evaluate(model, toy, cfg, symmetrize="diagonal", progress=False)


def test_viewpoint_angles_match_construction():
    az, el = torch.tensor([0.3, -2.0, 1.2]), torch.tensor([0.2, -0.1, 0.6])
    # OpenCV camera looking at the object: R = Rx(pi + el) Ry(az) (see symnb.data.ToyDataset)
    R = euler_angles_to_matrix(torch.stack([math.pi + el, az, torch.zeros(3)], -1), "XYZ")
    vp = viewpoint_angles(R).float()
    assert torch.allclose(vp[:, 0], -az * 180 / math.pi, atol=1e-3) or torch.allclose(
        vp[:, 0], az * 180 / math.pi, atol=1e-3)
    assert torch.allclose(vp[:, 1].abs(), el.abs() * 180 / math.pi, atol=1e-3)
    assert torch.allclose(vp[:, 2], torch.zeros(3), atol=1e-3)
    assert torch.allclose(angle_diff(torch.tensor([179.0]), torch.tensor([-179.0])), torch.tensor([2.0]))


def test_icp_recovers_a_similarity_transform():
    pts = torch.randn(300, 3) * torch.tensor([0.5, 0.2, 0.1])
    R = euler_angles_to_matrix(torch.tensor([0.1, -0.15, 0.05]), "XYZ")
    moved = 1.3 * pts @ R.T + torch.tensor([0.05, -0.02, 0.03])
    aligned = _icp_align(moved.double(), pts.double())
    assert (aligned - pts.double()).norm(dim=1).max() < 1e-3


def test_per_class_table_has_all_row():
    df = pd.DataFrame({"class_name": ["a", "a", "b"], "iou_3d": [0.2, 0.4, 0.9], "mask_iou": [1.0, 0.0, 0.5]})
    t = per_class(df)
    assert list(t.index) == ["a", "b", "all"]
    assert t.loc["a", "iou_3d"] == pytest.approx(0.3) and t.loc["all", "iou_3d"] == pytest.approx(0.5)


def test_half_turn_iou_and_the_flips_split_by_it():
    from data_prep.shapes import box
    from symnb.experiment.evaluate import flips_by_half_turn, half_turn_iou

    def mesh(z0, z1):
        v, f = box(-0.3, 0.3, 0.0, 0.2, z0, z1)
        return torch.as_tensor(v), torch.as_tensor(f)

    alike, distinct = mesh(-0.5, 0.5), mesh(-0.2, 0.5)  # the second reaches further to the front
    assert half_turn_iou(*alike) > 0.99
    assert half_turn_iou(*distinct) == pytest.approx(0.4, abs=0.05)  # overlap [-0.2, 0.2] of [-0.5, 0.5]

    class Cads:
        def cad_mesh(self, class_name, cad_idx):
            return alike if cad_idx == 1 else distinct

    df = pd.DataFrame({"class_name": ["car"] * 5, "cad_idx": [1, 1, 2, 2, 2],
                       "az": [0.0, 180.0, 10.0, 20.0, 340.0], "az_gt": [0.0, 0.0, 0.0, 0.0, 0.0]})
    t = flips_by_half_turn(df, Cads())
    assert t.loc[("car", "alike"), "flip_rate"] == 0.5 and t.loc[("car", "distinct"), "flip_rate"] == 0.0
    assert t.loc[("car", "alike"), "images"] == 2
    assert t.loc[("car", "distinct"), "share"] == pytest.approx(0.6)


def test_camera_refine_off_scores_the_camera_as_predicted(toy):
    torch.manual_seed(0)
    kw = dict(img_size=32, template_verts=162, tex_size=16, deform_hidden=32, silhouette_decoder=True)
    model = ReconstructionNet(ModelConfig(**kw, camera_refine_steps=5)).eval()
    cfg = EvalConfig(iou_resolution=16, n_samples=500, icp=False, geom_symmetry=False, distances=False)
    refined = evaluate(model, toy, cfg, progress=False)
    off = evaluate(model, toy, EvalConfig(**{**cfg.to_dict(), "camera_refine": False}), progress=False)
    model.config = ModelConfig(**kw)  # the same network without the refinement
    plain = evaluate(model, toy, cfg, progress=False)
    pd.testing.assert_series_equal(off.mask_iou, plain.mask_iou)
    assert not refined.mask_iou.equals(plain.mask_iou)
    pd.testing.assert_series_equal(refined.iou_3d, plain.iou_3d)  # the shape is not refined


def test_the_command_scores_textures_and_pairs_two_models(tmp_path, capsys):
    from symnb import cli
    from symnb.experiment import ensure_dataset, load_experiment, variant_config
    from symnb.experiment.train import train

    cfg = load_experiment("configs/demo.yaml", smoke=True)
    cfg = variant_config(cfg, "baseline", run_dir=tmp_path / "run")
    ensure_dataset(cfg)
    model = str(train(cfg, resume=False).model_path)
    out = tmp_path / "eval"
    assert cli.main(["evaluate", model, cfg.data.root, "--max-items", "4", "--textures", "2",
                     "--texture-ceiling", "--paired-with", model, "--out", str(out)]) == 0
    tex = pd.read_csv(out / "textures_per_sample.csv")
    assert len(tex) == 2
    assert {"gain", "gain_pred_camera", "gain_oracle", "psnr_input", "psnr_mirror", "ssim_input"} <= set(tex)
    assert ((tex.gain - (tex.psnr - tex.psnr_mean_colour)).abs() < 1e-9).all()
    paired = pd.read_csv(out / "paired.csv")  # a model paired with itself: every difference is 0
    assert set(paired.part) == {"geometry", "textures"}
    assert {"mask_iou", "gain", "gain_oracle", "psnr_mirror"} <= set(paired.metric)
    assert (paired.mean_diff == 0).all() and not paired.significant.any()
    assert (paired.n_images == 2).all()  # the smoke test split holds 2 images
    assert "paired with" in capsys.readouterr().out
    assert cli.main(["evaluate", model, cfg.data.root, "--textures", "-1"]) == 2
    assert "--textures must be >= 0" in capsys.readouterr().err
    assert cli.main(["evaluate", model, cfg.data.root, "--texture-ceiling"]) == 2
    assert "give --textures N" in capsys.readouterr().err
