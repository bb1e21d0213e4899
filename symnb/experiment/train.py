"""The training loop and its resume: seeded batches, metrics per step, resumable checkpoints.

Resuming from ``<out_dir>/checkpoint.pt`` (:mod:`symnb.experiment.checkpoint`) reaches the same
weights as an uninterrupted run: the batches and their augmentation are a pure function of
(seed, step) (:class:`symnb.data.SeededBatchSampler`) and the checkpoint holds everything else. A
checkpoint written under another experiment config is refused unless ``resume="force"``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import losses as L
from ..data import SeededBatchSampler, SeededItems, build_dataset, collate, evenly_spaced
from ..model import ReconstructionNet, load_model, same_representation, save_model, transfer
from ..render import RenderSettings
from ..utils import get_device, set_seed
from . import distributed, tracking
from .checkpoint import resume_checkpoint, save_checkpoint, set_rng_state
from .config import SELECT, ExperimentConfig
from .evaluate import EvalConfig, evaluate, silhouette_iou
from .objective import camera_losses, compute_losses


def learning_rate(tc, step: int) -> float:
    """The learning rate at ``step`` (a pure function of the step, so resuming needs no scheduler state).

    The camera steps (``tc.camera_phase``) and the full steps each run the schedule (warm-up, then
    constant or cosine) over their own length."""
    if step < tc.camera_phase:
        length = tc.camera_phase
    else:
        step, length = step - tc.camera_phase, tc.steps
    if tc.warmup and step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    if tc.lr_schedule == "constant":
        return tc.lr
    t = min(1.0, (step - tc.warmup) / max(1, length - tc.warmup))
    return tc.lr * (tc.min_lr + (1 - tc.min_lr) * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: ReconstructionNet
    history: list[dict]
    out_dir: Path
    model_path: Path
    train_seconds: float
    steps: int  # all steps taken: the camera steps (TrainConfig.camera_phase) and the full ones
    val_history: list[dict] = dataclasses.field(default_factory=list)
    best_step: int | None = None


def validate(model, datasets: dict, items: int) -> dict:
    """Validation metrics of a model on the first ``items`` images of each dataset ({prefix: dataset}):
    ``<prefix>_mask_iou`` (predicted camera), ``<prefix>_iou_3d_drc`` (the field's protocol, mean),
    ``<prefix>_rot_err`` (median degrees), ``<prefix>_rot_acc30``; the camera as predicted (the
    inference-time refinement is not part of what is trained)."""
    ecfg = EvalConfig(icp=False, geom_symmetry=False, save_meshes=0, max_items=items, distances=False,
                      camera_refine=False)
    was = model.training
    row = {}
    for prefix, ds in datasets.items():
        df = evaluate(model, ds, ecfg, progress=False)
        row.update({f"{prefix}_mask_iou": float(df.mask_iou.mean()),
                    f"{prefix}_iou_3d_drc": float(df.iou_3d_drc.mean()),
                    f"{prefix}_rot_err": float(df.rot_err.median()),
                    f"{prefix}_rot_acc30": float((df.rot_err < 30).mean())})
    model.train(was)
    return row


def category_cad_models(dataset, max_models: int = 3, max_items: int = 64) -> list:
    """Up to ``max_models`` distinct CAD models (verts, faces) referenced by the first items of a dataset."""
    seen, meshes = set(), []
    for i in range(min(len(dataset), max_items)):
        item = dataset[i]
        key = (item["class_name"], int(item["cad_idx"]))
        if key not in seen:
            seen.add(key)
            meshes.append(dataset.cad_mesh(*key))
        if len(meshes) >= max_models:
            break
    return meshes


def _adam(model, tc) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass over all parameters; also on CPU); the mean shapes learn
    at ``tc.mean_shape_lr_scale`` times the network's rate (group key "lr_scale")."""
    mean = [p for n, p in model.named_parameters() if n == "mean_shape"]
    rest = [p for n, p in model.named_parameters() if n != "mean_shape"]
    groups = [{"params": rest, "lr_scale": 1.0}, {"params": mean, "lr_scale": tc.mean_shape_lr_scale}]
    return torch.optim.Adam(groups, lr=tc.lr, fused=True)


def _validation_sets(cfg: ExperimentConfig, val_dataset, train_eval_dataset) -> dict:
    if not cfg.train.val_every:
        return {}
    if val_dataset is None:
        val_dataset = build_dataset(cfg.data, "eval", cfg.model.img_size)
    plain = train_eval_dataset if train_eval_dataset is not None else _unaugmented_training_set(cfg)
    return {"val": val_dataset, "train": plain}


def _unaugmented_training_set(cfg: ExperimentConfig):
    """The training images without augmentation."""
    return build_dataset(cfg.data.unaugmented(), "train", cfg.model.img_size)


def transfer_fitting(model: ReconstructionNet, source: ReconstructionNet, dataset, render: RenderSettings,
                     n_images: int = 256) -> tuple[list, dict]:
    """:func:`symnb.model.transfer` with, for each mean shape, the symmetrize mode ("cent", "l2r", and "r2l"
    for the reflection group) whose transferred network fits the masks of ``n_images`` evenly spaced
    training images best (hard silhouettes through the annotated cameras, mean IoU,
    :func:`~symnb.experiment.evaluate.silhouette_iou`), chosen one mean shape after the other.

    Args:
        model: the network to initialise (on the CPU, as built); source: the trained network.
        dataset: unaugmented training images (:class:`symnb.data.Item` with mask and camera).
        render: the renderer settings of the silhouettes; n_images: how many images score a choice
            (two sides can differ by 0.001 in training mask IoU: see docs/results.md).

    Returns:
        the modes, and {"<mean shape>:<mode>": mask IoU} of the choices tried (empty when the model has no
        symmetry or the representation is the source's).
    """
    k = model.mean_shape.shape[0]
    modes = ["cent"] * k
    transfer(model, source, modes)
    if model.symmetry == "none" or same_representation(model, source):
        return modes, {}
    idx = evenly_spaced(len(dataset), n_images)
    batch = collate([dataset[i] for i in idx])
    cam = (batch["scale"], batch["trans"], batch["quat"])
    candidates = ("cent", "l2r", "r2l") if model.symmetry == "reflection" else ("cent", "l2r")
    fits, was = {}, model.training
    model.eval()
    for s in range(k):
        for mode in candidates:
            transfer(model, source, [*modes[:s], mode, *modes[s + 1:]])
            with torch.no_grad():  # scored through the annotated camera: no camera refinement
                out = model(batch["image"], camera_refine_steps=0)
                fits[f"{s}:{mode}"] = float(silhouette_iou(out, batch, render, cam).mean())
        modes[s] = max(candidates, key=lambda m: fits[f"{s}:{m}"])
    transfer(model, source, modes)
    model.train(was)
    return modes, {k: round(v, 4) for k, v in fits.items()}


def train(cfg: ExperimentConfig, dataset=None, resume: bool | str = True, callback=None,
          cad_meshes=None, val_dataset=None, train_eval_dataset=None) -> TrainResult:
    """Train (or resume) one experiment; writes checkpoint.pt, metrics.csv/json and model.pt into cfg.out_dir.

    Args:
        cfg: the experiment (sections model, loss, data, render, train).
        dataset: a dataset of :class:`symnb.data.Item` (default: ``build_dataset(cfg.data, "train")``).
        resume: continue from ``out_dir/checkpoint.pt`` when it exists (True), start over (False),
            or continue even if the checkpoint was written under another config ("force").
        callback: optional ``callback(step, logs)`` after each step (e.g. live plots); it may raise
            to stop training (the last checkpoint stays valid).
        cad_meshes: CAD models for ``symmetry="auto"`` (default: :func:`category_cad_models` of the dataset).
        val_dataset, train_eval_dataset: the validation images and the unaugmented training images
            used every ``train.val_every`` steps (default: built from ``cfg.data``); the latter also
            choose how ``init_from``'s mean shapes are symmetrized (:func:`transfer_fitting`).

    ``model.pt`` holds the weights ``train.select`` picks (the last step, or the best validation);
    ``val_metrics.csv`` the validation curve (train and val columns).
    """
    out_dir = Path(cfg.out_dir)
    tc = cfg.train
    ctx, device = distributed.setup(get_device(tc.device))
    if ctx.distributed and tc.subdivide_at:
        raise ValueError("TrainConfig.subdivide_at is not supported with several processes")
    if ctx.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    set_seed(tc.seed)
    if dataset is None:
        dataset = build_dataset(cfg.data, "train", cfg.model.img_size)
    if len(dataset) == 0:
        raise ValueError("training dataset is empty")
    if cfg.model.symmetry == "auto" and cad_meshes is None and hasattr(dataset, "cad_mesh"):
        cad_meshes = category_cad_models(dataset)
    model = ReconstructionNet(cfg.model, cad_meshes=cad_meshes)
    step, history, val_history, seconds, n_sub, best = 0, [], [], 0.0, 0, {"value": None, "step": None}
    ckpt = out_dir / "checkpoint.pt"
    st = resume_checkpoint(ckpt, cfg, model, resume == "force") if resume and ckpt.is_file() else None
    if st is None and tc.init_from:
        if tc.init_from.startswith("@"):
            raise ValueError(f"TrainConfig.init_from={tc.init_from!r}: a variant reference needs "
                             "variant_config (the runner) to resolve it to a model file")
        if train_eval_dataset is None:  # built once: validation uses it too
            train_eval_dataset = _unaugmented_training_set(cfg)
        modes, fits = transfer_fitting(model, load_model(tc.init_from), train_eval_dataset, cfg.render)
        if fits and ctx.main:
            tqdm.write(f"{out_dir.name}: mean shapes symmetrized {modes} (training mask IoU of each choice: "
                       f"{fits})")
    model.to(device)
    opt = _adam(model, tc)
    if st is not None:
        opt.load_state_dict(st["optimizer"])
        step, history, seconds = int(st["step"]), list(st["history"]), float(st["train_seconds"])
        val_history, best = list(st.get("val_history", [])), dict(st.get("best", best))
        n_sub = int(st.get("n_subdivisions", 0))
        set_rng_state(st["rng"])
    net = distributed.wrap(model, ctx, device, partial=tc.camera_phase > 0)
    perceptual = (L.PerceptualLoss(cfg.loss.perceptual_weights).to(device)
                  if cfg.loss.perceptual and cfg.loss.perceptual_weights else None)
    val_sets = _validation_sets(cfg, val_dataset, train_eval_dataset) if ctx.main else {}
    board = tracking.Board(out_dir / "tb" if tc.tensorboard and ctx.main else None)
    higher = SELECT[tc.select]
    sampler = SeededBatchSampler(len(dataset), tc.batch_size, tc.seed, tc.total_steps, start=step,
                                 rank=ctx.rank, world_size=ctx.world_size)
    batches = torch.utils.data.DataLoader(SeededItems(dataset), batch_sampler=sampler, collate_fn=collate,
                                          num_workers=cfg.data.num_workers)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=tc.bf16 and device.type == "cuda")
    model.train()
    bar = tqdm(total=tc.total_steps, initial=step, desc=cfg.name, disable=not (tc.progress and ctx.main))
    t0 = time.perf_counter()
    for batch in batches:
        if step in tc.subdivide_at and n_sub < sum(s <= step for s in tc.subdivide_at):
            model.subdivide()
            n_sub += 1
            opt = _adam(model, tc)  # mean shapes changed size
        lr = learning_rate(tc, step)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_scale"]
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        camera_step = step < tc.camera_phase
        with autocast:
            out = net(batch["image"], camera_only=camera_step)
        if camera_step:
            loss, logs = camera_losses(out, batch, cfg.loss)
        else:
            loss, logs = compute_losses(out, batch, cfg.loss, cfg.render, tc.render_camera, perceptual)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if ctx.main and (step % tc.log_every == 0 or step == tc.total_steps):
            history.append({"step": step, "seconds": seconds + time.perf_counter() - t0, "lr": lr, **logs})
            board.scalars(history[-1], step, "train_batch")
            bar.set_postfix(loss=f"{logs['loss']:.3f}", iou=f"{logs.get('mask_iou', 0):.2f}")
        full = step > tc.camera_phase  # the step just taken trained the whole network
        # the camera phase is validated once, at its end; its weights (shape and texture untrained) are
        # never selected
        if val_sets and (step == tc.camera_phase or full and (step % tc.val_every == 0
                                                              or step == tc.total_steps)):
            row = {"step": step, **validate(model, val_sets, tc.val_items)}
            val_history.append(row)
            board.scalars(row, step, "validation")
            board.reconstructions(model, val_sets["val"], step)
            value = row.get(tc.select)
            if full and value is not None and (best["value"] is None or (value > best["value"]) == higher
                                               and value != best["value"]):
                best = {"value": value, "step": step}
                save_model(model, out_dir / "best.pt", steps=step, experiment=cfg.to_dict())
            tracking.write_metrics(out_dir, val_history, "val_metrics")
        if ctx.main and (step % tc.ckpt_every == 0 or step == tc.total_steps):
            save_checkpoint(ckpt, model, opt, step, cfg, seconds + time.perf_counter() - t0, n_sub,
                            history=history, val_history=val_history, best=best)
            tracking.write_metrics(out_dir, history)
        if callback is not None:
            callback(step, logs)
    bar.close()
    board.close()
    seconds += time.perf_counter() - t0
    selected = best["step"] if tc.select != "last" else step
    model_path = out_dir / "model.pt"
    if ctx.main:
        tracking.write_metrics(out_dir, history)
        if tc.select != "last" and (out_dir / "best.pt").is_file():
            model = load_model(out_dir / "best.pt", device)
        save_model(model, model_path, steps=step, train_seconds=seconds, experiment=cfg.to_dict(),
                   selected_step=selected)
    distributed.barrier(ctx)
    distributed.teardown(ctx)
    model.eval()
    return TrainResult(model, history, out_dir, model_path, seconds, step, val_history, selected)
