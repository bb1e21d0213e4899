import math

import pytest

SMOKE = dict(variants="baseline,refinement", seeds=2, steps=3, data_root="data/synthetic_nb",
             classes="aeroplane,car", per_class=4, img_size=32, batch_size=4, lr=0.001, template_verts=162,
             tex_size=16, eval_items=2, iou_resolution=16)


@pytest.mark.notebook
def test_ablations_notebook(run_notebook):
    r = run_notebook("06_ablations.ipynb", **SMOKE)
    t = r["table"]
    assert r["n_runs"] == 4 and r["variants"] == ["baseline", "refinement"]
    # refinement: same learnable parameter count as the baseline, about twice the vertices
    assert t["refinement"]["n_params"] == t["baseline"]["n_params"]
    assert 1.9 <= t["refinement"]["n_verts"] / t["baseline"]["n_verts"] <= 2.1
    # reflection outputs are exactly symmetric; the baseline's are not
    assert t["refinement"]["symmetry_error_mean"] <= 1e-6
    assert t["baseline"]["symmetry_error_mean"] > 1e-4
    for name in r["variants"]:
        assert 0 <= t[name]["iou_3d_mean"] <= 1 and t[name]["iou_3d_std"] >= 0
        assert not math.isnan(t[name]["mask_iou_std"])  # two seeds give a spread
    seeds = {(run["name"], run["seed"]) for run in r["runs"]}
    assert len(seeds) == 4
