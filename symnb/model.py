"""MCMR-style single-view mesh reconstruction network with learnable reflection symmetry.

Architecture (MCMR, Fini et al. 2021, on our templates and renderer):

* encoder: torchvision ResNet-18 trunk -> 3x3 stride-2 conv -> FC to a ``n_feat`` (256) feature;
* ``n_shapes`` learnable mean shapes on a sphere template, blended by a learned class-probability
  head (no class labels needed);
* a per-vertex deformation MLP whose input is (image feature, class probabilities, template vertex
  position), so the template can be subdivided during training without changing the network;
* camera head: scale, 2-D translation and unit quaternion of :mod:`symnb.camera`;
* texture head: a decoder to a UV image, sampled by PyTorch3D's ``TexturesUV`` (mode ``uv``) or a
  per-face ``TexturesAtlas`` (mode ``atlas``) through a spherical or a symmetry-aligned UV map.

Symmetry (``ModelConfig.symmetry``):

* ``"none"``: mean shapes hold every vertex (the baseline);
* ``"reflection"``: mean shapes hold only the independent half (``smap.independent``) and are
  expanded to an exactly symmetric mesh; the per-vertex offsets are symmetrized with ``sym_mode``
  (``"l2r"``, ``"r2l"``, ``"cent"`` or one mode per horizontal slice). The output's index-symmetry
  error is exactly 0;
* ``"two_planes"`` (mirrors x = 0 and z = 0) and ``"rotation"`` (``sym_order`` n >= 2 about y):
  the template is ``templates.template_for(symmetry, template_verts, sym_order)`` and a
  :class:`symnb.symgroup.GroupMap` holds its vertex permutations; the mean shapes hold only the
  orbit representatives' free coordinates (``n_free_params`` per shape) and are expanded with
  ``group_expand``; the offsets are made invariant with ``group_symmetrize`` (``sym_mode`` "cent":
  group average, "l2r": representatives copied); the output is exactly invariant under every element;
* ``"auto"``: :func:`resolve_symmetry` picks ``none``, ``reflection`` or ``rotation`` from
  ``symmetry.choose_representation`` on the category's CAD models (a continuous rotation gets the
  finite order ``auto_order``; two planes give ``reflection`` unless ``auto_two_planes``).

Refinement scheme (``refine=True`` with reflection): the template has about twice the vertices,
chosen so that its independent half has as many vertices as the baseline template: same number of
learnable parameters, about 2x output vertices (:func:`refinement_template`).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from .symgroup import GroupMap, group_expand, group_map, group_symmetrize
from .symmetry import expand as _expand
from .symmetry import symmetrize as _symmetrize
from .symmetry import symmetry_map as _symmetry_map
from .templates import sphere_template as _sphere_template
from .templates import template_for, uv_sphere
from .utils import atomic_write

SYMMETRIES = ("none", "reflection", "two_planes", "rotation", "auto")
GROUP_SYMMETRIES = ("two_planes", "rotation")  # handled by symnb.symgroup


@dataclass
class ModelConfig:
    """Network settings.

    Attributes:
        img_size: input resolution; :meth:`ReconstructionNet.reconstruct` resizes to it.
        n_feat: size of the image feature.
        n_shapes: number K of learnable mean shapes (blended by the class-probability head).
        template_verts: vertex count of the (baseline) sphere template.
        template_radius: radius of the initial mean shape (objects have unit bbox diagonal).
        symmetry: "none" | "reflection" | "two_planes" | "rotation" | "auto".
        sym_order: rotation order n >= 2 for symmetry "rotation" (about y).
        sym_mode: "l2r" | "r2l" | "cent", or a list of such modes, one per slice (reflection);
            for two_planes / rotation only "cent" (group average) or "l2r" (copy representatives).
        n_slices: horizontal bands per side for per-slice modes (0: no slices).
        refine: reflection only: use a ~2x template whose independent half matches the baseline's
            vertex count (same parameter count, ~2x output vertices).
        deform_hidden: width of the deformation MLP; deform_layers: its hidden layers.
        max_offset: offsets are ``max_offset * tanh(.)`` (keeps early training stable).
        texture: predict a texture (UV image).
        tex_size: UV image height; width is 2 * tex_size.
        uv_map: "spherical" | "symmetric" (seam on the symmetry plane, mirrored halves).
        symmetric_texture: predict one half of the UV image and mirror it (needs uv_map "symmetric").
        texture_mode: "uv" (TexturesUV) | "atlas" (TexturesAtlas, atlas_size^2 texels per face).
        atlas_size: texels per face side in atlas mode.
        pretrained_path: optional local file with torchvision ResNet-18 ImageNet weights.
        init_scale: initial predicted camera scale.
        auto_order: rotation order used by "auto" for a continuous rotation (order 0).
        auto_two_planes: "auto" maps two planes to "two_planes" (default False: "reflection").
    """

    img_size: int = 64
    n_feat: int = 256
    n_shapes: int = 1
    template_verts: int = 642
    template_radius: float = 0.3
    symmetry: str = "none"
    sym_order: int = 0
    sym_mode: str | list = "l2r"
    n_slices: int = 0
    refine: bool = False
    deform_hidden: int = 256
    deform_layers: int = 2
    max_offset: float = 0.5
    texture: bool = True
    tex_size: int = 32
    uv_map: str = "symmetric"
    symmetric_texture: bool = False
    texture_mode: str = "uv"
    atlas_size: int = 2
    pretrained_path: str | None = None
    init_scale: float = 1.5
    auto_threshold: float = field(default=0.02, repr=False)
    auto_order: int = 8
    auto_two_planes: bool = False

    def __post_init__(self):
        if self.symmetry not in SYMMETRIES:
            raise ValueError(f"symmetry must be one of {SYMMETRIES}, got {self.symmetry!r}")
        if self.symmetry == "rotation" and self.sym_order < 2:
            raise ValueError(f"symmetry='rotation' needs sym_order n >= 2, got {self.sym_order}")
        if self.auto_order < 2:
            raise ValueError(f"auto_order must be >= 2, got {self.auto_order}")
        if self.symmetry in GROUP_SYMMETRIES and self.sym_mode not in ("cent", "l2r"):
            raise ValueError(f"sym_mode for symmetry={self.symmetry!r} must be 'cent' or 'l2r', got "
                             f"{self.sym_mode!r}")
        if self.refine and self.symmetry in GROUP_SYMMETRIES:
            raise ValueError("refine=True is for symmetry='reflection' only")
        modes = self.sym_mode if isinstance(self.sym_mode, (list, tuple)) else [self.sym_mode]
        for m in modes:
            if m not in ("l2r", "r2l", "cent"):
                raise ValueError(f"sym_mode entries must be l2r, r2l or cent, got {m!r}")
        if self.uv_map not in ("spherical", "symmetric"):
            raise ValueError(f"uv_map must be spherical or symmetric, got {self.uv_map!r}")
        if self.texture_mode not in ("uv", "atlas"):
            raise ValueError(f"texture_mode must be uv or atlas, got {self.texture_mode!r}")
        if self.symmetric_texture and self.uv_map != "symmetric":
            raise ValueError("symmetric_texture needs uv_map='symmetric'")
        if self.refine and self.symmetry == "none":
            raise ValueError("refine=True needs symmetry='reflection' (or 'auto')")


def _smap_to(smap, device):
    """A copy of a symmetry map (SymmetryMap or GroupMap) with its tensors on ``device``."""
    if isinstance(smap, GroupMap):
        return smap if smap.perms.device == torch.device(device) else smap.to(device)
    if smap.mirror.device == torch.device(device):
        return smap
    moved = copy.copy(smap)
    for name, val in vars(smap).items():
        if torch.is_tensor(val):
            setattr(moved, name, val.to(device))
    return moved


def _representation(verts, faces, tol=0.02) -> tuple[str, int]:
    from .symmetry import choose_representation, detect_symmetries

    rep = choose_representation(detect_symmetries(verts, faces, tol=tol))
    return rep.name, int(rep.order)


def _representation_name(verts, faces, tol=0.02) -> str:
    return _representation(verts, faces, tol)[0]


def free_basis(gmap: GroupMap) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal bases of the representatives' free subspaces.

    Returns:
        basis (K, 3, 3) float: columns j < dofs[k] span the range of ``gmap.proj[k]``, the rest are 0;
        free (K, 3) bool: which (representative, column) pairs are free; ``free.sum() = gmap.n_params``.
    """
    evals, evecs = torch.linalg.eigh(gmap.proj.double())  # projections: eigenvalues 0 or 1, ascending
    evecs = evecs.flip(-1)  # eigenvalue-1 vectors first
    free = torch.arange(3)[None] < gmap.dofs[:, None]
    return (evecs * free[:, None, :]).float(), free


