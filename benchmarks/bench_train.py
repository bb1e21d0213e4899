"""Seconds per training step, side by side: the full step, the encoder's own floor, stock PyTorch3D.

    .venv/bin/python benchmarks/bench_train.py [--steps 15] [--batch 8] [--encoder resnet18 small]

For each encoder: the full optimisation step with our rasterizer (forward, render, all losses,
backward, fused Adam), the same step with PyTorch3D's stock rasterizer, and the encoder alone
(forward + backward of its features, the floor the rest of the step adds to). Prints the ratios
step / floor (target <= 1.5) and stock / ours. Setting of the issue: batch 8, 64 px, 642-vertex
template, 8 faces per pixel, the predicted camera. The three are timed in turns (medians of
``--steps`` rounds), so a drifting machine load shifts all of them alike.
"""

from __future__ import annotations

import argparse
import time

import torch

from symnb.data import ToyDataset, collate
from symnb.experiment.objective import compute_losses
from symnb.losses import LossWeights
from symnb.model import ModelConfig, ReconstructionNet
from symnb.render import RenderSettings


def _median_interleaved(fns: dict, steps: int) -> dict:
    """Median seconds of each function, run in turns (a, b, c, a, b, c, ...) so that all of them see
    the same machine load: on a shared CPU the load drifts by tens of percent within a minute."""
    for fn in fns.values():
        fn()  # warm-up
    times = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def training_step(mcfg: ModelConfig, render: RenderSettings, batch: dict):
    """A full optimisation step (forward, render, all losses, backward, fused Adam) as a function."""
    torch.manual_seed(0)
    model = ReconstructionNet(mcfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    weights = LossWeights()

    def step():
        out = model(batch["image"])
        loss, _ = compute_losses(out, batch, weights, render, "pred")  # the predicted camera
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def encoder_step(mcfg: ModelConfig, batch: dict):
    """The floor: the encoder's forward + backward of its features and its fused Adam step."""
    torch.manual_seed(0)
    enc = ReconstructionNet(mcfg).encoder
    opt = torch.optim.Adam(enc.parameters(), lr=1e-4, fused=True)

    def step():
        fmap, feat = enc(batch["image"])
        (fmap.square().mean() + feat.square().mean()).backward()
        opt.step()
        opt.zero_grad()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--faces-per-pixel", type=int, default=8)
    ap.add_argument("--template-verts", type=int, default=642)
    ap.add_argument("--encoder", nargs="+", default=["resnet18", "small"])
    ap.add_argument("--deform-hidden", type=int, default=128)
    ap.add_argument("--no-stock", action="store_true", help="skip the (slow) stock PyTorch3D column")
    args = ap.parse_args()
    data = ToyDataset(n=args.batch, img_size=args.img_size)
    batch = collate([data[i] for i in range(args.batch)])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"{args.img_size} px, template {args.template_verts}, {args.faces_per_pixel} faces per pixel, "
          "predicted camera")
    print(f"{'encoder':>9} {'floor s':>8} {'step s':>7} {'stock s':>8} {'step/floor':>11} {'stock/step':>11}")
    for enc in args.encoder:
        mcfg = ModelConfig(img_size=args.img_size, template_verts=args.template_verts, encoder=enc,
                           deform_hidden=args.deform_hidden)
        fpp = args.faces_per_pixel
        render = {r: RenderSettings(faces_per_pixel=fpp, rasterizer=r) for r in ("fast", "stock")}
        fns = {"floor": encoder_step(mcfg, batch), "ours": training_step(mcfg, render["fast"], batch)}
        if not args.no_stock:
            fns["stock"] = training_step(mcfg, render["stock"], batch)
        t = _median_interleaved(fns, args.steps)
        floor, ours, stock = t["floor"], t["ours"], t.get("stock", float("nan"))
        print(f"{enc:>9} {floor:>8.3f} {ours:>7.3f} {stock:>8.3f} {ours / floor:>10.2f}x "
              f"{stock / ours:>10.1f}x")


if __name__ == "__main__":
    main()
