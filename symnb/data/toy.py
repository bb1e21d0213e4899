"""A tiny in-memory dataset of the :class:`symnb.data.Item` contract, for tests and smoke runs."""

from __future__ import annotations

import math

import torch
from pytorch3d.renderer import TexturesVertex
from pytorch3d.structures import Meshes
from pytorch3d.transforms import euler_angles_to_matrix, matrix_to_quaternion

from ..camera import to_pytorch3d
from ..render import RenderSettings, silhouette_renderer
from ..symmetry.templates import sphere_template
from .base import DataConfig, Item, ReconstructionDataset, split_key
from .registry import register_dataset

_SPLIT_SEEDS = {"train": 0, "eval": 1000, "test": 2000}


@register_dataset("toy")
class ToyDataset(ReconstructionDataset):
    """Random ellipsoids (symmetric about x = 0, bbox diagonal 1) with a two-colour texture, each seen
    by a random weak-perspective camera (azimuth 0-360, elevation -10..40 degrees; OpenCV camera
    R = Rx(pi + el) Ry(az)) and rendered with :func:`symnb.camera.to_pytorch3d`. Items are generated
    once, deterministically; there is no augmentation (an ``(index, seed)`` key reads item ``index``).

    Args:
        n: number of items; img_size: pixels; seed: generator seed.
    """

    def __init__(self, n: int = 16, img_size: int = 32, seed: int = 0):
        if n <= 0:
            raise ValueError(f"ToyDataset: n must be positive, got {n}")
        g = torch.Generator().manual_seed(seed)
        verts, faces = sphere_template(162)
        rs = RenderSettings(image_size=img_size, sigma=0.0, faces_per_pixel=1)
        self.items: list[Item] = []
        self.meshes: list[tuple[torch.Tensor, torch.Tensor]] = []
        red, blue = torch.tensor([0.8, 0.2, 0.2]), torch.tensor([0.2, 0.3, 0.8])
        for i in range(n):
            axes = torch.tensor([0.25, 0.15, 0.4]) * (0.8 + 0.4 * torch.rand(3, generator=g))
            v = verts * axes
            v = v / (v.amax(0) - v.amin(0)).norm()
            az = torch.rand(1, generator=g) * 2 * math.pi
            el = (-10 + 50 * torch.rand(1, generator=g)) * math.pi / 180
            R = euler_angles_to_matrix(torch.stack([math.pi + el, az, torch.zeros(1)], -1), "XYZ")[0]
            quat = matrix_to_quaternion(R)[None]
            scale = torch.tensor([1.6 + 0.2 * torch.rand(1, generator=g).item()])
            trans = 0.1 * (torch.rand(1, 2, generator=g) - 0.5)
            colour = torch.where(v[:, :1] * v[:, 2:] > 0, red, blue)
            mesh = Meshes([v], [faces], textures=TexturesVertex([colour]))
            frags = silhouette_renderer(to_pytorch3d(scale, trans, quat), rs).rasterizer(mesh)
            hit = (frags.pix_to_face[0, ..., 0] >= 0).float()                # (S, S)
            rgb = mesh.sample_textures(frags)[0, ..., 0, :]                   # (S, S, 3)
            image = (rgb * hit[..., None] + (1 - hit[..., None])).permute(2, 0, 1).clamp(0, 1)
            self.items.append({"image": image, "mask": hit[None], "class_idx": torch.tensor(0),
                               "cad_idx": torch.tensor(i + 1), "scale": scale[0], "trans": trans[0],
                               "quat": quat[0], "id": f"toy_{i:03d}", "class_name": "toy"})
            self.meshes.append((v, faces))

    @classmethod
    def from_config(cls, cfg: DataConfig, split: str, img_size: int) -> ToyDataset:
        """``cfg.options`` holds ``n`` and ``seed``; each split draws other items (seed + 0/1000/2000)."""
        opts = dict(cfg.options)
        seed = int(opts.pop("seed", 0)) + _SPLIT_SEEDS.get(split, 0)
        return cls(img_size=img_size, seed=seed, **opts)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key) -> Item:
        idx, _ = split_key(key)
        return self.items[idx]

    def cad_mesh(self, class_name: str, cad_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(verts, faces) of item ``cad_idx - 1`` (each toy item is its own CAD model)."""
        return self.meshes[int(cad_idx) - 1]
