"""The training objective: a model's outputs rendered and compared with a batch, term by term."""

from __future__ import annotations

import torch
from pytorch3d.transforms import quaternion_to_matrix

from .. import losses as L
from ..camera import VIEW_ANGLES, project, rotation_angle
from ..metrics import mask_iou
from ..model.texture import texel_visibility
from ..render import RenderSettings, render_prediction
from .config import RENDER_CAMERAS


def keypoints_normalised(kp: torch.Tensor, img_size: int) -> torch.Tensor:
    """(B, N, 3) keypoints (x, y, visible) in crop pixels -> normalised image coordinates (in [-1, 1])."""
    out = kp.clone()
    out[..., :2] = (2 * kp[..., :2] + 1) / img_size - 1
    return out


def _cross_view(out: dict, batch: dict, render: RenderSettings) -> torch.Tensor:
    """Mask term of each item's shape seen through its partner's annotated camera (``L.view_partners``)."""
    j = L.view_partners(batch["class_idx"], batch["cad_idx"])
    i = (j >= 0).nonzero()[:, 0]
    if not len(i):
        return out["verts"].sum() * 0.0
    j = j[i]
    r = render_prediction({"verts": out["verts"][i], "faces": out["faces"]}, render,
                          (batch["scale"][j], batch["trans"][j], batch["quat"][j]))
    return L.mask_loss(r.silhouette, batch["mask"][j, 0])


def image_terms(out: dict, batch: dict, weights: L.LossWeights) -> dict[str, torch.Tensor]:
    """The terms that need no rendering: the camera against the annotation (viewpoint bins, or
    regressed hypotheses and their choice) and the silhouette decoder's mask.

    Args:
        out: the model's forward dict (its camera keys and "silhouette_logits" suffice).
        batch: a collated batch: annotated camera "scale" (B,), "trans" (B, 2), "quat" (B, 4); "mask"
            (B, 1, S, S).
        weights: loss weights; a term of weight 0 is left out.

    Returns:
        {term name: scalar tensor} of the terms computed (unweighted).
    """
    R_gt = quaternion_to_matrix(batch["quat"])
    terms = {}
    if weights.camera and "az_logits" in out:  # a viewpoint-bin head
        terms["camera"] = L.viewpoint_loss([out[f"{a}_logits"] for a in VIEW_ANGLES],
                                           [out[f"{a}_residual"] for a in VIEW_ANGLES], out["scale"],
                                           out["trans"], R_gt, batch["scale"], batch["trans"])
    elif weights.camera:
        terms["camera"] = L.camera_loss(out["scale"], out["trans"], out["R_hyp"], batch["scale"],
                                        batch["trans"], R_gt)
    if weights.camera_choice and "R_hyp" in out and out["R_hyp"].shape[1] > 1:
        terms["camera_choice"] = L.hypothesis_loss(out["R_hyp"], out["cam_logits"], R_gt)
    if weights.quat and "quat_raw" in out and out["quat_raw"].shape[-1] == 4:
        terms["quat"] = L.quat_norm_loss(out["quat_raw"])
    if weights.silhouette:
        if "silhouette_logits" not in out:
            raise ValueError("LossWeights.silhouette > 0 needs ModelConfig.silhouette_decoder")
        terms["silhouette"] = L.silhouette_loss(out["silhouette_logits"], batch["mask"])
    return terms


