"""MCMR's weak-perspective camera (scale, 2-D translation, unit quaternion) and its conversions.

Conventions (used by the data loader, the model and the renderer alike):

* World-to-camera rotations follow OpenCV: camera x right, y down, z forward.
* Normalised image coordinates ``uv`` of a square crop of ``W`` pixels are in [-1, 1], x to the
  right and y down; the centre of pixel column ``i`` is at ``(2 i + 1) / W - 1``.
* The weak-perspective projection of a world point ``X`` is ``uv = scale * (R(quat) X)[:2] + trans``.
* ``quat`` is (w, x, y, z), as in :mod:`pytorch3d.transforms`.

:func:`to_pytorch3d` builds orthographic PyTorch3D cameras that render exactly this projection
(PyTorch3D's NDC has x to the left and y up, hence the sign flips).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch3d.renderer import OrthographicCameras
from pytorch3d.transforms import matrix_to_quaternion, quaternion_to_matrix

#: Camera-space depth offset so that every vertex of a unit-sized object lies in front of the camera.
DEPTH_OFFSET = 10.0

_FLIP_XY = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))
_MIRROR_X = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))


def viewpoint_rotation(azimuth, elevation, theta=0.0) -> torch.Tensor:
    """World-to-camera rotation (OpenCV axes) of the viewpoint convention of the data (degrees).

    The camera centre is along ``(cos(el) sin(az), sin(el), cos(el) cos(az))`` (azimuth 0 sees the
    object's front, +z; 90 its left side, +x; elevation > 0 from above), looking at the origin with
    the world's y up, then rolled by ``theta`` about the optical axis.

    Args:
        azimuth, elevation, theta: floats or (B,) tensors in degrees (differentiable).
    Returns:
        (3, 3) or (B, 3, 3), in the dtype of the tensor arguments (float64 for plain numbers).
    """
    floats = [a.dtype for a in (azimuth, elevation, theta) if torch.is_tensor(a) and a.is_floating_point()]
    dtype = floats[0] if floats else torch.float64
    az, el, th = (torch.deg2rad(torch.as_tensor(a, dtype=dtype)) for a in (azimuth, elevation, theta))
    az, el, th = torch.broadcast_tensors(az, el, th)
    fwd = -torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], -1)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=fwd.dtype, device=fwd.device).expand_as(fwd)
    right = torch.nn.functional.normalize(torch.linalg.cross(fwd, up), dim=-1)
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd], -2)
    c, s_, z, o = torch.cos(th), torch.sin(th), torch.zeros_like(th), torch.ones_like(th)
    rows = (torch.stack([c, -s_, z], -1), torch.stack([s_, c, z], -1), torch.stack([z, z, o], -1))
    roll = torch.stack(rows, -2)
    return roll @ R


def viewpoint_angles(R: torch.Tensor) -> torch.Tensor:
    """Azimuth, elevation and in-plane roll (degrees) of world-to-camera rotations (B, 3, 3) -> (B, 3):
    the inverse of :func:`viewpoint_rotation` (``viewpoint_rotation(*viewpoint_angles(R).T) == R`` for
    every rotation). Azimuth in (-180, 180], elevation in [-90, 90], roll in (-180, 180]."""
    R = R.double()
    d = -R[..., 2, :]  # direction from the object to the camera, object coordinates (= -R^T e_z)
    az = torch.atan2(d[..., 0], d[..., 2])
    el = torch.asin(d[..., 1].clamp(-1, 1))
    up = R[..., :, 1]  # object y axis in camera coordinates
    roll = torch.atan2(up[..., 0], -up[..., 1])
    return torch.rad2deg(torch.stack([az, el, roll], -1))


@dataclass(frozen=True)
class AngleBins:
    """``n`` bins of one viewpoint angle (degrees) for classification plus a residual in the bin.

    ``circular``: bins of width 360 / n centred at ``lo + k 360 / n`` (azimuth, roll; bin 0 centred at
    ``lo``); otherwise n bins of width ``(hi - lo) / n`` covering [lo, hi] (elevation), bin k centred at
    ``lo + (k + 1/2) width``. The residual is the offset from the bin centre in bin widths.
    """

    n: int
    lo: float = 0.0
    hi: float = 360.0
    circular: bool = True

    @property
    def width(self) -> float:
        return 360.0 / self.n if self.circular else (self.hi - self.lo) / self.n

    def centres(self) -> torch.Tensor:
        k = torch.arange(self.n, dtype=torch.float64)
        return self.lo + (k if self.circular else k + 0.5) * self.width

    def encode(self, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Angles (B,) -> bin index (B,) long and residual (B,) in [-1/2, 1/2) bin widths."""
        a = angle.double()
        if self.circular:
            x = torch.remainder(a - self.lo, 360.0) / self.width
            k = torch.floor(x + 0.5)
            return torch.remainder(k, self.n).long(), (x - k).to(angle.dtype)
        x = ((a - self.lo) / self.width).clamp(0, self.n - 1e-6)
        k = torch.floor(x)
        return k.long(), (x - k - 0.5).to(angle.dtype)

    def decode(self, index: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Bin index (B,) and residual (B,) -> angles (B,) in degrees (differentiable in the residual)."""
        centre = self.centres().to(residual)[index]
        return centre + residual * self.width


#: The viewpoint angles of :class:`symnb.model.heads.ViewpointHead`: azimuth, roll (circular), elevation.
VIEW_ANGLES = ("az", "el", "roll")


def view_bins(counts: tuple[int, int, int]) -> tuple[AngleBins, AngleBins, AngleBins]:
    """The :class:`AngleBins` of azimuth, elevation and roll for bin counts (n_az, n_el, n_roll)."""
    n_az, n_el, n_roll = counts
    return AngleBins(n_az), AngleBins(n_el, -90.0, 90.0, circular=False), AngleBins(n_roll)


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """The continuous 6-D rotation representation (Zhou et al. 2019): (..., 6) -> (..., 3, 3).

    The 6 numbers are the first two rows of R (the camera's x and y axes in world coordinates),
    orthonormalised by Gram-Schmidt; the third row is their cross product, so the result is a proper
    rotation for any input whose halves are not parallel, and the map is continuous (no double cover).
    """
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2)], dim=-2)


def rotation_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Geodesic angle in degrees between rotations (..., 3, 3) (computed in float64)."""
    c = ((R1.double().transpose(-1, -2) @ R2.double()).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.acos(c.clamp(-1, 1))).float()


def project(
    verts: torch.Tensor, scale: torch.Tensor, trans: torch.Tensor, quat: torch.Tensor
) -> torch.Tensor:
    """Weak-perspective projection.

    Args:
        verts: (B, V, 3) world points.
        scale: (B,) or (B, 1) scale.
        trans: (B, 2) translation in normalised image coordinates.
        quat: (B, 4) unit quaternions (w, x, y, z), world to camera.

    Returns:
        (B, V, 2) normalised image coordinates (x right, y down).
    """
    return project_rotated(verts, quaternion_to_matrix(quat), scale, trans)


def project_rotated(points: torch.Tensor, R: torch.Tensor, scale: torch.Tensor, trans: torch.Tensor
                    ) -> torch.Tensor:
    """:func:`project` with the rotation as a matrix, of points with any number of middle dimensions.

    Args:
        points: (B, ..., 3) world points; R: (B, 3, 3) world to camera; scale: (B,) or (B, 1);
            trans: (B, 2).
    Returns:
        (B, ..., 2) normalised image coordinates.
    """
    middle = (1,) * (points.dim() - 3)
    cam = points @ R.transpose(1, 2)[(slice(None),) + (None,) * len(middle)]  # a view: no copy of R
    return scale.reshape(-1, *middle, 1, 1) * cam[..., :2] + trans.reshape(-1, *middle, 1, 2)


def to_pytorch3d(scale: torch.Tensor, trans: torch.Tensor, quat: torch.Tensor) -> OrthographicCameras:
    """Orthographic PyTorch3D cameras rendering :func:`project` exactly (square images).

    Args:
        scale: (B,) or (B, 1); trans: (B, 2); quat: (B, 4) as in :func:`project`.
    """
    R = _FLIP_XY.to(quat) @ quaternion_to_matrix(quat)  # camera x left, y up: PyTorch3D's view space
    B = quat.shape[0]
    T = torch.zeros(B, 3, dtype=quat.dtype, device=quat.device)
    T[:, 2] = DEPTH_OFFSET
    s = scale.reshape(B, 1)
    return OrthographicCameras(
        focal_length=torch.cat([s, s], dim=1),
        principal_point=-trans,
        R=R.transpose(1, 2),  # PyTorch3D multiplies row vectors: X_view = X @ R + T
        T=T,
        device=quat.device,
    )


def from_perspective(
    K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, box: torch.Tensor, center: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weak-perspective camera approximating a pinhole camera inside a square crop.

    The approximation is exact for the object's centre and for any point at the centre's depth.

    Args:
        K: (B, 3, 3) pixel intrinsics (fx = fy assumed; pixel centres at integer coordinates).
        R: (B, 3, 3) world-to-camera rotation (OpenCV); t: (B, 3) translation.
        box: (B, 4) square crop [x0, y0, x1, y1] in pixels of the original image, x1 - x0 = y1 - y0.
        center: (B, 3) the object's centre in world coordinates (default: the origin).

    Returns:
        scale (B,), trans (B, 2), quat (B, 4) of :func:`project` in the crop's normalised coordinates.
    """
    if center is None:
        center = torch.zeros_like(t)
    zc = (R @ center[..., None])[..., 2, 0] + t[:, 2]  # (B,) depth of the centre
    if (zc <= 0).any():
        raise ValueError("object centre is behind the camera (non-positive depth)")
    w = box[:, 2] - box[:, 0]
    f = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=1)  # (B, 2)
    c = torch.stack([K[:, 0, 2], K[:, 1, 2]], dim=1)
    scale = 2 * f[:, 0] / (w * zc)
    trans = 2 * (f * t[:, :2] / zc[:, None] + c - box[:, :2] + 0.5) / w[:, None] - 1
    return scale, trans, matrix_to_quaternion(R)


def flip_horizontal(
    scale: torch.Tensor, trans: torch.Tensor, quat: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Camera of the horizontally flipped image of an object mirrored about the world plane x = 0.

    Flipping the image maps u -> -u; for an object symmetric about x = 0 this is the same
    object seen by the camera ``R' = M R M`` (M = diag(-1, 1, 1)) with ``trans_x' = -trans_x``.
    """
    M = _MIRROR_X.to(quat)
    R = M @ quaternion_to_matrix(quat) @ M
    sign = torch.tensor([-1.0, 1.0], dtype=trans.dtype, device=trans.device)
    return scale, trans * sign, matrix_to_quaternion(R)
