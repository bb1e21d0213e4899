"""Dataset generation and loading speed (target: >= 20 generated images/s at 128 px on a CPU).

Usage: ``python benchmarks/bench_data.py [--img-size 128] [--n 64] [--threads 2]``

Prints, side by side: CAD cleanup time per model; rendering throughput with PyTorch3D's stock
MeshRasterizer and with symnb's FastMeshRasterizer (what the generator uses when present); the
end-to-end ``make_dataset`` rate (render + background + keypoints + JPEG/PNG/YAML writes, CAD
cleanup excluded); and the loader's items/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from data_prep import cad, make_dataset, shapes, views
from symnb.data import Pascal3DDataset

TARGET = 20.0


def _render_rate(v, f, n, size, raster_cls) -> float:
    rng = np.random.default_rng(0)
    vs = [views.sample_view(rng, size) for _ in range(n)]
    K, R, t = (np.stack([x[k] for x in vs]) for k in ("K", "R", "t"))
    cols = np.stack([views.vertex_colors(v, rng, True) for _ in range(n)])
    orig = views.rasterizer_class
    views.rasterizer_class = lambda: raster_cls
    try:
        with torch.no_grad():
            views.render_views(v, f, cols[:2], K[:2], R[:2], t[:2], size)  # warm-up
            best = float("inf")
            for _ in range(3):  # best of three: the machine is shared, the minimum is the least disturbed
                t0 = time.perf_counter()
                for b in range(0, n, 16):
                    views.render_views(v, f, cols[b:b + 16], K[b:b + 16], R[b:b + 16], t[b:b + 16], size)
                best = min(best, time.perf_counter() - t0)
            return n / best
    finally:
        views.rasterizer_class = orig


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--n", type=int, default=64, help="images per measurement")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    out: dict = {}

    t0 = time.perf_counter()
    srcs = shapes.sources("car", 3)
    meshes = []
    for s in srcs:
        (v, f), _ = cad.clean_cad(*s.build(), up_hint=s.up_hint, forward_hint=s.forward_hint,
                                  canonical=s.canonical)
        meshes.append((v, f))
    out["cad_s_per_model"] = (time.perf_counter() - t0) / len(srcs)
    v, f = meshes[1]
    print(f"CAD cleanup: {out['cad_s_per_model']:.2f} s per model ({len(f)} faces after)")

    from pytorch3d.renderer import MeshRasterizer

    rows = [("PyTorch3D MeshRasterizer", MeshRasterizer)]
    try:
        from symnb.raster import FastMeshRasterizer

        rows.append(("symnb FastMeshRasterizer", FastMeshRasterizer))
    except ImportError:
        print("symnb.raster.FastMeshRasterizer not available")
    rates = {name: _render_rate(v, f, a.n, a.img_size, cls) for name, cls in rows}
    base = rates[rows[0][0]]
    print(f"\nrendering {a.n} views of a {len(f)}-face CAD at {a.img_size} px "
          f"(threads={torch.get_num_threads()}):")
    for name, r in rates.items():
        print(f"  {name:<28} {r:7.1f} img/s   x{r / base:4.1f} vs stock   "
              f"{r / TARGET:4.2f} of target {TARGET:.0f}")
    out["render_rates"] = rates

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_dataset.make_dataset(Path(tmp) / "ds", classes=("car",), per_class=1, img_size=a.img_size,
                                  progress=False)
        cad_only = time.perf_counter() - t0
        t0 = time.perf_counter()
        root = make_dataset.make_dataset(Path(tmp) / "ds2", classes=("car",), per_class=a.n,
                                         img_size=a.img_size, progress=False)
        total = time.perf_counter() - t0
        gen = a.n / max(total - cad_only, 1e-9)
        out["generate_img_per_s"] = gen
        print(f"\nmake_dataset end to end (CAD cleanup {cad_only:.1f} s excluded): {gen:.1f} img/s "
              f"= {gen / TARGET:.2f} of target {TARGET:.0f} img/s")
        ds = Pascal3DDataset(root, "car", "train", img_size=64, flip=True)
        t0 = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        out["load_items_per_s"] = len(ds) / (time.perf_counter() - t0)
        print(f"Pascal3DDataset at 64 px: {out['load_items_per_s']:.0f} items/s")
    return out


if __name__ == "__main__":
    main()
