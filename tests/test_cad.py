import math

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from data_prep import cad, shapes


def _mirror_exact(v: np.ndarray) -> bool:
    key = {tuple(p) for p in v}
    return all((-p[0], p[1], p[2]) in key for p in v)


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    return float(cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean()) / 2


def test_watertight_and_volume_on_a_box():
    v, f = shapes.box(0, 1, 0, 2, 0, 3)
    assert cad.is_watertight(f)
    assert cad.signed_volume(v, f) == pytest.approx(6.0)
    assert not cad.is_watertight(f[1:])  # a missing face opens a hole
    assert not cad.is_watertight(np.concatenate([f[:1, ::-1], f[1:]]))  # one flipped face


def test_merge_and_drop_rebuilds_a_triangle_soup():
    v, f = shapes.box(0, 1, 0, 1, 0, 1)
    soup_v = v[f].reshape(-1, 3)  # every face has its own three vertices
    soup_f = np.arange(len(soup_v)).reshape(-1, 3)
    degenerate = np.array([[0, 0, 1], [3, 4, 3]])
    (mv, mf), merged, dropped = cad.merge_and_drop(soup_v, np.concatenate([soup_f, soup_f[:2], degenerate]))
    assert len(mv) == 8 and merged == len(soup_v) - 8
    assert dropped == 4 and len(mf) == 12
    assert cad.is_watertight(mf)


def test_revolve_is_closed_outward_and_matches_the_closed_form_volume():
    r, n = 0.5, 64
    t = np.linspace(0, np.pi, 33)
    v, f = shapes.revolve(np.stack([r * np.sin(t), -r * np.cos(t)], 1), n_theta=n)
    assert cad.is_watertight(f)
    assert cad.signed_volume(v, f) == pytest.approx(4 / 3 * math.pi * r**3, rel=0.01)


def test_clean_real_airplane():
    """PyVista's real CAD mesh: not watertight before; watertight, outward, exactly symmetric after."""
    v, f = shapes.real_aeroplane()
    src = shapes.sources("aeroplane", 1)[0]
    (cv, cf), rep = cad.clean_cad(v, f, cad.CleanupSettings(face_budget=1200), up_hint=src.up_hint,
                                  forward_hint=src.forward_hint, source=src.name)
    assert not rep.watertight_before and rep.watertight_after and cad.is_watertight(cf)
    assert cad.signed_volume(cv, cf) > 0
    assert _mirror_exact(cv)
    assert rep.symmetry_error_after < 1e-6 < rep.symmetry_error_before < 0.02
    assert 0.8 * 1200 <= rep.faces_after <= 1.2 * 1200
    lo, hi = cv.min(0), cv.max(0)
    np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-12)
    assert np.linalg.norm(hi - lo) == pytest.approx(1.0)
    # canonical frame: thinnest extent is up (y), the wings span x (widest at the wing, not the tail)
    ext = hi - lo
    assert ext[1] < ext[0] and ext[1] < ext[2]
    front = cv[cv[:, 2] > 0.5 * hi[2]]
    back = cv[cv[:, 2] < 0.5 * lo[2]]
    assert np.ptp(front[:, 0]) < np.ptp(back[:, 0])  # the nose (+z) is narrower than the tail-plane
    assert back[:, 1].max() > front[:, 1].max()  # the fin sticks up at the back


def test_clean_recovers_the_canonical_frame_of_a_broken_rotated_mesh():
    """Break a procedural car (rotate, scale, shift, duplicate vertices, degenerate faces, holes);
    cleaning it without the frame recovers the same shape as cleaning the intact one."""
    rng = np.random.default_rng(3)
    v, f = shapes.car(rng)
    (ref_v, ref_f), _ = cad.clean_cad(v, f, canonical=True)
    R = Rotation.from_euler("xyz", [20, 70, -15], degrees=True).as_matrix()
    bv = (v @ R.T) * 3.0 + np.array([5.0, -2.0, 1.0])
    bf = np.concatenate([f[1:], [[0, 0, 1]]])  # a hole (one face gone) and a degenerate face
    bv = np.concatenate([bv, bv[:10]])  # unused duplicates
    (cv, cf), rep = cad.clean_cad(bv, bf, up_hint=R @ [0, 1, 0], forward_hint=R @ [0, 0, 1])
    assert rep.watertight_after and rep.degenerate_faces_dropped >= 1
    assert _mirror_exact(cv)
    # same shape up to the remesh's voxel size (1/64 of the longest side ~ 0.013)
    assert _chamfer(cad.sample_surface(cv, cf, 3000, rng), cad.sample_surface(ref_v, ref_f, 3000, rng)) < 0.02
    normal, _, _ = cad.detect_plane(bv, bf, up_hint=R @ [0, 1, 0], forward_hint=R @ [0, 0, 1])
    assert abs(normal @ (R @ [1, 0, 0])) > math.cos(math.radians(2))


