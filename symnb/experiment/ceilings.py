"""Quality ceilings: what the reconstruction could reach if the parts before a stage were perfect.

Rows of :func:`ceiling_table`, each scored per class with the field's 3-D IoU protocol (DRC) and the
mask IoU of the test images:

* ``cad``: the CAD model itself through the annotated camera: 3-D IoU 1 by definition; its mask IoU
  is the data's own limit (the loader's resized masks against the model's projection).
* ``fit <S> px``: ceiling (a), a free template mesh fitted directly, with no network, to all
  training views of each CAD instance through the annotated cameras, at crop size S, with the
  training objective's silhouette loss and regularisers (:class:`~symnb.losses.LossWeights`: mask,
  Laplacian of the vertices and of the offsets, offset L2): the ceiling of the template, the loss
  and the resolution. Evaluated on the test images of the same instances.
* ``class fit <S> px``: the same fit to the pooled views of all instances of a class
  (:func:`fit_classes`): the best single shape per class, what a network that cannot tell a class's
  instances apart can reach.
* ``network, annotated camera`` / ``network, predicted camera``: ceilings (b) and (c), a trained
  network's shapes (the same 3-D IoU) rendered through the annotation or its own camera
  (:func:`network_rows`).
* ``network fine-tuned, image feature`` / ``network fine-tuned, instance code``: ceiling (b'), the
  trained network's shape decoder fine-tuned as it is and with its image feature replaced by a learned
  code per instance (:func:`instance_code_rows`): what the decoder reaches when it knows the instance.

The fit optimises Adam in smooth coordinates (Nicolet et al. 2021, "Large steps in inverse
rendering"): vertices = template + ``(I - lambda L)^-1 u``, so that a step moves neighbourhoods. Plain
Adam on the vertices crumples the surface into folds that fit the silhouettes but not the volume
(``FitConfig.smoothing = 0`` shows it); the loss is the same either way.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import losses as L
from ..config import Config
from ..data import collate, loader
from ..metrics import iou_3d_protocol
from ..model.network import smoothing_operator
from ..render import RenderSettings, render_prediction
from ..symmetry.groups import template_for
from .evaluate import silhouette_iou

if TYPE_CHECKING:
    from ..model.config import ModelConfig
    from ..model.network import ReconstructionNet
    from .config import ExperimentConfig


@dataclass
class FitConfig(Config):
    """Settings of the per-instance template fit (ceiling (a))."""

    steps: int = 300
    """Adam steps per instance."""
    views_per_step: int = 12
    """Training views of the instance rendered per step (drawn at random)."""
    lr: float = 0.01
    """Adam learning rate of the smooth coordinates."""
    smoothing: float = 10.0
    """Lambda of the optimiser's smooth coordinates (0: plain Adam on the vertices)."""
    seed: int = 0
    """Seeds the choice of views."""

    def validate(self) -> None:
        for name in ("steps", "views_per_step"):
            self._range(name, 1)
        self._range("lr", 0, lo_open=True)
        self._range("smoothing", 0)


def instance_views(dataset) -> dict[tuple[str, int], dict]:
    """The items of a dataset grouped by CAD instance: {(class, cad_idx): {"mask" (N, S, S), "scale"
    (N,), "trans" (N, 2), "quat" (N, 4), "index" [dataset indices]}}."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    for i in range(len(dataset)):
        item = dataset[i]
        g = groups[item["class_name"], int(item["cad_idx"])]
        for k in ("scale", "trans", "quat"):
            g[k].append(item[k])
        g["mask"].append(item["mask"][0])
        g["index"].append(i)
    return {key: {k: (v if k == "index" else torch.stack(v)) for k, v in g.items()}
            for key, g in sorted(groups.items())}


def initial_sphere(model: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fit's starting mesh: the network's sphere (``template_verts``, ``template_radius``) without
    its symmetry -> verts (V, 3), faces (F, 3)."""
    sphere, faces = template_for("none", model.template_verts)
    return torch.nn.functional.normalize(sphere.float(), dim=-1) * model.template_radius, faces


def _shape_terms(sil: torch.Tensor, mask: torch.Tensor, verts: torch.Tensor, offsets: torch.Tensor,
                 faces: torch.Tensor) -> dict[str, torch.Tensor]:
    """The training objective's silhouette term and shape regularisers: sil, mask (B, S, S); verts,
    offsets (B, V, 3) (offsets: the displacements from the template or mean shape); faces (F, 3)."""
    return {"mask": L.mask_loss(sil, mask), "laplacian": L.laplacian_loss(verts, faces),
            "laplacian_offsets": L.laplacian_loss(offsets, faces), "deformation": L.deformation_loss(offsets)}


