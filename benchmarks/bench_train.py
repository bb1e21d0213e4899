"""Seconds per training step (B=8, 64 px, the demo's model and losses): FastMeshRasterizer vs stock PyTorch3D.

    .venv/bin/python benchmarks/bench_train.py [--steps 3] [--faces-per-pixel 8 25]

Prints one row per setting, the two timings side by side and their ratio (target >= 8x).
"""

from __future__ import annotations

import argparse
import time

import torch

from symnb.data import ToyDataset, collate
from symnb.experiment import ExperimentConfig
from symnb.experiment.objective import compute_losses
from symnb.model import ModelConfig, ReconstructionNet
from symnb.render import RenderSettings


def step_seconds(cfg: ExperimentConfig, batch: dict, steps: int) -> float:
    """Median seconds of a full optimisation step (forward, render, losses, backward, Adam)."""
    torch.manual_seed(0)
    model = ReconstructionNet(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        out = model(batch["image"])
        loss, _ = compute_losses(out, batch, cfg.loss, cfg.render)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--faces-per-pixel", type=int, nargs="+", default=[8, 25])
    ap.add_argument("--template-verts", type=int, nargs="+", default=[642])
    args = ap.parse_args()
    data = ToyDataset(n=args.batch, img_size=args.img_size)
    batch = collate([data[i] for i in range(args.batch)])
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch}, {args.img_size} px")
    print(f"{'template':>9} {'fpp':>4} {'stock s/step':>13} {'fast s/step':>12} {'ratio':>7}")
    for n in args.template_verts:
        for fpp in args.faces_per_pixel:
            row = {}
            for rast in ("stock", "fast"):
                rs = RenderSettings(faces_per_pixel=fpp, rasterizer=rast, camera="gt")
                cfg = ExperimentConfig(model=ModelConfig(img_size=args.img_size, template_verts=n), render=rs)
                row[rast] = step_seconds(cfg, batch, args.steps)
            ratio = row["stock"] / row["fast"]
            print(f"{n:>9} {fpp:>4} {row['stock']:>13.3f} {row['fast']:>12.3f} {ratio:>6.1f}x")


if __name__ == "__main__":
    main()
