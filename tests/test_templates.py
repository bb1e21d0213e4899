import math

import pytest
import torch
from pytorch3d.structures import Meshes
from pytorch3d.utils import ico_sphere
from scipy.spatial import cKDTree

from symnb.symmetry.groups import template_family, template_for
from symnb.symmetry.templates import (
    double_resolution,
    geodesic_n_verts,
    geodesic_sphere,
    mirror_indices,
    sphere_template,
    uv_sphere,
)

FLIP = torch.tensor([-1.0, 1.0, 1.0])


def _rot_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _check_closed_outward(v, f):
    mesh = Meshes([v.double()], [f])
    # every face normal points away from the centre, signed volume = enclosed volume > 0
    cent = v.double()[f].mean(1)
    assert (mesh.faces_normals_packed() * cent).sum(1).min() > 0
    E = len(torch.unique(torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values, dim=0))
    assert len(v) - E + len(f) == 2  # Euler characteristic of a sphere


@pytest.mark.parametrize("freq", [1, 2, 3, 5, 8, 11])
def test_geodesic_counts_unit_norm_and_exact_mirror(freq):
    v, f = geodesic_sphere(freq)
    assert len(v) == geodesic_n_verts(freq) == 10 * freq**2 + 2
    assert len(f) == 20 * freq**2
    assert torch.allclose(v.norm(dim=1), torch.ones(len(v)), atol=1e-6)
    _check_closed_outward(v, f)
    mirror = torch.as_tensor(mirror_indices(v.numpy()))
    assert torch.equal(v[mirror] * FLIP, v)  # bit-exact: the mirror of a vertex is a vertex
    # the mirror maps faces onto faces (with reversed orientation)
    faces = {tuple(sorted(t)) for t in f.tolist()}
    assert all(tuple(sorted(mirror[t].tolist())) in faces for t in f)


def test_geodesic_five_fold_about_y():
    v, _ = sphere_template(642)
    d, _ = cKDTree(v.numpy()).query((v @ _rot_y(2 * math.pi / 5).T).numpy())
    assert d.max() < 1e-6


def _lengths(v, f):
    return (v[f] - v[f.roll(1, 1)]).norm(dim=-1).flatten().sort().values


def test_powers_of_two_match_pytorch3d_icospheres():
    """Frequency 2^k has the counts of PyTorch3D's level-k icosphere (which subdivides level by level
    and so places vertices slightly differently from the one-shot projected lattice for k >= 2)."""
    for level, freq in enumerate([1, 2, 4, 8]):
        ref = ico_sphere(level)
        v, f = geodesic_sphere(freq)
        assert (len(v), len(f)) == (len(ref.verts_packed()), len(ref.faces_packed()))
        if freq <= 2:  # one subdivision: the same vertex set up to a rotation (same edge lengths)
            assert torch.allclose(_lengths(v, f), _lengths(ref.verts_packed(), ref.faces_packed()), atol=2e-4)


def test_fine_resolution_choice_and_doubling():
    assert len(sphere_template(642)[0]) == 642
    assert len(sphere_template(1000)[0]) == 1002  # not only 4x per level
    counts = [len(sphere_template(n)[0]) for n in (300, 500, 700, 900)]
    assert counts == [252, 492, 642, 812]
    for n in (162, 642, 2562):
        v, f = sphere_template(n)
        v2, f2 = double_resolution(v, f)
        assert 1.75 < len(v2) / len(v) < 2.3


@pytest.mark.parametrize("n_lat,n_lon", [(8, 12), (16, 30)])
def test_uv_sphere_mirror_and_rotations(n_lat, n_lon):
    v, f = uv_sphere(n_lat, n_lon)
    assert len(v) == (n_lat - 1) * n_lon + 2
    _check_closed_outward(v, f)
    mirror = torch.as_tensor(mirror_indices(v.numpy()))
    assert torch.equal(v[mirror] * FLIP, v)
    mz = torch.as_tensor(mirror_indices(v.numpy(), normal=(0.0, 0.0, 1.0)))
    assert torch.equal(v[mz] * torch.tensor([1.0, 1.0, -1.0]), v)  # z = 0 mirror bit-exact too
    tree = cKDTree(v.numpy())
    for n in range(2, n_lon + 1):
        d, _ = tree.query((v @ _rot_y(2 * math.pi / n).T).numpy())
        assert (d.max() < 1e-5) == (n_lon % n == 0)


@pytest.mark.parametrize("freq", [1, 2, 5, 8])
def test_geodesic_planes_orientation_exact_coordinate_mirrors(freq):
    v, f = geodesic_sphere(freq, orientation="planes")
    assert len(v) == geodesic_n_verts(freq)
    assert torch.allclose(v.norm(dim=1), torch.ones(len(v)), atol=1e-6)
    _check_closed_outward(v, f)
    faces = {tuple(sorted(t)) for t in f.tolist()}
    for axis in range(3):
        flip = torch.ones(3)
        flip[axis] = -1
        normal = torch.eye(3)[axis].numpy()
        m = torch.as_tensor(mirror_indices(v.numpy(), normal=normal))
        assert torch.equal(v[m] * flip, v)  # bit-exact mirror about each coordinate plane
        assert all(tuple(sorted(m[t].tolist())) in faces for t in f)
    # the same vertex set as the five-fold orientation, rotated: same sorted edge lengths
    v5, f5 = geodesic_sphere(freq)
    assert torch.allclose(_lengths(v, f), _lengths(v5, f5), atol=1e-6)


@pytest.mark.parametrize("name,order", [("none", 1), ("reflection", 1), ("two_planes", 1), ("rotation", 2),
                                        ("rotation", 4), ("rotation", 5), ("rotation", 6), ("rotation", 8)])
def test_template_for_is_invariant(name, order):
    v, f = template_for(name, 642, order=order)
    assert abs(len(v) - 642) / 642 < 0.05
    _check_closed_outward(v, f)
    tree = cKDTree(v.numpy())
    mats = [torch.eye(3)]
    if name in ("reflection", "two_planes"):
        mats.append(torch.diag(FLIP))
    if name == "two_planes":
        mats.append(torch.diag(torch.tensor([1.0, 1.0, -1.0])))
    if name == "rotation":
        mats += [_rot_y(2 * math.pi * k / order) for k in range(1, order)]
    for g in mats:
        d, idx = tree.query((v @ g.T).numpy())
        assert d.max() <= 1e-6
        assert len(set(idx.tolist())) == len(v)  # a permutation of the vertices
    assert template_family(name, order) == {"two_planes": "geodesic planes"}.get(
        name, {2: "geodesic planes", 5: "geodesic"}.get(order, "uv" if name == "rotation" else "geodesic"))


def test_uv_template_with_rotation_order():
    v, _ = sphere_template(642, family="uv", n_fold=6)
    n_lon = int(((v[:, 1] - v[1, 1]).abs() < 1e-6).sum())  # vertices on the first ring
    assert n_lon % 6 == 0 and n_lon % 2 == 0
    assert abs(len(v) - 642) / 642 < 0.1


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_lon must be even"):
        uv_sphere(8, 9)
    with pytest.raises(ValueError, match="unknown template family"):
        sphere_template(642, family="cube")
    with pytest.raises(ValueError, match="n_verts"):
        sphere_template(3)
    with pytest.raises(ValueError, match="orientation"):
        geodesic_sphere(2, orientation="tilted")
    with pytest.raises(ValueError, match="order"):
        template_for("rotation", 642)
