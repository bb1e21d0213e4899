"""Render and compare at inference: the predicted camera's scale and translation refined so that the
predicted shape's soft silhouette matches a target silhouette.

The network's target is its own decoded silhouette (:class:`~symnb.model.heads.SilhouetteDecoder`), so
nothing annotated is used (``ModelConfig.camera_refine_steps``). The rotation is kept: refined too, it
bends the pose to make up for the shape's errors (measured on the main job's baseline: mask IoU 0.792
instead of 0.784, but the rotation median error rises from 6.6 to 10.3 deg; docs/results.md).
"""

from __future__ import annotations

import torch

from ..losses import mask_loss
from ..render import RenderSettings, render_prediction


def _validate_refine_inputs(verts, scale, trans, quat, target) -> None:
    B = verts.shape[0]
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ValueError(f"refine_camera: verts must be (B, V, 3), got {tuple(verts.shape)}")
    if scale.shape != (B,) or trans.shape != (B, 2) or quat.shape != (B, 4):
        raise ValueError(f"refine_camera: scale (B,), trans (B, 2), quat (B, 4) expected for B = {B}, got "
                         f"{tuple(scale.shape)}, {tuple(trans.shape)}, {tuple(quat.shape)}")
    if target.dim() != 3 or target.shape[0] != B or target.shape[1] != target.shape[2]:
        raise ValueError(f"refine_camera: target must be (B, S, S) silhouettes, got {tuple(target.shape)}")


def refine_camera(verts: torch.Tensor, faces: torch.Tensor, scale: torch.Tensor, trans: torch.Tensor,
                  quat: torch.Tensor, target: torch.Tensor, steps: int = 30, lr: float = 0.01,
                  settings: RenderSettings | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on a log-scale and a translation offset per image, minimising the squared error between the
    soft silhouette of each mesh and its target (the training's mask term).

    Args:
        verts: (B, V, 3) meshes in the object frame; faces: (F, 3) shared.
        scale: (B,), trans: (B, 2), quat: (B, 4) the weak-perspective camera to refine (the rotation is
            kept).
        target: (B, S, S) silhouettes in [0, 1]; the silhouettes are rendered at S px.
        steps, lr: Adam steps and learning rate (of the log-scale and of the normalised translation).
        settings: the soft rasterizer's settings (default :class:`~symnb.render.RenderSettings`); the
            image size is the target's.

    Returns:
        the refined scale (B,) and translation (B, 2), without gradient.
    """
    _validate_refine_inputs(verts, scale, trans, quat, target)
    settings = settings or RenderSettings()
    mesh = {"verts": verts.detach(), "faces": faces}
    scale, trans, quat, target = scale.detach(), trans.detach(), quat.detach(), target.detach()
    log_scale = torch.zeros_like(scale, requires_grad=True)
    shift = torch.zeros_like(trans, requires_grad=True)
    opt = torch.optim.Adam([log_scale, shift], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            sil = render_prediction(mesh, settings, (scale * log_scale.exp(), trans + shift, quat),
                                    image_size=target.shape[-1]).silhouette
            loss = mask_loss(sil, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return (scale * log_scale.exp()).detach(), (trans + shift).detach()
