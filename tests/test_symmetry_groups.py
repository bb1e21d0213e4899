import itertools

import pytest
import torch

from symnb.symmetry import (
    SymmetryMap,
    expand,
    index_symmetry_error,
    invariant_dimension,
    n_free_params,
    reflect,
    symmetrize,
    symmetry_group,
    symmetry_map,
    template_for,
)
from symnb.symmetry.templates import geodesic_sphere, uv_sphere

# (representation, order) with a template of about 162 vertices invariant under its group
CASES = [("none", 1), ("reflection", 1), ("two_planes", 1)] + [("rotation", n) for n in (2, 4, 5, 6, 8)]
IDS = [f"{r}{o}" for r, o in CASES]


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request):
    name, order = request.param
    v, f = template_for(name, 162, order=order)
    return name, order, v, symmetry_map(v, name, order)


def _rand(shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def test_group_is_closed_and_permutations_compose(case):
    name, order, v, gm = case
    mats = gm.matrices
    G = len(mats)
    assert G == {"none": 1, "reflection": 2, "two_planes": 4}.get(name, order)
    assert torch.allclose(mats @ mats.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(G, 3, 3))
    for a, b in itertools.product(range(G), repeat=2):
        prod = mats[a] @ mats[b]
        c = int((mats - prod).abs().flatten(1).amax(1).argmin())
        assert torch.allclose(mats[c], prod, atol=1e-12)  # closed under products
        assert torch.equal(gm.perms[a][gm.perms[b]], gm.perms[c])  # pi_a o pi_b = pi_ab
    # perms really map g x_i onto x_{pi_g(i)}
    vd = v.double()
    assert ((vd @ mats.transpose(1, 2)) - vd[gm.perms]).norm(dim=-1).max() < 1e-6


def test_expand_is_exactly_invariant(case):
    name, _, v, gm = case
    half = v[gm.independent] + 0.2 * _rand((3, len(gm.independent), 3))
    full = expand(half, gm)
    assert full.shape == (3, len(v), 3)
    err_max, err_mean = index_symmetry_error(full, gm)
    assert float(err_max.max()) <= 1e-6
    if name in ("none", "reflection", "two_planes"):
        assert float(err_max.max()) == 0.0  # matrices of 0 / +-1: bit-exact
    # representatives off every symmetry element are kept as given
    free = gm.dofs == 3
    assert torch.equal(full[:, gm.independent[free]], half[:, free])


def test_symmetrize_is_an_orthogonal_projection(case):
    _, _, v, gm = case
    x = v.double() + 0.2 * _rand((2, len(v), 3), dtype=torch.float64)
    y = symmetrize(x, gm)
    assert float(index_symmetry_error(y, gm)[0].max()) < 1e-12
    assert torch.allclose(symmetrize(y, gm), y, atol=1e-12)  # idempotent
    # self-adjoint: <x - Sx, Sz> = 0 for any z
    z = _rand((2, len(v), 3), seed=1, dtype=torch.float64)
    assert abs(float(((x - y) * symmetrize(z, gm)).sum())) < 1e-9
    # symmetrize(expand(p)) == expand(p), and expand(symmetrize(x)[independent]) == symmetrize(x)
    full = expand(x[:, gm.independent], gm)
    assert torch.allclose(symmetrize(full, gm), full, atol=1e-12)
    assert torch.allclose(expand(y[:, gm.independent], gm), y, atol=1e-12)
    # "copy" keeps the representatives (projected) and is invariant too
    c = symmetrize(x, gm, "copy")
    assert torch.allclose(c, full) and float(index_symmetry_error(c, gm)[0].max()) < 1e-12


def test_symmetrize_matches_naive_loop():
    v, _ = template_for("two_planes", 42)
    for name, order in (("two_planes", 1), ("rotation", 2)):
        gm = symmetry_map(v, name, order)
        x = _rand((len(v), 3), seed=3, dtype=torch.float64)
        mats = gm.matrices
        naive = torch.zeros_like(x)
        for i in range(len(v)):
            for g in range(len(mats)):
                # the vertex that g maps onto... g^-1 of the image vertex of i under g
                j = int((v.double() - v.double()[i] @ mats[g].T).norm(dim=1).argmin())
                naive[i] += mats[g].T @ x[j]
        naive /= len(mats)
        assert torch.allclose(symmetrize(x, gm), naive, atol=1e-12)


def test_counts_match_rank_and_character_formula(case):
    name, order, v, gm = case
    # both maps are linear: their Jacobians are their images of the standard basis (batched);
    # the ranks on a ~42-vertex template of the same family (SVDs stay small)
    vs, _ = template_for(name, 42, order=order)
    gs = symmetry_map(vs, name, order)
    K, V = len(gs.independent), len(vs)
    J = expand(torch.eye(3 * K, dtype=torch.float64).reshape(3 * K, K, 3), gs).reshape(3 * K, -1)
    Js = symmetrize(torch.eye(3 * V, dtype=torch.float64).reshape(-1, V, 3), gs).reshape(3 * V, -1)
    rank, rank_s = int(torch.linalg.matrix_rank(J)), int(torch.linalg.matrix_rank(Js))
    assert gs.n_params == rank == rank_s == invariant_dimension(gs)
    assert gm.n_params == invariant_dimension(gm)
    # positional closed forms
    V = len(v)
    x, z = v[:, 0], v[:, 2]
    axis = int(((x.abs() < 1e-6) & (z.abs() < 1e-6)).sum())
    expected = {
        "none": 3 * V,
        "reflection": 3 * int((x > 0).sum()) + 2 * int((x == 0).sum()),
        "two_planes": 3 * int(((x > 0) & (z > 0)).sum())
        + 2 * int((((x == 0) & (z > 0)) | ((z == 0) & (x > 0))).sum())
        + axis,
    }.get(name, 3 * (V - axis) // order + axis)
    assert gm.n_params == expected
    assert n_free_params(symmetry_map(v), name, order=order) == gm.n_params == n_free_params(gm)
    if name == "rotation":
        assert axis == 2  # the poles
        assert (V - axis) % order == 0


def test_one_plane_map_is_the_mirror_pairing():
    """For one plane the map's non-identity permutation is the mirror pairing, "cent" is the average of a
    vertex and its mirrored partner and the index error is their distance (naive formulas)."""
    v, _ = template_for("reflection", 642)
    sm = symmetry_map(v)
    assert torch.equal(sm.perms[1], sm.mirror)
    x = v + 0.1 * _rand((2, len(v), 3))
    mirrored = reflect(x[:, sm.mirror], (1.0, 0.0, 0.0))  # each vertex's partner, reflected back
    assert torch.allclose(symmetrize(x, sm, "cent"), (x + mirrored) / 2, atol=1e-6)
    left = sm.side > 0
    assert torch.equal(symmetrize(x, sm, "l2r")[:, left], x[:, left])
    ref = float((x - mirrored).norm(dim=-1).max())
    assert float(index_symmetry_error(x, sm)[0].max()) == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("name,order", [("two_planes", 1), ("rotation", 4), ("rotation", 5)])
def test_gradcheck(name, order):
    v, _ = template_for(name, 42, order=order)
    gm = symmetry_map(v, name, order)
    K = len(gm.independent)
    h = (v[gm.independent].double() + 0.1 * _rand((K, 3), dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: expand(t, gm), (h,))
    x = (v.double() + 0.1 * _rand((len(v), 3), dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: symmetrize(t, gm), (x,))


def test_errors_name_the_failing_element():
    v5, _ = geodesic_sphere(4)  # mirror x = 0 and 5-fold about y, but no z = 0 mirror
    with pytest.raises(ValueError, match="reflection z -> -z"):
        symmetry_map(v5, "two_planes")
    with pytest.raises(ValueError, match="z -> -z"):
        n_free_params(symmetry_map(v5), "two_planes")
    vu, _ = uv_sphere(6, 12)
    with pytest.raises(ValueError, match=r"rotation by 2 pi 1/8 about y"):
        symmetry_map(vu, "rotation", 8)
    with pytest.raises(ValueError, match="continuous"):
        symmetry_map(vu, "rotation", 0)
    with pytest.raises(ValueError, match="order"):
        symmetry_group("rotation")
    with pytest.raises(ValueError, match="unknown representation"):
        symmetry_group("helix")
    with pytest.raises(ValueError, match="NaN"):
        symmetry_map(vu * float("nan"), "reflection")
    gm = symmetry_map(vu, "rotation", 4)
    with pytest.raises(ValueError, match="half must be"):
        expand(torch.zeros(3, 3), gm)
    with pytest.raises(ValueError, match="unknown mode"):
        symmetrize(vu, gm, "r2l")
    assert isinstance(gm.to("cpu"), SymmetryMap)
