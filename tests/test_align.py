import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from symnb.align import icp, pca_align, pca_icp, umeyama
from symnb.examples import example_mesh
from symnb.geometry import sample_surface


@pytest.fixture(scope="module")
def blob_points():
    v, f = example_mesh("blob", seed=3)
    pts, nrm, _ = sample_surface(v.double(), f, 3000, seed=0, with_normals=True)
    return pts.numpy(), nrm.numpy()


def _pose(seed, scale=1.0):
    R = Rotation.random(random_state=seed).as_matrix()
    t = np.random.default_rng(seed).normal(size=3)
    return R, t, scale


def test_umeyama_recovers_similarity(blob_points):
    p, _ = blob_points
    R, t, s = _pose(0, 2.5)
    s2, R2, t2 = umeyama(p, s * p @ R.T + t, with_scale=True)
    assert np.allclose(R2, R, atol=1e-9) and np.isclose(s2, s) and np.allclose(t2, t)


def test_pca_align_same_points_any_rotation(blob_points):
    p, _ = blob_points
    R, t, _ = _pose(1)
    al = pca_align(p, p @ R.T + t)
    assert al.residual < 1e-6
    assert np.allclose(al.transform[:3, :3].numpy(), R, atol=1e-6)


@pytest.mark.parametrize("point_to_plane", [False, True])
def test_icp_from_nearby_start(blob_points, point_to_plane):
    p, n = blob_points
    R = Rotation.from_rotvec([0.15, -0.1, 0.2]).as_matrix()
    t = np.array([0.05, -0.03, 0.02])
    dst, dn = p @ R.T + t, n @ R.T
    al = icp(p, dst, point_to_plane=point_to_plane, dst_normals=dn if point_to_plane else None)
    assert al.residual < 1e-4
    assert np.allclose(al.transform[:3, :3].numpy(), R, atol=1e-3)
    assert np.allclose(al.transform[:3, 3].numpy(), t, atol=1e-3)


def test_icp_with_scale(blob_points):
    p, _ = blob_points
    R = Rotation.from_rotvec([0.1, 0.05, -0.1]).as_matrix()
    dst = 1.3 * p @ R.T + 0.1
    al = icp(p, dst, with_scale=True, max_iters=100)
    A = al.transform[:3, :3].numpy()
    assert al.residual < 1e-4 and abs(np.cbrt(np.linalg.det(A)) - 1.3) < 1e-3


def test_pca_icp_resamples_and_large_rotations():
    """Different samples of the same surface, arbitrary pose: PCA-initialised ICP over sign flips."""
    v, f = example_mesh("blob", seed=5)
    a, _ = sample_surface(v.double(), f, 3000, seed=1)
    b, nb, _ = sample_surface(v.double(), f, 3000, seed=2, with_normals=True)
    for seed in range(3):
        R, t, s = _pose(10 + seed, 1.7)
        dst = s * b.numpy() @ R.T + t
        al = pca_icp(a, dst, with_scale=True)
        A = al.transform[:3, :3].numpy()
        assert np.allclose(A / np.cbrt(np.linalg.det(A)), R, atol=0.03)
        assert al.residual < 0.05 * s
        al2 = pca_icp(a, dst / s, point_to_plane=True, dst_normals=nb.numpy() @ R.T)
        assert np.allclose(al2.transform[:3, :3].numpy(), R, atol=0.03)


def test_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        icp(np.zeros((0, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        pca_align(np.full((5, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="dst_normals"):
        icp(np.random.rand(5, 3), np.random.rand(5, 3), point_to_plane=True)
    assert torch.is_tensor(icp(np.random.rand(5, 3), np.random.rand(5, 3)).transform)
