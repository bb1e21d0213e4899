import math

import pytest

SMOKE = dict(variants="baseline,refinement_ft", seeds=2, steps=3, camera_steps=1, ft_steps=2,
             data_root="data/synthetic_nb06", classes="aeroplane,car", per_class=6, cad_per_class=3,
             heldout_cads=1, occluded_test=1,
             val_every=1, img_size=32, batch_size=4, template_verts=162, tex_size=16, eval_items=2,
             fidelity_items=1, iou_resolution=16, fresh=True)


@pytest.mark.notebook
def test_ablations_notebook(run_notebook):
    r = run_notebook("06_ablations.ipynb", **SMOKE)
    t = r["table"]
    assert {"baseline", "refinement_ft", "untrained", "baseline:posthoc_best"} <= set(r["variants"])
    # refinement: same learnable parameter count as the baseline, about twice the vertices
    assert t["refinement_ft"]["n_params"] == t["baseline"]["n_params"]
    assert 1.9 <= t["refinement_ft"]["n_verts"] / t["baseline"]["n_verts"] <= 2.1
    assert t["refinement_ft"]["steps"] == 2 and t["baseline"]["steps"] == 1 + 3  # ft_steps; camera + full
    # reflection outputs are exactly symmetric; the baseline's are not
    assert t["refinement_ft"]["symmetry_error_mean"] <= 1e-6
    assert t["baseline"]["symmetry_error_mean"] > 1e-4
    for name in ("baseline", "refinement_ft"):
        assert 0 <= t[name]["iou_3d_drc_mean"] <= 1 and t[name]["iou_3d_drc_std"] >= 0
        assert not math.isnan(t[name]["mask_iou_std"])  # two seeds give a spread
        assert 0 <= t[name]["occ_mask_iou_mean"] <= 1 and 0 <= t[name]["clean_mask_iou_mean"] <= 1
    assert len({(run["name"], run["seed"]) for run in r["runs"] if ":" not in run["name"]}) >= 4
    paired = {(p["variant"], p["metric"]): p for p in r["paired"]}
    d = paired[("refinement_ft", "iou_3d_drc")]
    assert d["ci_low"] <= d["mean_diff"] <= d["ci_high"]
    assert {"baseline|input", "refinement_ft|az+90", "baseline:posthoc_l2r|mirror"} <= set(r["fidelity"])
    assert all(0 <= f["ssim"] <= 1 and f["psnr"] > 0 for f in r["fidelity"].values())
    for name in ("baseline", "refinement_ft"):  # the input view against the image and its mean colour
        g = r["gains"][name]
        assert math.isclose(g["gain"], g["psnr"] - g["psnr_mean_colour"], abs_tol=1e-9)
        assert not math.isnan(g["gain_pred_camera"])
    assert r["artefacts"]["refinement_ft"]["self_intersections"] >= 0
