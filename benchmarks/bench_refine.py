"""Cost of the camera refinement at inference (render and compare; prints side-by-side ratios).

    .venv/bin/python benchmarks/bench_refine.py [--model results/demo/baseline/model.pt] [--repeats 3]

Times ``ReconstructionNet.reconstruct`` on one batch of 16 images at the main job's settings with the
refinement off (``camera_refine_steps=0``) and at 15, 30 (the main job) and 60 steps; without
``--model`` an untrained network of ``configs/demo.yaml``'s model section (the same cost: the forward
does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import os

import torch
from bench_symmetry import timed  # the benchmarks' folder is on the path when a script runs

from symnb.experiment import load_experiment
from symnb.model import ReconstructionNet, load_model
from symnb.utils import set_seed


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a trained model.pt (default: an untrained demo network)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    set_seed(0)
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"load average: {os.getloadavg()[0]:.2f}")
    if args.model:
        model = load_model(args.model)
    else:
        model = ReconstructionNet(load_experiment("configs/demo.yaml").model).eval()
    size = model.config.img_size
    images = torch.rand(args.batch, 3, size, size)
    base, _ = timed(lambda: model.reconstruct(images, camera_refine_steps=0), args.repeats)
    print(f"{'refinement steps':<18}{'s / batch':>10}{'s / image':>11}{'x no refinement':>17}")
    print(f"{0:<18}{base:>10.3f}{base / args.batch:>11.4f}{1.0:>17.2f}")
    for steps in (15, 30, 60):
        t, _ = timed(lambda: model.reconstruct(images, camera_refine_steps=steps), args.repeats)  # noqa: B023
        print(f"{steps:<18}{t:>10.3f}{t / args.batch:>11.4f}{t / base:>17.2f}")


if __name__ == "__main__":
    main()
