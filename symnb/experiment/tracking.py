"""What training writes besides checkpoints: metrics.csv / .json (one row per ``log_every`` steps),
val_metrics.csv / .json (one row per validation) and TensorBoard event files (``<out_dir>/tb``:
scalars at every log step and validation, reconstructions as images at every validation)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..utils import atomic_write, save_json


def write_metrics(out_dir: Path, history: list[dict], name: str = "metrics") -> None:
    """``<name>.csv`` and ``<name>.json`` of a list of rows, atomically."""
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    s = io.StringIO()
    wr = csv.DictWriter(s, fieldnames=keys)
    wr.writeheader()
    wr.writerows(history)
    with atomic_write(out_dir / f"{name}.csv") as f:
        f.write(s.getvalue())
    save_json(history, out_dir / f"{name}.json")


class Board:
    """A TensorBoard writer (``torch.utils.tensorboard``) that can be switched off."""

    def __init__(self, log_dir: Path | None):
        self.writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))

    def scalars(self, row: dict, step: int, prefix: str) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)):
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def reconstructions(self, model, dataset, step: int, n: int = 4) -> None:
        """The report's reconstruction grid of ``n`` items (predicted camera, second view, error)."""
        if self.writer is None or dataset is None or not len(dataset):
            return
        from ..data import evenly_spaced
        from .report import plot_reconstructions

        idx = evenly_spaced(len(dataset), n)
        was = model.training
        self.writer.add_figure("reconstructions", plot_reconstructions({"model": model}, dataset, idx), step)
        model.train(was)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
