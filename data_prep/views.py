"""Pascal3D+-like views of a canonical CAD mesh rendered with PyTorch3D (forward only).

Conventions (the same as the dataset's annotations):

* ``K`` (3, 3) pixel intrinsics with pixel centres at integer coordinates (OpenCV).
* ``R`` (3, 3), ``t`` (3,) world-to-camera, OpenCV axes (x right, y down, z forward): a CAD vertex
  ``X`` projects to pixel ``(u, v)`` with ``[u, v, 1] ~ K (R X + t)``.
* Viewpoint: the camera centre is ``d (cos(el) sin(az), sin(el), cos(el) cos(az))`` in the canonical
  frame (y up, front +z): azimuth 0 looks at the front, 90 at the object's left side (+x);
  elevation > 0 looks from above; then an in-plane rotation ``theta`` about the optical axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from pytorch3d.ops import interpolate_face_attributes
from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
from pytorch3d.structures import Meshes
from pytorch3d.utils import cameras_from_opencv_projection

from symnb.camera import viewpoint_rotation
from symnb.config import Config
from symnb.render import generator_shading

# ----------------------------------------------------------------------------- keypoints

#: Keypoints per class: (name, direction). A keypoint is the CAD vertex maximising ``direction . X``;
#: names starting with "left_" use the x >= 0 half, their "right_" partner is the exact mirror
#: vertex; other names prefer vertices on the plane x = 0.
KEYPOINT_SPECS: dict[str, list[tuple[str, tuple[float, float, float]]]] = {
    "aeroplane": [
        ("nose", (0, 0, 1)), ("tail", (0, -0.3, -1)), ("rudder_upper", (0, 1, -0.6)),
        ("left_wing", (1, 0, 0)), ("right_wing", (-1, 0, 0)),
        ("left_elevator", (0.6, 0, -1)), ("right_elevator", (-0.6, 0, -1)),
    ],
    "car": [
        ("left_front_wheel", (1, -1, 1)), ("right_front_wheel", (-1, -1, 1)),
        ("left_back_wheel", (1, -1, -1)), ("right_back_wheel", (-1, -1, -1)),
        ("left_front_roof", (0.5, 1, 0.5)), ("right_front_roof", (-0.5, 1, 0.5)),
        ("left_back_roof", (0.5, 1, -0.5)), ("right_back_roof", (-0.5, 1, -0.5)),
    ],
    "bottle": [
        ("mouth", (0, 1, 0)), ("bottom", (0, -1, 0)),
        ("left_body", (1, -0.2, 0)), ("right_body", (-1, -0.2, 0)),
        ("left_shoulder", (1, 1.2, 0)), ("right_shoulder", (-1, 1.2, 0)),
    ],
    "diningtable": [
        ("left_front_top", (1, 1, 1)), ("right_front_top", (-1, 1, 1)),
        ("left_back_top", (1, 1, -1)), ("right_back_top", (-1, 1, -1)),
        ("left_front_leg", (1, -1, 1)), ("right_front_leg", (-1, -1, 1)),
        ("left_back_leg", (1, -1, -1)), ("right_back_leg", (-1, -1, -1)),
    ],
}


def flip_permutation(names: list[str]) -> list[int]:
    """Index of each keypoint's left/right partner (itself for centre keypoints)."""
    swap = {"left": "right", "right": "left"}
    out = []
    for n in names:
        head, _, rest = n.partition("_")
        partner = f"{swap[head]}_{rest}" if head in swap else n
        out.append(names.index(partner))
    return out


