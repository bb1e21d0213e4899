"""Stock PyTorch3D rasterizer vs symnb's FastMeshRasterizer inside whole renderers, on the CPU.

Prints one row per (renderer, image size, faces, faces_per_pixel): forward and backward seconds
of a batch of 8 images for both, and the speed-ups. Targets (issue 4): backward >= 30x and
forward + backward >= 8x at 64 px with faces_per_pixel = 25.

    .venv/bin/python benchmarks/bench_render.py            # the full table (several minutes)
    .venv/bin/python benchmarks/bench_render.py --quick    # 64 px, 1280 faces only
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from pytorch3d.renderer import TexturesUV
from pytorch3d.structures import Meshes
from pytorch3d.utils import ico_sphere

from symnb import set_seed
from symnb.render import RenderSettings, make_cameras, silhouette_renderer, textured_renderer
from symnb.utils import time_render

LEVELS = {320: 2, 1280: 3}


def _mesh(n_faces: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, TexturesUV]:
    s = ico_sphere(LEVELS[n_faces])
    verts = s.verts_packed()[None].expand(batch, -1, -1).contiguous()
    faces = s.faces_packed()[None].expand(batch, -1, -1)
    u = torch.atan2(verts[..., 0], verts[..., 2]) / (2 * np.pi) + 0.5
    uv = torch.stack([u, verts[..., 1] * 0.5 + 0.5], -1)
    tex = TexturesUV(maps=torch.rand(batch, 64, 64, 3), faces_uvs=faces, verts_uvs=uv)
    return verts, faces, tex


def time_one(kind: str, size: int, n_faces: int, fpp: int, rasterizer: str, batch: int, reps: int,
             warmup: int = 0):
    """Median forward and backward seconds of one renderer configuration (after warm-up calls)."""
    verts0, faces, tex = _mesh(n_faces, batch)
    elev, azim = torch.linspace(-30, 30, batch), torch.linspace(0, 300, batch)
    cams = make_cameras(dist=2.7, elev=elev, azim=azim, fov=60.0)  # the sphere covers ~40% of the image
    base = RenderSettings(image_size=size, faces_per_pixel=fpp, rasterizer=rasterizer, lighting="ambient")
    if kind == "silhouette":
        renderer = silhouette_renderer(cams, base)
    else:
        soft = fpp > 1
        renderer = textured_renderer(cams, base if soft else replace(base, sigma=0.0), mode="uv", soft=soft)
    mesh = Meshes(verts=verts0, faces=faces, textures=tex)
    channel = "alpha" if kind == "silhouette" else "rgb"
    return time_render(renderer, mesh, channel=channel, reps=reps, warmup=warmup)


def run(quick: bool = False, batch: int = 8, reps: int = 1, threads: int | None = None) -> pd.DataFrame:
    set_seed(0)
    if threads:
        torch.set_num_threads(threads)  # PyTorch3D's CPU kernels use the same thread count
    sizes = (64,) if quick else (64, 128)
    faces = (1280,) if quick else (320, 1280)
    fpps = (1, 25) if quick else (1, 5, 25)
    rows = []
    for kind in ("silhouette", "textured"):
        for size in sizes:
            for n_faces in faces:
                for fpp in fpps:
                    ours = time_one(kind, size, n_faces, fpp, "fast", batch, max(3, reps), warmup=1)
                    stock = time_one(kind, size, n_faces, fpp, "stock", batch, reps)
                    row = {
                        "renderer": kind, "px": size, "faces": n_faces, "fpp": fpp,
                        "stock fwd s": stock[0], "stock bwd s": stock[1],
                        "ours fwd s": ours[0], "ours bwd s": ours[1],
                        "fwd x": stock[0] / ours[0], "bwd x": stock[1] / ours[1],
                        "fwd+bwd x": sum(stock) / sum(ours),
                    }
                    rows.append(row)
                    print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1,
                                                        float_format="%.3f"), flush=True)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """The table as GitHub markdown (seconds to 3 decimals, ratios to 1)."""
    def fmt(col, v):
        if isinstance(v, float):
            return f"{v:.1f}" if col.endswith(" x") else f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(c, v) for c, v in zip(df.columns, row, strict=True)) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="64 px, 1280 faces, faces_per_pixel 1 and 25")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=1, help="timed repetitions of the stock renderer (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for both")
    ap.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    args = ap.parse_args(argv)
    df = run(quick=args.quick, batch=args.batch, reps=args.reps, threads=args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    print()
    print(df.to_string(index=False, float_format="%.3f"))
    if args.markdown:
        print(markdown(df))
    return df


if __name__ == "__main__":
    main()
