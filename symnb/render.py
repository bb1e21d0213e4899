"""Renderers composed from PyTorch3D pieces: a rasterizer plus a shader, settings in a dataclass.

Shapes: images come back as (B, H, W, 4) float, RGB in [..., :3] and alpha / silhouette in [..., 3].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pytorch3d.renderer import (
    BlendParams,
    FoVPerspectiveCameras,
    HardPhongShader,
    MeshRasterizer,
    MeshRenderer,
    PointLights,
    RasterizationSettings,
    SoftPhongShader,
    SoftSilhouetteShader,
    look_at_view_transform,
)


@dataclass
class RenderSettings:
    """Settings shared by the silhouette and shaded renderers.

    Attributes:
        image_size: output height = width in pixels.
        sigma: softness of silhouette edges (SoftRas' sigma); 0 gives hard edges.
        gamma: softness of the depth blend.
        faces_per_pixel: faces kept per pixel by the rasterizer (1 for hard renders).
        background: RGB background colour in [0, 1].
        light_location: point light position in world coordinates.
    """

    image_size: int = 64
    sigma: float = 1e-4
    gamma: float = 1e-4
    faces_per_pixel: int = 25
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    light_location: tuple[float, float, float] = (0.0, 2.0, -2.0)

    @property
    def blur_radius(self) -> float:
        """NDC radius beyond which a face's soft coverage is negligible: log(1/eps - 1) * sigma."""
        return math.log(1.0 / 1e-4 - 1.0) * self.sigma if self.sigma > 0 else 0.0

    def blend_params(self) -> BlendParams:
        return BlendParams(sigma=self.sigma, gamma=self.gamma, background_color=self.background)


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


def silhouette_renderer(cameras, settings: RenderSettings | None = None) -> MeshRenderer:
    """Soft silhouette renderer: alpha channel is the differentiable coverage in [0, 1]."""
    s = settings or RenderSettings()
    raster = RasterizationSettings(
        image_size=s.image_size, blur_radius=s.blur_radius, faces_per_pixel=s.faces_per_pixel
    )
    return MeshRenderer(
        MeshRasterizer(cameras=cameras, raster_settings=raster),
        SoftSilhouetteShader(blend_params=s.blend_params()),
    )


def shaded_renderer(cameras, settings: RenderSettings | None = None, soft: bool = False) -> MeshRenderer:
    """Phong-shaded renderer with a point light; textures come from the mesh (TexturesVertex/UV/Atlas)."""
    s = settings or RenderSettings(faces_per_pixel=1, sigma=0.0)
    raster = RasterizationSettings(
        image_size=s.image_size, blur_radius=s.blur_radius if soft else 0.0,
        faces_per_pixel=s.faces_per_pixel if soft else 1,
    )
    device = cameras.device
    lights = PointLights(device=device, location=[list(s.light_location)])
    shader_cls = SoftPhongShader if soft else HardPhongShader
    return MeshRenderer(
        MeshRasterizer(cameras=cameras, raster_settings=raster),
        shader_cls(device=device, cameras=cameras, lights=lights, blend_params=s.blend_params()),
    )