def fit_template(views: dict, template: tuple[torch.Tensor, torch.Tensor], weights: L.LossWeights,
                 render: RenderSettings, cfg: FitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A free template mesh fitted to one instance's views through their annotated cameras.

    Args:
        views: one entry of :func:`instance_views` (masks (N, S, S) and cameras).
        template: the starting mesh, verts (V, 3) and faces (F, 3) (:func:`initial_sphere`).
        weights: the objective's weights of the terms used: mask, laplacian, laplacian_offsets,
            deformation (the offsets are the vertices' displacements from ``template``).
        render: soft-silhouette settings (``image_size`` must be the masks' size).
        cfg: :class:`FitConfig`.

    Returns:
        verts (V, 3), faces (F, 3) of the fitted mesh.
    """
    S = views["mask"].shape[-1]
    if render.image_size != S:
        raise ValueError(f"fit_template: RenderSettings.image_size {render.image_size} differs from the "
                         f"masks' size {S}")
    start, faces = template
    smooth = smoothing_operator(faces, len(start), cfg.smoothing)
    u = torch.zeros_like(start, requires_grad=True)
    opt = torch.optim.Adam([u], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(views["mask"])
    for _ in range(cfg.steps):
        offsets = smooth @ u if smooth.numel() else u
        verts = (start + offsets)[None]
        pick = torch.randperm(n, generator=gen)[: cfg.views_per_step]
        out = {"verts": verts.expand(len(pick), -1, -1), "faces": faces}
        cams = (views["scale"][pick], views["trans"][pick], views["quat"][pick])
        sil = render_prediction(out, render, cams).silhouette
        loss = L.weighted_sum(_shape_terms(sil, views["mask"][pick], verts, offsets[None], faces), weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return start + (smooth @ u if smooth.numel() else u), faces


def fit_instances(train_views: dict, template: tuple[torch.Tensor, torch.Tensor], weights: L.LossWeights,
                  render: RenderSettings, cfg: FitConfig,
                  progress: bool = True) -> dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]]:
    """:func:`fit_template` from ``template`` for each instance of :func:`instance_views` -> {key: (verts,
    faces)}."""
    return {key: fit_template(v, template, weights, render, cfg)
            for key, v in tqdm(train_views.items(), desc="fit", disable=not progress)}


def fit_classes(train_views: dict, template: tuple[torch.Tensor, torch.Tensor], weights: L.LossWeights,
                render: RenderSettings, cfg: FitConfig,
                progress: bool = True) -> dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]]:
    """:func:`fit_template` to the pooled views of all instances of each class: the best single shape per
    class under the same loss (what a network that cannot tell a class's instances apart can reach) ->
    {key: (verts, faces)}, every instance of a class with its class's mesh."""
    meshes = {}
    for cls in tqdm(sorted({c for c, _ in train_views}), desc="class fit", disable=not progress):
        groups = [v for (c, _), v in train_views.items() if c == cls]
        pooled = {k: torch.cat([g[k] for g in groups]) for k in ("mask", "scale", "trans", "quat")}
        mesh = fit_template(pooled, template, weights, render, cfg)
        meshes.update({key: mesh for key in train_views if key[0] == cls})
    return meshes


def score_meshes(meshes: dict, test_views: dict, dataset, render: RenderSettings, label: str) -> pd.DataFrame:
    """Per test image: the 3-D IoU (DRC protocol, one global alignment for the set) and the mask IoU
    (annotated camera) of its instance's mesh in ``meshes`` ({(class, cad_idx): (verts, faces)}); test
    instances without a mesh are skipped."""
    rows, preds, faces, gts = [], [], [], []
    for key, v in test_views.items():
        if key not in meshes:
            continue
        verts, f = meshes[key]
        out = {"verts": verts[None].expand(len(v["mask"]), -1, -1), "faces": f}
        batch = {"mask": v["mask"][:, None]}
        miou = silhouette_iou(out, batch, render, camera=(v["scale"], v["trans"], v["quat"]))
        gt = dataset.cad_mesh(*key)
        for m in miou.tolist():
            rows.append({"row": label, "class_name": key[0], "cad_idx": key[1], "mask_iou": m})
            preds.append(verts)
            faces.append(f)
            gts.append(gt)
    df = pd.DataFrame(rows)
    if len(df):
        df["iou_3d_drc"] = iou_3d_protocol(preds, faces, gts)[0]
    return df


def network_rows(per_sample: pd.DataFrame) -> pd.DataFrame:
    """Ceilings (b) and (c) from a trained network's per-sample evaluation (``mask_iou`` with its own
    camera, ``mask_iou_gt_camera`` with the annotated one; the 3-D IoU does not depend on the camera)."""
    base = per_sample[["class_name", "iou_3d_drc"]]
    return pd.concat([base.assign(row="network, annotated camera", mask_iou=per_sample["mask_iou_gt_camera"]),
                      base.assign(row="network, predicted camera", mask_iou=per_sample["mask_iou"])])


def _code_init(model: ReconstructionNet, dataset, groups: dict) -> torch.Tensor:
    """Each instance's mean image feature over its images in ``dataset`` -> (len(groups), n_feat)."""
    was = model.training
    model.eval()
    codes = []
    with torch.no_grad():
        for g in groups.values():
            subset = torch.utils.data.Subset(dataset, g["index"])
            codes.append(torch.cat([model.encoder(b["image"])[1] for b in loader(subset, 64)]).mean(0))
    model.train(was)
    return torch.stack(codes)


def _decode(net: ReconstructionNet, images: torch.Tensor, codes: torch.Tensor | None = None,
            number: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The shapes of a batch (``decode_shape``), the deformation read from the image feature or, with
    ``codes``, from each image's instance code ``codes[number]``."""
    feat = net.encoder(images)[1]
    probs = torch.softmax(net.classifier(feat), dim=-1)
    return net.decode_shape(feat if codes is None else codes[number], probs)


def instance_code_rows(model: ReconstructionNet, train, test, weights: L.LossWeights, render: RenderSettings,
                       steps: int = 600, lr: float = 3e-4, mean_shape_lr_scale: float = 30.0,
                       batch_size: int = 16, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Ceiling (b'): can the network's shape decoder represent each instance when told which one it sees?

    Two copies of a trained network are fine-tuned for ``steps`` on the (unaugmented) training images,
    with the training objective's silhouette loss and shape regularisers (``weights``: mask, laplacian,
    laplacian_offsets, deformation) through the annotated cameras. One reads its deformation from the
    image feature as in training (the control). The other reads it from a learned code per CAD instance
    (an auto-decoder, the code initialised at the instance's mean image feature): an oracle that knows the
    instance. Both keep the image's mean-shape blend. The gap between the two rows is what the encoder's
    identification of the instance costs; the gap between the code row and the fits (a) is what the
    decoder (mean shapes + deformation MLP) costs.

    Args:
        model: a trained :class:`~symnb.model.ReconstructionNet` (left unchanged).
        train, test: datasets of :class:`symnb.data.Item` at the network's input size (``test`` needs
            ``cad_mesh``); the test images of instances absent from ``train`` are skipped.
        weights, render: the training objective's weights and soft-silhouette settings.
        steps, lr, mean_shape_lr_scale, batch_size, seed: the fine-tune (Adam; the mean shapes at
            ``mean_shape_lr_scale`` times ``lr``, the codes at 10 times).

    Returns:
        per test image: "row", "class_name", "cad_idx", "mask_iou" (annotated camera), "iou_3d_drc".
    """
    groups = instance_views(train)
    number = {key: k for k, key in enumerate(groups)}
    of_item = torch.empty(len(train), dtype=torch.long)  # training item -> its instance's number
    for key, g in groups.items():
        of_item[g["index"]] = number[key]
    items = (test[i] for i in range(len(test)))  # each test item read once
    tests = [i for i, it in enumerate(items) if (it["class_name"], int(it["cad_idx"])) in number]
    init = _code_init(model, train, groups)
    parts = []
    for label, oracle in (("network fine-tuned, image feature", False),
                          ("network fine-tuned, instance code", True)):
        net = copy.deepcopy(model).train()
        codes = torch.nn.Parameter(init.clone()) if oracle else None
        param_groups = [{"params": [p for n, p in net.named_parameters() if n != "mean_shape"], "lr": lr},
                        {"params": [net.mean_shape], "lr": lr * mean_shape_lr_scale}]
        opt = torch.optim.Adam(param_groups + ([{"params": [codes], "lr": 10 * lr}] if oracle else []))
        gen = torch.Generator().manual_seed(seed)
        for _ in tqdm(range(steps), desc=label, disable=not progress):
            idx = torch.randint(len(train), (batch_size,), generator=gen)
            batch = collate([train[int(i)] for i in idx])
            verts, _, offsets = _decode(net, batch["image"], codes, of_item[idx])
            sil = render_prediction({"verts": verts, "faces": net.faces}, render,
                                    (batch["scale"], batch["trans"], batch["quat"])).silhouette
            opt.zero_grad(set_to_none=True)
            terms = _shape_terms(sil, batch["mask"][:, 0], verts, offsets, net.faces)
            L.weighted_sum(terms, weights).backward()
            opt.step()
        parts.append(_score_network(net.eval(), test, tests, render, label, codes, number))
    return pd.concat(parts, ignore_index=True)


def _score_network(net: ReconstructionNet, test, items: list[int], render: RenderSettings, label: str,
                   codes: torch.Tensor | None, number: dict) -> pd.DataFrame:
    """Rows of :func:`instance_code_rows` for the test ``items``: mask IoU (annotated camera), 3-D IoU."""
    rows, preds, gts = [], [], []
    with torch.no_grad():
        for batch in loader(torch.utils.data.Subset(test, items), 64):
            keys = list(zip(batch["class_name"], batch["cad_idx"].tolist(), strict=True))
            verts = _decode(net, batch["image"], codes, torch.tensor([number[k] for k in keys]))[0]
            miou = silhouette_iou({"verts": verts, "faces": net.faces}, batch, render,
                                  camera=(batch["scale"], batch["trans"], batch["quat"]))
            rows += [{"row": label, "class_name": c, "cad_idx": i, "mask_iou": m}
                     for (c, i), m in zip(keys, miou.tolist(), strict=True)]
            preds += list(verts)
            gts += [test.cad_mesh(*k) for k in keys]
    return pd.DataFrame(rows).assign(iou_3d_drc=iou_3d_protocol(preds, net.faces, gts)[0])


def ceiling_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean 3-D IoU (DRC) and mask IoU per row and class (columns ``<class> 3-D IoU``, ``<class> mask
    IoU``), rows in the order they first appear."""
    order = list(dict.fromkeys(scores["row"]))
    table = scores.groupby(["row", "class_name"])[["iou_3d_drc", "mask_iou"]].mean().unstack("class_name")
    table.columns = [f"{c} {'3-D IoU' if m == 'iou_3d_drc' else 'mask IoU'}" for m, c in table.columns]
    cols = sorted(table.columns, key=lambda c: (c.split()[0], "mask" in c))
    return table.loc[order, cols]


def cad_rows(test_views: dict, dataset, render: RenderSettings) -> pd.DataFrame:
    """The ``cad`` row: every test image's own CAD model through its annotated camera."""
    meshes = {key: dataset.cad_mesh(*key) for key in test_views}
    return score_meshes(meshes, test_views, dataset, render, "cad")


def run_ceilings(cfg: ExperimentConfig, sizes=(64, 128), fit: FitConfig | None = None,
                 model_path: str | None = None, max_items: int | None = None, code_steps: int = 0,
                 progress: bool = True) -> pd.DataFrame:
    """Every row of the ceiling table on an experiment's data: ``cad`` and ``fit <S> px`` for each crop
    size S in ``sizes`` (instances of the training split, scored on the test split), and with
    ``model_path`` the rows (b) and (c) of that trained network and, with ``code_steps`` > 0, the rows
    (b') of :func:`instance_code_rows` after that many fine-tuning steps (the config's learning rates and
    batch size). Returns the per-image scores (:func:`ceiling_table` summarises them)."""
    from dataclasses import replace

    from ..data import build_dataset
    from ..model import load_model
    from .evaluate import EvalConfig, evaluate

    fit = fit or FitConfig()
    template = initial_sphere(cfg.model)
    plain = cfg.data.unaugmented()
    parts = []
    for size in sizes:
        render = replace(cfg.render, image_size=size)
        test = build_dataset(plain, "test", size)
        test_views = instance_views(test)
        if max_items is not None:  # the first images of each instance
            test_views = {k: {n: v[:max_items] for n, v in g.items()} for k, g in test_views.items()}
        if size == sizes[0]:
            parts.append(cad_rows(test_views, test, render))
        train_views = instance_views(build_dataset(plain, "train", size))
        meshes = fit_instances(train_views, template, cfg.loss, render, fit, progress)
        parts.append(score_meshes(meshes, test_views, test, render, f"fit {size} px"))
        shared = fit_classes(train_views, template, cfg.loss, render, fit, progress)
        parts.append(score_meshes(shared, test_views, test, render, f"class fit {size} px"))
    if model_path is not None:
        model = load_model(model_path)
        test = build_dataset(plain, "test", model.config.img_size)
        light = EvalConfig(icp=False, geom_symmetry=False, save_meshes=0, distances=False)
        per_sample = evaluate(model, test, light, progress=progress, render=cfg.render)
        parts.append(network_rows(per_sample))
        if code_steps:
            train = build_dataset(plain, "train", model.config.img_size)
            tc = cfg.train
            parts.append(instance_code_rows(model, train, test, cfg.loss, cfg.render, code_steps, tc.lr,
                                            tc.mean_shape_lr_scale, tc.batch_size, tc.seed, progress))
    return pd.concat(parts, ignore_index=True)
