"""Training losses: plain functions of batched tensors returning a scalar (0 for an empty batch).

Default weights (:class:`LossWeights`) are MCMR's Pascal3D+ settings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch3d.structures import Meshes

from .camera import view_bins, viewpoint_angles
from .config import Config
from .texture_losses import (
    PerceptualLoss,
    colour_loss,
    mask_barrier_distance,
    pixel_loss,
    ssim_loss,
    texture_cycle_loss,
    texture_dt_loss,
    zero_if_empty,
)


@dataclass
class LossWeights(Config):
    """Weight of each loss term (MCMR's Pascal3D+ settings, ``main.py`` flags of its README, for the terms
    it has; 0 disables a term).
    """

    mask: float = 100.0
    """MSE between the rendered soft silhouette and the mask."""
    camera: float = 20.0
    """Rotation (winner-take-all Frobenius error of the hypotheses, :func:`camera_loss`; or the bins and
    residuals of a viewpoint head, :func:`viewpoint_loss`) + L2 on scale and translation against the
    annotation."""
    camera_choice: float = 20.0
    """Cross-entropy of the hypotheses' logits against the closest one (:func:`hypothesis_loss`)."""
    quat: float = 0.1
    """Quaternion-norm regulariser on the raw (unnormalised) quaternion ("quat" rotations)."""
    deformation: float = 0.05
    """Mean squared per-vertex offset."""
    laplacian: float = 6.0
    """Uniform Laplacian of the output vertices."""
    laplacian_offsets: float = 1.8
    """Uniform Laplacian of the offsets."""
    colour: float = 0.03
    """Squared error of the CIE Lab a, b channels between the rendered texture and the image, inside the mask
    (MCMR's ``tex_color_loss``: MSE on raw Lab, weight 0.03)."""
    pixel: float = 0.005
    """Squared error of the Lab lightness L inside the mask (MCMR's ``tex_pixel_loss``, 0.005)."""
    ssim: float = 0.0
    """1 - SSIM of the masked images."""
    perceptual: float = 0.8
    """VGG-16 feature distance inside the mask (MCMR: 0.8); applied only when ``perceptual_weights`` names a
    local file (nothing can be downloaded)."""
    texture_dt: float = 25.0
    """Texture flow only (``ModelConfig.texture_source="flow"``): the mask's barrier distance transform at the
    flow's sampling positions (CMR's ``tex_dt_loss``; CMR weighs it a quarter of its mask term, 0.5 against
    2)."""
    texture_cycle: float = 30.0
    """Texture flow only: squared distance between the flow of each texel the annotated camera sees and where
    that texel projects on the (detached) predicted mesh (UMR's ``tex_cycle_loss``, Li et al. 2020: the
    flow agrees with the geometry; UMR weighs it a third of its mask term)."""
    keypoint: float = 0.0
    """Squared reprojection error of the model's 3-D keypoints (``ModelConfig.n_keypoints``) against the
    visible annotated ones, in normalised image coordinates."""
    cross_view: float = 0.0
    """MSE between the silhouette of an item's predicted shape rendered with the annotated camera of another
    item of the batch showing the same CAD instance (class and ``cad_idx``) and the partner's mask
    (:func:`view_partners`): a second view's constraint on the shape predicted from one image."""
    silhouette: float = 200.0
    """Binary cross-entropy of the silhouette decoded from the image feature
    (``ModelConfig.silhouette_decoder``) against the mask: an auxiliary task for the encoder."""
    perceptual_weights: str | None = None
    """Local torchvision VGG-16 weights file (nothing is downloaded)."""

    def validate(self) -> None:
        for name in self.term_names():
            self._range(name, 0)
        if self.perceptual_weights and not Path(self.perceptual_weights).is_file():
            raise ValueError(f"LossWeights.perceptual_weights: no such file {self.perceptual_weights}")

    @classmethod
    def term_names(cls) -> tuple[str, ...]:
        """Names of the weighted terms (every float field)."""
        return tuple(f.name for f in fields(cls) if f.type in ("float", float))


def view_partners(class_idx: torch.Tensor, cad_idx: torch.Tensor) -> torch.Tensor:
    """For each item of a batch, the next other item (cyclically) of the same class and CAD instance.

    Args:
        class_idx, cad_idx: (B,) long.

    Returns:
        (B,) long: the partner's index, -1 where the batch holds no other view of the instance.
    """
    if class_idx.shape != cad_idx.shape or class_idx.dim() != 1:
        raise ValueError(f"view_partners: class_idx {tuple(class_idx.shape)} and cad_idx "
                         f"{tuple(cad_idx.shape)} must be the same (B,) shape")
    b = class_idx.shape[0]
    if b == 0:
        return torch.empty(0, dtype=torch.long, device=class_idx.device)
    same = (class_idx[:, None] == class_idx[None]) & (cad_idx[:, None] == cad_idx[None])
    same &= ~torch.eye(b, dtype=torch.bool, device=same.device)
    ahead = (torch.arange(b, device=same.device)[None] - torch.arange(b, device=same.device)[:, None]) % b
    dist = torch.where(same, ahead, torch.full_like(ahead, b))  # steps ahead to each partner; b = none
    first = dist.argmin(dim=1)
    return torch.where(same.any(dim=1), first, torch.full_like(first, -1))


