"""UV maps of sphere templates: spherical, or aligned with the symmetry plane."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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

    Each hemisphere is unfolded by the Lambert azimuthal equal-area projection around its pole (+-x)
    (equal surface areas get equal texel counts) into an ellipse that fills its half of the UV image:
    the left (x > 0) chart fills u in [0.01, 0.49], the right one u in [0.51, 0.99], both v in
    [0.02, 0.98] (in texels of a 2:1 UV image, two discs of almost its height). The mirror image of
    a point has ``u' = 1 - u``, so a left-right mirrored UV image gives a symmetric texture.

    Returns:
        verts_uvs (2V, 2) (first V: left chart, next V: right chart), faces_uvs (F, 3) long.
    """
    d = F.normalize(verts, dim=-1)
    alpha = torch.acos(d[:, 0].abs().clamp(max=1.0))  # angle from this side's pole
    r = torch.sin(alpha / 2) / math.sin(math.pi / 4)  # equal-area radius: 0 at the pole, 1 on the plane
    phi = torch.atan2(d[:, 1], d[:, 2])
    du, dv = 0.24 * r * torch.cos(phi), 0.48 * r * torch.sin(phi)
    left = torch.stack([0.25 + du, 0.5 + dv], dim=-1)
    right = torch.stack([0.75 - du, 0.5 + dv], dim=-1)
    side_x = verts[faces].mean(1)[:, 0]
    faces_uvs = faces + verts.shape[0] * (side_x < 0)[:, None].long()
    return torch.cat([left, right]).clamp(0, 1), faces_uvs


UV_MAPS = {"spherical": spherical_uv, "symmetric": symmetric_uv}