# ----------------------------------------------------------------------------------------- templates


def refinement_template(n_base: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Template for the refinement scheme: ~2x ``n_base`` vertices, exactly ``n_base`` independent ones.

    A latitude-longitude sphere (:func:`symnb.templates.uv_sphere`, no vertex on the plane x = 0
    except the two poles) has ``(n_lat - 1) n_lon / 2 + 2`` independent vertices, so choosing
    ``(n_lat - 1) n_lon = 2 (n_base - 2)`` (cells as square as possible) gives the same number of
    mean-shape parameters as the ``n_base``-vertex baseline and ``2 n_base - 2`` output vertices.

    Returns:
        verts (V, 3), faces (F, 3).
    """
    target = 2 * (n_base - 2)
    cands = [(r + 1, target // r) for r in range(2, target) if target % r == 0 and (target // r) % 2 == 0
             and target // r >= 4]
    if not cands:
        raise ValueError(f"no latitude-longitude sphere has exactly {n_base} independent vertices")
    n_lat, n_lon = min(cands, key=lambda c: abs(math.log(c[1] / (2 * c[0]))))
    return uv_sphere(n_lat, n_lon)


def spherical_uv(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Longitude-latitude UV map of a sphere template (seam behind the object, on x = 0, z < 0).

    Args:
        verts: (V, 3) template vertices (any radius); faces: (F, 3) long.

    Returns:
        verts_uvs (2V, 2) in [0, 1], faces_uvs (F, 3) long: a face straddling the seam uses the
        second copy of its vertices whose u is shifted by one period (clamped at the border).
    """
    d = F.normalize(verts, dim=-1)
    u = (torch.atan2(d[:, 0], -d[:, 2]) / (2 * math.pi)) % 1.0  # seam at atan2 = 0: x = 0, z < 0
    v = torch.acos(d[:, 1].clamp(-1, 1)) / math.pi
    uv = torch.stack([u, 1 - v], dim=-1)
    uv_shift = torch.stack([u + (u < 0.5).float(), 1 - v], dim=-1).clamp(0, 1)
    fu = u[faces]
    straddle = (fu.max(1).values - fu.min(1).values) > 0.5
    faces_uvs = faces + verts.shape[0] * straddle[:, None].long()
    return torch.cat([uv, uv_shift]), faces_uvs


def symmetric_uv(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetry-aligned UV map: one chart per side, cut along the plane x = 0, mirrored halves.

    Each hemisphere is unfolded by the azimuthal equidistant projection around its pole (+-x) into a
    disc; the left (x > 0) disc fills u in [0, 0.5], the right one u in [0.5, 1], and the mirror
    image of a point has ``u' = 1 - u``, so a left-right mirrored UV image gives a symmetric texture.

    Returns:
        verts_uvs (2V, 2) (first V: left chart, next V: right chart), faces_uvs (F, 3) long.
    """
    d = F.normalize(verts, dim=-1)
    alpha = torch.acos(d[:, 0].abs().clamp(max=1.0))  # angle from this side's pole
    r = alpha / (math.pi / 2) * 0.24  # the plane (alpha = pi/2) maps to radius 0.24 < 0.25
    phi = torch.atan2(d[:, 1], d[:, 2])
    du, dv = r * torch.cos(phi), r * torch.sin(phi)
    left = torch.stack([0.25 + du, 0.5 + dv], dim=-1)
    right = torch.stack([0.75 - du, 0.5 + dv], dim=-1)
    side_x = verts[faces].mean(1)[:, 0]
    faces_uvs = faces + verts.shape[0] * (side_x < 0)[:, None].long()
    return torch.cat([left, right]).clamp(0, 1), faces_uvs


# ----------------------------------------------------------------------------------------- network


class Encoder(nn.Module):
    """ResNet-18 trunk -> conv -> FC.  images (B, 3, S, S) -> (feature map (B, 256, s, s), (B, n_feat))."""

    def __init__(self, img_size: int, n_feat: int = 256, pretrained_path: str | None = None):
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)
        if pretrained_path:
            path = Path(pretrained_path)
            if not path.is_file():
                raise FileNotFoundError(f"ResNet-18 weights file not found: {path}")
            resnet.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.trunk = nn.Sequential(*list(resnet.children())[:-2])  # drop avgpool and fc
        self.conv = nn.Sequential(
            nn.Conv2d(512, 256, 3, stride=2, padding=1), nn.BatchNorm2d(256), nn.LeakyReLU(0.2)
        )
        s = max(1, img_size // 64)
        self.pool = nn.AdaptiveAvgPool2d(s)
        self.fc = nn.Sequential(nn.Linear(256 * s * s, n_feat), nn.LeakyReLU(0.2))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool(self.conv(self.trunk((images - self.mean) / self.std)))
        return x, self.fc(x.flatten(1))


class DeformMLP(nn.Module):
    """Per-vertex offsets from (feature (B, C), class probs (B, K), template positions (V, 3)) -> (B, V, 3).

    The first layer is split into a per-image and a per-vertex part that are added (same maths as
    concatenating the inputs, without materialising (B, V, C + K + 3)).
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
        h = self.img(latent)[:, None, :] + self.pos(pos)[None]
        return self.max_offset * torch.tanh(self.out(self.body(h)))


class TextureDecoder(nn.Module):
    """Feature map (B, 256, s, s) -> UV image (B, 3, T, W) in [0, 1] (W = 2T, or T when half=True)."""

    def __init__(self, tex_size: int = 32, half: bool = False, channels: int = 64):
        super().__init__()
        n_up = int(math.log2(tex_size // 4))
        if 4 * 2**n_up != tex_size:
            raise ValueError(f"tex_size must be 4 * 2^n, got {tex_size}")
        self.start = (4, 4 if half else 8)
        self.fc = nn.Linear(256, channels * self.start[0] * self.start[1])
        blocks = []
        c = channels
        for _ in range(n_up):
            blocks += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(c, max(c // 2, 16), 3, padding=1), nn.BatchNorm2d(max(c // 2, 16)),
                       nn.LeakyReLU(0.2)]
            c = max(c // 2, 16)
        self.up = nn.Sequential(*blocks, nn.Conv2d(c, 3, 3, padding=1))
        self.channels = channels

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        x = self.fc(fmap.mean((2, 3))).view(-1, self.channels, *self.start)
        return torch.sigmoid(self.up(x))


class ReconstructionNet(nn.Module):
    """The reconstruction network; see the module docstring.

    Args:
        config: :class:`ModelConfig`.
        cad_meshes: for ``symmetry="auto"``: list of (verts, faces) CAD models of the categories.
    """

    def __init__(self, config: ModelConfig | None = None, cad_meshes: list | None = None):
        super().__init__()
        cfg = copy.deepcopy(config) if config is not None else ModelConfig()
        self.config = cfg
        self.symmetry, order = resolve_group(cfg, cad_meshes)
        if self.symmetry == "rotation":
            cfg.sym_order = order  # saved with the config, so load_model rebuilds the same group
        if self.symmetry in GROUP_SYMMETRIES and cfg.sym_mode not in ("cent", "l2r"):
            cfg.sym_mode = "cent"  # auto: "r2l" / per-slice lists have no group meaning
        if cfg.refine and self.symmetry == "reflection":
            verts, faces = refinement_template(cfg.template_verts)
        elif self.symmetry in GROUP_SYMMETRIES:
            verts, faces = template_for(self.symmetry, cfg.template_verts, order)
        else:
            verts, faces = _sphere_template(cfg.template_verts)
        self.encoder = Encoder(cfg.img_size, cfg.n_feat, cfg.pretrained_path)
        self.classifier = nn.Sequential(
            nn.Linear(cfg.n_feat, 64), nn.LeakyReLU(0.2), nn.Linear(64, cfg.n_shapes))
        self.deform = DeformMLP(
            cfg.n_feat + cfg.n_shapes, cfg.deform_hidden, cfg.deform_layers, cfg.max_offset)
        self.camera = nn.Sequential(nn.Linear(cfg.n_feat, 64), nn.LeakyReLU(0.2), nn.Linear(64, 7))
        with torch.no_grad():  # start upright seen from the front: R = diag(1, -1, -1)
            self.camera[-1].weight.mul_(0.1)
            self.camera[-1].bias.copy_(torch.tensor([0.0, 1, 0, 0, 0, 0, 0]))
        self.texture = TextureDecoder(cfg.tex_size, half=cfg.symmetric_texture) if cfg.texture else None
        self.mean_shape = nn.Parameter(torch.empty(0))
        self._set_template(verts, faces, init=True)

    # ---- template / symmetry bookkeeping
    def _set_template(self, verts: torch.Tensor, faces: torch.Tensor, mean_full: torch.Tensor | None = None,
                      init: bool = False) -> None:
        """Install a template (V, 3)/(F, 3); ``mean_full`` (K, V, 3) or the scaled sphere initialises it."""
        verts = verts.float()
        dev = self.mean_shape.device
        self.register_buffer("template", F.normalize(verts, dim=-1).to(dev))
        self.register_buffer("faces", faces.long().to(dev))
        mode = self.config.sym_mode
        n_slices = self.config.n_slices or (len(mode) if isinstance(mode, (list, tuple)) else 0)
        self.smap = None
        if self.symmetry == "reflection":
            self.smap = _symmetry_map(self.template.cpu(), n_slices=n_slices)
        elif self.symmetry in GROUP_SYMMETRIES:
            order = self.config.sym_order if self.symmetry == "rotation" else None
            self.smap = group_map(self.template.cpu(), self.symmetry, order)
            basis, free = free_basis(self.smap)
            self.register_buffer("free_basis", basis.to(dev))
            self.register_buffer("free_mask", free.to(dev))
        if mean_full is None:
            mean_full = (self.template * self.config.template_radius)[None].repeat(self.config.n_shapes, 1, 1)
        held = mean_full[:, self._indep()] if self.smap is not None else mean_full
        if isinstance(self.smap, GroupMap):  # coordinates in the free subspaces: (K_shapes, n_free)
            coeff = torch.einsum("kji,skj->ski", self.free_basis, held.to(dev).float())
            held = coeff[:, self.free_mask]
        self.mean_shape = nn.Parameter(held.detach().clone().to(dev))
        uv_fn = symmetric_uv if self.config.uv_map == "symmetric" else spherical_uv
        verts_uvs, faces_uvs = uv_fn(self.template.cpu(), self.faces.cpu())
        self.register_buffer("verts_uvs", verts_uvs.to(dev))
        self.register_buffer("faces_uvs", faces_uvs.to(dev))

    def _indep(self) -> torch.Tensor:
        return self.smap.independent.to(self.template.device)

    def full_mean_shapes(self) -> torch.Tensor:
        """(K, V, 3): the mean shapes on the whole template (expanded in symmetric modes)."""
        if self.smap is None:
            return self.mean_shape
        if isinstance(self.smap, GroupMap):
            coeff = self.mean_shape.new_zeros(self.mean_shape.shape[0], *self.free_mask.shape)
            coeff[:, self.free_mask] = self.mean_shape
            half = torch.einsum("kij,skj->ski", self.free_basis, coeff)
            return group_expand(half, _smap_to(self.smap, self.mean_shape.device))
        return _expand(self.mean_shape, _smap_to(self.smap, self.mean_shape.device))

    @property
    def n_verts(self) -> int:
        return int(self.template.shape[0])

    def n_params(self) -> int:
        """Number of learnable parameters (network + mean shapes)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def subdivide(self) -> None:
        """Midpoint-subdivide the template and the mean shapes (the network is unchanged)."""
        from pytorch3d.ops import SubdivideMeshes
        from pytorch3d.structures import Meshes

        full = self.full_mean_shapes().detach()
        meshes = Meshes([self.template] + list(full), [self.faces] * (1 + full.shape[0]))
        new = SubdivideMeshes()(meshes)
        verts = new.verts_padded()
        self._set_template(verts[0], new.faces_padded()[0], mean_full=verts[1:])

    # ---- forward
    def forward(self, images: torch.Tensor) -> dict:
        """Predict shape, camera and texture.

        Args:
            images: (B, 3, S, S) float in [0, 1], S = config.img_size.

        Returns:
            dict with "verts" (B, V, 3), "faces" (F, 3), "mean_shape" (B, V, 3), "offsets" (B, V, 3),
            "class_probs" (B, K), "scale" (B,), "trans" (B, 2), "quat" (B, 4) unit, "quat_raw" (B, 4),
            "texture" (B, 3, T, 2T) or None, "verts_uvs" (2V, 2), "faces_uvs" (F, 3).
        """
        fmap, feat = self.encoder(images)
        probs = torch.softmax(self.classifier(feat), dim=-1)
        mean = torch.einsum("bk,kvc->bvc", probs, self.full_mean_shapes())
        offsets = self.deform(torch.cat([feat, probs], dim=1), self.template)
        if isinstance(self.smap, GroupMap):
            gmap = _smap_to(self.smap, offsets.device)
            offsets = group_symmetrize(offsets, gmap, self.config.sym_mode)
            verts = group_expand((mean + offsets)[:, gmap.independent], gmap)  # exactly invariant
        elif self.smap is not None:
            smap = _smap_to(self.smap, offsets.device)
            offsets = _symmetrize(offsets, smap, self.config.sym_mode)
            verts = _expand((mean + offsets)[:, smap.independent], smap)  # exactly symmetric
        else:
            verts = mean + offsets
        cam = self.camera(feat)
        quat_raw = cam[:, :4]
        scale = self.config.init_scale * torch.exp(cam[:, 4].clamp(-3, 3))
        texture = None
        if self.texture is not None:
            texture = self.texture(fmap)
            if self.config.symmetric_texture:
                texture = torch.cat([texture, texture.flip(-1)], dim=-1)
        return {
            "verts": verts, "faces": self.faces, "mean_shape": mean, "offsets": offsets,
            "class_probs": probs, "scale": scale, "trans": cam[:, 5:7], "quat": F.normalize(quat_raw, dim=-1),
            "quat_raw": quat_raw, "texture": texture, "verts_uvs": self.verts_uvs,
            "faces_uvs": self.faces_uvs,
        }

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, symmetrize: str | None = None) -> dict:
        """Inference on images of any size: (B, 3, H, W) float in [0, 1] -> :meth:`forward`'s dict.

        Args:
            images: (B, 3, H, W) or (3, H, W); resized to config.img_size.
            symmetrize: optional post-hoc symmetrization of the output ("l2r", "r2l", "cent").
        """
        if not torch.is_tensor(images) or not images.is_floating_point():
            raise TypeError("images must be a float tensor (B, 3, H, W) in [0, 1]")
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        if not torch.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        if images.min() < -1e-3 or images.max() > 1 + 1e-3:
            raise ValueError(f"images must be in [0, 1], got range [{images.min():.3g}, {images.max():.3g}]")
        was = self.training
        self.eval()
        dev = self.template.device
        x = images.to(dev)
        if x.shape[-2:] != (self.config.img_size, self.config.img_size):
            x = F.interpolate(x, size=(self.config.img_size,) * 2, mode="bilinear", align_corners=False,
                              antialias=True)
        out = self(x)
        if symmetrize is not None:
            out["verts"] = posthoc_symmetrize(out["verts"], self.template, symmetrize)
        self.train(was)
        return out




def resolve_symmetry(config: ModelConfig, cad_meshes: list | None = None) -> str:
    """The symmetry name a config resolves to ("none", "reflection", "two_planes", "rotation")."""
    return resolve_group(config, cad_meshes)[0]


def resolve_group(config: ModelConfig, cad_meshes: list | None = None) -> tuple[str, int]:
    """(symmetry name, rotation order) for a config; ``auto`` uses ``choose_representation`` on CAD models.

    The order is ``config.sym_order`` for "rotation" and 1 otherwise. With ``auto`` and no CAD models,
    the sphere template's own reflection plane x = 0 is used (reflection). Otherwise each CAD model
    votes: if at least half choose "rotation", the result is "rotation" with the most common order
    (a continuous rotation, order 0, counts as ``config.auto_order``); else if at least half choose
    "reflection" or "two_planes", the result is "reflection" ("two_planes" when
    ``config.auto_two_planes`` and those models all have two planes); else "none".
    """
    if config.symmetry == "rotation":
        return "rotation", int(config.sym_order)
    if config.symmetry != "auto":
        return config.symmetry, 1
    if not cad_meshes:
        return "reflection", 1
    reps = [_representation(v, f, tol=config.auto_threshold) for v, f in cad_meshes]
    orders = [o if o >= 2 else config.auto_order for n, o in reps if n == "rotation"]
    if len(orders) * 2 >= len(reps):
        return "rotation", max(sorted(set(orders)), key=orders.count)
    names = [n for n, _ in reps]
    refl = sum(n in ("reflection", "two_planes") for n in names)
    if refl * 2 < len(names):
        return "none", 1
    if config.auto_two_planes and names.count("two_planes") == refl:
        return "two_planes", 1
    return "reflection", 1


def posthoc_symmetrize(verts: torch.Tensor, template: torch.Tensor, mode: str) -> torch.Tensor:
    """Symmetrize the output of a (non-symmetric) model about x = 0 through the template's mirror map.

    Args:
        verts: (B, V, 3); template: (V, 3) the model's template; mode: "l2r" | "r2l" | "cent".
    """
    smap = _symmetry_map(template.detach().cpu())
    smap = _smap_to(smap, verts.device)
    out = _symmetrize(verts, smap, mode)
    return _expand(out[..., smap.independent, :], smap)


# ----------------------------------------------------------------------------------------- files


def save_model(model: ReconstructionNet, path: str | os.PathLike, **extra) -> Path:
    """Write config, symmetry and weights atomically to ``path`` (readable by :func:`load_model`)."""
    cfg = asdict(model.config)
    state = {"config": cfg, "symmetry": model.symmetry, "state_dict": model.state_dict(), **extra}
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    return Path(path)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> ReconstructionNet:
    """Load a model written by :func:`save_model` (or a training checkpoint) in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt files
        raise ValueError(f"{path} is not a readable model checkpoint: {err}") from err
    if not isinstance(state, dict) or "config" not in state:
        raise ValueError(f"{path} has no model config; was it written by symnb.model.save_model?")
    sd = state.get("state_dict") or state["model"]
    cfg = ModelConfig(**state["config"])
    cfg.symmetry = state.get("symmetry", cfg.symmetry)
    cfg.refine = cfg.refine and cfg.symmetry == "reflection"
    cfg.pretrained_path = None
    model = ReconstructionNet(cfg)
    if sd["template"].shape != model.template.shape:  # subdivided during training
        zeros = torch.zeros(cfg.n_shapes, len(sd["template"]), 3)
        model._set_template(sd["template"], sd["faces"], mean_full=zeros)
    model.load_state_dict(sd)
    return model.to(device).eval()


def export_mesh(path: str | os.PathLike, verts: torch.Tensor, faces: torch.Tensor,
                texture: torch.Tensor | None = None, verts_uvs: torch.Tensor | None = None,
                faces_uvs: torch.Tensor | None = None) -> Path:
    """Write one mesh to .obj (with .mtl and .png texture when given) or .ply (texture -> vertex colours).

    Args:
        verts: (V, 3); faces: (F, 3) long; texture: (3, H, W) in [0, 1]; verts_uvs: (U, 2);
        faces_uvs: (F, 3) long (default: faces).
    """
    path = Path(path)
    verts, faces = verts.detach().cpu().float(), faces.detach().cpu().long()
    if verts.dim() != 2 or verts.shape[1] != 3 or faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(
            f"expected verts (V, 3) and faces (F, 3), got {tuple(verts.shape)}, {tuple(faces.shape)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if faces_uvs is None and verts_uvs is not None:
        faces_uvs = faces
    if path.suffix == ".obj":
        import tempfile

        from pytorch3d.io import save_obj

        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            tmp_obj = Path(tmp) / path.name
            kw = {}
            if texture is not None:
                kw = dict(verts_uvs=verts_uvs.detach().cpu().float(),
                          faces_uvs=faces_uvs.detach().cpu().long(),
                          texture_map=texture.detach().cpu().float().permute(1, 2, 0).clamp(0, 1))
            save_obj(tmp_obj, verts, faces, **kw)
            for f in Path(tmp).iterdir():  # .obj last, so a complete .obj implies its .mtl/.png exist
                if f.suffix != ".obj":
                    os.replace(f, path.parent / f.name)
            os.replace(tmp_obj, path)
        return path
    if path.suffix == ".ply":
        colours = None
        if texture is not None:
            colours = vertex_colours(verts, faces, texture, verts_uvs, faces_uvs)
        lines = ["ply", "format ascii 1.0", f"element vertex {len(verts)}", "property float x",
                 "property float y", "property float z"]
        if colours is not None:
            lines += ["property uchar red", "property uchar green", "property uchar blue"]
        lines += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
        for i, v in enumerate(verts.tolist()):
            row = f"{v[0]:.6f} {v[1]:.6f} {v[2]:.6f}"
            if colours is not None:
                row += " " + " ".join(str(int(c)) for c in colours[i].tolist())
            lines.append(row)
        lines += [f"3 {a} {b} {c}" for a, b, c in faces.tolist()]
        with atomic_write(path) as f:
            f.write("\n".join(lines) + "\n")
        return path
    raise ValueError(f"unsupported mesh format {path.suffix!r} (use .obj or .ply)")


def vertex_colours(verts, faces, texture, verts_uvs, faces_uvs) -> torch.Tensor:
    """(V, 3) uint8 colours: the UV image sampled at each vertex's (first) UV coordinate."""
    uv_idx = torch.zeros(len(verts), dtype=torch.long)
    uv_idx[faces.reshape(-1)] = faces_uvs.reshape(-1).cpu()
    uv = verts_uvs.cpu()[uv_idx] * 2 - 1
    uv[:, 1] = -uv[:, 1]  # TexturesUV: v = 0 is the bottom row
    col = F.grid_sample(texture[None].cpu().float(), uv[None, :, None], align_corners=False)[0, :, :, 0].T
    return (col.clamp(0, 1) * 255).round().to(torch.uint8)
