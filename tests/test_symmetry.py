import math

import pytest
import torch

from symnb.examples import example_mesh, random_pose
from symnb.symmetry import (
    Symmetry,
    choose_representation,
    detect_symmetries,
    expand,
    geometric_symmetry_error,
    index_symmetry_error,
    n_free_params,
    reflect,
    symmetrize,
    symmetry_map,
    template_for,
)
from symnb.symmetry.templates import sphere_template


@pytest.fixture(scope="module")
def template():
    v, f = sphere_template(642)
    return v, f, symmetry_map(v, n_slices=4)


def test_symmetry_map_structure(template):
    v, _, sm = template
    ar = torch.arange(len(v))
    assert torch.equal(sm.mirror[sm.mirror], ar)  # involution
    assert torch.equal(v[sm.mirror] * torch.tensor([-1.0, 1.0, 1.0]), v)
    assert torch.equal(sm.on_plane, v[:, 0] == 0)
    assert torch.equal(sm.side, torch.sign(v[:, 0]).to(torch.int8))  # left = x > 0
    assert torch.equal(sm.independent, torch.nonzero(v[:, 0] >= 0).squeeze(1))
    assert len(sm.independent) == (len(v) + int(sm.on_plane.sum())) // 2
    assert torch.equal(sm.slices, sm.slices[sm.mirror]) and sm.n_slices == 4
    # bands are horizontal: band index increases with y
    for k in range(3):
        assert v[sm.slices == k, 1].max() <= v[sm.slices == k + 1, 1].min()


def test_symmetry_map_rejects_asymmetric_vertices(template):
    v, _, _ = template
    bad = v.clone()
    bad[5] += 0.01
    with pytest.raises(ValueError, match="not symmetric"):
        symmetry_map(bad)


def test_symmetry_map_general_plane():
    v, _ = sphere_template(162)
    R = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    vv = v.double() @ R.T + 1.0
    sm = symmetry_map(vv, normal=R[:, 0], point=torch.ones(3, dtype=torch.float64))
    y = symmetrize(vv + 0.05 * torch.randn_like(vv), sm, "cent")
    assert float(index_symmetry_error(y, sm)[0]) < 1e-6


def _naive_symmetrize(x, v, mode):
    out = x.clone()
    for i in range(len(v)):
        j = int(torch.nonzero((v - v[i] * torch.tensor([-1.0, 1.0, 1.0])).norm(dim=1) < 1e-6)[0])
        m = x[j] * torch.tensor([-1.0, 1.0, 1.0])
        if v[i, 0] == 0 or mode == "cent":
            out[i] = (x[i] + m) / 2
        elif (mode == "l2r") == (v[i, 0] < 0):
            out[i] = m
    return out


@pytest.mark.parametrize("mode", ["l2r", "r2l", "cent"])
def test_symmetrize_matches_naive_loop(mode):
    v, _ = sphere_template(92)
    sm = symmetry_map(v)
    x = v + 0.1 * torch.randn_like(v)
    y = symmetrize(x, sm, mode)
    assert torch.allclose(y, _naive_symmetrize(x, v, mode), atol=1e-6)
    assert float(index_symmetry_error(y, sm)[0]) < 1e-6
    if mode == "l2r":
        assert torch.equal(y[sm.side > 0], x[sm.side > 0])


def test_symmetrize_per_slice_modes_and_batch(template):
    v, _, sm = template
    x = (v + 0.1 * torch.randn(3, *v.shape)).requires_grad_()
    modes = ["l2r", "cent", "r2l", "l2r"]
    y = symmetrize(x, sm, modes)
    assert y.shape == x.shape
    assert float(index_symmetry_error(y.detach(), sm)[0].max()) < 1e-6
    for k, m in enumerate(modes):
        sel = sm.slices == k
        assert torch.allclose(y[:, sel], symmetrize(x, sm, m)[:, sel])
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="modes for 4 slices"):
        symmetrize(x, sm, ["l2r"])
    with pytest.raises(ValueError, match="unknown symmetrize mode"):
        symmetrize(x, sm, "up")


def test_symmetrize_gradcheck():
    v, _ = sphere_template(42)
    sm = symmetry_map(v, n_slices=2)
    x = (v.double() + 0.1 * torch.randn(len(v), 3, dtype=torch.float64)).requires_grad_()
    for mode in ("l2r", "r2l", "cent", ["cent", "l2r"]):
        assert torch.autograd.gradcheck(lambda t, m=mode: symmetrize(t, sm, m), (x,))


