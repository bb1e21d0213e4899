"""Evaluation on a test split: 2-D, 3-D, symmetry and camera errors per sample, tables per class.

Per sample (one row of :func:`evaluate`'s DataFrame):

* ``mask_iou``: hard silhouette (predicted mesh and camera) vs the annotated mask;
  ``mask_iou_gt_camera``: the same mesh through the annotated camera (the shape's own fit);
* ``iou_3d`` / ``iou_3d_icp``: volumetric IoU vs the sample's CAD model in the canonical frame, as
  predicted and after ICP alignment (rigid + scale) of the prediction onto the CAD model;
* ``chamfer``, ``hausdorff`` and the directed min-max distances (``a2b_mean`` ... ``rel_max``);
* ``symmetry_error`` (index error: max over vertices and non-identity elements g of
  |v[pi_g(i)] - g v_i|) and ``geom_symmetry_error`` (Hausdorff to the transformed surface / bbox
  diagonal), under the group ``EvalConfig.symmetry`` (the objects' reflection by default, so every
  variant is measured against the same symmetry; "model" uses each model's own group);
* ``rot_err``: geodesic angle between the predicted and annotated camera rotations (degrees);
  ``az_err``, ``el_err``, ``roll_err``: absolute viewpoint errors in degrees; ``az`` and ``az_gt``:
  the predicted and annotated azimuths (:func:`view_confusion`);
* ``iou_3d_drc``: 3-D IoU by the field's protocol (DRC / CMR / U-CMR), comparable with papers.

:func:`protocol_table` summarises them per class as papers do (means, and for the camera the median,
mean and fraction under 30 degrees).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from pytorch3d.transforms import quaternion_to_matrix
from tqdm.auto import tqdm

from .. import metrics as M
from ..align import icp
from ..camera import rotation_angle, viewpoint_angles
from ..config import Config
from ..data import evenly_spaced_subset, loader
from ..model import ReconstructionNet, export_mesh
from ..render import RenderSettings, render_prediction
from ..symmetry import GROUPS, MODES, geometric_symmetry_error, index_symmetry_error, symmetry_map


@dataclass
class EvalConfig(Config):
    """Evaluation settings."""

    iou_resolution: int = 32
    """Voxel grid size for 3-D IoU."""
    n_samples: int = 4000
    """Surface samples for distances."""
    icp: bool = True
    """Also report metrics after ICP alignment."""
    max_items: int | None = None
    """Evaluate at most this many samples (evenly spaced over the dataset, so every class of a class-sorted
    split is represented)."""
    save_meshes: int = 4
    """Export this many predicted meshes (OBJ with texture) into ``out_dir/meshes``."""
    batch_size: int = 16
    """Images per forward pass."""
    geom_symmetry: bool = True
    """Compute the (slower) geometric symmetry error."""
    symmetry: str = "reflection"
    """Group the symmetry errors are measured under: a group name of ``symnb.symmetry.GROUPS`` (default
    "reflection", the objects' own symmetry) or "model" (each model's own group)."""
    protocol: bool = True
    """Also compute ``iou_3d_drc``, the field's 3-D IoU protocol (DRC / CMR / U-CMR: one global scale and
    translation for the evaluated set, 32^3 voxels in [-0.5, 0.5]^3; :func:`symnb.metrics.iou_3d_protocol`)
    at ``iou_resolution``."""
    distances: bool = True
    """Compute chamfer and the min-max surface distances (the slowest columns)."""
    fidelity_items: int = 0
    """The runner's texture-fidelity and artefact tables (:mod:`symnb.experiment.fidelity`) on this many test
    images (0: off; needs generated data)."""
    gain_items: int | None = None
    """With ``fidelity_items``: the input-view gain over the mean colour (:func:`~symnb.experiment.fidelity.
    input_view_gain`, one forward pass per batch, cheap) on this many test images instead (None: as many as
    ``fidelity_items``). It varies widely from image to image: on the main job's test images the 95% interval
    of its mean is 2.6 dB wide with 32 images, 1.4 dB with 120."""
    camera_refine: bool = True
    """Run the model's inference-time camera refinement (``ModelConfig.camera_refine_steps``); False: the
    camera as the network predicts it (the validation during training, which scores what is trained)."""

    def validate(self) -> None:
        self._range("iou_resolution", 2)
        self._range("n_samples", 1)
        self._range("max_items", 1)
        self._range("save_meshes", 0)
        self._range("fidelity_items", 0)
        self._range("gain_items", 1)
        self._range("batch_size", 1)
        self._choice("symmetry", (*GROUPS, "model"))


def angle_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| wrapped to [0, 180] degrees."""
    return ((a - b + 180) % 360 - 180).abs()


