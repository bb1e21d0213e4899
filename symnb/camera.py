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

import torch
from pytorch3d.renderer import OrthographicCameras
from pytorch3d.transforms import matrix_to_quaternion, quaternion_to_matrix

#: Camera-space depth offset so that every vertex of a unit-sized object lies in front of the camera.
DEPTH_OFFSET = 10.0

_FLIP_XY = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))
_MIRROR_X = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))


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
    R = quaternion_to_matrix(quat)  # (B, 3, 3)
    cam = verts @ R.transpose(1, 2)
    return scale.reshape(-1, 1, 1) * cam[..., :2] + trans[:, None, :]


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
