"""Checking and summarising a Pascal3D+-layout dataset: CAD re-projection, statistics, sample grids.

:func:`reproject_mask` rasterizes a CAD model with an annotation's camera using matplotlib's
point-in-polygon test at pixel centres, independently of the PyTorch3D renderer that made the data.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.path import Path as MplPath
from PIL import Image

from symnb.io import load_mesh
from symnb.metrics import mask_iou
from symnb.utils import parse_yaml


def project(verts: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(V, 2) pixel coordinates (pixel centres at integers) of ``K (R X + t)``."""
    cam = np.asarray(verts, np.float64) @ np.asarray(R, np.float64).T + np.asarray(t, np.float64)
    if (cam[:, 2] <= 0).any():
        raise ValueError("some vertices are behind the camera")
    p = cam @ np.asarray(K, np.float64).T
    return p[:, :2] / p[:, 2:3]


def reproject_mask(verts, faces, K, R, t, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: pixel centres covered by the projected triangles (matplotlib point-in-polygon)."""
    H, W = size
    uv = project(verts, K, R, t)
    out = np.zeros((H, W), bool)
    for tri in uv[np.asarray(faces)]:
        x0, y0 = np.maximum(np.floor(tri.min(0)), 0).astype(int)
        x1, y1 = np.ceil(tri.max(0)).astype(int)
        x1, y1 = min(x1, W - 1), min(y1, H - 1)
        if x1 < x0 or y1 < y0:
            continue
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        pts = np.stack([xs.ravel(), ys.ravel()], 1)
        path = MplPath(tri)  # either orientation: test with both signs of the tolerance radius
        inside = path.contains_points(pts, radius=1e-9) | path.contains_points(pts, radius=-1e-9)
        out[pts[inside, 1], pts[inside, 0]] = True
    return out


def _iou(a, b) -> float:
    """IoU of two binary masks (H, W) (``symnb.metrics.mask_iou``)."""
    a, b = (torch.as_tensor(np.asarray(x, bool))[None].float() for x in (a, b))
    return float(mask_iou(a, b)[0])


def dataset_table(root: str | os.PathLike, classes=None, reproject: bool = True) -> pd.DataFrame:
    """One row per image: class, id, split, cad_idx, box and mask sizes, keypoint visibility,
    viewpoint, flags and (with ``reproject``) the IoU of the stored mask with the re-projected CAD."""
    root = Path(root)
    classes = classes or sorted(p.name for p in root.iterdir() if (p / "annotations").is_dir())
    rows, cads = [], {}
    for c in classes:
        split_of = {}
        for split in ("train", "eval", "test"):
            f = root / c / f"{c}_{split}.txt"
            if f.is_file():
                split_of.update({i: split for i in f.read_text().split()})
        for p in sorted((root / c / "annotations").glob("*.yaml")):
            ann = parse_yaml(p.read_text(errors="replace"), str(p))  # bounded, no aliases
            mask = np.asarray(Image.open(root / c / "masks" / f"{p.stem}.png")) > 0
            H, W = mask.shape
            x1, y1, x2, y2 = ann["bbox"]
            kp = np.asarray(ann["kpoints_2d"]).reshape(-1, 3)
            row = {"class": c, "id": p.stem, "split": split_of.get(p.stem, "-"), "cad_idx": ann["cad_idx"],
                   "bbox_w": x2 - x1 + 1, "bbox_h": y2 - y1 + 1, "mask_frac": mask.mean(),
                   "kp_visible": kp[:, 2].mean() if len(kp) else np.nan,
                   "truncated": ann["truncated"], "occluded": ann["occluded"]}
            row.update(ann.get("viewpoint", {}))
            row["background"] = ann.get("background", "-")
            if reproject:
                key = (c, ann["cad_idx"])
                if key not in cads:
                    v, f = load_mesh(root / "CAD" / c / f"{ann['cad_idx']:02d}.off")
                    cads[key] = (v.double().numpy(), f.numpy())
                E = np.asarray(ann["extrinsic"])
                rm = reproject_mask(*cads[key], ann["intrinsic"], E[:3, :3], E[:3, 3], (H, W))
                row["reproj_iou"] = _iou(rm, mask)
            rows.append(row)
    return pd.DataFrame(rows)


def class_statistics(table: pd.DataFrame) -> pd.DataFrame:
    """Per-class summary of :func:`dataset_table`."""
    g = table.groupby("class")
    stats = pd.DataFrame({
        "images": g.size(),
        "train": g["split"].apply(lambda s: int((s == "train").sum())),
        "eval": g["split"].apply(lambda s: int((s == "eval").sum())),
        "test": g["split"].apply(lambda s: int((s == "test").sum())),
        "cad_models": g["cad_idx"].nunique(),
        "bbox_size": table.assign(side=np.maximum(table["bbox_w"], table["bbox_h"])).groupby("class")["side"]
        .mean(),
        "mask_frac": g["mask_frac"].mean(),
        "kp_visible": g["kp_visible"].mean(),
        "truncated": g["truncated"].mean(),
    })
    if "reproj_iou" in table:
        stats["min_reproj_iou"] = g["reproj_iou"].min()
    return stats


def plot_samples(dataset, indices, ncols: int = 4, ax_size: float = 2.2):
    """Grid of loader items: image, mask outline, bbox and keypoints (green visible, red hidden).

    Args:
        dataset: a :class:`symnb.data.Pascal3DDataset`.
        indices: item indices to show.

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(indices)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ax_size * ncols, ax_size * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), indices, strict=False):
        it = dataset[i]
        ax.imshow(it["image"].permute(1, 2, 0).numpy())
        ax.contour(it["mask"][0].numpy(), levels=[0.5], colors="yellow", linewidths=0.8)
        x1, y1, x2, y2 = it["bbox"].tolist()
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1 + 1, y2 - y1 + 1, fill=False, color="cyan",
                               lw=0.8))
        kp = it["kp"].numpy()
        names = dataset.keypoint_names.get(it["class_name"], [])
        kp = kp[: len(names)] if names else kp
        vis = kp[:, 2] > 0
        ax.scatter(kp[vis, 0], kp[vis, 1], s=10, c="lime")
        ax.scatter(kp[~vis, 0], kp[~vis, 1], s=10, c="red", marker="x")
        ax.set_title(f"{it['class_name']} cad {int(it['cad_idx'])}" + (" (flip)" if it["flipped"] else ""),
                     fontsize=8)
    fig.tight_layout()
    return fig


