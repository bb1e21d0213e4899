import math

import pytest
import torch

from symnb.symmetry import template_for
from symnb.symmetry.templates import sphere_template

SMOKE = dict(meshes="airplane,nut,box,vase,blob", n_poses=1, template_verts=642)


@pytest.mark.notebook
def test_symmetry_notebook(run_notebook):
    r = run_notebook("01_symmetry.ipynb", **SMOKE)
    det = r["detection"]
    expected = {
        "airplane": ("reflection", [1], [1]),
        "nut": ("rotation", [8], [9]),  # PyVista's nut.ply is octagonal: 8 planes + the mid plane
        "box": ("two_planes", [1], [3]),
        "vase": ("rotation", [0], None),
        "blob": ("none", [1], [0]),
    }
    for name, (rep, orders, n_refl) in expected.items():
        assert det[name]["representations"] == [rep], name
        assert det[name]["orders"] == orders, name
        if n_refl is not None:
            assert det[name]["n_reflections"] == n_refl, name
        assert det[name]["max_angle_error_deg"] < 2.0, name  # acceptance: within 2 degrees
    for name, c in r["canonical"].items():
        assert math.isclose(c["diag"], 1.0, rel_tol=1e-6)
        if det[name]["representation"] != "none":
            assert c["x_plane_error"] < 0.02, name

    # parameter counts against an independent count on the template
    v, _ = sphere_template(642)
    n_plane = int((v[:, 0] == 0).sum())
    assert r["params"]["none_1"] == 3 * 642
    assert r["params"]["reflection_1"] == 3 * (642 - n_plane) // 2 + 2 * n_plane
    vu = r["params_n_verts"]["rotation_8"]
    assert r["params"]["rotation_8"] == 3 * (vu - 2) // 8 + 2
    assert r["params"]["rotation_5"] == 3 * (642 - 2) // 5 + 2
    assert r["params"]["two_planes_1"] < r["params"]["reflection_1"] < r["params"]["none_1"]
    assert r["per_mesh_params"]["nut"]["n_params"] == r["params"]["rotation_8"]
    assert r["per_mesh_params"]["blob"]["n_params"] == 3 * 642
    assert torch.tensor(r["params"]["rotation_0"]) < r["params"]["rotation_8"]
    # two planes x = 0, z = 0 on the 642-vertex geodesic sphere with coordinate mirror planes:
    # 3 per quadrant vertex, 2 per vertex on one half-plane, 1 per vertex on the y axis
    vp, _ = template_for("two_planes", 642)
    x, z = vp[:, 0], vp[:, 2]
    one_plane = ((x == 0) & (z > 0)) | ((z == 0) & (x > 0))
    on_axis = (x == 0) & (z == 0)
    expected = 3 * int(((x > 0) & (z > 0)).sum()) + 2 * int(one_plane.sum()) + int(on_axis.sum())
    assert r["params"]["two_planes_1"] == expected
    assert r["per_mesh_params"]["box"]["n_params"] == r["params"]["two_planes_1"]
    # every finite group: expand is exactly invariant, count = Jacobian rank, |G| as expected
    checks = r["group_checks"]
    assert set(checks) == {k for k in r["params"] if k != "rotation_0"}
    for key, c in checks.items():
        assert c["max_index_error"] <= 1e-6, key
        assert c["n_params"] == c["jacobian_rank"] == r["params"][key], key
        name, order = key.rsplit("_", 1)
        assert c["group_size"] == {"none": 1, "reflection": 2, "two_planes": 4}.get(name, int(order)), key
