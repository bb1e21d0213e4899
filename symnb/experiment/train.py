"""The training loop and its resume: seeded batches, metrics per step, resumable checkpoints.

Resuming from ``<out_dir>/checkpoint.pt`` reaches the same weights as an uninterrupted run: the
checkpoint holds the model (and its template, which subdivision changes), the optimizer, the step,
the batch sampler's state and the RNG states; the batches and their augmentation are a pure
function of (seed, step) (:class:`symnb.data.SeededBatchSampler`). Checkpoints hold plain data
only and are read with ``torch.load(weights_only=True)``. A checkpoint written under another
experiment config is refused unless ``resume="force"``.
"""

from __future__ import annotations

import csv
import io
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import losses as L
from ..config import Config
from ..data import SeededBatchSampler, SeededItems, build_dataset, collate
from ..model import ReconstructionNet, read_checkpoint, save_model
from ..utils import atomic_write, get_device, save_json, set_seed
from .objective import compute_losses

if TYPE_CHECKING:
    from .config import ExperimentConfig


@dataclass
class TrainConfig(Config):
    """Optimisation settings.

    Attributes:
        steps: total optimisation steps (>= 1); batch_size: images per step; lr: Adam learning rate.
        seed: seeds weights, batch order and augmentation; device: "auto" | "cpu" | "cuda[:i]".
        log_every: steps between metric rows; ckpt_every: steps between checkpoints.
        subdivide_at: steps at which the template is midpoint-subdivided (network unchanged).
        progress: show a tqdm bar.
    """

    steps: int = 600
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    ckpt_every: int = 100
    subdivide_at: tuple[int, ...] = ()
    progress: bool = True

    def validate(self) -> None:
        for name in ("steps", "batch_size", "log_every", "ckpt_every"):
            self._range(name, 1)
        self._range("lr", 0, lo_open=True)
        self._range("seed", 0)
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"TrainConfig.device must be 'auto', 'cpu' or 'cuda[:i]', got {self.device!r}")
        if any(s < 1 for s in self.subdivide_at):
            raise ValueError(f"TrainConfig.subdivide_at must hold steps >= 1, got {self.subdivide_at}")


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: ReconstructionNet
    history: list[dict]
    out_dir: Path
    model_path: Path
    train_seconds: float
    steps: int


#: Experiment fields that may differ between a checkpoint and the run resuming it.
RESUME_FREE = ("name", "out_dir", "variants", "seeds", "eval", "train.steps", "train.progress",
               "train.log_every", "train.ckpt_every", "train.device", "data.num_workers", "data.root")


