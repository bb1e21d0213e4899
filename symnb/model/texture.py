"""Projected textures: the UV image sampled from the input image through the predicted camera.

A learned UV image (:class:`symnb.model.heads.TextureDecoder`) has to encode every object's colours
in the encoder's feature; CMR and MCMR instead sample the input image, so that the visible texture
is the photograph's own. :class:`ProjectedTexture` does this without learning anything:

1. every texel (i, j) of the UV image is a point on the template (:func:`texel_surface_map`: the UV
   triangle it falls in and its barycentric coordinates), hence a point of each predicted mesh;
2. that point is projected with the predicted weak-perspective camera (:func:`symnb.camera.project`)
   and the image is sampled there (bilinear);
3. a texel whose face turns away from the camera (``facing < min_facing``) is hidden: it takes its
   mirror texel's colour when the texture is symmetric (``mirror=True``, the symmetry-aligned UV map
   where the mirror of texel (i, j) is (i, W - 1 - j)) and that one is visible, and otherwise the
   mean colour of the image's visible texels.

Visibility is by face orientation only (a texel on a front-facing face occluded by another part of
the mesh samples the occluder's colour). The texture is computed without gradients: it is a function
of the image and of the predicted geometry, and the photometric losses reach the geometry through
the rasterizer only, as with a learned texture.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..camera import project_rotated


def texel_uvs(height: int, width: int) -> torch.Tensor:
    """(H, W, 2) UV coordinates of the texel centres as ``TexturesUV`` samples them (align_corners):
    texel (i, j) is at u = j / (W - 1), v = 1 - i / (H - 1)."""
    v = 1 - torch.arange(height, dtype=torch.float64) / max(height - 1, 1)
    u = torch.arange(width, dtype=torch.float64) / max(width - 1, 1)
    return torch.stack(torch.meshgrid(u, v, indexing="xy"), -1)


def texel_surface_map(verts_uvs: torch.Tensor, faces_uvs: torch.Tensor, height: int, width: int,
                      chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which face and barycentric point of a mesh each texel of its UV image shows.

    Args:
        verts_uvs: (U, 2) UV coordinates; faces_uvs: (F, 3) long, their faces (the mesh's face order).
        height, width: the UV image's size.

    Returns:
        face (H, W) long, bary (H, W, 3) float (non-negative, summing to 1) and inside (H, W) bool.
        A texel outside every UV triangle (between charts) takes the triangle it is least outside of,
        with its barycentric coordinates clamped, so that bilinear sampling near a chart's border
        reads colours of the nearby surface.
    """
    uv = texel_uvs(height, width).reshape(-1, 2)  # (N, 2)
    tri = verts_uvs.double()[faces_uvs]  # (F, 3, 2)
    a, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)  # degenerate UV triangles
    faces, barys = [], []
    for p in uv.split(chunk):
        d = p[:, None, :] - a[None]  # (n, F, 2)
        b1 = (d[..., 0] * e2[:, 1] - d[..., 1] * e2[:, 0]) / det
        b2 = (e1[:, 0] * d[..., 1] - e1[:, 1] * d[..., 0]) / det
        b = torch.stack([1 - b1 - b2, b1, b2], -1)  # (n, F, 3)
        best = b.min(-1).values.argmax(1)  # inside (min >= 0) if any triangle holds the texel
        faces.append(best)
        barys.append(b[torch.arange(len(p)), best])
    face, bary = torch.cat(faces), torch.cat(barys)
    inside = bary.min(-1).values >= -1e-9
    bary = bary.clamp(min=0)
    bary = bary / bary.sum(-1, keepdim=True).clamp(min=1e-12)
    return face.reshape(height, width), bary.float().reshape(height, width, 3), inside.reshape(height, width)


