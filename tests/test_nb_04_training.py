import pytest

SMOKE = dict(data_root="data/synthetic_nb", classes="aeroplane,car", per_class=4, img_size=32, steps=10,
             camera_steps=2, batch_size=8, lr=0.001, template_verts=162, tex_size=16, plot_every=5)


@pytest.mark.notebook
def test_training_notebook_reflection(run_notebook):
    r = run_notebook("04_training.ipynb", variant="reflection", **SMOKE)
    assert r["steps"] == 2 + 10 and len(r["history"]) == 10  # the camera steps, then 10 full ones
    assert r["loss_last"] < r["loss_first"] and r["mask_last"] < r["mask_first"]
    assert r["symmetry"] == "reflection" and r["index_symmetry_error"] <= 1e-6
    assert r["n_verts"] == 162 and r["n_mean_shape_params"] < 2 * 3 * 162