def _icp_align(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Align point set src (N, 3) onto dst (M, 3) by ICP with scale; returns the transformed src."""
    T = icp(src, dst, with_scale=True).transform.to(src)
    return src @ T[:3, :3].T + T[:3, 3]


def _error_map(model: ReconstructionNet, group: str):
    """The symmetry map errors are measured with, or None if the template lacks that symmetry."""
    if group == "model":
        return model.smap
    try:
        order = model.smap.order if group == "rotation" else None
        return symmetry_map(model.template.detach().cpu(), group, order)
    except ValueError:
        return None


@torch.no_grad()
def evaluate(model: ReconstructionNet, dataset, cfg: EvalConfig | None = None,
             out_dir: str | Path | None = None, symmetrize: str | None = None,
             mean_shape_only: bool = False, progress: bool = True,
             render: RenderSettings | None = None) -> pd.DataFrame:
    """Evaluate a model on a dataset (test split) sample by sample.

    Args:
        model: a trained (or untrained) :class:`ReconstructionNet`.
        dataset: items as :class:`symnb.data.Item` (needs ``cad_mesh(class_name, cad_idx)``).
        symmetrize: post-hoc symmetrization of the output: "l2r", "r2l", "cent", or "best" (per
            sample, the mode whose silhouette best matches the mask).
        mean_shape_only: evaluate the class-blended mean shape without the predicted deformation (with
            the camera refined for it, :meth:`ReconstructionNet.forward`).
        out_dir: if given, predicted meshes are exported to ``out_dir/meshes``.
        render: renderer settings (hard silhouettes at the model's input size are used for mask IoU).

    Returns:
        DataFrame, one row per sample (columns: id, class_name, mask_iou, iou_3d, iou_3d_icp, chamfer,
        hausdorff, a2b_mean ... rel_max, symmetry_error, geom_symmetry_error, az_err, el_err, roll_err).
    """
    cfg = cfg or EvalConfig()
    subset = evenly_spaced_subset(dataset, cfg.max_items)  # every class of a class-sorted split
    n = len(subset)
    model.eval()
    device = model.template.device
    rs = RenderSettings(image_size=model.config.img_size) if render is None else render
    smap = _error_map(model, cfg.symmetry)
    rows, saved, preds, gts = [], 0, [], []
    bar = tqdm(total=n, desc="evaluate", disable=not progress)
    refine_steps = None if cfg.camera_refine else 0  # None: the model's own setting
    for batch in loader(subset, cfg.batch_size):
        out = model.reconstruct(batch["image"].to(device), camera_refine_steps=refine_steps,
                                mean_shape_only=mean_shape_only)  # the camera refined for the shape scored
        if symmetrize in MODES:
            out["verts"] = model.posthoc_symmetrize(out["verts"], symmetrize)
        elif symmetrize == "best":
            cands = [model.posthoc_symmetrize(out["verts"], m) for m in MODES]
            ious = torch.stack([silhouette_iou(dict(out, verts=c), batch, rs) for c in cands])  # (3, B)
            best = ious.argmax(0)
            out["verts"] = torch.stack(cands)[best, torch.arange(len(best))]
        elif symmetrize is not None:
            raise ValueError(f"symmetrize must be l2r, r2l, cent or best, got {symmetrize!r}")
        miou = silhouette_iou(out, batch, rs)
        gt_cam = tuple(batch[k].to(device) for k in ("scale", "trans", "quat"))
        miou_gt = silhouette_iou(out, batch, rs, camera=gt_cam)
        nan = torch.full((len(batch["id"]),), float("nan"))
        sym_max = index_symmetry_error(out["verts"].cpu(), smap.to("cpu"))[0] if smap is not None else nan
        R_pred, R_gt = quaternion_to_matrix(out["quat"].cpu()), quaternion_to_matrix(batch["quat"])
        vp_pred, vp_gt = viewpoint_angles(R_pred), viewpoint_angles(R_gt)
        vp_err = angle_diff(vp_pred, vp_gt)
        rot_err = rotation_angle(R_pred, R_gt)
        for b in range(len(batch["id"])):
            v, f = out["verts"][b].cpu(), out["faces"].cpu()
            cv, cf = dataset.cad_mesh(batch["class_name"][b], int(batch["cad_idx"][b]))
            row = {"id": batch["id"][b], "class_name": batch["class_name"][b],
                   "cad_idx": int(batch["cad_idx"][b]), "mask_iou": float(miou[b]),
                   "mask_iou_gt_camera": float(miou_gt[b]),
                   "iou_3d": M.iou_3d(v, f, cv, cf, resolution=cfg.iou_resolution)}
            if cfg.icp:
                row["iou_3d_icp"] = M.iou_3d(_icp_align(v, cv), f, cv, cf, resolution=cfg.iou_resolution)
            if cfg.distances:
                row["chamfer"] = M.chamfer(v, f, cv, cf, n_samples=cfg.n_samples)
                mm = M.minmax_distances(v, f, cv, cf, n_samples=cfg.n_samples)
                row["hausdorff"] = mm["max"]
                row.update(mm)
            row["symmetry_error"] = float(sym_max[b])
            if cfg.geom_symmetry:
                row["geom_symmetry_error"] = (geometric_symmetry_error(v, f, smap, n_samples=cfg.n_samples)
                                              if smap is not None else float("nan"))
            row.update(rot_err=float(rot_err[b]), az_err=float(vp_err[b, 0]), el_err=float(vp_err[b, 1]),
                       roll_err=float(vp_err[b, 2]), az=float(vp_pred[b, 0]), az_gt=float(vp_gt[b, 0]))
            rows.append(row)
            preds.append(v)
            gts.append((cv, cf))
            if out_dir is not None and saved < cfg.save_meshes:
                tex = out["texture"][b] if out["texture"] is not None else None
                export_mesh(Path(out_dir) / "meshes" / f"{row['id']}.obj", v, f, tex,
                            out["verts_uvs"].cpu(), out["faces_uvs"].cpu())
                saved += 1
            bar.update(1)
    bar.close()
    df = pd.DataFrame(rows)
    if cfg.protocol:
        df["iou_3d_drc"] = M.iou_3d_protocol(preds, model.faces.cpu(), gts, resolution=cfg.iou_resolution)[0]
    return df


def protocol_table(df: pd.DataFrame) -> pd.DataFrame:
    """The field's evaluation table, per class and "all": 3-D IoU (DRC protocol and ours), mask IoU
    with the predicted camera, and the camera errors: geodesic rotation error (median, mean, fraction
    under 30 degrees), azimuth and elevation errors (median, mean)."""
    def summary(d: pd.DataFrame) -> pd.Series:
        out = {c: d[c].mean() for c in ("iou_3d_drc", "iou_3d", "mask_iou") if c in d}
        for c in ("rot_err", "az_err", "el_err"):
            if c in d:
                out[f"{c}_median"], out[f"{c}_mean"] = d[c].median(), d[c].mean()
        if "rot_err" in d:
            out["rot_acc30"] = (d["rot_err"] < 30).mean()
        out["n"] = len(d)
        return pd.Series(out)

    table = pd.DataFrame({c: summary(g) for c, g in df.groupby("class_name")}).T
    table.loc["all"] = summary(df)
    return table


def silhouette_iou(out: dict, batch: dict, render: RenderSettings,
                   camera: tuple | None = None) -> torch.Tensor:
    """Mask IoU (B,) of the hard silhouettes of predicted meshes (``out``: "verts", "faces" and the camera)
    against ``batch["mask"]`` (B, 1, S, S), through ``camera`` (scale, trans, quat) when given."""
    r = render_prediction(dict(out, texture=None), render, camera, soft=False)
    mask = batch["mask"][:, 0]
    sil = r.coverage[:, 0].cpu()  # hard silhouette: pixels covered by a face
    if sil.shape[-1] != mask.shape[-1]:
        sil = torch.nn.functional.interpolate(sil[:, None], size=mask.shape[-2:], mode="nearest")[:, 0]
    return M.mask_iou(sil, mask)


#: metrics averaged in summaries (lower is better except the IoUs)
SUMMARY_METRICS = ("mask_iou", "iou_3d_drc", "iou_3d", "iou_3d_icp", "chamfer", "hausdorff", "mean",
                   "rel_max", "symmetry_error", "geom_symmetry_error", "rot_err", "az_err", "el_err",
                   "roll_err")


#: the four azimuth sectors of :func:`view_confusion` (90 degrees each, centred on the object's front,
#: left side, back and right side; azimuth 0 sees the front, 90 the left side)
SECTORS = ("front", "left", "back", "right")


def view_sector(azimuth) -> pd.Series:
    """Azimuths (degrees) -> sector names of :data:`SECTORS`."""
    k = ((pd.Series(azimuth, dtype=float) + 45) % 360 // 90).astype(int)
    return k.map(dict(enumerate(SECTORS)))


def _azimuth_error(df: pd.DataFrame):
    """Per row, the predicted azimuth's error in degrees (numpy, in [0, 180])."""
    return angle_diff(torch.tensor(df["az"].values), torch.tensor(df["az_gt"].values)).numpy()


def half_turn_iou(verts, faces, resolution: int = 32) -> float:
    """3-D IoU of a mesh and itself turned half a turn about the world's vertical axis (y, the azimuth's
    axis, :func:`symnb.camera.viewpoint_rotation`). Near 1 when the object's front and back are alike: its
    images then hardly tell a view from the one 180 deg of azimuth away, and such a front / back flip of
    the predicted camera costs the reconstruction nothing."""
    v = torch.as_tensor(verts, dtype=torch.float64)
    return M.iou_3d(v, faces, v * v.new_tensor([-1.0, 1.0, -1.0]), faces, resolution=resolution)


def flips_by_half_turn(df: pd.DataFrame, dataset, threshold: float = 0.9) -> pd.DataFrame:
    """Front / back flips (azimuth off by more than 150 deg) per class, split by whether the image's CAD
    model is alike under a half turn (:func:`half_turn_iou` >= ``threshold``): rows (class, "alike" /
    "distinct"), columns the images' share of the class, their count and their flip rate.

    Args:
        df: per-sample rows of :func:`evaluate` ("class_name", "cad_idx", "az", "az_gt").
        dataset: the evaluated dataset (its ``cad_mesh``).
    """
    turn = {key: half_turn_iou(*dataset.cad_mesh(*key))
            for key in set(zip(df["class_name"], df["cad_idx"].astype(int), strict=True))}
    alike = [turn[(c, int(k))] >= threshold for c, k in zip(df["class_name"], df["cad_idx"], strict=True)]
    err = _azimuth_error(df)
    rows = pd.DataFrame({"class": df["class_name"].values,
                         "CAD under a half turn": ["alike" if a else "distinct" for a in alike],
                         "flip": err > 150})
    out = rows.groupby(["class", "CAD under a half turn"]).flip.agg(images="size", flip_rate="mean")
    out.insert(0, "share", out["images"] / out.groupby(level="class")["images"].transform("sum"))
    return out


def view_confusion(df: pd.DataFrame) -> pd.DataFrame:
    """Front / back confusion: counts of test images per (class, annotated sector) row and predicted
    sector column (:data:`SECTORS`), plus per row the fraction predicted within 30 degrees of azimuth
    (``az<30``) and the fractions of front/back flips (``flip_fb``: azimuth off by 180 +- 30) and of
    left/right mirror errors (``flip_lr``: the predicted azimuth near the mirrored -azimuth and more
    than 30 degrees from the truth)."""
    gt, pred = view_sector(df["az_gt"]), view_sector(df["az"])
    table = pd.crosstab([df["class_name"].values, gt.values], pred.values, rownames=["class", "annotated"],
                        colnames=["predicted"]).reindex(columns=list(SECTORS), fill_value=0)
    err = _azimuth_error(df)
    mirror = angle_diff(torch.tensor(df["az"].values), -torch.tensor(df["az_gt"].values)).numpy()
    stats = pd.DataFrame({"class": df["class_name"].values, "annotated": gt.values, "az<30": err < 30,
                          "flip_fb": err > 150, "flip_lr": (mirror < 30) & (err >= 30)})
    return table.join(stats.groupby(["class", "annotated"]).mean())


def per_class(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric per class plus an "all" row (pandas table)."""
    cols = [c for c in SUMMARY_METRICS if c in df.columns]
    table = df.groupby("class_name")[cols].mean()
    table.loc["all"] = df[cols].mean()
    return table


def error_heatmap(verts: torch.Tensor, faces: torch.Tensor, cad_verts: torch.Tensor, cad_faces: torch.Tensor):
    """Per-vertex distance (V,) from the predicted vertices to the CAD surface, for error heat maps."""
    from ..geometry import point_mesh_closest

    res = point_mesh_closest(verts.double(), cad_verts.double(), cad_faces)
    d = res[0] if isinstance(res, tuple) else res
    return d.float()


__all__ = ["EvalConfig", "angle_diff", "error_heatmap", "evaluate", "per_class", "protocol_table",
           "silhouette_iou", "view_confusion", "view_sector"]
