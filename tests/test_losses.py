"""Losses against naive loops and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch3d.transforms import axis_angle_to_quaternion, quaternion_to_matrix

from symnb import losses as L
from symnb.symmetry.templates import sphere_template


def test_mask_loss_matches_naive_loop_and_empty_batch():
    s, m = torch.rand(3, 5, 6), (torch.rand(3, 5, 6) > 0.5).float()
    naive = sum((s[b, i, j] - m[b, i, j]) ** 2 for b in range(3) for i in range(5) for j in range(6)) / 90
    assert torch.allclose(L.mask_loss(s, m), naive, atol=1e-6)
    assert L.mask_loss(torch.zeros(0, 4, 4), torch.zeros(0, 4, 4)) == 0
    with pytest.raises(ValueError, match="shape"):
        L.mask_loss(s, m[:, :4])


def test_quat_geodesic_closed_form_and_camera_loss():
    angles = torch.tensor([0.0, 0.3, 1.0, 2.5, math.pi - 1e-3])
    axis = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    q1 = axis_angle_to_quaternion(torch.randn(5, 3))
    dq = axis_angle_to_quaternion(axis * angles[:, None])
    from pytorch3d.transforms import quaternion_raw_multiply

    q2 = quaternion_raw_multiply(dq, q1)
    assert torch.allclose(L.quat_geodesic(q1, q2), angles, atol=1e-3)
    assert torch.allclose(L.quat_geodesic(q1, -q1), torch.zeros(5), atol=1e-3)  # q and -q: same rotation
    # the Frobenius rotation term is 4 (1 - cos angle): bounded, and flat (not steepest) at the solution
    R1, R2 = quaternion_to_matrix(q1), quaternion_to_matrix(q2)
    assert torch.allclose(L.rotation_frobenius(R1, R2), 4 * (1 - torch.cos(angles)), atol=1e-5)
    scale, trans = torch.tensor([1.0, 2.0]), torch.tensor([[0.0, 0.0], [0.1, -0.2]])
    loss = L.camera_loss(scale, trans, R1[:2], scale + torch.tensor([0.5, 0.0]), trans, R2[:2])
    expected = (4 * (1 - torch.cos(angles[0])) + 0.25 + 4 * (1 - torch.cos(angles[1]))) / 2
    assert torch.allclose(loss, expected, atol=1e-5)
    x = axis_angle_to_quaternion(torch.tensor([[1e-3, 0.0, 0.0]])).requires_grad_()
    L.rotation_frobenius(quaternion_to_matrix(x), torch.eye(3)[None]).sum().backward()
    assert x.grad.abs().max() < 0.01  # near-correct predictions get small gradients


def test_camera_loss_is_winner_take_all_over_hypotheses():
    R_gt = quaternion_to_matrix(axis_angle_to_quaternion(torch.tensor([[0.0, 0.4, 0.0]])))
    flip = quaternion_to_matrix(axis_angle_to_quaternion(torch.tensor([[0.0, 0.4 + math.pi, 0.0]])))
    hyp = torch.stack([flip[0], R_gt[0]])[None]  # the second hypothesis is right
    logits = torch.tensor([[0.0, 0.0]])
    one = torch.ones(1)
    assert L.camera_loss(one, torch.zeros(1, 2), hyp, one, torch.zeros(1, 2), R_gt) < 1e-10  # winner exact
    tie = L.hypothesis_loss(hyp, logits, R_gt)
    assert torch.allclose(tie, torch.log(torch.tensor(2.0)))  # cross-entropy of a tie
    assert L.hypothesis_loss(hyp, torch.tensor([[-9.0, 9.0]]), R_gt) < 1e-6  # confident and right
    assert L.hypothesis_loss(hyp, torch.tensor([[9.0, -9.0]]), R_gt) > 17  # confident and wrong
    assert L.hypothesis_loss(R_gt, torch.zeros(1, 1), R_gt) == 0  # one hypothesis: nothing to choose


def test_quat_norm_and_deformation_closed_forms():
    q = torch.tensor([[2.0, 0, 0, 0], [0, 0.5, 0, 0]])
    assert torch.allclose(L.quat_norm_loss(q), torch.tensor((1.0 + 0.25) / 2))
    off = torch.zeros(2, 4, 3)
    off[0, 0] = torch.tensor([3.0, 4.0, 0.0])
    assert torch.allclose(L.deformation_loss(off), torch.tensor(25.0 / 8))


def test_uniform_laplacian_matches_naive_neighbour_average():
    v, f = sphere_template(42)
    verts = (v * (1 + 0.2 * torch.rand(2, len(v), 1)))
    nbrs = [set() for _ in range(len(v))]
    for a, b, c in f.tolist():
        nbrs[a] |= {b, c}
        nbrs[b] |= {a, c}
        nbrs[c] |= {a, b}
    naive = 0.0
    for b in range(2):
        lap = torch.stack([verts[b, sorted(n)].mean(0) - verts[b, i] for i, n in enumerate(nbrs)])
        naive += lap.norm(dim=1).mean() / 2
    assert torch.allclose(L.laplacian_loss(verts, f), naive, atol=1e-5)
    # a uniform translation has zero Laplacian on offsets
    assert L.laplacian_loss(torch.ones(1, len(v), 3), f) < 1e-6
    # the cached Laplacian gives PyTorch3D's mesh_laplacian_smoothing, value and gradient
    from pytorch3d.loss import mesh_laplacian_smoothing
    from pytorch3d.structures import Meshes

    x = verts.clone().requires_grad_()
    y = verts.clone().requires_grad_()
    ours, ref = L.laplacian_loss(x, f), mesh_laplacian_smoothing(Meshes(list(y), [f] * 2), method="uniform")
    ours.backward()
    ref.backward()
    assert torch.allclose(ours, ref, atol=1e-6) and torch.allclose(x.grad, y.grad, atol=1e-6)


def test_texture_terms_by_hand_in_lab():
    """MCMR's terms: squared Lab lightness (pixel) and a, b (colour) errors, masked means."""
    img, ren = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    ren[0, :, 0, 0] = 1.0  # white (L 100, a = b = 0) against black (L 0)
    ren[0, 0, 0, 1] = 1.0  # red: L 53.24, a 80.09, b 67.20 (known sRGB D65 values)
    ren[0, :, 1, 1] = 1.0  # outside the mask: ignored
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert torch.allclose(L.pixel_loss(ren, img, mask), torch.tensor((100.0**2 + 53.24**2) / 2), rtol=2e-3)
    assert torch.allclose(L.colour_loss(ren, img, mask), torch.tensor((80.09**2 + 67.20**2) / 4), rtol=2e-3)
    assert L.colour_loss(img, img, mask) == 0 and L.pixel_loss(img, img, mask) == 0
    with pytest.raises(ValueError, match="mask must be"):
        L.colour_loss(ren, img, mask[0])


