"""Speed of the symmetry core against the issue's targets (prints side-by-side ratios).

    .venv/bin/python benchmarks/bench_symmetry.py [--repeats 3]

Targets on the 2-core CI machine: symmetry detection on a 10k-face mesh <= 2 s, 3D IoU at 64^3 <= 1 s
(128^3 is reported for reference). The machine's load average is printed because other jobs
sharing the cores slow everything down proportionally.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from symnb import set_seed
from symnb.examples import example_mesh, random_pose
from symnb.geometry import subdivide_midpoint
from symnb.metrics import iou_3d
from symnb.symmetry import detect_symmetries


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    set_seed(0)
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"load average: {os.getloadavg()[0]:.2f}")
    rows = []

    v, f = example_mesh("airplane")
    v, f = subdivide_midpoint(v, f)  # 9808 faces, the real aeroplane refined
    vv, _, _, _ = random_pose(v, 1)
    t, syms = timed(lambda: detect_symmetries(vv, f), args.repeats)
    rows.append((f"detect_symmetries, airplane {len(f)} faces ({len(syms)} found)", t, 2.0))

    nut, nf = example_mesh("nut")
    nut, nf = subdivide_midpoint(*subdivide_midpoint(nut, nf))  # 16736 faces, 8-fold + 9 planes
    t, syms = timed(lambda: detect_symmetries(nut, nf), args.repeats)
    rows.append((f"detect_symmetries, nut {len(nf)} faces ({len(syms)} found)", t, 2.0 * len(nf) / 10000))

    w = vv * 0.9 + 0.05 * (vv.amax(0) - vv.amin(0))
    for res, target in ((64, 1.0), (128, None)):
        t, iou = timed(lambda r=res: iou_3d(vv, f, w, f, resolution=r), args.repeats)
        rows.append((f"iou_3d {res}^3, two {len(f)}-face meshes (IoU {iou:.3f})", t, target))

    print(f"{'task':62s} {'seconds':>8s} {'target':>7s} {'ratio':>6s}")
    for name, t, target in rows:
        if target is None:
            print(f"{name:62s} {t:8.3f} {'-':>7s} {'-':>6s}")
        else:
            print(f"{name:62s} {t:8.3f} {target:7.2f} {t / target:6.2f}")


if __name__ == "__main__":
    main()
