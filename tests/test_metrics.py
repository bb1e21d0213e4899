import math

import numpy as np
import pytest
import pyvista as pv
import torch

from symnb.examples import example_mesh
from symnb.geometry import sample_surface
from symnb.metrics import (
    chamfer,
    directed_distances,
    hausdorff,
    iou_3d,
    iou_3d_protocol,
    is_closed_oriented,
    mask_iou,
    minmax_distances,
    voxelize,
)
from symnb.symmetry import geometric_symmetry_error, index_symmetry_error, symmetry_map
from symnb.symmetry.templates import sphere_template


def _two_spheres(r1, r2, d, n=2562):
    v, f = sphere_template(n)
    v = v.double()
    return v * r1, f, v * r2 + torch.tensor([d, 0.0, 0.0], dtype=torch.float64), f


def _lens_iou(r1, r2, d):
    poly = d * d + 2 * d * r2 - 3 * r2 * r2 + 2 * d * r1 + 6 * r1 * r2 - 3 * r1 * r1
    lens = math.pi * (r1 + r2 - d) ** 2 * poly
    lens /= 12 * d
    vol = lambda r: 4 / 3 * math.pi * r**3
    return lens / (vol(r1) + vol(r2) - lens)


def test_mask_iou_batched_closed_form():
    pred = torch.zeros(3, 8, 8)
    target = torch.zeros(3, 8, 8)
    pred[0, :4], target[0, 2:6] = 1, 1  # 16 / 48
    pred[1], target[1] = 1, 1
    iou = mask_iou(pred, target)
    assert torch.allclose(iou, torch.tensor([16 / 48, 1.0, 1.0]))  # both empty -> 1
    soft = mask_iou(pred * 0.6, target)
    assert torch.allclose(soft, iou)
    assert mask_iou(torch.zeros(0, 4, 4), torch.zeros(0, 4, 4)).shape == (0,)
    with pytest.raises(ValueError, match="shapes differ"):
        mask_iou(pred, target[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        mask_iou(pred * float("nan"), target)


@pytest.mark.parametrize("r1,r2,d", [(1.0, 0.8, 0.3), (1.0, 1.0, 0.5), (0.7, 1.2, 0.1)])
def test_hausdorff_two_spheres_closed_form(r1, r2, d):
    va, fa, vb, fb = _two_spheres(r1, r2, d)
    # directed: max over p on S1 of | |p - c2| - r2 |, |p - c2| ranges over [|d - r1|, d + r1]
    h_ab = max(abs(d + r1 - r2), abs(abs(d - r1) - r2))
    h_ba = max(abs(d + r2 - r1), abs(abs(d - r2) - r1))
    h, pa, pb = hausdorff(va, fa, vb, fb, n_samples=5000)
    # tessellation error of the 2562-vertex sphere: faces lie up to r (1 - cos(edge / 2)) inside
    assert abs(h - max(h_ab, h_ba)) < 0.01 * max(r1, r2)
    assert abs(float((pa - pb).norm()) - h) < 1e-9
    mm = minmax_distances(va, fa, vb, fb, n_samples=5000)
    assert abs(mm["a2b_max"] - h_ab) < 0.01 and abs(mm["b2a_max"] - h_ba) < 0.01
    assert mm["max"] == max(mm["a2b_max"], mm["b2a_max"])
    assert math.isclose(mm["rel_max"], mm["max"] / (2 * r2 * math.sqrt(3)), rel_tol=0.01)


def test_minmax_means_concentric_spheres():
    va, fa, vb, fb = _two_spheres(1.0, 0.7, 0.0)
    mm = minmax_distances(va, fa, vb, fb, n_samples=5000)
    for k in ("a2b_mean", "b2a_mean", "mean", "a2b_max", "b2a_max"):
        assert abs(mm[k] - 0.3) < 0.006, k


def test_point_distances_match_vtk_on_real_mesh():
    """Exact point-to-surface distances agree with VTK's vtkImplicitPolyDataDistance."""
    v, f = example_mesh("airplane")
    v = v.double()
    shifted = v * 1.05 + torch.tensor([30.0, -20.0, 10.0], dtype=torch.float64)
    d, pts, a, b = directed_distances(shifted, f, v, f, n_samples=2000)
    faces = np.hstack([np.full((len(f), 1), 3), f.numpy()]).ravel()
    poly = pv.PolyData(v.numpy(), faces)
    cloud = pv.PolyData(pts.numpy())
    ref = np.abs(cloud.compute_implicit_distance(poly)["implicit_distance"])
    # the exact distances (worst samples) match; the KD-tree estimates are upper bounds
    exact = np.isclose(d.numpy(), ref, rtol=1e-4, atol=1e-3)
    assert exact.sum() >= 64
    assert (d.numpy() >= ref - 1e-3).all()
    assert abs(float((a - b).norm()) - ref.max()) < 1e-3 * max(1.0, ref.max())


def test_hausdorff_identical_and_sample_based_scipy_bound():
    from scipy.spatial.distance import directed_hausdorff

    v, f = example_mesh("nut")
    h, _, _ = hausdorff(v, f, v, f, n_samples=4000)
    assert h < 1e-9
    w = v * 1.1
    h, _, _ = hausdorff(v, f, w, f, n_samples=4000)
    pa, _ = sample_surface(v.double(), f, 20000, seed=3)
    pb, _ = sample_surface(w.double(), f, 20000, seed=4)
    a, b = pa.numpy(), pb.numpy()
    scipy_h = max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0])
    # sample-to-sample distances overestimate surface distances by at most the sample spacing
    assert h <= scipy_h + 1e-9
    assert h > scipy_h - 0.1 * scipy_h


