"""Texture fidelity of a model's predictions: against the ground-truth texture from several views, and
against the input image (mesh artefacts: :mod:`symnb.experiment.artefacts`).

Texture fidelity (:func:`texture_fidelity`): for each item with a ground-truth texture
(``Pascal3DDataset.cad_texture``: the generator's per-vertex albedo on the CAD model), the textured CAD
model and the predicted textured mesh are rendered with the *annotated* camera (only shape and texture
differ) from each of these views (:func:`view_camera`):

* ``"input"``: the item's annotated camera;
* ``"mirror"``: that camera mirrored about the plane x = 0 (:func:`symnb.camera.flip_horizontal`);
  for a mirror-symmetric object and texture this view is the input view flipped left-right;
* ``"az+90"``, ``"az-90"`` (any ``"az<+/-degrees>"``): the camera turned about the object's up axis y,
  azimuth increasing from the front (+z) towards the left side (+x) as in the data's viewpoints.

:func:`image_metrics` compares the two renders of a view on the ground truth's silhouette: PSNR and
L1 over its pixels, SSIM (``skimage.metrics.structural_similarity``) on the bounding box of both
silhouettes with the background set to 0 in both images, and the silhouettes' IoU.

:func:`input_view_gain`: the input view against the image itself, over each image's best single colour,
through the annotated camera, the network's own, or a ceiling (:func:`registered_by_annotation`).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import kornia
import numpy as np
import pandas as pd
import torch
from pytorch3d.renderer import TexturesVertex
from pytorch3d.structures import Meshes
from pytorch3d.transforms import matrix_to_quaternion, quaternion_to_matrix
from tqdm.auto import tqdm

from ..camera import flip_horizontal, to_pytorch3d
from ..data import collate, evenly_spaced_subset, loader
from ..render import RenderSettings, generator_shading, make_rasterizer, nearest_face, render_prediction
from ..symmetry import MODES

VIEWS = ("input", "mirror", "az+90", "az-90")  #: the default views of :func:`texture_fidelity`
PSNR_MAX = 100.0  #: the PSNR given to identical images (kornia's is infinite; a squared error of 1e-10)


def view_camera(scale: torch.Tensor, trans: torch.Tensor, quat: torch.Tensor, view: str):
    """The camera of a view (see the module docstring) of weak-perspective cameras.

    Args:
        scale (B,), trans (B, 2), quat (B, 4): the annotated cameras (:mod:`symnb.camera`).
        view: "input", "mirror" or "az<degrees>" (e.g. "az+90", "az-45").
    Returns:
        (scale, trans, quat) of the view. "az" keeps scale and translation (the object's origin stays
        where it was in the image) and rotates: R' = R Ry(deg)^T, i.e. the camera moves by +deg azimuth.
    """
    if view == "input":
        return scale, trans, quat
    if view == "mirror":
        return flip_horizontal(scale, trans, quat)
    if re.fullmatch(r"az[+-]?\d+(\.\d*)?", view):
        c, s = math.cos(math.radians(float(view[2:]))), math.sin(math.radians(float(view[2:])))
        Ry = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=quat.dtype, device=quat.device)
        return scale, trans, matrix_to_quaternion(quaternion_to_matrix(quat) @ Ry.T)
    raise ValueError(f"unknown view {view!r}: use 'input', 'mirror' or 'az<degrees>' such as 'az+90'")


def render_vertex_colours(meshes: list, colours: list, camera: tuple, image_size: int,
                          shading: str = "generator", rasterizer: str = "auto"):
    """Render meshes with per-vertex colours (``TexturesVertex``), nearest face, hard edges.

    Args:
        meshes: B (verts (V_b, 3), faces (F_b, 3)); colours: B (V_b, 3) float in [0, 1].
        camera: (scale (B,), trans (B, 2), quat (B, 4)) weak-perspective cameras.
        image_size: S.
        shading: "generator" (the dataset generator's flat Lambert shading, ``render.generator_shading``: what
            the images show and a texture trained on them reproduces) or "albedo" (unlit colours).
        rasterizer: ``RenderSettings.rasterizer``.
    Returns:
        rgb (B, 3, S, S) in [0, 1], 0 on the background; mask (B, S, S) bool.
    """
    if shading not in ("generator", "albedo"):
        raise ValueError(f"shading must be 'generator' or 'albedo', got {shading!r}")
    scale, trans, quat = (c.float().cpu() for c in camera)
    m = Meshes([v.float() for v, _ in meshes], [f for _, f in meshes],
               textures=TexturesVertex([c.float() for c in colours]))
    rs = RenderSettings(image_size=image_size, sigma=0.0, faces_per_pixel=1, rasterizer=rasterizer)
    frags = make_rasterizer(to_pytorch3d(scale, trans, quat), rs, soft=False)(m)
    rgb = m.sample_textures(nearest_face(frags))[..., 0, :]  # (B, S, S, 3)
    p2f = frags.pix_to_face[..., 0]
    hit = p2f >= 0
    if shading == "generator":
        normals = m.faces_normals_packed()[p2f.clamp(min=0)]  # (B, S, S, 3) world
        rgb = rgb * generator_shading(normals, quaternion_to_matrix(quat))[..., None]
    rgb = (rgb * hit[..., None]).clamp(0, 1)
    return rgb.permute(0, 3, 1, 2), hit


def image_metrics(gt: torch.Tensor, pred: torch.Tensor, gt_mask: torch.Tensor,
                  pred_mask: torch.Tensor) -> dict:
    """Masked image metrics of one view.

    Args:
        gt, pred: (3, H, W) float in [0, 1]; gt_mask, pred_mask: (H, W) bool silhouettes.
    Returns:
        dict: "psnr" (dB, at most :data:`PSNR_MAX`) and "l1" over the ground-truth silhouette's pixels
        and channels; "ssim" (skimage, ``data_range=1``, 7x7 windows or the largest odd size that fits)
        on the bounding box of both silhouettes, background 0 in both; "mask_iou"; "gt_pixels".
        NaN where undefined (an empty silhouette, a box under 3 pixels wide for SSIM).
    """
    from skimage.metrics import structural_similarity

    gm, pm = gt_mask.bool().cpu().numpy(), pred_mask.bool().cpu().numpy()
    g = gt.detach().double().cpu().permute(1, 2, 0).numpy() * gm[..., None]
    p = pred.detach().double().cpu().permute(1, 2, 0).numpy() * pm[..., None]
    union = gm | pm
    row = {"psnr": float("nan"), "ssim": float("nan"), "l1": float("nan"),
           "mask_iou": float((gm & pm).sum() / union.sum()) if union.any() else float("nan"),
           "gt_pixels": int(gm.sum())}
    if gm.any():
        diff = (g - p)[gm]
        row["psnr"] = masked_psnr(torch.from_numpy(p[gm]), torch.from_numpy(g[gm]))
        row["l1"] = float(np.abs(diff).mean())
    if union.any():
        ys, xs = np.nonzero(union)
        crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        side = min(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        win = min(7, side if side % 2 else side - 1)
        if win >= 3:
            row["ssim"] = float(structural_similarity(g[crop], p[crop], channel_axis=-1, data_range=1.0,
                                                      win_size=win))
    return row


def _device(model) -> torch.device:
    return getattr(getattr(model, "template", None), "device", torch.device("cpu"))


def render_views(out: dict, batch: dict, meshes: list, textures: list, views, rs: RenderSettings,
                 shading: str = "generator") -> dict:
    """The ground truth and the prediction rendered from each view of the annotated cameras.

    Args:
        out: a model's ``reconstruct`` outputs for ``batch`` (a collated batch with scale, trans, quat);
        meshes: B CAD (verts, faces); textures: B (V_b, 3) albedos; views: see :func:`view_camera`;
        rs: the prediction's texture sampling and image size; shading: as :func:`render_vertex_colours`.
    Returns:
        {view: (gt (B, 3, S, S), gt_mask (B, S, S), pred (B, 3, S, S), pred_mask (B, S, S))} on the CPU.
    """
    renders, dev = {}, out["verts"].device
    for view in views:
        cam = view_camera(batch["scale"], batch["trans"], batch["quat"], view)
        gt, gt_mask = render_vertex_colours(meshes, textures, cam, rs.image_size, shading, rs.rasterizer)
        pr = render_prediction(out, rs, camera=tuple(c.to(dev) for c in cam), soft=False)
        renders[view] = (gt, gt_mask, pr.rgb.cpu(), pr.coverage[:, 0].cpu() > 0)
    return renders


#: the parts of the annotated camera that :func:`registered_by_annotation` uses
CAMERA_PARTS = ("rotation", "scale", "translation")

#: the ``cameras`` of :func:`input_view_gain` -> the annotated camera parts of their registration (None: the
#: predicted texture itself) and the suffix of their columns
GAIN_CAMERAS = {"gt": (None, ""), "pred": (None, "_pred_camera"), "oracle": (CAMERA_PARTS, "_oracle"),
                "oracle_rotation": (("rotation",), "_oracle_rotation"),
                "oracle_position": (("scale", "translation"), "_oracle_position")}


def registered_by_annotation(model, out: dict, batch: dict, annotated=CAMERA_PARTS) -> dict:
    """``out`` (a model's ``reconstruct`` outputs for ``batch``) with its texture replaced by the image
    projected onto the predicted mesh through the annotated camera
    (:class:`~symnb.model.texture.ProjectedTexture`): the texture of a ceiling, what a perfect camera
    would give this shape.

    Args:
        annotated: the parts of the camera taken from the annotation (of :data:`CAMERA_PARTS`); the others
            are the prediction's, so that a ceiling can be split between rotation and position.
    """
    if getattr(model, "projector", None) is None:
        raise ValueError("the oracle texture projects the image onto the predicted mesh: the model has no "
                         "projector (ModelConfig.texture_source 'flow' or 'projection')")
    if any(a not in CAMERA_PARTS for a in annotated):
        raise ValueError(f"annotated camera parts must be among {CAMERA_PARTS}, got {annotated!r}")
    dev = out["verts"].device
    R = quaternion_to_matrix(batch["quat"].to(dev)) if "rotation" in annotated else out["R"]
    scale = batch["scale"].to(dev) if "scale" in annotated else out["scale"]
    trans = batch["trans"].to(dev) if "translation" in annotated else out["trans"]
    texture = model.projector(batch["image"].to(dev), out["verts"], R, scale, trans)
    return dict(out, texture=texture["texture"])


def _fidelity_rows(model, dataset, batch: list, views, rs: RenderSettings, shading: str,
                   symmetrize: str | None, oracle: bool) -> list[dict]:
    b = collate([it for it, _ in batch])
    out = model.reconstruct(b["image"].to(_device(model)))
    if out.get("texture") is None:
        raise ValueError("the model predicts no texture (ModelConfig.texture is False)")
    if symmetrize is not None:
        out["verts"] = model.posthoc_symmetrize(out["verts"], symmetrize)
    if oracle:
        out = registered_by_annotation(model, out, b)
    meshes = [dataset.cad_mesh(c, int(k)) for c, k in zip(b["class_name"], b["cad_idx"], strict=True)]
    for (v, _), (it, tex) in zip(meshes, batch, strict=True):
        if tex.shape != (len(v), 3):
            raise ValueError(f"{it['class_name']}/{it['id']}: texture of shape {tuple(tex.shape)} for a CAD "
                             f"model with {len(v)} vertices")
    renders = render_views(out, b, meshes, [t for _, t in batch], views, rs, shading)
    rows = []
    for j, (it, _) in enumerate(batch):
        for view, (gt, gm, pr, pm) in renders.items():
            rows.append({"id": it["id"], "class_name": it["class_name"], "cad_idx": int(it["cad_idx"]),
                         "view": view, **image_metrics(gt[j], pr[j], gm[j], pm[j])})
    return rows


@torch.no_grad()
def texture_fidelity(model, dataset, max_items: int | None = None, views=VIEWS, batch_size: int = 8,
                     render: RenderSettings | None = None, shading: str = "generator",
                     symmetrize: str | None = None, progress: bool = False,
                     oracle: bool = False) -> pd.DataFrame:
    """Ground-truth vs predicted textured meshes, rendered from the annotated camera's views.

    Args:
        model: a :class:`symnb.model.ReconstructionNet` predicting a texture (anything with its
            ``reconstruct(images)`` outputs: verts, faces, texture, verts_uvs, faces_uvs).
        dataset: items of the data contract with ``cad_mesh`` and ``cad_texture`` (items whose texture
            is None are skipped).
        max_items: at most this many items, evenly spaced over the dataset (before skipping).
        views: see :func:`view_camera`; batch_size: images per forward pass.
        render: the predicted texture's sampling (``texture_mode``, ``atlas_size``, ``rasterizer``);
            the image size is always the items'.
        shading: how the ground truth is lit (:func:`render_vertex_colours`); the prediction is its
            texture, unlit, as in training.
        symmetrize: post-hoc symmetrization of the predicted shape ("l2r", "r2l", "cent").
        oracle: the ceiling: the predicted mesh with the texture :func:`registered_by_annotation`.
    Returns:
        DataFrame, one row per (item, view): id, class_name, cad_idx, view, psnr, ssim, l1, mask_iou,
        gt_pixels (:func:`image_metrics`).
    Raises:
        ValueError: when no picked item has a ground-truth texture (the message names the dataset).
    """
    if symmetrize is not None and symmetrize not in MODES:
        raise ValueError(f"symmetrize must be None or one of {MODES}, got {symmetrize!r}")
    textures = getattr(dataset, "cad_texture", None)
    subset = evenly_spaced_subset(dataset, max_items)
    rs = render or RenderSettings()
    rows, batch = [], []
    for k in tqdm(range(len(subset)), desc="texture fidelity", disable=not progress):
        item = subset[k]
        tex = textures(item["class_name"], item["id"]) if textures is not None else None
        if tex is not None:
            batch.append((item, tex))
        if batch and (len(batch) == batch_size or k == len(subset) - 1):
            rs = replace(rs, image_size=batch[0][0]["image"].shape[-1])
            rows += _fidelity_rows(model, dataset, batch, views, rs, shading, symmetrize, oracle)
            batch = []
    if not rows:
        name = getattr(dataset, "root", type(dataset).__name__)
        raise ValueError(f"no item of the dataset {name} has a ground-truth texture (<class>/textures/"
                         "<id>.npy, written by data_prep.make_dataset): fidelity needs generated data")
    return pd.DataFrame(rows)


def masked_psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB (peak 1, ``kornia.metrics.psnr`` in double precision, at most :data:`PSNR_MAX`) of the
    pixel values a mask selected: ``pred`` and ``target`` of one shape (e.g. (n, 3) or (3, n)); NaN when
    empty."""
    if not target.numel():
        return float("nan")
    return min(PSNR_MAX, float(kornia.metrics.psnr(pred.double(), target.double(), 1.0)))


@torch.no_grad()
def input_view_gain(model, dataset, max_items: int | None = None, batch_size: int = 16,
                    render: RenderSettings | None = None, cameras=("gt",)) -> pd.DataFrame:
    """How much of the image the predicted texture carries, from the input view.

    The predicted textured mesh is rendered with the item's annotated camera ("gt"; "pred": the
    network's own; one forward pass serves every camera) and compared with the image itself on the
    pixels that both the stored mask and the prediction cover. The reference is each image's own mean
    colour over those pixels (the best single colour): a texture that carries nothing but one colour
    per object scores at most 0 dB of gain. "oracle" is a ceiling: the predicted mesh with the image
    projected onto it through the annotated camera (:class:`~symnb.model.texture.ProjectedTexture`),
    rendered with that camera (:func:`registered_by_annotation`): what the texture could carry with a
    perfect camera. "oracle_rotation" and "oracle_position" project through the annotated rotation, or
    the annotated scale and translation, and the predicted rest: which part of the camera costs the gain.

    Args:
        model: predicts a texture (``reconstruct``); dataset: items with image, mask and camera.
        max_items: at most this many items, evenly spaced; render: the texture's sampling.
        cameras: any of :data:`GAIN_CAMERAS`: "gt", "pred", "oracle", "oracle_rotation",
            "oracle_position" (the oracles need a model with a projector: texture_source "flow" or
            "projection").
    Returns:
        DataFrame, one row per item: id, class_name, and per camera pixels, psnr (prediction vs image,
        dB), psnr_mean_colour (the image's mean colour on those pixels vs image) and gain (the
        difference); the "pred" camera's columns end in ``_pred_camera``, the oracles' in ``_oracle``,
        ``_oracle_rotation`` and ``_oracle_position``.
    """
    if not cameras or any(c not in GAIN_CAMERAS for c in cameras):
        raise ValueError(f"cameras must be among {', '.join(map(repr, GAIN_CAMERAS))}, got {cameras!r}")
    subset = evenly_spaced_subset(dataset, max_items)
    rows, dev = [], _device(model)
    for b in loader(subset, batch_size):
        out = model.reconstruct(b["image"].to(dev))
        if out.get("texture") is None:
            raise ValueError("the model predicts no texture (ModelConfig.texture is False)")
        rs = replace(render or RenderSettings(), image_size=b["image"].shape[-1])
        image = b["image"]
        batch_rows = [{"id": b["id"][j], "class_name": b["class_name"][j]} for j in range(len(image))]
        gt = tuple(b[k].to(dev) for k in ("scale", "trans", "quat"))
        for camera in cameras:
            annotated, sfx = GAIN_CAMERAS[camera]
            pred = out if annotated is None else registered_by_annotation(model, out, b, annotated)
            pr = render_prediction(pred, rs, camera=None if camera == "pred" else gt, soft=False)
            rgb = pr.rgb.cpu()
            both = (b["mask"][:, 0] > 0.5) & (pr.coverage[:, 0].cpu() > 0)  # (B, S, S)
            for j, row in enumerate(batch_rows):
                m = both[j]
                px = image[j][:, m]  # (3, n)
                psnr = masked_psnr(rgb[j][:, m], px)
                ref = masked_psnr(px.mean(1, keepdim=True).expand_as(px), px)
                row.update({f"pixels{sfx}": int(m.sum()), f"psnr{sfx}": psnr, f"psnr_mean_colour{sfx}": ref,
                            f"gain{sfx}": psnr - ref})
        rows += batch_rows
    return pd.DataFrame(rows)


__all__ = ["CAMERA_PARTS", "GAIN_CAMERAS", "PSNR_MAX", "VIEWS", "image_metrics", "input_view_gain",
           "masked_psnr", "registered_by_annotation", "render_vertex_colours", "texture_fidelity",
           "view_camera"]