def compute_losses(out: dict, batch: dict, weights: L.LossWeights, render: RenderSettings, camera: str = "gt",
                   perceptual: L.PerceptualLoss | None = None) -> tuple[torch.Tensor, dict]:
    """All loss terms of one batch and their weighted sum.

    Args:
        out: the model's forward dict; batch: a collated batch of :class:`symnb.data.Item`.
        weights: loss weights (0 disables a term); render: the renderer settings of the mask and
            texture terms.
        camera: the camera they are rendered through (``TrainConfig.render_camera``): "gt" the
            annotated one, "pred" the predicted one (their gradients reach the camera head),
            "pred_detached" the predicted one without its gradient.
        perceptual: the VGG-16 term's module; without it the perceptual term is left out.

    Returns:
        total loss (scalar), dict of float terms plus the "mask_iou" and "cam_deg" diagnostics.
    """
    if camera not in RENDER_CAMERAS:
        raise ValueError(f"camera must be one of {RENDER_CAMERAS}, got {camera!r}")
    cam = None
    if camera == "gt":
        cam = (batch["scale"], batch["trans"], batch["quat"])
    elif camera == "pred_detached":
        cam = (out["scale"].detach(), out["trans"].detach(), out["quat"].detach())
    r = render_prediction(out, render, cam)
    mask = batch["mask"]
    R_gt = quaternion_to_matrix(batch["quat"])
    terms = {"mask": L.mask_loss(r.silhouette, mask[:, 0])}
    if weights.cross_view:
        terms["cross_view"] = _cross_view(out, batch, render)
    terms.update(image_terms(out, batch, weights))
    if weights.deformation:
        terms["deformation"] = L.deformation_loss(out["offsets"])
    if weights.laplacian:
        terms["laplacian"] = L.laplacian_loss(out["verts"], out["faces"])
    if weights.laplacian_offsets:
        terms["laplacian_offsets"] = L.laplacian_loss(out["offsets"], out["faces"])
    if weights.keypoint:
        if "kp3d" not in out or "kp" not in batch:
            raise ValueError("LossWeights.keypoint > 0 needs ModelConfig.n_keypoints > 0 and a dataset with "
                             "keypoint annotations")
        kp = keypoints_normalised(batch["kp"], mask.shape[-1])
        n = kp.shape[1]
        if out["kp3d"].shape[1] < n:
            raise ValueError(f"ModelConfig.n_keypoints = {out['kp3d'].shape[1]} but the data has {n} "
                             "keypoints")
        # projected with the camera the masks are rendered with (CMR's proj_cam: the annotated one with
        # use_gtpose), so the keypoints, like the masks, train the shape and not the camera
        kp_cam = cam if cam is not None else (out["scale"], out["trans"], out["quat"])
        pred = project(out["kp3d"][:, :n], *kp_cam)
        terms["keypoint"] = L.keypoint_loss(pred, kp)
    if r.rgb is not None:
        fg = mask * r.coverage
        if weights.pixel:
            terms["pixel"] = L.pixel_loss(r.rgb, batch["image"], fg)
        if weights.colour:
            terms["colour"] = L.colour_loss(r.rgb, batch["image"], fg)
        if weights.ssim:
            terms["ssim"] = L.ssim_loss(r.rgb, batch["image"], fg)
        if weights.perceptual and perceptual is not None:
            terms["perceptual"] = perceptual(r.rgb, batch["image"], fg)
    if weights.texture_dt and out.get("texture_flow") is not None:
        terms["texture_dt"] = L.texture_dt_loss(out["texture_flow"], L.mask_barrier_distance(mask))
    if weights.texture_cycle and out.get("texels") is not None:
        xy, visible = texel_visibility(*out["texels"], R_gt, batch["scale"], batch["trans"])
        terms["texture_cycle"] = L.texture_cycle_loss(out["texture_flow"], xy, visible)
    with torch.no_grad():
        fit = {"mask_iou": float(mask_iou(r.silhouette, mask[:, 0]).mean())}
    return _total_and_logs(terms, weights, out["R"], R_gt, fit)


def camera_losses(out: dict, batch: dict, weights: L.LossWeights) -> tuple[torch.Tensor, dict]:
    """The objective of the encoder's camera phase (``TrainConfig.camera_steps``): :func:`image_terms`
    alone, nothing rendered.

    Args:
        out: the model's forward dict (``forward(images, camera_only=True)`` suffices); batch and
            weights: as :func:`image_terms`.

    Returns:
        the weighted sum (scalar), and the float terms with the "cam_deg" diagnostic and "loss".
    """
    R_gt = quaternion_to_matrix(batch["quat"])
    return _total_and_logs(image_terms(out, batch, weights), weights, out["R"], R_gt)


def _total_and_logs(terms: dict, weights: L.LossWeights, R: torch.Tensor, R_gt: torch.Tensor,
                    diagnostics: dict | None = None) -> tuple[torch.Tensor, dict]:
    """The weighted sum of ``terms`` and the logs: each term as a float, then ``diagnostics``, the median
    rotation error "cam_deg" of ``R`` (B, 3, 3) against ``R_gt`` (B, 3, 3), and "loss"."""
    total = L.weighted_sum(terms, weights)
    logs = {k: float(v.detach()) for k, v in terms.items()} | (diagnostics or {})
    with torch.no_grad():
        logs["cam_deg"] = float(rotation_angle(R, R_gt).median())
    logs["loss"] = float(total.detach())
    return total, logs