def test_expand_is_exactly_symmetric_and_inverts_symmetrize(template):
    v, _, sm = template
    x = v + 0.1 * torch.randn(2, *v.shape)
    full = expand(x[:, sm.independent], sm)
    assert torch.equal(full[:, sm.on_plane, 0], torch.zeros_like(full[:, sm.on_plane, 0]))
    assert float(index_symmetry_error(full, sm)[0].max()) == 0.0  # bit-exact mirror
    sym = symmetrize(x, sm, "l2r")
    assert torch.allclose(expand(sym[:, sm.independent], sm), sym, atol=1e-7)
    h = x[:, sm.independent].clone().requires_grad_()
    expand(h, sm).sum().backward()
    assert h.grad.abs().sum() > 0


def test_n_free_params(template):
    v, _, sm = template
    n_plane = int(sm.on_plane.sum())
    n_left = int((sm.side > 0).sum())
    assert n_free_params(sm, "none") == 3 * 642
    assert n_free_params(sm, "reflection") == 3 * n_left + 2 * n_plane
    # two planes x = 0, z = 0 need a template with both mirrors (the geodesic one in "planes" orientation)
    with pytest.raises(ValueError, match="not invariant under the reflection z -> -z"):
        n_free_params(sm, "two_planes")
    vp, _ = template_for("two_planes", 642)
    x, z = vp[:, 0], vp[:, 2]
    quad = int(((x > 0) & (z > 0)).sum())
    one = int((((x == 0) & (z > 0)) | ((z == 0) & (x > 0))).sum())
    both = int(((x == 0) & (z == 0)).sum())
    assert n_free_params(symmetry_map(vp), "two_planes") == 3 * quad + 2 * one + both == 497
    assert 4 * quad + 2 * one + both == 642  # orbit sizes 4, 2, 1 partition the vertices
    # 5-fold about y: (V - axis vertices) / 5 orbits of 3 coordinates + 1 per axis vertex (the poles)
    assert n_free_params(sm, "rotation", order=5) == 3 * (642 - 2) // 5 + 2
    vu, _ = sphere_template(642, family="uv", n_fold=6)
    smu = symmetry_map(vu)
    n_lat = len(torch.unique(vu[:, 1].round(decimals=5))) - 1  # rings + 2 poles - 1
    assert n_free_params(smu, "rotation", order=0) == 2 * (n_lat - 1) + 2
    assert n_free_params(smu, "rotation", order=6) == 3 * (len(vu) - 2) // 6 + 2
    with pytest.raises(ValueError, match="order"):
        n_free_params(sm, "rotation")


# ----------------------------------------------------------------------------------------- detection


def _angle_deg(a, b):
    return math.degrees(math.acos(min(1.0, abs(float(a.double() @ b.double())))))


def _find(syms, kind, direction, order=None):
    cands = [s for s in syms if s.kind == kind and (order is None or s.order == order)]
    return min((_angle_deg(s.normal, direction) for s in cands), default=180.0)


@pytest.mark.parametrize("seed", [1, 2])
def test_detect_box_planes_in_random_pose(seed):
    v, f = example_mesh("box")  # unevenly tessellated: level 4 on one half, 1 on the other
    vv, R, t, s = random_pose(v, seed)
    syms = detect_symmetries(vv, f)
    refl = [x for x in syms if x.kind == "reflection"]
    assert len(refl) == 3
    for axis in torch.eye(3, dtype=torch.float64):
        assert _find(syms, "reflection", R @ axis) < 2.0
        assert _find(syms, "rotation", R @ axis, order=2) < 2.0
    assert all(x.error <= 0.02 for x in syms)
    assert [x.error for x in syms] == sorted(x.error for x in syms)
    # the planes pass through the box centre (t)
    for x in refl:
        assert abs(float((t - x.point) @ x.normal)) / (s * 2.4) < 0.005
    rep = choose_representation(syms, vv)
    assert rep.name == "two_planes"
    canon = rep.apply(vv)
    assert abs(float((canon.amax(0) - canon.amin(0)).norm()) - 1) < 1e-6
    assert geometric_symmetry_error(canon, f, normal=(1, 0, 0), n_samples=5000) < 0.02
    assert geometric_symmetry_error(canon, f, normal=(0, 0, 1), n_samples=5000) < 0.02


@pytest.mark.parametrize("seed", [3, 4])
def test_detect_airplane_single_plane(seed):
    v, f = example_mesh("airplane")  # real CAD model, plane x = const in its file
    vv, R, _, _ = random_pose(v, seed)
    syms = detect_symmetries(vv, f)
    assert [x.kind for x in syms] == ["reflection"]
    assert _angle_deg(syms[0].normal, R[:, 0]) < 2.0
    rep = choose_representation(syms, vv)
    assert rep.name == "reflection"
    canon = rep.apply(vv).float()
    assert geometric_symmetry_error(canon, f, n_samples=5000) < 0.01
    # y up (in-plane direction of least spread, a PCA heuristic): near the file's z axis
    assert _angle_deg(rep.R.T @ torch.tensor([0, 1.0, 0], dtype=torch.float64), R[:, 2]) < 10.0