def test_rotation_axis_becomes_y():
    """A surface of revolution in an arbitrary pose, with an up hint 25 degrees off: the detected
    rotation axis becomes y exactly, so the cleaned bottle matches the one cleaned in its own frame."""
    rng = np.random.default_rng(5)
    v, f = shapes.bottle(rng)
    (ref_v, ref_f), _ = cad.clean_cad(v, f, canonical=True)
    R = Rotation.from_euler("xyz", [30, 10, 50], degrees=True).as_matrix()
    hint = Rotation.from_euler("x", 25, degrees=True).as_matrix() @ R @ [0, 1, 0]
    (cv, cf), rep = cad.clean_cad(v @ R.T, f, up_hint=hint, forward_hint=R @ [0, 0, 1])
    assert rep.plane_detector == "symnb.symmetry" and rep.rotation_axis_order == 0
    assert rep.watertight_after and _mirror_exact(cv)
    ext = cv.max(0) - cv.min(0)
    assert ext[1] > 2 * ext[0] and ext[0] == pytest.approx(ext[2], rel=0.03)  # round cross-section about y
    assert cv[:, 1][np.argmax(np.linalg.norm(cv[:, [0, 2]], axis=1))] < 0  # wide body at the bottom: upright
    assert _chamfer(cad.sample_surface(cv, cf, 3000, rng), cad.sample_surface(ref_v, ref_f, 3000, rng)) < 0.02


def test_mirror_weld_is_exact_on_an_asymmetric_mesh():
    v, f = shapes.box(-0.3, 0.5, 0, 1, 0, 1, level=2)
    sv, sf = cad.mirror_weld(v, f)
    assert _mirror_exact(sv) and cad.is_watertight(sf)
    assert sv[:, 0].max() == pytest.approx(0.5) and sv[:, 0].min() == pytest.approx(-0.5)
    assert cad.symmetry_error(sv, sf) < 1e-9 < cad.symmetry_error(v, f, point=(0.1, 0, 0))


def test_cad_uses_the_remesh_mirror_weld():
    from data_prep import remesh

    assert cad.mirror_weld is remesh.mirror_weld


def test_library_areas_samples_and_symmetry_error_match_the_former_numpy_code():
    """face_areas / sample_surface / symmetry_error reuse symnb.geometry and give the numbers of the
    numpy code they replaced (cross products, area-weighted samples, mean mirrored distance)."""
    from data_prep import cad_mesh

    rng = np.random.default_rng(2)
    v, f = shapes.car(rng)
    a, b, c = (v[f[:, i]] for i in range(3))
    np.testing.assert_allclose(cad.face_areas(v, f), 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1),
                               rtol=1e-12)
    p = cad.sample_surface(v, f, 4000, rng)
    assert p.shape == (4000, 3) and p.dtype == np.float64
    _, closest = cad_mesh._poly(v, f).find_closest_cell(p, return_closest_point=True)
    assert np.abs(closest - p).max() < 1e-9  # on the surface
    # area-weighted: two triangles of areas 1/2 and 3/2 get 1/4 and 3/4 of the samples
    tv = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 0, 0], [8, 0, 0], [5, 1, 0]], dtype=np.float64)
    q = cad.sample_surface(tv, np.array([[0, 1, 2], [3, 4, 5]]), 20000, rng)
    assert abs((q[:, 0] < 2).mean() - 0.25) < 0.02

    # symmetry_error: the mean of exact distances (symnb.geometry.point_mesh_closest gives the same
    # numbers), at most the Hausdorff distance symnb.symmetry.geometric_symmetry_error reports
    import torch

    from symnb.geometry import bbox_diagonal, point_mesh_closest
    from symnb.geometry import sample_surface as torch_samples
    from symnb.symmetry import geometric_symmetry_error

    w, g = v, f  # the car, symmetric about x = 0: mirror about two other planes
    wt, gt = torch.as_tensor(w), torch.as_tensor(g)
    for normal, point in (((1.0, 0, 0), (0.02, 0, 0)), ((0.0, 0.2, 1.0), (0.0, 0, 0.05))):
        ours = cad.symmetry_error(w, g, normal, point, n=1000)
        p, _ = torch_samples(wt, gt, 1000, seed=0)
        nrm, pt = torch.tensor(normal, dtype=torch.float64), torch.tensor(point, dtype=torch.float64)
        nrm = nrm / nrm.norm()
        q = p - 2 * ((p - pt) @ nrm)[:, None] * nrm
        exact = float(point_mesh_closest(q, wt, gt)[0].mean() / bbox_diagonal(wt))
        assert ours == pytest.approx(exact, rel=1e-6)
        hausdorff = geometric_symmetry_error(w, g, normal=normal, point=point, n_samples=1000)
        assert 0 < ours < hausdorff


