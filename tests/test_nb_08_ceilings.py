import pytest

SMOKE = dict(config="configs/demo.yaml", smoke=True, model_path="build/nb/08_ceilings/missing.pt",
             sizes="32,64", steps=30, max_items=2)


@pytest.mark.notebook
def test_ceilings_notebook(run_notebook):
    r = run_notebook("08_ceilings.ipynb", **SMOKE)
    assert r["rows"] == ["cad", "fit 32 px", "class fit 32 px", "fit 64 px", "class fit 64 px"]
    assert r["network"] is False
    t = r["table"]
    for c in ("aeroplane", "car"):
        assert t["cad"][f"{c} 3-D IoU"] == pytest.approx(1.0)  # each image's own CAD model
        assert 0.5 < t["cad"][f"{c} mask IoU"] <= 1.0  # the data's limit at 32 px crops
        for row in ("fit 32 px", "class fit 32 px", "fit 64 px", "class fit 64 px"):
            assert 0 < t[row][f"{c} 3-D IoU"] < 1 and 0 < t[row][f"{c} mask IoU"] < 1
    assert r["n_images"]["cad"] == r["n_images"]["fit 32 px"] == r["n_images"]["class fit 64 px"] > 0
