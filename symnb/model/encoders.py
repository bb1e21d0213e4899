"""Image encoders, by name: ``ENCODERS[name](img_size, n_feat, pretrained_path)``.

Every encoder maps images (B, 3, S, S) in [0, 1] to a feature map (B, ``out_channels``, s, s) for
the texture decoder and a feature vector (B, n_feat) for the heads. A new encoder is one class
plus one ``@register_encoder("name")`` line.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torchvision

ENCODERS: dict[str, type[nn.Module]] = {}


def register_encoder(name: str):
    """Class decorator adding an encoder to :data:`ENCODERS` under ``name``."""

    def add(cls):
        ENCODERS[name] = cls
        return cls

    return add


def build_encoder(name: str, img_size: int, n_feat: int, pretrained_path: str | None = None) -> nn.Module:
    """The encoder registered as ``name`` (ValueError naming the known ones otherwise)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[name](img_size, n_feat, pretrained_path)


def load_local_weights(module: nn.Module, path: str | None, what: str) -> None:
    """Load torchvision-format weights from a local file (nothing is downloaded)."""
    if not path:
        return
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} weights file not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise ValueError(f"{p} is not a {what} weights file ({err})") from err


@register_encoder("resnet18")
class ResNetEncoder(nn.Module):
    """MCMR's encoder: ResNet-18 trunk -> 3x3 stride-2 conv -> FC.

    images (B, 3, S, S) -> (feature map (B, 256, s, s), feature (B, n_feat)), s = max(1, S // 64).
    """

    arch = "resnet18"
    out_channels = 256

    def __init__(self, img_size: int, n_feat: int = 256, pretrained_path: str | None = None):
        super().__init__()
        resnet = getattr(torchvision.models, self.arch)(weights=None)
        load_local_weights(resnet, pretrained_path, self.arch)
        self.trunk = nn.Sequential(*list(resnet.children())[:-2])  # drop avgpool and fc
        width = resnet.fc.in_features
        self.conv = nn.Sequential(
            nn.Conv2d(width, self.out_channels, 3, stride=2, padding=1), nn.BatchNorm2d(self.out_channels),
            nn.LeakyReLU(0.2))
        s = max(1, img_size // 64)
        self.pool = nn.AdaptiveAvgPool2d(s)
        self.fc = nn.Sequential(nn.Linear(self.out_channels * s * s, n_feat), nn.LeakyReLU(0.2))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool(self.conv(self.trunk((images - self.mean) / self.std)))
        return x, self.fc(x.flatten(1))


@register_encoder("small")
class SmallEncoder(nn.Module):
    """A CPU-cheap encoder: 5 blocks (stride-2 conv + conv, BatchNorm, LeakyReLU) of 32, 64, 128, 256,
    256 channels -> 1x1 conv to 256 -> FC. About 4x faster than ResNet-18 on a CPU at 64 px, trained
    from scratch (no ImageNet weights).

    images (B, 3, S, S) -> (feature map (B, 256, S/32, S/32), feature (B, n_feat)).
    """

    out_channels = 256
    width = 32

    def __init__(self, img_size: int, n_feat: int = 256, pretrained_path: str | None = None):
        super().__init__()
        if pretrained_path:
            raise ValueError("the 'small' encoder has no pretrained weights (pretrained_path is resnet18's)")
        w = self.width
        ch = [3, w, 2 * w, 4 * w, 8 * w, 8 * w]
        layers = []
        for i in range(5):
            layers += [nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1), nn.BatchNorm2d(ch[i + 1]),
                       nn.LeakyReLU(0.2), nn.Conv2d(ch[i + 1], ch[i + 1], 3, padding=1),
                       nn.BatchNorm2d(ch[i + 1]), nn.LeakyReLU(0.2)]
        c = self.out_channels
        layers += [nn.Conv2d(ch[-1], c, 1), nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]
        self.trunk = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2 if img_size >= 64 else 1)
        self.fc = nn.Sequential(nn.Linear(self.out_channels * self.pool.output_size ** 2, n_feat),
                                nn.LeakyReLU(0.2))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk((images - self.mean) / self.std)
        return x, self.fc(self.pool(x).flatten(1))
