"""Weak-perspective camera: projection vs PyTorch3D cameras, pinhole conversion, flips."""

import torch
from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
from pytorch3d.structures import Meshes
from pytorch3d.transforms import random_rotations

from symnb.camera import (
    AngleBins,
    flip_horizontal,
    from_perspective,
    project,
    to_pytorch3d,
    view_bins,
    viewpoint_angles,
    viewpoint_rotation,
)


def _random_camera(B):
    from pytorch3d.transforms import matrix_to_quaternion

    return 0.5 + torch.rand(B), 0.3 * torch.randn(B, 2), matrix_to_quaternion(random_rotations(B))


def test_pytorch3d_cameras_render_the_projection():
    B, V = 3, 50
    verts = torch.randn(B, V, 3)
    s, t, q = _random_camera(B)
    uv = project(verts, s, t, q)
    ndc = to_pytorch3d(s, t, q).transform_points(verts)
    torch.testing.assert_close(-ndc[..., :2], uv, atol=1e-5, rtol=1e-5)
    assert (ndc[..., 2] > 0).all()


def test_rasterized_triangle_covers_its_projected_pixel_centres():
    # one big triangle; a pixel is covered iff its centre lies inside the projected triangle
    S = 32
    verts = torch.tensor([[[-0.6, -0.5, 0.0], [0.7, -0.4, 0.1], [0.0, 0.8, -0.1]]])
    faces = torch.tensor([[[0, 1, 2]]])
    s, t, q = torch.tensor([0.9]), torch.tensor([[0.05, -0.1]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    frag = MeshRasterizer(to_pytorch3d(s, t, q), RasterizationSettings(image_size=S, cull_backfaces=False))(
        Meshes(verts, faces)
    )
    covered = frag.pix_to_face[0, ..., 0] >= 0
    a, b, c = project(verts, s, t, q)[0]
    centres = (2 * torch.arange(S) + 1) / S - 1
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    p = torch.stack([x, y], -1)

    def side(p0, p1):
        return (p1[0] - p0[0]) * (p[..., 1] - p0[1]) - (p1[1] - p0[1]) * (p[..., 0] - p0[0])

    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    inside = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
    assert (covered != inside).sum() <= 2  # only pixels whose centres touch an edge may differ
    assert inside.sum() > 100


def test_from_perspective_is_exact_at_the_centre_depth():
    B = 4
    R = random_rotations(B)
    t = torch.cat([0.2 * torch.randn(B, 2), 5 + torch.rand(B, 1)], 1)
    K = torch.tensor([[400.0, 0, 160], [0, 400.0, 120], [0, 0, 1]]).expand(B, 3, 3)
    box = torch.tensor([[60.0, 20.0, 260.0, 220.0]]).expand(B, 4)
    scale, trans, quat = from_perspective(K, R, t, box)
    # points at the centre's depth: world points whose camera-z equals t_z
    cam = torch.cat([torch.randn(B, 20, 2) * 0.3, torch.zeros(B, 20, 1)], -1)
    world = (cam @ R)  # R^T cam, so that R X + t has depth t_z
    pix = (world @ R.transpose(1, 2) + t[:, None]) @ K.transpose(1, 2)
    pix = pix[..., :2] / pix[..., 2:]
    uv_expected = (2 * (pix - box[:, None, :2]) + 1) / 200 - 1
    torch.testing.assert_close(project(world, scale, trans, quat), uv_expected, atol=1e-4, rtol=1e-4)


def test_flip_matches_mirrored_object():
    B = 2
    verts = torch.randn(B, 30, 3)
    mirrored = verts * torch.tensor([-1.0, 1.0, 1.0])
    s, t, q = _random_camera(B)
    uv = project(verts, s, t, q)
    uv_flip = project(mirrored, *flip_horizontal(s, t, q))
    torch.testing.assert_close(uv_flip, uv * torch.tensor([-1.0, 1.0]), atol=1e-5, rtol=1e-5)


def test_viewpoint_angles_invert_viewpoint_rotation():
    R = random_rotations(64, dtype=torch.float64)
    ang = viewpoint_angles(R)
    torch.testing.assert_close(viewpoint_rotation(ang[:, 0], ang[:, 1], ang[:, 2]), R, atol=1e-10, rtol=0)
    az, el, roll = torch.tensor([30.0, -120.0]), torch.tensor([20.0, -5.0]), torch.tensor([8.0, -3.0])
    back = viewpoint_angles(viewpoint_rotation(az, el, roll)).float()
    torch.testing.assert_close(back, torch.stack([az, el, roll], -1), atol=1e-4, rtol=0)
    assert viewpoint_rotation(az, el, roll).dtype == torch.float32  # the arguments' dtype


def test_angle_bins_encode_and_decode():
    az = AngleBins(24)
    k, r = az.encode(torch.tensor([0.0, 7.4, 7.6, 359.0, -15.0, 720.0 + 30.0]))
    assert k.tolist() == [0, 0, 1, 0, 23, 2] and (r.abs() <= 0.5).all()
    expected = torch.tensor([0.0, 7.4, 7.6, 359.0, 345.0, 30.0])
    torch.testing.assert_close(torch.remainder(az.decode(k, r), 360), expected)
    el = AngleBins(12, -90, 90, circular=False)
    k, r = el.encode(torch.tensor([-90.0, 0.0, 14.0, 89.0, 120.0]))
    assert k.tolist() == [0, 6, 6, 11, 11]
    torch.testing.assert_close(el.decode(k, r)[:4], torch.tensor([-90.0, 0.0, 14.0, 89.0]), atol=1e-4, rtol=0)
    assert [b.n for b in view_bins((24, 12, 8))] == [24, 12, 8]