class ProjectedTexture(nn.Module):
    """Project the input image onto predicted meshes' UV images (see the module docstring).

    Args:
        verts_uvs: (U, 2), faces_uvs: (F, 3): the template's UV map (:data:`symnb.model.uv.UV_MAPS`).
        faces: (F, 3) the template's faces; template: (V, 3) its vertices (to orient the normals).
        height, width: the UV image's size.
        mirror: hidden texels take their mirror texel's colour (needs the symmetry-aligned UV map).
        min_facing: a texel is visible when its face's normal, in camera coordinates, points towards
            the camera with at least this cosine.
    """

    def __init__(self, verts_uvs, faces_uvs, faces, template, height: int, width: int, mirror: bool = False,
                 min_facing: float = 0.1):
        super().__init__()
        face, bary, _ = texel_surface_map(verts_uvs, faces_uvs, height, width)
        self.register_buffer("texel_face", face.reshape(-1), persistent=False)  # (N,)
        self.register_buffer("texel_bary", bary.reshape(-1, 3), persistent=False)  # (N, 3)
        tri = template.double()[faces]
        outward = (torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1) * tri.mean(1)).sum()
        self.register_buffer("faces", faces.long().clone(), persistent=False)
        self.sign = 1.0 if float(outward) >= 0 else -1.0  # the faces' winding: outward normals
        self.size, self.mirror, self.min_facing = (height, width), mirror, min_facing

    def surface(self, verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The point of each predicted mesh that each texel shows, and its face's outward unit normal.

        Args:
            verts: (B, V, 3).
        Returns:
            points (B, H, W, 3) and normals (B, H, W, 3) in world coordinates.
        """
        B, (H, W) = len(verts), self.size
        tri = verts[:, self.faces]  # (B, F, 3, 3)
        normals = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
        normals = self.sign * torch.nn.functional.normalize(normals, dim=-1)[:, self.texel_face]  # (B, N, 3)
        points = (self.texel_bary[None, :, :, None] * tri[:, self.texel_face]).sum(2)  # (B, N, 3)
        return points.reshape(B, H, W, 3), normals.reshape(B, H, W, 3)

    @torch.no_grad()
    def project(self, verts: torch.Tensor, R: torch.Tensor, scale: torch.Tensor,
                trans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Where each texel lands in the image and whether the camera sees it.

        Args:
            verts: (B, V, 3) predicted meshes; R: (B, 3, 3) world to camera; scale: (B,); trans: (B, 2)
            (the camera of :func:`symnb.camera.project`).

        Returns:
            xy (B, H, W, 2) normalised image coordinates and visible (B, 1, H, W) bool
            (:func:`texel_visibility`).
        """
        return texel_visibility(*self.surface(verts), R, scale, trans, self.min_facing)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, verts: torch.Tensor, R: torch.Tensor, scale: torch.Tensor,
                trans: torch.Tensor) -> dict:
        """Args:
            images: (B, 3, S, S) in [0, 1]; verts, R, scale, trans: as :meth:`project`.

        Returns:
            "texture" (B, 3, H, W) in [0, 1] and "visible" (B, 1, H, W) bool (sampled from the image).
        """
        xy, vis = self.project(verts, R, scale, trans)
        colour = torch.nn.functional.grid_sample(images, xy, mode="bilinear", padding_mode="border",
                                                 align_corners=False)  # (B, 3, H, W)
        weight = vis.float()
        fill = (colour * weight).sum((2, 3)) / weight.sum((2, 3)).clamp(min=1)  # mean visible colour
        fill = torch.where(weight.sum((2, 3)) > 0, fill, images.mean((2, 3)))[..., None, None]
        texture = torch.where(vis, colour, fill.expand_as(colour))
        if self.mirror:
            texture = mirror_fill(texture, vis, colour)
        return {"texture": texture, "visible": vis}


def texel_visibility(points: torch.Tensor, normals: torch.Tensor, R: torch.Tensor, scale: torch.Tensor,
                     trans: torch.Tensor, min_facing: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Texels' image positions under weak-perspective cameras and whether the camera sees them.

    Args:
        points, normals: (B, H, W, 3) (:meth:`ProjectedTexture.surface`); R (B, 3, 3) world to camera,
        scale (B,), trans (B, 2); min_facing: the least cosine between a visible texel's normal and the
        direction to the camera.
    Returns:
        xy (B, H, W, 2) normalised image coordinates (``grid_sample``'s) and visible (B, 1, H, W) bool:
        the texel's face points towards the camera and it projects inside the image. Visibility is by
        orientation only (a front-facing texel behind another part of the mesh counts as visible).
    """
    xy = project_rotated(points, R, scale, trans)
    facing = -(normals @ R.transpose(1, 2)[:, None])[..., 2]  # the camera looks along +z: towards it is -z
    visible = (facing >= min_facing) & (xy.abs() <= 1).all(-1)
    return xy, visible[:, None]


def mirror_fill(uv: torch.Tensor, visible: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
    """Hidden texels whose mirror texel is visible take the mirror texel's value (symmetry-aligned UV
    map: the mirror of texel (i, j) is (i, W - 1 - j)).

    Args:
        uv: (B, C, H, W) a UV image (colours, or a texture flow); visible: (B, 1, H, W) bool;
        source: the values the mirror texels give (default ``uv``).
    """
    source = uv if source is None else source
    return torch.where(visible | ~visible.flip(-1), uv, source.flip(-1))
