"""The network's heads: per-vertex deformation, camera and texture."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class DeformMLP(nn.Module):
    """Per-vertex offsets from (feature (B, C), class probs (B, K), template positions (V, 3)) -> (B, V, 3).

    The first layer is split into a per-image and a per-vertex part that are added (same maths as
    concatenating the inputs, without materialising (B, V, C + K + 3)), so the template can be
    subdivided without changing the network.
    """

    def __init__(self, n_in: int, hidden: int = 256, layers: int = 2, max_offset: float = 0.5):
        super().__init__()
        self.img = nn.Linear(n_in, hidden)
        self.pos = nn.Linear(3, hidden, bias=False)
        body = []
        for _ in range(layers):
            body += [nn.LeakyReLU(0.2), nn.Linear(hidden, hidden)]
        self.body = nn.Sequential(*body, nn.LeakyReLU(0.2))
        self.out = nn.Linear(hidden, 3)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)
        self.max_offset = max_offset

    def forward(self, latent: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = self.img(latent)[:, None, :] + self.pos(pos)[None]  # (B, V, hidden)
        return self.max_offset * torch.tanh(self.out(self.body(h)))


class CameraHead(nn.Module):
    """MCMR's weak-perspective camera (:mod:`symnb.camera`) from the image feature.

    Returns a dict: "scale" (B,) = init_scale * exp(clamped raw), "trans" (B, 2), "quat" (B, 4) unit
    (w, x, y, z), "quat_raw" (B, 4). It starts upright, seen from the front (R = diag(1, -1, -1)).
    """

    def __init__(self, n_feat: int, init_scale: float = 1.5, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_feat, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 7))
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.copy_(torch.tensor([0.0, 1, 0, 0, 0, 0, 0]))
        self.init_scale = init_scale

    def forward(self, feat: torch.Tensor) -> dict:
        cam = self.net(feat)  # (B, 7): quaternion, log scale, translation
        quat_raw = cam[:, :4]
        return {"scale": self.init_scale * torch.exp(cam[:, 4].clamp(-3, 3)), "trans": cam[:, 5:7],
                "quat": F.normalize(quat_raw, dim=-1), "quat_raw": quat_raw}


class TextureDecoder(nn.Module):
    """Feature map (B, C, s, s) -> UV image (B, 3, T, W) in [0, 1] (W = 2T, or T when half=True)."""

    def __init__(self, tex_size: int = 32, half: bool = False, channels: int = 64, in_channels: int = 256):
        super().__init__()
        n_up = int(math.log2(tex_size // 4))
        if 4 * 2**n_up != tex_size:
            raise ValueError(f"tex_size must be 4 * 2^n, got {tex_size}")
        self.start = (4, 4 if half else 8)
        self.fc = nn.Linear(in_channels, channels * self.start[0] * self.start[1])
        blocks = []
        c = channels
        for _ in range(n_up):
            blocks += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(c, max(c // 2, 16), 3, padding=1), nn.BatchNorm2d(max(c // 2, 16)),
                       nn.LeakyReLU(0.2)]
            c = max(c // 2, 16)
        self.up = nn.Sequential(*blocks, nn.Conv2d(c, 3, 3, padding=1))
        self.channels = channels
        self.half = half

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        x = self.fc(fmap.mean((2, 3))).view(-1, self.channels, *self.start)
        tex = torch.sigmoid(self.up(x))
        return torch.cat([tex, tex.flip(-1)], dim=-1) if self.half else tex