def test_ssim_loss_identity_and_noise():
    x = torch.rand(2, 3, 20, 20)
    ones = torch.ones(2, 1, 20, 20)
    assert L.ssim_loss(x, x, ones).abs() < 1e-5
    assert L.ssim_loss(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1), ones) > 0.1


def test_barrier_distance_and_texture_dt_loss():
    """CMR's barrier: ~0 well inside the mask, 0.5 on its outline, ~1 outside; the texture-flow loss
    reads it at the sampling positions (and its gradient pushes them inside)."""
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    bar = L.mask_barrier_distance(mask)
    assert bar.shape == mask.shape and bar[0, 0, 16, 16] < 0.01 and bar[0, 0, 0, 0] > 0.99
    step = torch.sigmoid(torch.tensor(50 / 32))  # one pixel from the outline, k = 50, S = 32
    assert torch.allclose(bar[0, 0, 7, 16], step) and torch.allclose(bar[0, 0, 8, 16], 1 - step)
    inside = torch.zeros(1, 2, 4, 8)  # every texel samples the image centre
    outside = torch.full((1, 2, 4, 8), -0.95, requires_grad=True)  # the top-left corner
    assert L.texture_dt_loss(inside, bar) < 0.01 and L.texture_dt_loss(outside, bar) > 0.99
    edge = torch.full((1, 2, 4, 8), -0.45, requires_grad=True)  # near the mask's top-left corner
    L.texture_dt_loss(edge, bar).backward()
    assert (edge.grad < 0).all()  # descending moves the positions towards the centre
    with pytest.raises(ValueError, match="flow must be"):
        L.texture_dt_loss(inside[:, :1], bar)


