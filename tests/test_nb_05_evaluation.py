import math

import pytest

SMOKE = dict(model_path="build/nb/05_evaluation/missing.pt", data_root="data/synthetic_nb",
             classes="aeroplane,car",
             per_class=4, img_size=32, fallback_steps=4, template_verts=162, iou_resolution=16, n_samples=500)


@pytest.mark.notebook
def test_evaluation_notebook(run_notebook):
    r = run_notebook("05_evaluation.ipynb", **SMOKE)
    t = r["table"]
    assert r["n_items"] >= 2 and r["classes"] == ["aeroplane", "car"]
    assert set(r["per_class"]) == {"aeroplane", "car", "all"}
    raw = t["as predicted"]
    assert 0 <= raw["iou_3d"] <= 1 and 0 <= raw["mask_iou"] <= 1 and raw["chamfer"] > 0
    assert raw["hausdorff"] > 0 and 0 <= raw["az_err"] <= 180
    assert r["symmetry"] == "none" and raw["symmetry_error"] > 0  # an unconstrained network is not symmetric
    for mode in ("l2r", "r2l", "cent", "best"):
        assert t[f"posthoc {mode}"]["symmetry_error"] <= 1e-6
    assert len(r["meshes"]) == 2
    tex = r["textures"]  # the ceiling (the annotated camera's registration) beats the barely trained camera
    assert tex["gain_oracle"] > tex["gain"] + 1, tex
    halves = [tex["gain_oracle_rotation"], tex["gain_oracle_position"]]  # the ceiling split by camera part
    assert all(math.isfinite(h) for h in halves) and max(halves) < tex["gain_oracle"], tex
