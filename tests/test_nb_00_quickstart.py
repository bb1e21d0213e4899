import math

import pytest


@pytest.mark.notebook
def test_quickstart_notebook(run_notebook):
    r = run_notebook("00_quickstart.ipynb", image_size=64, ico_level=2)
    assert (r["n_verts"], r["n_faces"]) == (162, 320)
    # the inscribed icosphere covers a little less than the sphere's closed-form disk
    assert 0.9 * r["coverage_closed_form"] < r["coverage"] < 1.02 * r["coverage_closed_form"]
    assert math.isclose(r["shaded_foreground_fraction"], r["coverage"], rel_tol=0.1)