def test_keypoint_loss_ignores_invisible_and_weighted_sum():
    pred = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    kp = torch.tensor([[[0.0, 1.0, 1.0], [5.0, 5.0, 0.0]]])
    assert torch.allclose(L.keypoint_loss(pred, kp), torch.tensor(1.0))
    w = L.LossWeights()
    total = L.weighted_sum({"mask": torch.tensor(2.0), "camera": torch.tensor(1.0)}, w)
    assert torch.allclose(total, torch.tensor(2.0 * 100 + 20.0))
    with pytest.raises(AttributeError):
        L.weighted_sum({"nonsense": torch.tensor(1.0)}, w)


def test_default_weights_are_mcmr_pascal3d():
    """MCMR's README flags for the terms MCMR has (the silhouette decoder is ours)."""
    w = L.LossWeights()
    assert (w.mask, w.camera, w.quat, w.deformation, w.laplacian, w.laplacian_offsets, w.colour, w.pixel) == (
        100.0, 20.0, 0.1, 0.05, 6.0, 1.8, 0.03, 0.005)


def test_perceptual_loss_needs_local_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="VGG-16 weights"):
        L.PerceptualLoss(str(tmp_path / "vgg16.pth"))


def test_viewpoint_loss_is_small_only_for_the_annotated_bins():
    from symnb.camera import view_bins, viewpoint_angles, viewpoint_rotation

    az, el, roll = torch.tensor([100.0, -40.0]), torch.tensor([10.0, 30.0]), torch.tensor([2.0, -4.0])
    R = viewpoint_rotation(az, el, roll)
    bins = view_bins((24, 12, 24))
    ang = viewpoint_angles(R)
    logits, residuals = [], []
    for i, b in enumerate(bins):
        k, r = b.encode(ang[:, i])
        logits.append(torch.nn.functional.one_hot(k, b.n).float() * 20)
        residuals.append(torch.zeros(2, b.n).scatter(1, k[:, None], r[:, None].float()))
    s, t = torch.ones(2), torch.zeros(2, 2)
    assert L.viewpoint_loss(logits, residuals, s, t, R, s, t) < 1e-6
    wrong = [lg.roll(1, dims=1) for lg in logits]
    assert L.viewpoint_loss(wrong, residuals, s, t, R, s, t) > 10
    assert L.viewpoint_loss(logits, residuals, s + 1, t, R, s, t) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="3 angles"):
        L.viewpoint_loss(logits[:2], residuals, s, t, R, s, t)


def test_silhouette_loss_area_averages_the_mask():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    logits = torch.full((1, 1, 2, 2), -30.0)
    logits[..., 0, :] = 30.0
    assert L.silhouette_loss(logits, mask) < 1e-6
    assert L.silhouette_loss(-logits, mask) > 10


def test_texture_cycle_loss_over_visible_texels():
    target = torch.rand(2, 4, 8, 2) * 2 - 1
    visible = torch.zeros(2, 1, 4, 8, dtype=torch.bool)
    visible[:, :, :2] = True
    flow = target.permute(0, 3, 1, 2).clone()
    assert L.texture_cycle_loss(flow, target, visible) == 0
    flow[:, :, 2:] += 5.0  # hidden texels: ignored
    assert L.texture_cycle_loss(flow, target, visible) == 0
    flow = flow.clone().requires_grad_()
    shifted = flow + torch.tensor([0.1, -0.2]).view(1, 2, 1, 1)
    loss = L.texture_cycle_loss(shifted, target, visible)
    assert torch.allclose(loss, torch.tensor(0.05))  # 0.1^2 + 0.2^2 per visible texel
    assert L.texture_cycle_loss(flow, target, torch.zeros_like(visible)) == 0
    with pytest.raises(ValueError, match=r"target \(B, H, W, 2\)"):
        L.texture_cycle_loss(flow, target[:, :2], visible)


def test_view_partners_match_a_naive_search():
    g = torch.Generator().manual_seed(0)
    cls, cad = torch.randint(0, 2, (12,), generator=g), torch.randint(1, 4, (12,), generator=g)
    got = L.view_partners(cls, cad)
    for i in range(12):  # the next other item (cyclically) of the same class and CAD, else -1
        ahead = [(i + k) % 12 for k in range(1, 12)]
        same = [j for j in ahead if cls[j] == cls[i] and cad[j] == cad[i]]
        assert int(got[i]) == (same[0] if same else -1)
    assert L.view_partners(torch.tensor([0]), torch.tensor([1])).tolist() == [-1]
    assert L.view_partners(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape == (0,)
    with pytest.raises(ValueError, match="same"):
        L.view_partners(cls, cad[:3])