def _rng_state() -> dict:
    """RNG states as plain data (tensors, ints, lists), safe for ``weights_only`` loading."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"python": random.getstate(), "torch": torch.get_rng_state(),
          "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    v, state, gauss = st["python"]
    random.setstate((v, tuple(state), gauss))
    name, keys, pos, has_gauss, g = st["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, g))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        nested = isinstance(v, dict) and k not in ("options", "generate")
        out.update(_flatten(v, key + ".") if nested else {key: v})
    return out


def config_differences(saved: dict, current: dict) -> list[str]:
    """Fields (section.key) that differ between two experiment dicts, ignoring :data:`RESUME_FREE`."""
    a, b = _flatten(saved), _flatten(current)
    free = lambda k: any(k == f or k.startswith(f + ".") for f in RESUME_FREE)
    return sorted(k for k in set(a) | set(b) if not free(k) and a.get(k) != b.get(k))


def _save_checkpoint(path: Path, model, opt, step: int, history: list, cfg: ExperimentConfig, seconds: float,
                     n_sub: int) -> None:
    buf = io.BytesIO()
    torch.save({"config": model.config.to_dict(), "symmetry": model.symmetry, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "step": step, "sampler": {"step": step}, "rng": _rng_state(),
                "history": history, "experiment": cfg.to_dict(), "train_seconds": seconds,
                "n_subdivisions": n_sub}, buf)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def _write_metrics(out_dir: Path, history: list[dict]) -> None:
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    s = io.StringIO()
    wr = csv.DictWriter(s, fieldnames=keys)
    wr.writeheader()
    wr.writerows(history)
    with atomic_write(out_dir / "metrics.csv") as f:
        f.write(s.getvalue())
    save_json(history, out_dir / "metrics.json")


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


def _resume(ckpt: Path, cfg: ExperimentConfig, model, force: bool) -> dict:
    st = read_checkpoint(ckpt, "training checkpoint")
    diff = config_differences(st.get("experiment", {}), cfg.to_dict())
    if diff and not force:
        raise ValueError(f"{ckpt} was written under another config (differs in: {', '.join(diff[:8])}); "
                         "delete it or pass --fresh to restart, or resume='force' to continue anyway")
    for _ in range(st.get("n_subdivisions", 0)):
        model.subdivide()
    try:
        model.load_state_dict(st["model"])
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"{ckpt}: weights do not fit the model ({str(err).splitlines()[0]}); "
                         "pass --fresh to restart") from err
    return st


def train(cfg: ExperimentConfig, dataset=None, resume: bool | str = True, callback=None,
          cad_meshes=None) -> TrainResult:
    """Train (or resume) one experiment; writes checkpoint.pt, metrics.csv/json and model.pt into cfg.out_dir.

    Args:
        cfg: the experiment (sections model, loss, data, render, train).
        dataset: a dataset of :class:`symnb.data.Item` (default: ``build_dataset(cfg.data, "train")``).
        resume: continue from ``out_dir/checkpoint.pt`` when it exists (True), start over (False),
            or continue even if the checkpoint was written under another config ("force").
        callback: optional ``callback(step, logs)`` after each step (e.g. live plots); it may raise
            to stop training (the last checkpoint stays valid).
        cad_meshes: CAD models for ``symmetry="auto"`` (default: :func:`category_cad_models` of the dataset).
    """
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tc = cfg.train
    device = get_device(tc.device)
    set_seed(tc.seed)
    if dataset is None:
        dataset = build_dataset(cfg.data, "train", cfg.model.img_size)
    if len(dataset) == 0:
        raise ValueError("training dataset is empty")
    if cfg.model.symmetry == "auto" and cad_meshes is None and hasattr(dataset, "cad_mesh"):
        cad_meshes = category_cad_models(dataset)
    model = ReconstructionNet(cfg.model, cad_meshes=cad_meshes)
    step, history, seconds, n_sub = 0, [], 0.0, 0
    ckpt = out_dir / "checkpoint.pt"
    st = _resume(ckpt, cfg, model, resume == "force") if resume and ckpt.is_file() else None
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    if st is not None:
        opt.load_state_dict(st["optimizer"])
        step, history, seconds = int(st["step"]), list(st["history"]), float(st["train_seconds"])
        n_sub = int(st.get("n_subdivisions", 0))
        _set_rng_state(st["rng"])
    perceptual = None
    if cfg.loss.perceptual:
        perceptual = L.PerceptualLoss(cfg.loss.perceptual_weights).to(device)
    sampler = SeededBatchSampler(len(dataset), tc.batch_size, tc.seed, tc.steps, start=step)
    batches = torch.utils.data.DataLoader(SeededItems(dataset), batch_sampler=sampler, collate_fn=collate,
                                          num_workers=cfg.data.num_workers)
    model.train()
    bar = tqdm(total=tc.steps, initial=step, desc=cfg.name, disable=not tc.progress)
    t0 = time.perf_counter()
    for batch in batches:
        if step in tc.subdivide_at and n_sub < sum(s <= step for s in tc.subdivide_at):
            model.subdivide()
            n_sub += 1
            opt = torch.optim.Adam(model.parameters(), lr=tc.lr)  # mean shapes changed size
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        out = model(batch["image"])
        loss, logs = compute_losses(out, batch, cfg.loss, cfg.render, perceptual)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % tc.log_every == 0 or step == tc.steps:
            history.append({"step": step, "seconds": seconds + time.perf_counter() - t0, **logs})
            bar.set_postfix(loss=f"{logs['loss']:.3f}", iou=f"{logs['mask_iou']:.2f}")
        if step % tc.ckpt_every == 0 or step == tc.steps:
            _save_checkpoint(ckpt, model, opt, step, history, cfg, seconds + time.perf_counter() - t0, n_sub)
            _write_metrics(out_dir, history)
        if callback is not None:
            callback(step, logs)
    bar.close()
    seconds += time.perf_counter() - t0
    _write_metrics(out_dir, history)
    model_path = save_model(model, out_dir / "model.pt", steps=step, train_seconds=seconds,
                            experiment=cfg.to_dict())
    model.eval()
    return TrainResult(model, history, out_dir, model_path, seconds, step)