def test_detect_nut_eight_fold():
    v, f = example_mesh("nut")  # PyVista's nut.ply is octagonal, axis y
    vv, R, _, _ = random_pose(v, 5)
    syms = detect_symmetries(vv, f)
    rot = [x for x in syms if x.kind == "rotation" and x.order >= 3]
    assert len(rot) == 1 and rot[0].order == 8
    assert _angle_deg(rot[0].normal, R[:, 1]) < 2.0
    refl = [x for x in syms if x.kind == "reflection"]
    assert len(refl) == 9  # 8 planes through the axis + the mid plane
    assert _find(syms, "reflection", R[:, 1]) < 2.0
    rep = choose_representation(syms, vv)
    assert rep.name == "rotation" and rep.order == 8


@pytest.mark.parametrize("name", ["vase", "open_cylinder"])
def test_detect_surface_of_revolution(name):
    v, f = example_mesh(name)
    vv, R, _, _ = random_pose(v, 6)
    syms = detect_symmetries(vv, f)
    rot = [x for x in syms if x.kind == "rotation"]
    assert rot[0].order == 0
    assert _angle_deg(rot[0].normal, R[:, 1]) < 2.0
    rep = choose_representation(syms, vv)
    assert rep.name == "rotation" and rep.order == 0
    canon = rep.apply(vv)
    assert canon[:, [0, 2]].mean(0).abs().max() < 0.01  # axis = y through the origin


@pytest.mark.parametrize("seed", [0, 1])
def test_detect_asymmetric_blob(seed):
    v, f = example_mesh("blob", seed=seed)
    vv, _, _, _ = random_pose(v, seed)
    assert detect_symmetries(vv, f) == []
    rep = choose_representation([], vv)
    assert rep.name == "none"


def test_detect_errors_are_surface_hausdorff():
    v, f = example_mesh("box")
    syms = detect_symmetries(v, f)
    x = [s for s in syms if s.kind == "reflection"][0]
    ref = geometric_symmetry_error(v, f, normal=x.normal, point=x.point, n_samples=8000)
    assert abs(x.error - ref) < 0.003
    T = x.matrix()
    assert torch.allclose(T[:3, :3] @ T[:3, :3], torch.eye(3, dtype=torch.float64), atol=1e-9)


def test_detect_bad_input():
    v, f = example_mesh("box")
    with pytest.raises(ValueError, match="NaN"):
        detect_symmetries(v * float("nan"), f)
    with pytest.raises(ValueError, match="face indices"):
        detect_symmetries(v, f + 10_000)


def test_choose_representation_prefers_fewest_parameters():
    e = torch.eye(3, dtype=torch.float64)
    z = torch.zeros(3, dtype=torch.float64)
    planes = [Symmetry("reflection", e[i], z, 1, 0.001 * (i + 1)) for i in range(3)]
    assert choose_representation(planes[:1]).name == "reflection"
    rep = choose_representation(planes)
    assert rep.name == "two_planes"
    assert torch.allclose(rep.R[0], e[0]) and abs(float(rep.R[2] @ e[1])) > 1 - 1e-9  # best pair: x, y
    rot6 = Symmetry("rotation", e[2], z, 6, 0.001)
    rep = choose_representation(planes + [rot6])
    assert rep.name == "rotation" and rep.order == 6
    assert torch.allclose(rep.R @ e[2], e[1])  # the axis becomes y
    rot2 = Symmetry("rotation", e[2], z, 2, 0.001)
    assert choose_representation(planes + [rot2]).name == "two_planes"
    assert choose_representation(planes[:1] + [rot2]).name == "reflection"  # ties go to planes
    only = choose_representation([rot2])
    assert (only.name, only.order) == ("rotation", 2)
    assert choose_representation([]).name == "none"


def test_reflect_involution():
    x = torch.randn(10, 3, dtype=torch.float64)
    n, p = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    assert torch.allclose(reflect(reflect(x, n, p), n, p), x)


def test_detect_sphere_is_continuous():
    """A sphere has every plane and axis: detection reports a continuous rotation, not a finite order."""
    v, f = sphere_template(642)
    syms = detect_symmetries(v, f)
    assert any(s.kind == "rotation" and s.order == 0 for s in syms)
    assert sum(s.kind == "reflection" for s in syms) >= 3
    assert choose_representation(syms, v).name == "rotation"
