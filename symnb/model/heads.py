"""The network's heads: per-vertex deformation, camera and texture."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch3d.transforms import matrix_to_quaternion, quaternion_to_matrix

from ..camera import VIEW_ANGLES, rot6d_to_matrix, view_bins, viewpoint_rotation

#: Camera rotation parameterisations and their raw sizes.
ROTATIONS = {"6d": 6, "quat": 4}


class DeformMLP(nn.Module):
    """Per-vertex offsets from (feature (B, C), class probs (B, K), vertex positions) -> (B, V, 3).

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
        """latent (B, C + K), pos (V, 3) shared or (B, V, 3) per image -> offsets (B, V, 3)."""
        p = self.pos(pos)
        h = self.img(latent)[:, None, :] + (p[None] if pos.dim() == 2 else p)  # (B, V, hidden)
        return self.max_offset * torch.tanh(self.out(self.body(h)))


class CameraHead(nn.Module):
    """MCMR's weak-perspective camera (:mod:`symnb.camera`) from the image feature, with K rotation
    hypotheses (a camera multiplex, as U-CMR's; MCMR and CMR predict one camera) and a learnable
    rotation parameterisation.

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


class ViewpointHead(nn.Module):
    """Camera from the image feature as viewpoint estimation does it (Su et al. 2015; Mahendran et al.
    2018): azimuth, elevation and in-plane roll each classified into bins, plus a residual inside each
    bin; weak-perspective scale and translation regressed. The rotation is
    ``viewpoint_rotation(az, el, roll)`` of the most probable bins (their residuals added).

    Trained by :func:`symnb.losses.viewpoint_loss` against the annotation alone: cross-entropy of the
    bins (a full distribution, so a front / back ambiguity is two modes, not an average) and the
    residual of the annotated bin.

    Args:
        n_feat: feature size; init_scale: the scale at initialisation (exp of 0 times it);
        bins: bin counts (azimuth, elevation, roll), :func:`view_bins`; hidden: hidden units.

    Returns (forward) a dict: "scale" (B,), "trans" (B, 2), "R" (B, 3, 3), "quat" (B, 4), "angles"
    (B, 3) degrees, and per angle a of :data:`VIEW_ANGLES` "<a>_logits" (B, n_a) and "<a>_residual"
    (B, n_a) (bin widths).
    """

    def __init__(self, n_feat: int, init_scale: float = 1.5, bins: tuple[int, int, int] = (24, 12, 24),
                 hidden: int = 128):
        super().__init__()
        self.bins = view_bins(bins)
        self.sizes = [b.n for b in self.bins]
        n_out = 2 * sum(self.sizes) + 3
        self.net = nn.Sequential(nn.Linear(n_feat, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, n_out))
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.zero_()
        self.init_scale = init_scale

    def forward(self, feat: torch.Tensor) -> dict:
        out = self.net(feat)  # (B, 2 (n_az + n_el + n_roll) + 3): logits, residuals, log scale, translation
        n = sum(self.sizes)
        logits = out[:, :n].split(self.sizes, dim=1)
        residuals = out[:, n:2 * n].split(self.sizes, dim=1)
        res, angles = {}, []
        for name, b, lg, rs in zip(VIEW_ANGLES, self.bins, logits, residuals, strict=True):
            k = lg.argmax(1)
            angles.append(b.decode(k, rs.gather(1, k[:, None])[:, 0]))
            res[f"{name}_logits"], res[f"{name}_residual"] = lg, rs
        angles = torch.stack(angles, -1)
        R = viewpoint_rotation(angles[:, 0], angles[:, 1], angles[:, 2])
        return {"scale": self.init_scale * torch.exp(out[:, 2 * n].clamp(-3, 3)), "trans": out[:, 2 * n + 1:],
                "R": R, "quat": matrix_to_quaternion(R), "angles": angles, **res}


class SilhouetteDecoder(nn.Module):
    """Image feature (B, n_feat) -> silhouette logits (B, 1, size, size): an auxiliary task that makes the
    global feature encode the object's outline, from which the viewpoint head reads the pose (trained
    with :func:`symnb.losses.silhouette_loss`; not used at inference)."""

    def __init__(self, n_feat: int, size: int = 32, channels: int = 64):
        super().__init__()
        n_up = int(math.log2(size // 4))
        if 4 * 2**n_up != size:
            raise ValueError(f"silhouette size must be 4 * 2^n, got {size}")
        blocks, c = [], channels
        for _ in range(n_up):
            out = max(c // 2, 8)
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, out, 3, padding=1),
                       nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            c = out
        self.fc = nn.Linear(n_feat, channels * 16)
        self.up = nn.Sequential(*blocks, nn.Conv2d(c, 1, 3, padding=1))
        self.channels = channels

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc(feat), 0.2).view(-1, self.channels, 4, 4)
        return self.up(x)


class TextureDecoder(nn.Module):
    """Feature map (B, C, s, s) -> UV image (B, n, T, W): colours in [0, 1] (n = 3) or a texture flow in
    [-1, 1] (n = 2); W = 2T, or T when ``half`` (the other half is the mirror image, below).

    Decoded from the unpooled feature map, as MCMR's SPADE decoder is (every cell of the map is read,
    through a 1 x 1 convolution to ``squeeze`` channels and a linear layer), then upsampled by
    bilinear 2x + 3 x 3 convolution blocks as CMR's ``TexturePredictorUV`` does.

    Args:
        tex_size: T (4 * 2^n); half: decode one half of the UV image and append its left-right mirror
            image (the symmetry-aligned UV map, where texel (i, j) and (i, W - 1 - j) are mirror points).
        out: "rgb" (sigmoid colours) or "flow" (tanh sampling positions (x, y) in the input image,
            normalised image coordinates: CMR's texture flow, :func:`sample_flow`).
        channels: width of the first upsampling block; in_channels: C; map_size: s.
        zero_init: the last layer starts at 0 (the output at sigmoid(0) or tanh(0)).
    """

    def __init__(self, tex_size: int = 32, half: bool = False, out: str = "rgb", channels: int = 64,
                 in_channels: int = 256, map_size: int = 2, squeeze: int = 64, zero_init: bool = False):
        super().__init__()
        n_up = int(math.log2(tex_size // 4))
        if 4 * 2**n_up != tex_size:
            raise ValueError(f"tex_size must be 4 * 2^n, got {tex_size}")
        if out not in ("rgb", "flow"):
            raise ValueError(f"TextureDecoder out must be 'rgb' or 'flow', got {out!r}")
        self.start = (4, 4 if half else 8)
        self.squeeze = nn.Sequential(nn.Conv2d(in_channels, squeeze, 1), nn.LeakyReLU(0.2))
        self.fc = nn.Linear(squeeze * map_size * map_size, channels * self.start[0] * self.start[1])
        blocks = []
        c = channels
        for _ in range(n_up):
            blocks += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(c, max(c // 2, 16), 3, padding=1), nn.BatchNorm2d(max(c // 2, 16)),
                       nn.LeakyReLU(0.2)]
            c = max(c // 2, 16)
        self.up = nn.Sequential(*blocks, nn.Conv2d(c, 2 if out == "flow" else 3, 3, padding=1))
        if zero_init:  # e.g. a correction of a projected flow that starts at none
            nn.init.zeros_(self.up[-1].weight)
            nn.init.zeros_(self.up[-1].bias)
        self.channels, self.half, self.out, self.map_size = channels, half, out, map_size

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        if fmap.shape[-1] != self.map_size:
            fmap = F.adaptive_avg_pool2d(fmap, self.map_size)
        x = self.fc(self.squeeze(fmap).flatten(1)).view(-1, self.channels, *self.start)
        x = x.contiguous(memory_format=torch.channels_last)  # CPU convolutions of few channels: ~1.5x faster
        x = self.up(x)
        uv = torch.tanh(x) if self.out == "flow" else torch.sigmoid(x)
        return torch.cat([uv, uv.flip(-1)], dim=-1) if self.half else uv


def sample_flow(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The UV image a texture flow copies from the images: each texel takes the image's colour at its
    sampling position (bilinear; CMR ``geom_utils.sample_textures``).

    Args:
        images: (B, 3, S, S) in [0, 1]; flow: (B, 2, H, W) positions (x, y) in [-1, 1]
            (``grid_sample``, ``align_corners=False``).
    Returns:
        (B, 3, H, W) in [0, 1].
    """
    return F.grid_sample(images, flow.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=False)
