"""The main job at smoke size, through the same code path as `make demo`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from symnb.data import build_dataset
from symnb.demo import DEFAULT_CONFIG, main
from symnb.experiment import evaluate, load_experiment, variant_config
from symnb.model import load_model


@pytest.mark.slow
def test_demo_smoke_writes_summary_models_and_report(tmp_path):
    # two processes: a fine-tune waits for its source, the texture variants for reflection_ft
    summary = main(["--smoke", "--run", "smoke", "--results", str(tmp_path), "--jobs", "2"])
    run = tmp_path / "smoke"
    csv = pd.read_csv(run / "summary.csv")
    need = {"variant", "symmetry", "iou_3d", "chamfer", "hausdorff", "mask_iou", "symmetry_error", "n_params",
            "n_verts", "steps", "train_seconds"}
    assert need <= set(csv.columns)
    assert list(csv.variant) == list(dict.fromkeys(summary.variant))
    rows = csv.set_index("variant")
    assert {"untrained", "baseline", "baseline:mean_shape", "baseline:posthoc_best", "reflection_ft",
            "refinement_ft"} <= set(rows.index)
    assert rows.loc["reflection_ft", "symmetry_error"] <= 1e-6
    assert rows.loc["refinement_ft", "symmetry_error"] <= 1e-6
    assert rows.loc["baseline:posthoc_best", "symmetry_error"] <= 1e-6
    assert rows.loc["refinement_ft", "n_params"] == rows.loc["baseline", "n_params"]
    assert 1.9 <= rows.loc["refinement_ft", "n_verts"] / rows.loc["baseline", "n_verts"] <= 2.1
    assert rows.loc["baseline", "steps"] == 2 + 3  # its camera steps, then the full ones
    assert (rows.loc[["reflection_ft", "refinement_ft"], "steps"] == 3).all()  # fine-tunes: none
    assert csv.iou_3d.between(0, 1).all()
    trained = rows.loc[["baseline", "reflection_ft", "refinement_ft"]]
    assert (trained.chamfer > 0).all()  # the extra rows (untrained, post hoc) skip surface distances
    assert rows.loc[["untrained", "baseline:posthoc_best"], "chamfer"].isna().all()
    # the texture ablations: reflection_ft untouched (steps 0) but for its texture; uv_spherical is
    # fine-tuned from the baseline as reflection_ft is (the flow learns the other UV layout)
    textures = ["mirror_fill", "atlas", "texture_projected"]
    assert rows.loc["uv_spherical", "steps"] == 3
    assert (rows.loc[textures, "steps"] == 0).all()
    for col in ("iou_3d_drc", "mask_iou", "rot_err", "chamfer"):
        assert (rows.loc[textures, col] == rows.loc["reflection_ft", col]).all(), col
    assert rows.loc["keep_side", "steps"] == 0 and rows.loc["keep_side", "symmetry_error"] <= 1e-6
    # the texture variants share reflection_ft's geometric evaluation instead of repeating it; keep_side
    # (other meshes) is evaluated. The shared table is what evaluating the variant itself gives.
    runs = pd.read_csv(run / "runs.csv").set_index("variant")
    assert (runs.loc[textures, "eval_seconds"] == 0).all() and runs.loc["keep_side", "eval_seconds"] > 0
    cfg = load_experiment(DEFAULT_CONFIG, smoke=True)
    vc = variant_config(cfg, "texture_projected", 0, tmp_path / "unused")
    test = build_dataset(vc.data, "test", vc.model.img_size)
    own = evaluate(load_model(run / "texture_projected" / "model.pt"), test, vc.eval, progress=False,
                   render=vc.render)
    shared = pd.read_csv(run / "texture_projected" / "per_sample.csv")
    assert list(own.id) == list(shared.id)
    for col in ("iou_3d_drc", "mask_iou", "rot_err", "chamfer"):
        assert np.allclose(own[col], shared[col], rtol=1e-6, atol=1e-9), col
    fid = pd.read_csv(run / "fidelity.csv")
    assert set(textures) <= set(fid.variant) and fid.psnr.between(0, 100).all()
    paired = pd.read_csv(run / "fidelity_paired.csv")  # texture variants vs reflection_ft's learned texture
    assert {*textures, "uv_spherical"} <= set(paired.variant)
    assert set(paired.view) == {"input", "mirror", "az+90", "az-90"}
    assert (paired.ci_low <= paired.mean_diff + 1e-9).all()
    assert (paired.mean_diff <= paired.ci_high + 1e-9).all()
    gain = pd.read_csv(run / "input_gain.csv").set_index("variant")  # input view vs the mean colour
    assert {*textures, "baseline", "reflection_ft"} <= set(gain.index)
    assert np.allclose(gain.gain, gain.psnr - gain.psnr_mean_colour)
    assert cfg.eval.fidelity_items < min(cfg.eval.gain_items, len(test))  # the gain on more images
    assert (gain.n_images == min(cfg.eval.gain_items, len(test))).all()
    assert (gain.gain_ci_low <= gain.gain + 1e-9).all() and (gain.gain <= gain.gain_ci_high + 1e-9).all()
    assert set(pd.read_csv(run / "input_gain_paired.csv").variant) >= set(textures)
    for v in ("baseline", "reflection_ft", "refinement_ft"):
        model = load_model(run / v / "model.pt")
        assert model.n_verts == rows.loc[v, "n_verts"]
        assert (run / v / "metrics.csv").is_file() and (run / v / "per_class.csv").is_file()
    report = (run / "report.md").read_text()
    assert "| variant |" in report and "curves.png" in report and "reconstructions.png" in report
    for png in ("curves.png", "summary.png", "reconstructions.png"):
        assert (run / png).stat().st_size > 1000