def mask_loss(silhouette: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between soft silhouettes and masks.  silhouette, mask: (B, H, W) float in [0, 1]."""
    if silhouette.shape != mask.shape:
        raise ValueError(f"silhouette {tuple(silhouette.shape)} and mask {tuple(mask.shape)} differ in shape")
    e = zero_if_empty(silhouette)
    return e if e is not None else ((silhouette - mask) ** 2).mean()


def silhouette_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of decoded silhouette logits (B, 1, h, w) against masks (B, 1, S, S), the masks
    area-averaged to h x w (S a multiple of h)."""
    if logits.shape[0] != mask.shape[0]:
        raise ValueError(f"silhouette_loss: {logits.shape[0]} silhouettes for {mask.shape[0]} masks")
    e = zero_if_empty(logits)
    if e is not None:
        return e
    target = F.interpolate(mask, size=logits.shape[-2:], mode="area")
    return F.binary_cross_entropy_with_logits(logits, target)


def quat_geodesic(q1: torch.Tensor, q2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Rotation angle (radians) between unit quaternions.  q1, q2: (B, 4) -> (B,) in [0, pi]."""
    dot = (F.normalize(q1, dim=-1) * F.normalize(q2, dim=-1)).sum(-1).abs()
    return 2 * torch.acos(dot.clamp(max=1 - eps))


def rotation_frobenius(R: torch.Tensor, R_gt: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius distance of rotations (..., 3, 3) -> (...): 4 (1 - cos angle), in [0, 8].

    Smooth and bounded, with a gradient that vanishes at the solution; the clamped ``acos`` of
    :func:`quat_geodesic` instead has its largest gradient (~2000 at the clamp) for near-correct
    predictions, which makes a rotation head oscillate.
    """
    return ((R - R_gt) ** 2).sum((-2, -1))


def _winner(R_hyp: torch.Tensor, R_gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Errors (B, K) of the hypotheses and the index (B,) of the closest one."""
    if R_hyp.dim() == 3:
        R_hyp = R_hyp[:, None]
    err = rotation_frobenius(R_hyp, R_gt[:, None])
    return err, err.detach().argmin(1)


def camera_loss(scale, trans, R_hyp, scale_gt, trans_gt, R_gt) -> torch.Tensor:
    """Camera supervision of a multi-hypothesis head, batch mean: the :func:`rotation_frobenius` error
    of the hypothesis closest to the annotation (winner-take-all) plus squared errors of scale and
    translation.

    Args:
        scale: (B,); trans: (B, 2); R_hyp: (B, K, 3, 3) (or (B, 3, 3) for K = 1);
        scale_gt: (B,); trans_gt: (B, 2); R_gt: (B, 3, 3).
    """
    e = zero_if_empty(scale)
    if e is not None:
        return e
    err, win = _winner(R_hyp, R_gt)
    rot = err.gather(1, win[:, None])[:, 0]
    return (rot + (scale - scale_gt) ** 2 + ((trans - trans_gt) ** 2).sum(-1)).mean()


def viewpoint_loss(logits: list[torch.Tensor], residuals: list[torch.Tensor], scale, trans, R_gt,
                   scale_gt, trans_gt) -> torch.Tensor:
    """Camera supervision of a viewpoint-bin head (:class:`symnb.model.heads.ViewpointHead`), batch mean:
    per angle (azimuth, elevation, roll) the cross-entropy of its bins and the smooth L1 error of the
    annotated bin's residual (bin widths), plus squared errors of scale and translation.

    Args:
        logits, residuals: per angle (B, n_a) (bin counts of :func:`symnb.camera.view_bins`);
        scale: (B,); trans: (B, 2); R_gt: (B, 3, 3); scale_gt: (B,); trans_gt: (B, 2).
    """
    e = zero_if_empty(scale)
    if e is not None:
        return e
    if len(logits) != 3 or len(residuals) != 3:
        raise ValueError(f"viewpoint_loss: logits and residuals of 3 angles needed, got {len(logits)}, "
                         f"{len(residuals)}")
    angles = viewpoint_angles(R_gt)  # (B, 3) degrees
    total = ((scale - scale_gt) ** 2 + ((trans - trans_gt) ** 2).sum(-1)).mean()
    for i, b in enumerate(view_bins(tuple(lg.shape[1] for lg in logits))):
        k, r = b.encode(angles[:, i])
        k = k.to(logits[i].device)
        own = residuals[i].gather(1, k[:, None])[:, 0]
        total = total + F.cross_entropy(logits[i], k) + F.smooth_l1_loss(own, r.to(own), beta=0.1)
    return total


def hypothesis_loss(R_hyp: torch.Tensor, logits: torch.Tensor, R_gt: torch.Tensor) -> torch.Tensor:
    """Cross-entropy teaching the logits (B, K) to pick the hypothesis (B, K, 3, 3) closest to the
    annotated rotation (B, 3, 3): the model answers with the arg-max, so this term decides which
    of several good hypotheses (e.g. front vs back) is used. 0 for a single hypothesis."""
    if R_hyp.dim() == 3 or R_hyp.shape[1] == 1:
        return logits.new_zeros(())
    _, win = _winner(R_hyp, R_gt)
    return F.cross_entropy(logits, win)


def quat_norm_loss(quat_raw: torch.Tensor) -> torch.Tensor:
    """(|q| - 1)^2 of the raw predicted quaternions (B, 4), batch mean."""
    e = zero_if_empty(quat_raw)
    return e if e is not None else ((quat_raw.norm(dim=-1) - 1) ** 2).mean()


def deformation_loss(offsets: torch.Tensor) -> torch.Tensor:
    """Mean squared norm of per-vertex offsets (B, V, 3)."""
    e = zero_if_empty(offsets)
    return e if e is not None else (offsets**2).sum(-1).mean()


_LAPLACIANS: dict = {}


def uniform_laplacian(faces: torch.Tensor, n_verts: int) -> torch.Tensor:
    """The uniform Laplacian L = D^-1 A - I (V, V) of a topology, PyTorch3D's ``laplacian`` of a
    ``Meshes``, cached per faces tensor (training calls it every step with the same template)."""
    key = (faces.data_ptr(), tuple(faces.shape), faces.device, n_verts, faces._version)
    hit = _LAPLACIANS.get(key)
    if hit is None or not torch.equal(hit[0], faces):  # a freed tensor's address can come back
        if len(_LAPLACIANS) > 16:
            _LAPLACIANS.clear()
        mesh = Meshes(verts=[torch.zeros(n_verts, 3, device=faces.device)], faces=[faces])
        hit = _LAPLACIANS[key] = (faces.clone(), mesh.laplacian_packed().coalesce())
    return hit[1]


def laplacian_loss(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Uniform Laplacian smoothing of a batch sharing one topology: PyTorch3D's
    ``mesh_laplacian_smoothing(method="uniform")``, with the Laplacian built once per topology.

    Args:
        verts: (B, V, 3) (vertices, or offsets for the Laplacian-on-offsets term); faces: (F, 3) long.
    Returns:
        mean over meshes and vertices of |L v| (scalar).
    """
    e = zero_if_empty(verts)
    if e is not None:
        return e
    B, V, _ = verts.shape
    lap = uniform_laplacian(faces, V).to(verts.dtype)
    lv = torch.sparse.mm(lap, verts.permute(1, 0, 2).reshape(V, B * 3)).reshape(V, B, 3)
    return lv.norm(dim=-1).mean()


def keypoint_loss(pred: torch.Tensor, kp: torch.Tensor) -> torch.Tensor:
    """Squared reprojection error of visible keypoints (0 when none is visible).

    Args:
        pred: (B, N, 2) projected 3-D keypoints in normalised image coordinates.
        kp: (B, N, 3) annotated (x, y, visible) in the same coordinates.
    """
    if pred.shape[:-1] != kp.shape[:-1] or pred.shape[-1] != 2 or kp.shape[-1] != 3:
        raise ValueError(f"keypoint_loss: pred must be (B, N, 2) and kp (B, N, 3), got {tuple(pred.shape)}, "
                         f"{tuple(kp.shape)}")
    vis = kp[..., 2]
    err = ((pred - kp[..., :2]) ** 2).sum(-1) * vis
    return err.sum() / vis.sum().clamp(min=1.0)


def weighted_sum(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """sum_k weights.k * terms[k] over the terms present (unknown names raise)."""
    total = None
    for k, v in terms.items():
        if k not in weights.term_names():
            raise AttributeError(f"no loss weight named {k!r}; weights: {weights.term_names()}")
        w = getattr(weights, k)
        if w == 0:
            continue
        total = w * v if total is None else total + w * v
    if total is None:
        raise ValueError("no loss term with a non-zero weight")
    return total


__all__ = [
    "LossWeights", "PerceptualLoss", "camera_loss", "colour_loss", "deformation_loss", "hypothesis_loss",
    "keypoint_loss", "laplacian_loss", "mask_barrier_distance", "mask_loss", "pixel_loss", "quat_geodesic",
    "quat_norm_loss", "rotation_frobenius", "silhouette_loss", "ssim_loss", "texture_cycle_loss",
    "texture_dt_loss", "viewpoint_loss", "weighted_sum",
]