@pytest.mark.parametrize("cls", shapes.SUPPORTED_CLASSES)
def test_procedural_instances_vary_and_clean(cls):
    srcs = [s for s in shapes.sources(cls, 3, seed=1) if s.canonical]
    meshes = [s.build() for s in srcs]
    assert not np.allclose(meshes[0][0].max(0), meshes[1][0].max(0))  # per-instance variation
    (cv, cf), rep = cad.clean_cad(*meshes[0], cad.CleanupSettings(face_budget=800), canonical=True)
    assert rep.watertight_after and _mirror_exact(cv) and len(cf) <= 1.2 * 800


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        cad.clean_cad(np.full((3, 3), np.nan), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="expected verts"):
        cad.clean_cad(np.zeros((3, 2)), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="no CAD source"):
        shapes.sources("sofa", 2)


def test_transform_and_extrinsic_map_source_cameras_to_the_canonical_mesh():
    """The reported similarity maps the source mesh onto the cleaned one, and a source camera moved
    with extrinsic_to_canonical projects canonical points where the source camera projected them."""
    rng = np.random.default_rng(7)
    v, f = shapes.car(rng)
    R = Rotation.from_euler("xyz", [10, -60, 5], degrees=True).as_matrix()
    src = (v @ R.T) * 4.0 + np.array([1.0, 2.0, -3.0])
    (cv, cf), rep = cad.clean_cad(src, f, up_hint=R @ [0, 1, 0], forward_hint=R @ [0, 0, 1])
    T = np.asarray(rep.transform)
    mapped = src @ T[:3, :3].T + T[:3, 3]
    # every point of the cleaned surface lies on the mapped source surface (which also has inner parts)
    d, _ = cKDTree(cad.sample_surface(mapped, f, 20000, rng)).query(cad.sample_surface(cv, cf, 3000, rng))
    assert d.mean() < 0.02  # the voxel remesh sits about one voxel (1/64 of the longest side) outside
    E = np.eye(4)
    E[:3, :3] = Rotation.from_euler("xyz", [170, 20, 5], degrees=True).as_matrix()
    E[:3, 3] = -E[:3, :3] @ (src.mean(0) + np.array([0.0, 0.0, 12.0]))
    K = np.array([[300.0, 0, 64], [0, 300.0, 64], [0, 0, 1]])
    E2 = cad.extrinsic_to_canonical(E, T)
    np.testing.assert_allclose(E2[:3, :3] @ E2[:3, :3].T, np.eye(3), atol=1e-12)

    def proj(E, X):
        p = (X @ E[:3, :3].T + E[:3, 3]) @ K.T
        return p[:, :2] / p[:, 2:]

    np.testing.assert_allclose(proj(E2, mapped), proj(E, src), atol=1e-8)


def test_cli(tmp_path):
    from symnb.io import load_mesh, save_mesh

    v, f = shapes.real_aeroplane()
    save_mesh(tmp_path / "plane.ply", v, f)
    rep = cad.main([str(tmp_path / "plane.ply"), str(tmp_path / "clean.obj"), "--up", "0", "0", "1",
                    "--forward", "0", "-1", "0", "--face-budget", "500",
                    "--report", str(tmp_path / "r.json")])
    cv, cf = load_mesh(tmp_path / "clean.obj")
    assert len(cf) == rep.faces_after and rep.watertight_after and (tmp_path / "r.json").is_file()
    assert cad.is_watertight(cf.numpy()) and _mirror_exact(cv.double().numpy())
