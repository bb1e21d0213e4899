"""Renderers composed from PyTorch3D pieces: a rasterizer plus a shader, settings in a dataclass.

Every renderer rasterizes with :class:`symnb.raster.FastMeshRasterizer` (PyTorch3D's outputs
and gradients, much faster backward on a CPU; ``RenderSettings.rasterizer = "stock"`` restores
PyTorch3D's own). Renderers accept any PyTorch3D cameras, in particular the orthographic cameras
of :func:`symnb.camera.to_pytorch3d`.

Shapes: images come back as (B, H, W, 4) float, RGB in [..., :3] and alpha / silhouette in [..., 3].

Texture sampling, the two modes of the research's ablation (:func:`textured_renderer`):

* ``"uv"``: ``TexturesUV``; every pixel samples the UV image bilinearly at its own interpolated
  UV coordinate, so the detail a face shows grows with its size on screen.
* ``"atlas"``: ``TexturesAtlas``; every face carries a fixed R x R grid of colours (SoftRas), built
  by :func:`uv_to_atlas` from the UV image, and a pixel takes the colour of the grid cell its
  barycentric coordinates fall in: detail finer than a face's R x R cells is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from pytorch3d.io.mtl_io import make_material_atlas
from pytorch3d.renderer import (
    AmbientLights,
    BlendParams,
    FoVPerspectiveCameras,
    HardPhongShader,
    MeshRenderer,
    PointLights,
    RasterizationSettings,
    SoftPhongShader,
    SoftSilhouetteShader,
    TexturesAtlas,
    TexturesUV,
    look_at_view_transform,
)
from pytorch3d.renderer.mesh.rasterizer import Fragments
from pytorch3d.structures import Meshes

from .camera import to_pytorch3d
from .config import Config
from .raster import FastMeshRasterizer

TEXTURE_MODES = ("uv", "atlas")

#: Probability below which a face's soft coverage counts as zero when deriving the blur radius.
COVERAGE_EPS = 1e-4


@dataclass
class RenderSettings(Config):
    """Settings shared by every renderer: training losses, evaluation, reports, widgets, notebooks.

    Renderers take a settings object at construction; functions such as :func:`render_prediction`
    let a call override its fields (``image_size=128``; ``soft=False`` for hard coverage). Which
    camera renders the training masks is the objective's choice (``TrainConfig.render_camera``).
    """

    image_size: int = 64
    """Output height = width in pixels (set to the model's input size by experiments)."""
    sigma: float = 1e-4
    """Softness of silhouette edges (SoftRas' sigma, NDC units squared); 0 = hard edges."""
    gamma: float = 1e-4
    """Softness of the depth blend of soft RGB renders."""
    faces_per_pixel: int = 8
    """Faces kept per pixel by soft renderers (hard renders keep 1)."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """RGB background colour in [0, 1]."""
    light_location: tuple[float, float, float] = (0.0, 2.0, -2.0)
    """Point light position in world coordinates (``lighting="point"``)."""
    lighting: str = "point"
    """"point" (Phong shading with a point light) or "ambient" (unlit: the rendered colour is the texture
    colour)."""
    texture_mode: str = "uv"
    """How predicted UV images are sampled: "uv" (``TexturesUV``, per pixel) or "atlas" (``TexturesAtlas``, a
    fixed ``atlas_size`` x ``atlas_size`` grid per face, SoftRas)."""
    atlas_size: int = 2
    """R of the R x R per-face colour grid of the "atlas" mode."""
    rasterizer: str = "auto"
    """"auto" (PyTorch3D's kernels on CUDA, ours on CPU), "fast" (ours) or "stock"."""
    perspective_correct: bool | None = None
    """Perspective-correct barycentrics; None = when the camera is perspective."""
    cull_backfaces: bool = False
    """Skip faces seen from behind (needs consistently oriented faces)."""

    def validate(self) -> None:
        for name in ("image_size", "faces_per_pixel", "atlas_size"):
            self._range(name, 1)
        self._range("sigma", 0)
        self._range("gamma", 0, lo_open=True)
        self._choice("lighting", ("point", "ambient"))
        self._choice("texture_mode", TEXTURE_MODES)
        self._choice("rasterizer", ("auto", "fast", "stock"))
        if len(self.background) != 3 or not all(0 <= c <= 1 for c in self.background):
            raise ValueError(f"RenderSettings.background must be 3 numbers in [0, 1], got {self.background}")
        if len(self.light_location) != 3:
            raise ValueError(f"RenderSettings.light_location must be 3 numbers, got {self.light_location}")

    @property
    def blur_radius(self) -> float:
        """NDC radius beyond which a face's soft coverage is negligible: log(1/eps - 1) * sigma."""
        return math.log(1.0 / COVERAGE_EPS - 1.0) * self.sigma if self.sigma > 0 else 0.0

    def blend_params(self) -> BlendParams:
        return BlendParams(sigma=self.sigma, gamma=self.gamma, background_color=self.background)

    def raster_settings(self, soft: bool = True) -> RasterizationSettings:
        """PyTorch3D rasterization settings: soft (blurred, many faces) or hard (1 face, no blur)."""
        return RasterizationSettings(
            image_size=self.image_size,
            blur_radius=self.blur_radius if soft else 0.0,
            faces_per_pixel=self.faces_per_pixel if soft else 1,
            perspective_correct=self.perspective_correct,
            cull_backfaces=self.cull_backfaces,
        )


def make_cameras(
    dist: float | torch.Tensor = 2.7,
    elev: float | torch.Tensor = 20.0,
    azim: float | torch.Tensor = 30.0,
    fov: float = 30.0,
    device: str | torch.device = "cpu",
) -> FoVPerspectiveCameras:
    """FoV cameras looking at the origin from (dist, elev, azim), degrees; batched by broadcast."""
    R, T = look_at_view_transform(dist=dist, elev=elev, azim=azim, device=device)
    return FoVPerspectiveCameras(R=R, T=T, fov=fov, device=device)


def make_rasterizer(cameras, settings: RenderSettings, soft: bool = True) -> FastMeshRasterizer:
    """The rasterizer all renderers here use (``settings.rasterizer`` picks fast or stock)."""
    return FastMeshRasterizer(
        cameras=cameras, raster_settings=settings.raster_settings(soft), mode=settings.rasterizer
    )


def _lights(cameras, s: RenderSettings):
    if s.lighting == "ambient":
        return AmbientLights(device=cameras.device)
    return PointLights(device=cameras.device, location=[list(s.light_location)])


def silhouette_renderer(cameras, settings: RenderSettings | None = None) -> MeshRenderer:
    """Soft silhouette renderer: alpha channel is the differentiable coverage in [0, 1]."""
    s = settings or RenderSettings()
    shader = SoftSilhouetteShader(blend_params=s.blend_params())
    return MeshRenderer(make_rasterizer(cameras, s, soft=True), shader)


def shaded_renderer(cameras, settings: RenderSettings | None = None, soft: bool = False) -> MeshRenderer:
    """Phong-shaded renderer; textures come from the mesh (TexturesVertex/UV/Atlas)."""
    s = settings or RenderSettings()
    shader_cls = SoftPhongShader if soft else HardPhongShader
    shader = shader_cls(
        device=cameras.device, cameras=cameras, lights=_lights(cameras, s), blend_params=s.blend_params()
    )
    return MeshRenderer(make_rasterizer(cameras, s, soft=soft), shader)


def uv_to_atlas(textures: TexturesUV, atlas_size: int) -> TexturesAtlas:
    """Per-face R x R colour grids sampled from a UV texture (differentiable in the UV image).

    Cell (i, j) of face f takes the UV image's bilinear sample at the UV position of the
    barycentric centroid of the cell's sub-triangle, PyTorch3D's ``make_material_atlas``
    layout, i.e. the cell ``TexturesAtlas.sample_textures`` reads for those barycentrics.
    UVs are clamped to [0, 1] and the image is sampled as ``TexturesUV`` does (v up,
    ``align_corners=True``).

    Args:
        textures: TexturesUV with maps (B, Ht, Wt, C), faces_uvs (B, F, 3), verts_uvs (B, T, 2).
        atlas_size: R.

    Returns:
        TexturesAtlas with atlas (B, F, R, R, C) (a list for meshes of different face counts).
    """
    if not isinstance(textures, TexturesUV):
        raise TypeError(f"uv_to_atlas needs TexturesUV, got {type(textures).__name__}")
    if atlas_size < 1:
        raise ValueError(f"atlas_size must be >= 1, got {atlas_size}")
    atlases = []
    per_mesh = zip(textures.maps_list(), textures.faces_uvs_list(), textures.verts_uvs_list(), strict=True)
    for image, fuv, vuv in per_mesh:
        corner_uvs = vuv[fuv].clamp(0.0, 1.0)  # (F, 3, 2)
        atlases.append(make_material_atlas(torch.flip(image, [0]), corner_uvs, atlas_size))
    return TexturesAtlas(atlas=atlases)


class TexturedRenderer(MeshRenderer):
    """``MeshRenderer`` that samples the mesh's texture in one of the two ablation modes.

    ``mode="uv"`` needs meshes with ``TexturesUV``. ``mode="atlas"`` renders ``TexturesAtlas``
    as is and converts ``TexturesUV`` on the fly with :func:`uv_to_atlas` (R = ``atlas_size``),
    so one textured mesh renders in both modes and gradients reach the UV image in both.
    """

    def __init__(self, rasterizer, shader, mode: str = "uv", atlas_size: int = 4) -> None:
        super().__init__(rasterizer, shader)
        if mode not in TEXTURE_MODES:
            raise ValueError(f"mode must be 'uv' or 'atlas', got {mode!r}")
        self.mode = mode
        self.atlas_size = atlas_size

    def forward(self, meshes_world, **kwargs) -> torch.Tensor:
        tex = meshes_world.textures
        if self.mode == "uv" and not isinstance(tex, TexturesUV):
            raise TypeError(f"mode='uv' needs meshes with TexturesUV, got {type(tex).__name__}")
        if self.mode == "atlas" and not isinstance(tex, TexturesAtlas):
            if not isinstance(tex, TexturesUV):
                raise TypeError(
                    f"mode='atlas' needs meshes with TexturesAtlas or TexturesUV, got {type(tex).__name__}"
                )
            meshes_world = meshes_world.clone()
            meshes_world.textures = uv_to_atlas(tex, self.atlas_size)
        return super().forward(meshes_world, **kwargs)


def textured_renderer(
    cameras, settings: RenderSettings | None = None, mode: str | None = None, soft: bool = False
) -> TexturedRenderer:
    """Textured renderer, texture sampled per pixel ("uv") or from per-face R x R grids ("atlas").

    Args:
        cameras: any PyTorch3D cameras (e.g. ``symnb.camera.to_pytorch3d(scale, trans, quat)``).
        settings: image size, lighting ("point" or "ambient" = unlit), background, atlas size.
        mode: "uv" or "atlas" (see the module docstring); default ``settings.texture_mode``.
        soft: SoftRas-style blending over ``faces_per_pixel`` blurred faces (gradients reach the
            silhouette edges) instead of the nearest face only.

    Returns:
        A renderer mapping textured Meshes to (B, H, W, 4) images.
    """
    s = settings or RenderSettings()
    shader_cls = SoftPhongShader if soft else HardPhongShader
    shader = shader_cls(
        device=cameras.device, cameras=cameras, lights=_lights(cameras, s), blend_params=s.blend_params()
    )
    rasterizer = make_rasterizer(cameras, s, soft=soft)
    return TexturedRenderer(rasterizer, shader, mode=mode or s.texture_mode, atlas_size=s.atlas_size)


# ---------------------------------------------------------------------------- predicted meshes


def nearest_face(frags: Fragments, detach: bool = False) -> Fragments:
    """The nearest face of each pixel only (K = 1), barycentrics clamped to the triangle: what a hard
    textured render samples. ``detach``: the barycentrics carry no gradient to the vertices."""
    bary = frags.bary_coords[..., :1, :].clamp(0, 1)
    return Fragments(pix_to_face=frags.pix_to_face[..., :1], zbuf=frags.zbuf[..., :1],
                     bary_coords=bary.detach() if detach else bary, dists=frags.dists[..., :1])


#: the embedded benchmark's shading (``data_prep.views``): albedo * (AMBIENT + (1 - AMBIENT) |n . l|),
#: flat face normals n, light direction l fixed in OpenCV camera coordinates
GENERATOR_LIGHT = (0.4, -0.6, -1.0)
GENERATOR_AMBIENT = 0.35


def generator_shading(normals: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """The generator's Lambert factor of world-space normals (B, ..., 3) seen by world-to-camera
    rotations R (B, 3, 3): ``AMBIENT + (1 - AMBIENT) |n . R^T l|``, shape (B, ...)."""
    light = F.normalize(torch.tensor(GENERATOR_LIGHT, dtype=normals.dtype, device=normals.device), dim=0)
    light = light @ R.to(normals)  # (B, 3) in world coordinates: R^T l
    lam = (normals * light.view(len(light), *([1] * (normals.dim() - 2)), 3)).sum(-1).abs()
    return GENERATOR_AMBIENT + (1 - GENERATOR_AMBIENT) * lam


def make_textures(texture: torch.Tensor, verts_uvs: torch.Tensor, faces_uvs: torch.Tensor, mode: str = "uv",
                  atlas_size: int = 2):
    """PyTorch3D textures of UV images (B, 3, T, W): ``TexturesUV``, or per-face ``TexturesAtlas``
    (fixed R x R crops sampled like the renderer's atlas mode)."""
    if mode not in TEXTURE_MODES:
        raise ValueError(f"texture mode must be 'uv' or 'atlas', got {mode!r}")
    B = texture.shape[0]
    uv = TexturesUV(maps=texture.permute(0, 2, 3, 1), faces_uvs=[faces_uvs] * B, verts_uvs=[verts_uvs] * B)
    return uv if mode == "uv" else uv_to_atlas(uv, atlas_size)


class Rendered(NamedTuple):
    """What :func:`render_prediction` returns (like PyTorch3D's ``Fragments``, a typed tuple).

    Attributes:
        silhouette: (B, H, W) in [0, 1].
        rgb: (B, 3, H, W) the texture of the nearest face, or None without a predicted texture (its
            gradient reaches the texture, not the vertices: CMR renders the texture with the
            detached shape).
        coverage: (B, 1, H, W) 1 where a face is hit.
    """

    silhouette: torch.Tensor
    rgb: torch.Tensor | None
    coverage: torch.Tensor


def render_prediction(out: dict, settings: RenderSettings | None = None, camera: tuple | None = None,
                      soft: bool = True, **overrides) -> Rendered:
    """Render a network's predicted meshes: silhouette and (if predicted) the texture of the nearest face.

    Args:
        out: :meth:`symnb.model.ReconstructionNet.forward` dict ("verts" (B, V, 3), "faces" (F, 3),
            camera "scale"/"trans"/"quat", optional "texture", "verts_uvs", "faces_uvs").
        settings: image size, softness, texture mode, rasterizer; ``overrides`` replace fields for
            this call (e.g. ``image_size=128``).
        camera: optional (scale (B,), trans (B, 2), quat (B, 4)) to render with instead of out's.
        soft: blurred silhouette over ``faces_per_pixel`` faces (training); False: hard coverage (the
            silhouette is then ``coverage``).

    Returns:
        :class:`Rendered` (silhouette, rgb, coverage).
    """
    s = settings or RenderSettings()
    if overrides:
        s = replace(s, **overrides)
    if not soft:
        s = replace(s, sigma=0.0, faces_per_pixel=1)
    verts, faces = out["verts"], out["faces"]
    scale, trans, quat = camera if camera is not None else (out["scale"], out["trans"], out["quat"])
    renderer = silhouette_renderer(to_pytorch3d(scale, trans, quat), s)
    meshes = Meshes(verts=verts, faces=faces.expand(verts.shape[0], -1, -1))  # padded: no per-mesh lists
    frags = renderer.rasterizer(meshes)
    coverage = (frags.pix_to_face[..., :1] >= 0).float().permute(0, 3, 1, 2)
    # hard: the covered pixels (the shader's silhouette at sigma 0 was NaN on 2 of 1,024 training renders)
    silhouette = renderer.shader(frags, meshes)[..., 3] if soft else coverage[:, 0]
    rgb, tex = None, out.get("texture")
    if tex is not None:
        near = nearest_face(frags, detach=True)  # CMR: the texture loss never moves the shape
        meshes.textures = make_textures(tex, out["verts_uvs"], out["faces_uvs"], s.texture_mode, s.atlas_size)
        rgb = meshes.sample_textures(near)[..., 0, :].permute(0, 3, 1, 2)  # (B, 3, H, W)
    return Rendered(silhouette, rgb, coverage)