def cad_keypoints(class_name: str, verts: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """3-D keypoints (N, 3) on a canonical, mirror-symmetric CAD mesh and their names.

    Right keypoints are the exact mirrors (x -> -x) of their left partners.
    """
    specs = KEYPOINT_SPECS[class_name]
    names = [n for n, _ in specs]
    left, plane = verts[:, 0] >= 0, verts[:, 0] == 0
    pts = np.zeros((len(specs), 3))
    for i, (name, d) in enumerate(specs):
        d = np.asarray(d, dtype=np.float64)
        if name.startswith("right_"):
            continue
        cand = left if name.startswith("left_") else plane
        if not cand.any():
            cand = np.ones(len(verts), bool)
        pts[i] = verts[int(np.argmax(np.where(cand, verts @ d, -np.inf)))]
    perm = flip_permutation(names)
    for i, name in enumerate(names):
        if name.startswith("right_"):
            pts[i] = pts[perm[i]] * np.array([-1.0, 1.0, 1.0])
    return pts, names


# ----------------------------------------------------------------------------- viewpoints


@dataclass
class ViewSettings(Config):
    """Viewpoint distribution (angles in degrees; distances in bbox diagonals; focal in image widths).

    ``distance_scale`` k multiplies the sampled distance and focal length alike, so the object keeps
    its image size and position while the perspective effects shrink as 1/k: k = 1 is a true
    perspective view at 2.3-3.6 diagonals; large k approaches the model's weak-perspective camera
    (the image of the same view under ``symnb.camera``'s scaled orthographic projection). The
    lateral object offset (``shift``) is relative to the *unscaled* distance, so the angle between
    the optical axis and the ray to the object also shrinks as 1/k. The random draws do not depend
    on k (k = 1 reproduces the perspective benchmark exactly).
    """

    azimuth: tuple[float, float] = (0.0, 360.0)
    """Range of the azimuth, uniform (degrees)."""
    elevation: tuple[float, float] = (-10.0, 40.0)
    """Range of the elevation, uniform (degrees)."""
    distance: tuple[float, float] = (2.3, 3.6)
    """Range of the camera distance (bbox diagonals), before ``distance_scale``."""
    theta: tuple[float, float] = (-10.0, 10.0)
    """Range of the in-plane rotation (degrees)."""
    focal: tuple[float, float] = (1.8, 2.2)
    """Range of the focal length (image widths), before ``distance_scale``."""
    shift: float = 0.04
    """Largest lateral object offset, relative to the unscaled distance."""
    principal_jitter: float = 0.03
    """Largest principal-point offset, relative to the image size."""
    distance_scale: float = 50.0
    """k: distance and focal length times k (1: the true-perspective benchmark)."""

    def validate(self) -> None:
        for name in ("azimuth", "elevation", "distance", "theta", "focal"):
            value = getattr(self, name)
            if len(value) != 2:
                raise ValueError(f"ViewSettings.{name} must be a range (low, high), got {value}")
            lo, hi = value
            if lo > hi:
                raise ValueError(f"ViewSettings.{name} must be a range (low, high) with low <= high, got "
                                 f"{getattr(self, name)}")
        if not -90 <= self.elevation[0] <= self.elevation[1] <= 90:
            raise ValueError(f"ViewSettings.elevation must lie in [-90, 90], got {self.elevation}")
        if self.distance[0] <= 0 or self.focal[0] <= 0:
            raise ValueError(f"ViewSettings.distance and focal must be > 0, got {self.distance}, "
                             f"{self.focal}")
        self._range("distance_scale", 0, lo_open=True)
        self._range("shift", 0)
        self._range("principal_jitter", 0)


def look_at(azimuth: float, elevation: float, distance: float,
            theta: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R (3, 3), t (3,)) in OpenCV axes for the viewpoint convention above
    (the rotation is :func:`symnb.camera.viewpoint_rotation`)."""
    az, el = math.radians(azimuth), math.radians(elevation)
    C = distance * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    R = viewpoint_rotation(azimuth, elevation, theta).numpy()
    return R, -R @ C


def sample_view(rng: np.random.Generator, img_size: int, s: ViewSettings | None = None) -> dict:
    """A random viewpoint: dict with azimuth, elevation, distance, theta, K (3, 3), R (3, 3), t (3,)."""
    s = s or ViewSettings()
    v = {k: float(rng.uniform(*getattr(s, k))) for k in ("azimuth", "elevation", "distance", "theta")}
    d0 = v["distance"]
    v["distance"] = d0 * s.distance_scale
    R, t = look_at(v["azimuth"], v["elevation"], v["distance"], v["theta"])
    t = t + np.array([*rng.uniform(-s.shift, s.shift, 2) * d0, 0.0])
    f = rng.uniform(*s.focal) * img_size * s.distance_scale
    c = (img_size - 1) / 2 + rng.uniform(-s.principal_jitter, s.principal_jitter, 2) * img_size
    v["K"] = np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]])
    v["R"], v["t"] = R, t
    return v


# ----------------------------------------------------------------------------- textures and rendering


def vertex_colors(verts: np.ndarray, rng: np.random.Generator, symmetric: bool) -> np.ndarray:
    """Procedural per-vertex albedo (V, 3) in [0, 1]: base colour, stripes and blobs.

    With ``symmetric`` the colour is a function of (|x|, y, z) (mirror-symmetric texture);
    otherwise one side also gets a blob of its own.
    """
    base, second, third = rng.uniform(0.1, 0.95, (3, 3))
    x, y, z = verts.T
    ax = np.abs(x)
    freq, phase = rng.uniform(4, 14), rng.uniform(0, 2 * np.pi)
    direction = rng.normal(size=3)
    stripe = (np.sin(freq * (direction[0] * ax + direction[1] * y + direction[2] * z) + phase) > 0.3)
    col = np.where(stripe[:, None], second, base)
    # blobs centred on surface points: a mirrored pair (function of |x|), and a one-sided one
    c = verts[rng.integers(len(verts))]
    blob = np.exp(-((ax - abs(c[0])) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 0.01)
    col = col * (1 - blob[:, None]) + third * blob[:, None]
    if not symmetric:
        right = verts[x > 0.05] if (x > 0.05).any() else verts
        c = right[rng.integers(len(right))]
        blob = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 0.015)
        col = col * (1 - blob[:, None]) + ((col + 0.5) % 1.0) * blob[:, None]  # shifted hue: always visible
    return np.clip(col, 0, 1)


def background(rng: np.random.Generator, size: int,
               photos: list[np.ndarray] | None = None) -> tuple[np.ndarray, str]:
    """(size, size, 3) background in [0, 1] and its kind: "plain", "noise" or "photo"."""
    kinds = ["plain", "noise"] + (["photo"] if photos else [])
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "plain":
        return np.broadcast_to(rng.uniform(0, 1, 3), (size, size, 3)).copy(), kind
    if kind == "noise":
        coarse = Image.fromarray((rng.uniform(0, 1, (6, 6, 3)) * 255).astype(np.uint8))
        smooth = np.asarray(coarse.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255
        return np.clip(smooth + 0.04 * rng.standard_normal((size, size, 3), dtype=np.float32), 0, 1), kind
    photo = photos[int(rng.integers(len(photos)))]
    h, w = photo.shape[:2]
    side = min(h, w)
    y0, x0 = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    crop = torch.from_numpy(photo[y0:y0 + side, x0:x0 + side]).permute(2, 0, 1)[None].float()
    out = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", antialias=True,
                                          align_corners=False)[0].permute(1, 2, 0).numpy()
    return np.clip(out, 0, 1), kind


def rasterizer_class() -> type:
    """``symnb.raster.FastMeshRasterizer`` (a drop-in, fast on CPU) when available, else PyTorch3D's."""
    try:
        from symnb.raster import FastMeshRasterizer
    except ImportError:
        return MeshRasterizer
    return FastMeshRasterizer


def render_views(verts: np.ndarray, faces: np.ndarray, colors: np.ndarray, K: np.ndarray, R: np.ndarray,
                 t: np.ndarray, img_size: int) -> dict[str, torch.Tensor]:
    """Render B views of one mesh (hard rasterization, flat Lambert shading).

    Args:
        verts: (V, 3); faces: (F, 3); colors: (B, V, 3) per-view albedo.
        K: (B, 3, 3); R: (B, 3, 3); t: (B, 3) OpenCV pinhole cameras (pixel centres at integers).
        img_size: square output size S.

    Returns:
        dict with "rgb" (B, S, S, 3) in [0, 1], "mask" (B, S, S) bool, "zbuf" (B, S, S) camera depth
        (-1 for background).
    """
    B = len(K)
    v = torch.as_tensor(verts, dtype=torch.float32)
    f = torch.as_tensor(faces, dtype=torch.int64)
    meshes = Meshes(verts=v[None].expand(B, -1, -1), faces=f[None].expand(B, -1, -1))
    Kt = torch.as_tensor(K, dtype=torch.float32).clone()
    # PyTorch3D puts pixel centres at half-integers (screen space); OpenCV at integers
    Kt[:, :2, 2] += 0.5
    cams = cameras_from_opencv_projection(
        torch.as_tensor(R, dtype=torch.float32), torch.as_tensor(t, dtype=torch.float32), Kt,
        torch.tensor([[img_size, img_size]] * B, dtype=torch.float32),
    )
    settings = RasterizationSettings(image_size=img_size, blur_radius=0.0, faces_per_pixel=1,
                                     bin_size=0 if v.device.type == "cpu" else None, cull_backfaces=False)
    raster = rasterizer_class()(cameras=cams, raster_settings=settings)
    frag = raster(meshes)
    p2f = frag.pix_to_face  # (B, S, S, 1)
    col = torch.as_tensor(colors, dtype=torch.float32).reshape(-1, 3)
    albedo = interpolate_face_attributes(p2f, frag.bary_coords, col[meshes.faces_packed()])[..., 0, :]
    normals = meshes.faces_normals_packed()[p2f[..., 0].clamp(min=0)]  # (B, S, S, 3) world
    rgb = albedo * generator_shading(normals, torch.as_tensor(R, dtype=torch.float32))[..., None]
    mask = p2f[..., 0] >= 0
    return {"rgb": rgb.clamp(0, 1) * mask[..., None], "mask": mask, "zbuf": frag.zbuf[..., 0]}


def keypoints_2d(kp3d: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray, zbuf: np.ndarray,
                 tol: float = 0.02) -> np.ndarray:
    """Project 3-D keypoints; visibility by depth test against the rendered depth buffer.

    Args:
        kp3d: (N, 3); K, R: (3, 3); t: (3,); zbuf: (S, S) camera depth, -1 where empty.
        tol: depth tolerance (world units; the CAD diagonal is 1).

    Returns:
        (N, 3) pixel x, y (pixel centres at integers) and visible (0/1). A keypoint is visible when
        it is inside the image and its pixel shows background (a silhouette point), or the surface
        there is not in front of it by more than ``tol``, or the surface at its depth (within
        ``tol``) is seen in its 3x3 pixel neighbourhood.
    """
    cam = kp3d @ R.T + t
    uvw = cam @ K.T
    uv = uvw[:, :2] / uvw[:, 2:3]
    S = zbuf.shape[0]
    vis = np.zeros(len(kp3d))
    for i, (u, v) in enumerate(uv):
        iu, iv = int(round(u)), int(round(v))
        if not (0 <= iu < S and 0 <= iv < S):
            continue
        own = zbuf[iv, iu]
        patch = zbuf[max(iv - 1, 0):iv + 2, max(iu - 1, 0):iu + 2]
        if own <= 0 or cam[i, 2] <= own + tol or (np.abs(patch[patch > 0] - cam[i, 2]) <= tol).any():
            vis[i] = 1.0
    return np.concatenate([uv, vis[:, None]], 1)