def plot_cads(root: str | os.PathLike, classes, size: int = 96, azimuth: float = 35.0,
              elevation: float = 25.0):
    """Grid (classes x CAD models) of the canonical CAD models, shaded, from one viewpoint."""
    import matplotlib.pyplot as plt

    from . import views

    root = Path(root)
    files = {c: sorted((root / "CAD" / c).glob("*.off")) for c in classes}
    ncols = max(len(f) for f in files.values())
    fig, axes = plt.subplots(len(classes), ncols, figsize=(1.6 * ncols, 1.6 * len(classes)), squeeze=False)
    R, t = views.look_at(azimuth, elevation, 2.2)
    K = np.array([[1.9 * size, 0, (size - 1) / 2], [0, 1.9 * size, (size - 1) / 2], [0, 0, 1]])
    for ax in axes.ravel():
        ax.axis("off")
    for r, c in enumerate(classes):
        for k, path in enumerate(files[c]):
            v, f = load_mesh(path)
            col = np.full((1, len(v), 3), 0.8)
            out = views.render_views(v.numpy(), f.numpy(), col, K[None], R[None], t[None], size)
            rgb = np.where(out["mask"][0, ..., None].numpy(), out["rgb"][0].numpy(), 1.0)
            axes[r, k].imshow(rgb)
            axes[r, k].set_title(f"{c} {path.stem} ({len(f)} f)", fontsize=7)
    fig.tight_layout()
    return fig


def weak_perspective_iou(root: str | os.PathLike, classes=None, splits=("train", "eval", "test"),
                         index_names=(None, "novelcad")) -> pd.DataFrame:
    """The camera-model agreement of a dataset: per image, the IoU between its stored mask and its CAD
    model rendered through the loader's weak-perspective camera (``scale``, ``trans``, ``quat`` of
    :mod:`symnb.camera`, the network's camera model), at the crop's native resolution (no resampling
    of the stored mask). 1.0 means the network's camera can draw the mask exactly.

    Returns:
        DataFrame with columns split, id, class_name, crop_px, iou_weak.
    """
    import torch
    from pytorch3d.structures import Meshes

    from symnb.camera import to_pytorch3d
    from symnb.data import Pascal3DDataset, crop_box, load_annotation
    from symnb.render import RenderSettings, silhouette_renderer

    rows = []
    for split in splits:
        for index_name in index_names:
            try:
                ds = Pascal3DDataset(root, classes, split=split, index_name=index_name)
            except FileNotFoundError:
                continue
            for i, (c, iid) in enumerate(ds.items):
                ann = load_annotation(ds.root / c / "annotations" / f"{iid}.yaml")
                ds.img_size = crop_box(ann["bbox"], ds.padding)[2]  # native: the crop keeps its pixels
                it = ds[i]
                v, f = ds.cad_mesh(c, int(it["cad_idx"]))
                cams = to_pytorch3d(it["scale"][None], it["trans"][None], it["quat"][None])
                settings = RenderSettings(image_size=ds.img_size, sigma=0.0, faces_per_pixel=1)
                r = silhouette_renderer(cams, settings)
                with torch.no_grad():
                    hit = r.rasterizer(Meshes([v], [f])).pix_to_face[0, ..., 0] >= 0
                rows.append(dict(split=split if index_name is None else f"{index_name}_{split}", id=iid,
                                 class_name=c, crop_px=ds.img_size,
                                 iou_weak=_iou(hit.numpy(), it["mask"][0].numpy() > 0.5)))
    return pd.DataFrame(rows)