def test_chamfer_concentric_spheres():
    va, fa, vb, fb = _two_spheres(1.0, 0.8, 0.0)
    c = chamfer(va, fa, vb, fb, n_samples=8000)
    assert abs(c - 2 * 0.2**2) < 0.01
    assert chamfer(va, fa, va, fa, n_samples=8000) < 0.005
    assert chamfer(va, None, va, None) == 0.0


@pytest.mark.parametrize("d", [0.3, 0.8])
def test_iou_3d_two_spheres_closed_form(d):
    va, fa, vb, fb = _two_spheres(1.0, 0.8, d)
    ref = _lens_iou(1.0, 0.8, d)
    assert abs(iou_3d(va, fa, vb, fb, resolution=64) - ref) < 0.02
    assert abs(iou_3d(va, fa, vb, fb, resolution=128) - ref) < 0.01


def test_iou_3d_edge_cases():
    va, fa, vb, fb = _two_spheres(1.0, 1.0, 3.0, n=162)
    assert iou_3d(va, fa, vb, fb, 32) == 0.0
    assert iou_3d(va, fa, va, fa, 32) == 1.0
    with pytest.raises(ValueError, match="resolution"):
        iou_3d(va, fa, vb, fb, 1)


def test_parity_voxelization_matches_winding_numbers():
    v, f = example_mesh("blob")
    v = v.double()
    lo = v.amin(0).numpy() - 0.05
    step = float((v.amax(0) - v.amin(0)).max() + 0.1) / 16
    a = voxelize(v, f, lo, step, 16, "parity")
    b = voxelize(v, f, lo, step, 16, "winding")
    assert a.sum() > 100
    assert (a != b).sum() <= 0.01 * a.sum()


def test_iou_3d_robust_to_holes():
    v, f = sphere_template(2562)
    rng = np.random.default_rng(0)
    holey = f[torch.as_tensor(rng.permutation(len(f))[: len(f) - 15])]  # 15 missing faces
    assert iou_3d(v, f, v, holey, 64) > 0.98


def test_index_symmetry_error_matches_naive():
    v, f = sphere_template(162)
    sm = symmetry_map(v)
    x = v + 0.05 * torch.randn_like(v)
    mx, mean = index_symmetry_error(x, sm)
    naive = torch.stack([(x[i] - x[sm.mirror[i]] * torch.tensor([-1.0, 1, 1])).norm() for i in range(len(v))])
    assert torch.isclose(mx, naive.max()) and torch.isclose(mean, naive.mean())
    assert index_symmetry_error(v, sm)[0] == 0


