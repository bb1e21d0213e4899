"""MCMR-style single-view mesh reconstruction network with learnable symmetries.

Architecture (MCMR, Simoni et al. 2021, ``aimagelab/mcmr`` ``models/mcmr.py``, on our templates and
renderer)::

    images (B, 3, S, S) -> encoder -> feature map (B, C, s, s), feature (B, n_feat)
    feature -> class probabilities (B, K) -> blend of K learned mean shapes (B, V, 3)
    (feature, probabilities, template positions) -> per-vertex offsets (B, V, 3)
    feature -> camera: scale (B,), translation (B, 2), unit quaternion (B, 4)
    feature map -> UV image (B, 3, T, 2T), sampled through a spherical or symmetry-aligned UV map:
    decoded colours, or (texture_source="flow", CMR) a texture flow (B, 2, T, 2T) saying where in the
    image each texel copies its colour from, or (texture_source="projection") the image sampled at each
    texel's projection through the predicted camera (:mod:`symnb.model.texture`)

Symmetry: every representation is a group of ``symnb.symmetry.GROUPS`` with a
:class:`~symnb.symmetry.SymmetryMap` on its template, the trivial group for the baseline. The mean
shapes hold only the orbit representatives (``smap.independent``, 3 coordinates each) and are
expanded to an exactly invariant mesh; the offsets are symmetrized with ``sym_mode`` and the sum is
expanded again, so the output's index-symmetry error is 0 for every element of the group.

Refinement scheme (``refine=True`` with reflection): a ~2x template whose independent half has as
many vertices as the baseline template: same number of learnable parameters, ~2x output vertices
(:func:`symnb.symmetry.templates.refinement_template`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..symmetry.groups import template_for
from ..symmetry.maps import expand, posthoc_map, symmetrize, symmetry_map
from ..symmetry.templates import refinement_template
from .config import ModelConfig
from .encoders import build_encoder
from .heads import CameraHead, DeformMLP, SilhouetteDecoder, TextureDecoder, ViewpointHead, sample_flow
from .refine import refine_camera
from .texture import ProjectedTexture, mirror_fill, texel_visibility
from .uv import UV_MAPS


def smoothing_operator(faces: torch.Tensor, n_verts: int, strength: float) -> torch.Tensor:
    """(V, V) ``(I - lambda L)^-1`` with L the uniform Laplacian (``D^-1 A - I``) and lambda = ``strength``
    x V / 642 (the same spatial smoothing on finer templates); an empty tensor for strength 0."""
    if strength <= 0:
        return torch.empty(0)
    from ..losses import uniform_laplacian

    lap = uniform_laplacian(faces.cpu(), n_verts).to_dense().double()
    lam = strength * n_verts / 642
    return torch.linalg.inv(torch.eye(n_verts, dtype=torch.float64) - lam * lap).float()


#: ``ModelConfig.keep_side``: the least distance of a free-half vertex from the symmetry plane (objects
#: have a unit bounding-box diagonal), so that mirrored faces never coincide.
SIDE_MARGIN = 0.005


def _representation(verts, faces, tol=0.02) -> tuple[str, int]:
    from ..symmetry import choose_representation, detect_symmetries

    rep = choose_representation(detect_symmetries(verts, faces, tol=tol))
    return rep.name, int(rep.order)


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


def resolve_symmetry(config: ModelConfig, cad_meshes: list | None = None) -> str:
    """The symmetry name a config resolves to ("none", "reflection", "two_planes", "rotation")."""
    return resolve_group(config, cad_meshes)[0]


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
        cfg.sym_order = order if self.symmetry == "rotation" else cfg.sym_order
        if self.symmetry in ("two_planes", "rotation") and cfg.sym_mode not in ("cent", "l2r"):
            cfg.sym_mode = "cent"  # auto: "r2l" / per-slice lists have no meaning for these groups
        if cfg.refine and self.symmetry != "reflection":
            cfg.refine = False  # auto chose a group without the one-plane refinement template
        if cfg.refine:
            verts, faces = refinement_template(cfg.template_verts)
        else:
            verts, faces = template_for(self.symmetry, cfg.template_verts, order)
        self.encoder = build_encoder(cfg.encoder, cfg.img_size, cfg.n_feat, cfg.pretrained_path)
        self.classifier = nn.Sequential(nn.Linear(cfg.n_feat, 64), nn.LeakyReLU(0.2),
                                        nn.Linear(64, cfg.n_shapes))
        self.deform = DeformMLP(cfg.n_feat + cfg.n_shapes, cfg.deform_hidden, cfg.deform_layers,
                                cfg.max_offset)
        if cfg.camera_head == "bins":
            self.camera = ViewpointHead(cfg.n_feat, cfg.init_scale, tuple(cfg.view_bins))
        else:
            self.camera = CameraHead(cfg.n_feat, cfg.init_scale, cfg.rotation, cfg.cam_hypotheses)
        self.silhouette = SilhouetteDecoder(cfg.n_feat) if cfg.silhouette_decoder else None
        learned = cfg.texture and cfg.texture_source in ("decoder", "flow")
        flow = cfg.texture_source == "flow"
        self.texture = (TextureDecoder(cfg.tex_size, half=cfg.symmetric_texture and not flow,
                                       out="flow" if flow else "rgb", in_channels=self.encoder.out_channels,
                                       map_size=max(1, cfg.img_size // 32),
                                       zero_init=flow and cfg.flow_base == "projection")  # no correction
                        if learned else None)
        self.projector = None  # "projection" and "flow": built with the template (_set_template)
        self.mean_shape = nn.Parameter(torch.empty(0))
        self.kp_logits = nn.Parameter(torch.empty(0)) if cfg.n_keypoints else None
        self._set_template(verts, faces)

    # ---- template / symmetry bookkeeping
    def _set_template(self, verts: torch.Tensor, faces: torch.Tensor, mean_full: torch.Tensor | None = None,
                      kp_logits: torch.Tensor | None = None) -> None:
        """Install a template (V, 3)/(F, 3); ``mean_full`` (K, V, 3) or the scaled sphere initialises it."""
        dev = self.mean_shape.device
        self.register_buffer("template", F.normalize(verts.float(), dim=-1).to(dev))
        self.register_buffer("faces", faces.long().to(dev))
        mode, cfg = self.config.sym_mode, self.config
        n_slices = cfg.n_slices or (len(mode) if isinstance(mode, list) else 0)
        order = cfg.sym_order if self.symmetry == "rotation" else None
        self.smap = symmetry_map(self.template.cpu(), self.symmetry, order, n_slices=n_slices).to(dev)
        self._posthoc = None
        smoothing = {"smoother": cfg.mean_shape_smoothing, "offset_smoother": cfg.offset_smoothing}
        for name, strength in smoothing.items():
            op = smoothing_operator(self.faces, len(verts), strength)
            self.register_buffer(name, op.to(dev), persistent=False)
        if mean_full is None:
            mean_full = (self.template * cfg.template_radius)[None].repeat(cfg.n_shapes, 1, 1)
        self.mean_shape = nn.Parameter(torch.empty(0, device=dev))
        self.set_mean_shapes(mean_full.to(dev).float())
        if self.kp_logits is not None:
            V = len(self.template)
            kp = torch.zeros(cfg.n_shapes, cfg.n_keypoints, V, device=dev) if kp_logits is None else kp_logits
            self.kp_logits = nn.Parameter(kp.detach().clone().to(dev))
        verts_uvs, faces_uvs = UV_MAPS[cfg.uv_map](self.template.cpu(), self.faces.cpu())
        self.register_buffer("verts_uvs", verts_uvs.to(dev))
        self.register_buffer("faces_uvs", faces_uvs.to(dev))
        if cfg.texture and cfg.texture_source in ("projection", "flow"):  # (a flow: where its texels are)
            self.projector = ProjectedTexture(verts_uvs, faces_uvs, self.faces.cpu(), self.template.cpu(),
                                              cfg.tex_size, 2 * cfg.tex_size, mirror=cfg.symmetric_texture)
            self.projector.to(dev)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)  # .to(device) / .cuda(): move the symmetry map along
        self.smap = self.smap.to(self.template.device)
        self._posthoc = None
        return out

    def _base(self) -> torch.Tensor:
        return self.template * self.config.template_radius

    def full_mean_shapes(self) -> torch.Tensor:
        """(K, V, 3): the mean shapes on the whole template (expanded from the representatives).

        ``mean_shape`` holds smooth coordinates u of the representatives: the mean shape is the initial
        sphere plus ``smoother @ expand(u)`` (Nicolet et al. 2021), so that a gradient step moves
        neighbourhoods, not single vertices."""
        if self.smoother is None or not self.smoother.numel():
            return expand(self.mean_shape, self.smap)
        full = self._base() + self.smoother @ expand(self.mean_shape, self.smap)
        return expand(full[:, self.smap.independent], self.smap)

    @torch.no_grad()
    def set_mean_shapes(self, full: torch.Tensor) -> None:
        """Set the mean shapes from (K, V, 3) positions on the whole template (inverting the smooth
        coordinates)."""
        if self.smoother is not None and self.smoother.numel():
            full = torch.linalg.solve(self.smoother.double(), (full - self._base()).double()).to(full)
        held = full[:, self.smap.independent]
        if self.mean_shape.shape == held.shape:
            self.mean_shape.copy_(held)
        else:
            self.mean_shape = nn.Parameter(held.detach().clone())

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
        kp = None
        if self.kp_logits is not None:  # new (edge) vertices get no keypoint mass
            extra = self.kp_logits.new_full((*self.kp_logits.shape[:2], verts.shape[1] - self.n_verts), -1e4)
            kp = torch.cat([self.kp_logits.detach(), extra], -1)
        self._set_template(verts[0], new.faces_padded()[0], mean_full=verts[1:], kp_logits=kp)

    def posthoc_symmetrize(self, verts: torch.Tensor, mode: str) -> torch.Tensor:
        """Post-hoc symmetrization of outputs (B, V, 3) about x = 0: "l2r" | "r2l" | "cent"."""
        if self._posthoc is None:
            self._posthoc = posthoc_map(self.template.cpu()).to(self.template.device)
        return symmetrize(verts, self._posthoc, mode)

    def _refine_camera(self, feat: torch.Tensor, verts: torch.Tensor, cam: dict,
                       steps: int) -> tuple[torch.Tensor, ...]:
        """The predicted scale (B,) and translation (B, 2) refined against the decoded silhouette, at the
        decoder's size (32 px: as good as upsampled to 64 on the validation split, 2.3x cheaper)."""
        target = torch.sigmoid(self.silhouette(feat))[:, 0]
        return refine_camera(verts, self.faces, cam["scale"], cam["trans"], cam["quat"], target,
                             steps, self.config.camera_refine_lr)

    def _keep_side(self, held: torch.Tensor) -> torch.Tensor:
        """Independent vertices (B, n, 3) of the left side moved to at least ``SIDE_MARGIN`` from the
        plane (on-plane vertices are left to ``expand``), so a half and its mirror cannot interpenetrate."""
        n, p = self.smap.normal.to(held), self.smap.point.to(held)
        left = (self.smap.side[self.smap.independent] > 0).to(held)  # (n,)
        depth = ((held - p) * n).sum(-1)  # (B, n) signed distance to the plane
        push = (SIDE_MARGIN - depth).clamp(min=0) * left
        return held + push[..., None] * n

    # ---- forward
    def blend_mean_shapes(self, probs: torch.Tensor) -> torch.Tensor:
        """The class-blended mean shape (B, V, 3) of mean-shape weights ``probs`` (B, K)."""
        return torch.einsum("bk,kvc->bvc", probs, self.full_mean_shapes())

    def decode_shape(self, latent: torch.Tensor,
                     probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The shape decoder: the class-blended mean shape plus the deformation read from ``latent``.

        Args:
            latent: (B, n_feat) the image feature (or a stand-in of its size, e.g. the learned instance
                codes of :func:`symnb.experiment.ceilings.instance_code_rows`); probs: (B, K) mean-shape
                weights.

        Returns:
            verts (B, V, 3) exactly invariant under the symmetry, mean shape (B, V, 3), offsets (B, V, 3).
        """
        mean = self.blend_mean_shapes(probs)
        pos = mean if self.config.deform_input == "mean_shape" else self.template
        raw = self.deform(torch.cat([latent, probs], dim=1), pos)  # (B, V, 3)
        if self.offset_smoother.numel():
            raw = self.offset_smoother @ raw
        offsets = symmetrize(raw, self.smap, self.config.sym_mode)
        held = (mean + offsets)[:, self.smap.independent]  # (B, n_independent, 3)
        if self.config.keep_side and self.symmetry == "reflection":
            held = self._keep_side(held)
        return expand(held, self.smap), mean, offsets

    def forward(self, images: torch.Tensor, camera_only: bool = False,
                camera_refine_steps: int | None = None, mean_shape_only: bool = False) -> dict:
        """Predict shape, camera and texture.

        Args:
            images: (B, 3, S, S) float in [0, 1], S = config.img_size.
            camera_only: the camera keys and "silhouette_logits" (in training) alone, from the encoder,
                camera head and silhouette decoder (the training's camera steps).
            camera_refine_steps: overrides ``config.camera_refine_steps`` for this call (e.g. 0 where
                only the shape is used); the refinement runs in eval mode only.
            mean_shape_only: the class-blended mean shape is the prediction (offsets zero): the camera is
                refined and the texture registered for it (the evaluation of the mean shape alone).

        Returns:
            dict with "verts" (B, V, 3), "faces" (F, 3), "mean_shape" (B, V, 3), "offsets" (B, V, 3),
            "class_probs" (B, K), "scale" (B,), "trans" (B, 2), "quat" (B, 4) unit, "quat_raw" (B, 4),
            "texture" (B, 3, T, 2T) or None, "texture_flow" (B, 2, T, 2T) (texture_source "flow": where
            each texel samples the image) and "texels" (the points (B, T, 2T, 3) the texels show on
            the detached predicted meshes, and their normals) or None, "verts_uvs" (2V, 2),
            "faces_uvs" (F, 3), and with
            keypoints "kp3d" (B, N, 3).
        """
        fmap, feat = self.encoder(images)
        if camera_only:
            out = self.camera(feat)
            if self.silhouette is not None and self.training:
                out["silhouette_logits"] = self.silhouette(feat)
            return out
        probs = torch.softmax(self.classifier(feat), dim=-1)
        if mean_shape_only:  # the deformation is not decoded
            verts = mean = self.blend_mean_shapes(probs)
            offsets = torch.zeros_like(mean)
        else:
            verts, mean, offsets = self.decode_shape(feat, probs)
        cam = self.camera(feat)
        steps = self.config.camera_refine_steps if camera_refine_steps is None else camera_refine_steps
        if steps < 0 or (steps and self.silhouette is None):
            raise ValueError(f"camera_refine_steps={steps}: needs >= 0, and a silhouette decoder (the "
                             "refinement's target) when > 0")
        if not self.training and steps:  # render and compare (inference only)
            cam["scale"], cam["trans"] = self._refine_camera(feat, verts, cam, steps)
        texture = flow = texels = None
        tex_in = fmap.detach() if self.config.texture_detach else fmap
        if self.texture is not None and self.texture.out == "flow":  # CMR: colours copied from the image
            flow = self.texture(tex_in)
            texels = self.projector.surface(verts.detach())  # for the cycle loss; no gradient to the shape
            xy, visible = texel_visibility(*texels, cam["R"].detach(), cam["scale"].detach(),
                                           cam["trans"].detach())
            if self.config.flow_base == "projection":  # a learned correction of the geometry's flow
                flow = xy.permute(0, 3, 1, 2) + self.config.flow_residual * flow
            if self.config.symmetric_texture:  # hidden texels sample where their visible mirror texel does
                flow = mirror_fill(flow, visible)
            texture = sample_flow(images, flow)
        elif self.texture is not None:
            texture = self.texture(tex_in)
        if self.config.texture and self.config.texture_source == "projection":  # the image via the camera
            texture = self.projector(images, verts, cam["R"], cam["scale"], cam["trans"])["texture"]
        out = {"verts": verts, "faces": self.faces, "mean_shape": mean, "offsets": offsets,
               "class_probs": probs, **cam, "texture": texture, "texture_flow": flow,
               "texels": texels,
               "verts_uvs": self.verts_uvs, "faces_uvs": self.faces_uvs}
        if self.silhouette is not None and self.training:
            out["silhouette_logits"] = self.silhouette(feat)
        if self.kp_logits is not None:  # soft keypoint assignment, blended like the mean shapes
            assign = torch.einsum("bk,knv->bnv", probs, torch.softmax(self.kp_logits, dim=-1))
            out["kp3d"] = assign @ verts
        return out

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, symmetrize: str | None = None,
                    camera_refine_steps: int | None = None, mean_shape_only: bool = False) -> dict:
        """Inference on images of any size: (B, 3, H, W) float in [0, 1] -> :meth:`forward`'s dict.

        Args:
            images: (B, 3, H, W) or (3, H, W); resized to config.img_size.
            symmetrize: optional post-hoc symmetrization of the output ("l2r", "r2l", "cent").
            camera_refine_steps, mean_shape_only: see :meth:`forward`.
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
        x = images.to(self.template.device)
        if x.shape[-2:] != (self.config.img_size, self.config.img_size):
            x = F.interpolate(x, size=(self.config.img_size,) * 2, mode="bilinear", align_corners=False,
                              antialias=True)
        out = self(x, camera_refine_steps=camera_refine_steps, mean_shape_only=mean_shape_only)
        if symmetrize is not None:
            out["verts"] = self.posthoc_symmetrize(out["verts"], symmetrize)
        self.train(was)
        return out
