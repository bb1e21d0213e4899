"""The main job (``make demo``): runs what exists end to end on embedded data.

Until the training pipeline lands this renders an icosphere and PyVista's real aeroplane
mesh (silhouette and shaded) and writes the images and a summary into ``results/<run>/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from pytorch3d.renderer import TexturesVertex  # noqa: E402
from pytorch3d.structures import Meshes  # noqa: E402
from pytorch3d.utils import ico_sphere  # noqa: E402

from .render import RenderSettings, make_cameras, shaded_renderer, silhouette_renderer  # noqa: E402
from .utils import atomic_write, save_json, set_seed  # noqa: E402


def _normalise(verts: torch.Tensor) -> torch.Tensor:
    verts = verts - (verts.max(0).values + verts.min(0).values) / 2
    return verts / (verts.max(0).values - verts.min(0).values).norm()


def airplane_mesh() -> Meshes:
    """PyVista's bundled aeroplane, centred and scaled to unit bounding-box diagonal."""
    import numpy as np
    from pyvista import examples

    pd = examples.load_airplane().triangulate()
    verts = torch.tensor(np.asarray(pd.points), dtype=torch.float32)
    faces = torch.tensor(np.asarray(pd.faces).reshape(-1, 4)[:, 1:], dtype=torch.int64)
    return Meshes([_normalise(verts)], [faces])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", default="demo", help="results/<run>/ is written")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    set_seed(args.seed)
    out = Path("results") / args.run
    out.mkdir(parents=True, exist_ok=True)

    meshes = {"icosphere": ico_sphere(3), "aeroplane": airplane_mesh()}
    cams = make_cameras(dist=3.0, elev=25.0, azim=40.0)
    settings = RenderSettings(image_size=args.img_size)
    fig, axes = plt.subplots(len(meshes), 2, figsize=(6, 3 * len(meshes)))
    summary = {}
    for row, (name, mesh) in enumerate(meshes.items()):
        mesh.textures = TexturesVertex(torch.full_like(mesh.verts_padded(), 0.7))
        sil = silhouette_renderer(cams, settings)(mesh)[0, ..., 3]
        rgb = shaded_renderer(cams, RenderSettings(image_size=args.img_size, faces_per_pixel=1))(mesh)
        axes[row, 0].imshow(sil.numpy(), cmap="gray")
        axes[row, 1].imshow(rgb[0, ..., :3].clamp(0, 1).numpy())
        axes[row, 0].set_title(f"{name}: silhouette")
        axes[row, 1].set_title(f"{name}: shaded")
        summary[name] = {"faces": int(mesh.num_faces_per_mesh()[0]), "coverage": float(sil.mean())}
    for ax in axes.flat:
        ax.axis("off")
    with atomic_write(out / "renders.png", "wb") as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    save_json(summary, out / "summary.json")
    print(f"wrote {out}/renders.png and {out}/summary.json: {summary}")
    return summary


if __name__ == "__main__":
    main()
