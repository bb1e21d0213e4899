"""Training checkpoints: what a resumed run needs to reach the same weights as an uninterrupted one.

A checkpoint holds the model (and its template, which subdivision changes), the optimizer, the step,
the RNG states, the experiment config and the histories so far; it holds plain data only and is
read with ``torch.load(weights_only=True)`` (:func:`symnb.model.read_checkpoint`). One written under
another experiment config (:func:`config_differences`) is refused unless forced. Model files
(``model.pt``: config and weights, for inference) are :mod:`symnb.model.checkpoint`'s.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from ..model import read_checkpoint
from ..utils import atomic_write
from .config import ExperimentConfig

#: Experiment fields that may differ between a checkpoint and the run resuming it.
RESUME_FREE = ("name", "out_dir", "variants", "seeds", "reference", "texture_reference", "eval",
               "train.steps", "train.progress", "train.log_every", "train.ckpt_every", "train.device",
               "train.val_every", "train.val_items", "train.select", "train.tensorboard", "data.num_workers",
               "data.root")


def rng_state() -> dict:
    """RNG states as plain data (tensors, ints, lists), safe for ``weights_only`` loading."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"python": random.getstate(), "torch": torch.get_rng_state(),
          "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    """Restore the RNG states of :func:`rng_state`."""
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


#: fields that moved (old key -> new key): a saved run's value is compared under its new key
MOVED = {"render.camera": "train.render_camera"}


def config_differences(saved: dict, current: dict) -> list[str]:
    """Fields (section.key) that differ between two experiment dicts, ignoring :data:`RESUME_FREE`.

    A field the saved dict lacks (added to the configs after it was written) is no difference while the
    current value is that field's default: the old run behaved as the default does. A field the configs
    no longer have is none either (the current code cannot read it), except a field of :data:`MOVED`,
    which is compared under its new name.
    """
    a, b = _flatten(saved), _flatten(current)
    for old, new_key in MOVED.items():
        if old in a and new_key not in a:
            a[new_key] = a.pop(old)
    default = _flatten(ExperimentConfig().to_dict())
    free = lambda k: any(k == f or k.startswith(f + ".") for f in RESUME_FREE)
    new = lambda k: k not in a and k in default and b.get(k) == default[k]
    gone = lambda k: k not in b and k not in default
    same = lambda k: free(k) or new(k) or gone(k) or a.get(k) == b.get(k)
    return sorted(k for k in set(a) | set(b) if not same(k))


def save_checkpoint(path: Path, model, opt, step: int, cfg: ExperimentConfig, seconds: float, n_sub: int,
                    **logs) -> None:
    """Write a training checkpoint atomically: the model (config, symmetry, weights), the optimizer,
    the step, the RNG states, the experiment config, the training seconds, the subdivisions so far
    and ``logs`` (plain data: the histories)."""
    buf = io.BytesIO()
    torch.save({"config": model.config.to_dict(), "symmetry": model.symmetry, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "step": step, "sampler": {"step": step}, "rng": rng_state(),
                "experiment": cfg.to_dict(), "train_seconds": seconds, "n_subdivisions": n_sub, **logs}, buf)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def resume_checkpoint(ckpt: Path, cfg: ExperimentConfig, model, force: bool) -> dict:
    """Read a training checkpoint into ``model`` (subdivided as it was) and return its contents.

    Raises:
        ValueError: written under another experiment config (unless ``force``), incomplete, or
            weights that do not fit the model; each message names the file and suggests ``--fresh``.
    """
    st = read_checkpoint(ckpt, "training checkpoint")
    diff = config_differences(st.get("experiment", {}), cfg.to_dict())
    if diff and not force:
        raise ValueError(f"{ckpt} was written under another config (differs in: {', '.join(diff[:8])}); "
                         "delete it or pass --fresh to restart, or resume='force' to continue anyway")
    missing = [k for k in ("model", "optimizer", "step", "history", "rng", "train_seconds") if k not in st]
    if missing:
        raise ValueError(f"{ckpt}: not a complete training checkpoint (no {', '.join(missing)}); "
                         "pass --fresh to restart")
    for _ in range(st.get("n_subdivisions", 0)):
        model.subdivide()
    try:
        model.load_state_dict(st["model"])
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"{ckpt}: weights do not fit the model ({str(err).splitlines()[0]}); "
                         "pass --fresh to restart") from err
    return st
