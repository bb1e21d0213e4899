"""The network's heads: per-vertex deformation, camera and texture."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch3d.transforms import matrix_to_quaternion, quaternion_to_matrix

from ..camera import rot6d_to_matrix, viewpoint_rotation

#: Camera rotation parameterisations and their raw sizes.
ROTATIONS = {"6d": 6, "quat": 4}


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
        for _ in range(layers):  # in place: the (B, V, hidden) activations are not kept twice
            body += [nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, hidden)]
        self.body = nn.Sequential(*body, nn.LeakyReLU(0.2, inplace=True))
        self.out = nn.Linear(hidden, 3)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)
        self.max_offset = max_offset

    def forward(self, latent: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = self.img(latent)[:, None, :] + self.pos(pos)[None]  # (B, V, hidden)
        return self.max_offset * torch.tanh(self.out(self.body(h)))


class CameraHead(nn.Module):
    """MCMR's weak-perspective camera (:mod:`symnb.camera`) from the image feature, with K rotation
    hypotheses (a multiplex camera, as CMR / MCMR) and a learnable rotation parameterisation.

    Args:
        n_feat: feature size; init_scale: the scale at initialisation (exp of 0 times it).
        rotation: "6d" (the continuous 6-D representation, :func:`symnb.camera.rot6d_to_matrix`) or
            "quat" (a unit quaternion, MCMR).
        hypotheses: K; K > 1 adds K logits and starts the hypotheses at azimuths 360 k / K
            (elevation 15), so that the winner-take-all loss can resolve front / back ambiguities.

    Returns (forward) a dict: "scale" (B,), "trans" (B, 2), "R" (B, 3, 3) and "quat" (B, 4) of the
    most probable hypothesis, "R_hyp" (B, K, 3, 3), "cam_logits" (B, K), "quat_raw" (B, 4 or 6) the
    raw rotation output of the chosen hypothesis.
    """

    def __init__(self, n_feat: int, init_scale: float = 1.5, rotation: str = "6d", hypotheses: int = 1,
                 hidden: int = 128):
        super().__init__()
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        self.rotation, self.K, self.n_rot = rotation, hypotheses, ROTATIONS[rotation]
        n_out = self.K * self.n_rot + 3 + (self.K if self.K > 1 else 0)
        self.net = nn.Sequential(nn.Linear(n_feat, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, n_out))
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)
            bias = torch.zeros(n_out)
            az = torch.arange(self.K) * 360.0 / self.K
            R0 = (torch.diag(torch.tensor([1.0, -1, -1]))[None] if self.K == 1  # upright, from the front
                  else viewpoint_rotation(az, torch.full_like(az, 15.0)).float())
            r0 = matrix_to_quaternion(R0) if rotation == "quat" else R0[:, :2].reshape(self.K, 6)
            bias[: self.K * self.n_rot] = r0.reshape(-1)
            self.net[-1].bias.copy_(bias)
        self.init_scale = init_scale

    def forward(self, feat: torch.Tensor) -> dict:
        out = self.net(feat)  # (B, K * n_rot + 3 [+ K]): rotations, log scale, translation, logits
        B, K, n = len(feat), self.K, self.n_rot
        raw = out[:, : K * n].reshape(B, K, n)
        R_hyp = quaternion_to_matrix(F.normalize(raw, dim=-1)) if n == 4 else rot6d_to_matrix(raw)
        logits = out[:, K * n + 3:] if K > 1 else out.new_zeros(B, 1)
        best = logits.argmax(1)
        ar = torch.arange(B, device=feat.device)
        R = R_hyp[ar, best]
        quat = F.normalize(raw[ar, best], dim=-1) if n == 4 else matrix_to_quaternion(R)
        return {"scale": self.init_scale * torch.exp(out[:, K * n].clamp(-3, 3)),
                "trans": out[:, K * n + 1:K * n + 3], "R": R, "quat": quat, "R_hyp": R_hyp,
                "cam_logits": logits, "quat_raw": raw[ar, best]}


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
        x = x.contiguous(memory_format=torch.channels_last)  # CPU convolutions of few channels: ~1.5x faster
        tex = torch.sigmoid(self.up(x))
        return torch.cat([tex, tex.flip(-1)], dim=-1) if self.half else tex
