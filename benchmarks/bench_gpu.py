"""A training step and a short training on the GPU, with PyTorch3D's CUDA rasterizer ("auto").

    .venv/bin/python benchmarks/bench_gpu.py [--batch 32] [--steps 200] [--bf16]

Prints the median step time (float32, and with the encoder under bfloat16 autocast), and the
seconds and final training metrics of ``--steps`` steps of the demo's model on the toy data. Without
a CUDA device it says so and exits 0.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from symnb.data import DataConfig, ToyDataset, collate
from symnb.experiment import ExperimentConfig, TrainConfig, train
from symnb.experiment.objective import compute_losses
from symnb.losses import LossWeights
from symnb.model import ModelConfig, ReconstructionNet
from symnb.render import RenderSettings


def step_time(mcfg: ModelConfig, batch: dict, bf16: bool, steps: int = 20) -> float:
    torch.manual_seed(0)
    model = ReconstructionNet(mcfg).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    render, weights = RenderSettings(rasterizer="auto"), LossWeights()
    times = []
    for i in range(steps + 3):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out = model(batch["image"])
        loss, _ = compute_losses(out, batch, weights, render)
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--encoder", default="resnet18")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to benchmark")
        return
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, batch {args.batch}, 64 px")
    data = ToyDataset(n=args.batch, img_size=64)
    batch = collate([data[i] for i in range(args.batch)])
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
    mcfg = ModelConfig(encoder=args.encoder, n_shapes=2)
    for bf16 in (False, True):
        print(f"step ({'bf16 encoder' if bf16 else 'float32'}): {step_time(mcfg, batch, bf16):.4f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(steps=args.steps, batch_size=args.batch, lr=3e-4, device="cuda", progress=False,
                         log_every=10, ckpt_every=args.steps, tensorboard=False)
        data = DataConfig(name="toy", options={"n": 64})
        cfg = ExperimentConfig(name="gpu", out_dir=tmp, model=mcfg, data=data, train=tc)
        t = time.perf_counter()
        res = train(cfg)
        last = res.history[-1]
        print(f"{args.steps} training steps: {time.perf_counter() - t:.1f} s "
              f"(loss {res.history[0]['loss']:.3f} -> {last['loss']:.3f}, mask IoU {last['mask_iou']:.3f})")


if __name__ == "__main__":
    main()
