import json
from pathlib import Path

import pytest

WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.mark.notebook
def test_viewer_notebook(run_notebook):
    r = run_notebook("07_viewer.ipynb", size=200, texture_size=128, n_samples=2, img_size=48)
    a = r["aeroplane"]
    assert a["kinds"] == ["mesh", "lines", "lines", "points", "text"] and a["n_objects"] == 5
    # standalone pages inline three.js (~0.55 MB) plus the base64 arrays
    assert 550_000 < a["html_bytes"] < 2_000_000
    assert 0.02 < a["static_foreground"] < 0.5
    nut = r["nut"]
    assert nut["kinds"] == ["mesh", "points", "lines"]
    # a closed triangulated surface has E = 3F/2 edges
    assert nut["n_edges"] == 3 * nut["n_faces"] // 2
    assert r["globe"]["texture_shape"] == [64, 128, 3]
    e = r["errors"]
    # the aeroplane is mirror-symmetric about x = 0, not about z = 0
    assert e["sym_x_mean"] < 1e-4 < 0.01 < e["sym_z_mean"]
    # Gaussian noise of std s per coordinate: mean distance to the surface ~ s * sqrt(2/pi) (normal part)
    assert 0.5 * 0.01 * 0.8 < e["pred_mean_dist"] < 1.5 * 0.01 * 0.8
    assert r["table"]["shape"] == [2, 3] and r["table"]["static_foreground"] > 0.02
    c = r["compare"]
    # the "reflection" mesh is the baseline with l2r applied: identical under l2r
    assert c["l2r"]["baseline"] == pytest.approx(c["none"]["reflection"])
    assert c["cent"]["baseline"] < c["none"]["baseline"]
    ins = r["inspect"]
    assert ins["n_candidates"] == ins["n_detected"] + 3
    assert ins["mean_errors"][ins["best"]] < 1e-3  # the chosen candidate is the true plane
    assert r["browser"]["n_samples"] == 2 and 0.005 < r["browser"]["mask_fraction"] < 0.5
    rec = r["reconstruction"]
    assert rec["baseline"]["n_verts"] > 100 and rec["reflection"]["n_verts"] > 100
    assert rec["reflection"]["symmetry_error"] < 1e-5  # exactly symmetric by construction
    assert r["n_viewers"] == 22
    # each top-level viewer is shown once, in the cell that made it (plot() defers the display to the
    # end of the cell; the cell's return value is not shown a second time)
    nb = json.loads((Path(__file__).parents[1] / "build" / "nb" / "07_viewer.ipynb").read_text())
    shown = [sum(WIDGET in o.get("data", {}) for o in c.get("outputs", [])) for c in nb["cells"]
             if c["cell_type"] == "code"]
    assert sum(shown) == 11 and max(shown) == 3  # the three error viewers share one cell