def test_geometric_symmetry_error():
    v, f = example_mesh("box")
    assert geometric_symmetry_error(v, f, n_samples=5000) < 1e-6
    sheared = v.clone()
    sheared[:, 0] += 0.2 * sheared[:, 1]
    err = geometric_symmetry_error(sheared, f, n_samples=5000)
    h, _, _ = hausdorff(sheared, f, sheared * torch.tensor([-1.0, 1, 1]), f.flip(1), n_samples=5000)
    diag = float((sheared.amax(0) - sheared.amin(0)).norm())
    assert err > 0.05 and abs(err - h / diag) < 0.01


@pytest.mark.parametrize("res,tol", [(64, 0.02), (128, 0.01)])
def test_voxel_volume_matches_vtk_volume_on_real_mesh(res, tol):
    """Occupied voxel volume of PyVista's (closed) nut vs VTK's exact mesh volume (vtkMassProperties)."""
    import os

    from pyvista import examples

    poly = pv.read(os.path.join(os.path.dirname(examples.__file__), "nut.ply"))
    v, f = example_mesh("nut")
    v = v.double()
    step = float((v.amax(0) - v.amin(0)).max()) / res * 1.0001
    occ = voxelize(v, f, v.amin(0).numpy(), step, res)
    assert abs(occ.sum() * step**3 / poly.volume - 1) < tol


def test_signed_voxelization_counts_overlapping_folds_inside():
    """Two overlapping closed spheres as one self-intersecting mesh (what a folded prediction is): ray
    parity calls the overlap outside, the winding number (signed crossings) inside, as the slow
    generalized-winding reference does; an inside-out mesh has winding -1 everywhere: empty."""
    v, f = sphere_template(642)
    v = v.double() * 0.3
    both = torch.cat([v + torch.tensor([0.1, 0, 0]), v - torch.tensor([0.1, 0, 0])])
    faces = torch.cat([f, f + len(v)])
    assert is_closed_oriented(faces) and not is_closed_oriented(f[:-3])
    lo, step = np.full(3, -0.5), 1 / 24
    ref = voxelize(both, faces, lo, step, 24, "winding")
    signed = voxelize(both, faces, lo, step, 24, "signed")
    parity = voxelize(both, faces, lo, step, 24, "parity")
    assert (signed != ref).sum() <= 0.01 * ref.sum()
    assert (parity != ref).sum() > 0.3 * ref.sum()  # the lens both spheres share
    assert voxelize(both, faces, lo, step, 24).sum() == signed.sum()  # "auto" picks signed for closed meshes
    assert voxelize(v, f[:, [0, 2, 1]], lo, step, 24, "signed").sum() == 0
    single = voxelize(v, f, lo, step, 24, "signed")
    assert (single == voxelize(v, f, lo, step, 24, "parity")).all()  # the same where parity is right


def test_iou_3d_protocol_undoes_one_global_scale_and_shift():
    """Predictions that are their CAD models scaled by 0.5 and shifted (one transform for the set)
    score against them as the CADs score against themselves; CAD models shared by several
    predictions (voxelized once) score as copies do."""
    sphere, fs = sphere_template(642)
    box = sphere.double() / sphere.abs().amax(1, keepdim=True) * torch.tensor([0.4, 0.1, 0.25]).double()
    cads = [(sphere.double() * 0.3, fs), (box, fs)]
    gt = [cads[0], cads[1], cads[0], cads[1]]  # shared objects, as a dataset's cad_mesh returns them
    shift = torch.tensor([0.1, -0.05, 0.2], dtype=torch.float64)
    preds = [v * 0.5 + shift for v, _ in gt]
    ious, scale, t = iou_3d_protocol(preds, fs, gt)
    assert scale == pytest.approx(2.0) and np.allclose(t, -2 * shift.numpy())
    self_ious, _, _ = iou_3d_protocol([v for v, _ in gt], fs, gt)
    assert np.allclose(ious, self_ious, atol=0.02) and (self_ious == 1).all()
    copies = [(v.clone(), f.clone()) for v, f in gt]
    assert np.array_equal(iou_3d_protocol(preds, fs, copies)[0], ious)
    with pytest.raises(ValueError, match="4 predictions for 3 CAD models"):
        iou_3d_protocol(preds, fs, gt[:3])
