"""Texture losses: plain functions of batched images, masks and texture flows (0 for an empty batch).

The photometric terms compare a rendered texture with the image inside the mask (MCMR's Lab terms, SSIM,
a VGG-16 perceptual distance); the texture-flow terms keep a flow on the object (CMR's barrier distance)
and consistent with the shape (UMR's cycle). :mod:`symnb.losses` weighs them with the other terms.
"""

from __future__ import annotations

from pathlib import Path

import kornia
import numpy as np
import torch
import torch.nn.functional as F


def zero_if_empty(x: torch.Tensor) -> torch.Tensor | None:
    """A scalar 0 on ``x``'s device when the batch ``x`` (B, ...) is empty, else None: the losses here
    and in :mod:`symnb.losses` return it for B = 0."""
    return x.new_zeros(()) if x.shape[0] == 0 else None


def _masked_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """err (B, C, H, W), mask (B, 1, H, W) -> mean of err over masked pixels and channels."""
    denom = mask.sum() * err.shape[1]
    return (err * mask).sum() / denom.clamp(min=1.0)


def texture_cycle_loss(flow: torch.Tensor, target: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Squared distance between a texture flow and the texels' projections, over visible texels.

    Args:
        flow: (B, 2, H, W) sampling positions (x, y); target: (B, H, W, 2) the texels' projected
            positions, same coordinates; visible: (B, 1, H, W) bool.
    Returns:
        mean over visible texels of |flow - target|^2 (0 when none is visible).
    """
    if flow.dim() != 4 or flow.shape[1] != 2 or target.shape != (flow.shape[0], *flow.shape[2:], 2):
        raise ValueError(f"texture_cycle_loss: flow must be (B, 2, H, W) and target (B, H, W, 2), got "
                         f"{tuple(flow.shape)} and {tuple(target.shape)}")
    err = ((flow - target.detach().permute(0, 3, 1, 2)) ** 2).sum(1, keepdim=True)  # (B, 1, H, W)
    w = visible.float()
    return (err * w).sum() / w.sum().clamp(min=1.0)


def _validate_images(render: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> None:
    if render.shape != image.shape or render.dim() != 4 or render.shape[1] != 3:
        raise ValueError(f"render and image must both be (B, 3, H, W), got {tuple(render.shape)} and "
                         f"{tuple(image.shape)}")
    if mask.shape != (render.shape[0], 1, *render.shape[2:]):
        raise ValueError(f"mask must be (B, 1, H, W) = {(render.shape[0], 1, *render.shape[2:])}, got "
                         f"{tuple(mask.shape)}")


def pixel_loss(render: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error of the CIE Lab lightness L (0-100) inside the mask (MCMR's ``tex_pixel_loss``).

    Args:
        render, image: (B, 3, H, W) sRGB in [0, 1]; mask: (B, 1, H, W) in [0, 1].
    """
    _validate_images(render, image, mask)
    e = zero_if_empty(render)
    if e is not None:
        return e
    lab_r, lab_i = kornia.color.rgb_to_lab(render.clamp(0, 1)), kornia.color.rgb_to_lab(image.clamp(0, 1))
    return _masked_mean((lab_r[:, :1] - lab_i[:, :1]) ** 2, mask)


def colour_loss(render: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error of the CIE Lab chromaticities a and b inside the mask (MCMR's ``tex_color_loss``).
    Shapes as :func:`pixel_loss`."""
    _validate_images(render, image, mask)
    e = zero_if_empty(render)
    if e is not None:
        return e
    lab_r, lab_i = kornia.color.rgb_to_lab(render.clamp(0, 1)), kornia.color.rgb_to_lab(image.clamp(0, 1))
    return _masked_mean((lab_r[:, 1:] - lab_i[:, 1:]) ** 2, mask)


def ssim_loss(render: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (``kornia.metrics.ssim``, 11 x 11 Gaussian window, valid region) between the masked
    render and the masked image (batch mean).  Shapes as :func:`pixel_loss`."""
    _validate_images(render, image, mask)
    e = zero_if_empty(render)
    return e if e is not None else 1 - kornia.metrics.ssim(render * mask, image * mask, 11,
                                                           padding="valid").mean()


def mask_barrier_distance(mask: torch.Tensor, k: float = 50.0) -> torch.Tensor:
    """CMR's barrier distance transform of masks: ``sigmoid(k (d_out - d_in) / S)`` with d_out (d_in) the
    Euclidean distance to the mask (to its outside) in pixels and S the image size: about 0 well inside
    the object, 0.5 on its outline, about 1 outside (CMR ``utils/image.py`` ``compute_dt_barrier``).

    Args:
        mask: (B, 1, H, W) in [0, 1] (thresholded at 0.5).
    Returns:
        (B, 1, H, W) float, no gradient.
    """
    from scipy.ndimage import distance_transform_edt

    m = (mask.detach() > 0.5).cpu().numpy()
    d = [distance_transform_edt(~x) - distance_transform_edt(x) for x in m[:, 0]]
    d = torch.as_tensor(np.stack(d) if d else np.zeros((0, *m.shape[2:])), dtype=mask.dtype)
    return torch.sigmoid(k * d / max(m.shape[2:]))[:, None].to(mask.device)


def texture_dt_loss(flow: torch.Tensor, barrier: torch.Tensor) -> torch.Tensor:
    """CMR's texture-flow loss: the barrier distance (:func:`mask_barrier_distance`) read at every
    texel's sampling position, so that the flow samples the object, not the background (CMR
    ``nnutils/loss_utils.py`` ``texture_dt_loss``).

    Args:
        flow: (B, 2, H, W) sampling positions (x, y) in normalised image coordinates ([-1, 1], the
            ``grid_sample`` convention with ``align_corners=False``).
        barrier: (B, 1, S, S) from :func:`mask_barrier_distance`.
    Returns:
        mean over texels (scalar).
    """
    if flow.dim() != 4 or flow.shape[1] != 2 or barrier.shape[:2] != (flow.shape[0], 1):
        raise ValueError(f"texture_dt_loss: flow must be (B, 2, H, W) and barrier (B, 1, S, S), got "
                         f"{tuple(flow.shape)} and {tuple(barrier.shape)}")
    e = zero_if_empty(flow)
    if e is not None:
        return e
    return F.grid_sample(barrier, flow.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=False).mean()


class PerceptualLoss(torch.nn.Module):
    """VGG-16 feature (relu1_2 .. relu4_3) L2 distance; weights only from a local torchvision file
    (the whole ``vgg16`` state dict, or just its ``features.*`` entries up to conv4_3)."""

    def __init__(self, weights_path: str):
        super().__init__()
        import torchvision

        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"VGG-16 weights not found: {path} (perceptual loss needs local weights)")
        vgg = torchvision.models.vgg16(weights=None)
        state = torch.load(path, map_location="cpu", weights_only=True)
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        used = vgg.features[:23].state_dict()
        missing = sorted(set(used) - set(feats))
        if missing:
            raise ValueError(f"{path} is not a VGG-16 weights file (missing features.{missing[0]}, ...)")
        vgg.features[:23].load_state_dict({k: feats[k] for k in used})
        self.slices = torch.nn.ModuleList([vgg.features[a:b] for a, b in ((0, 4), (4, 9), (9, 16), (16, 23))])
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, render: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x, y = (render * mask - self.mean) / self.std, (image * mask - self.mean) / self.std
        loss = render.new_zeros(())
        for s in self.slices:
            x, y = s(x), s(y)
            loss = loss + ((x - y) ** 2).mean()
        return loss


__all__ = [
    "PerceptualLoss", "colour_loss", "mask_barrier_distance", "pixel_loss", "ssim_loss", "texture_cycle_loss",
    "texture_dt_loss",
]
