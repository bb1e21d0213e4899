"""One Pascal3D+ annotation file, read safely and checked field by field.

The YAML is read with :func:`symnb.utils.parse_yaml` (size-bounded, plain data, no anchors or
aliases). Every field the loader uses is checked, so that a bad file is a :class:`BadSampleError`
naming the file and the field, never a black crop, a wrong camera or an error deep inside numpy
or torch:

* ``image_name``: a relative file name inside the class's ``images/`` folder (no ``..``, no
  absolute path); ``image_size``: two positive integers [H, W];
* ``pascal_class``: one of :data:`CLASSES`; ``cad_idx``: an integer >= 1; ``occluded``,
  ``truncated``, ``difficult``: 0 or 1;
* ``bbox``: 4 finite numbers x1 <= x2, y1 <= y2, overlapping the image (and not more than half an
  image side outside it);
* ``intrinsic``: a 3x3 K with focal lengths > 0, last row [0, 0, 1], not singular;
* ``extrinsic``: 4x4 (or 3x4) [R | t] with R a rotation (orthonormal, det +1) and the object in
  front of the camera (t_z > 0);
* ``kpoints_2d``: empty or N rows [x, y, visible] of finite numbers, visible 0 or 1.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ..utils import parse_yaml

#: The 12 Pascal3D+ classes, in the fixed order used for class indices.
CLASSES = ("aeroplane", "bicycle", "boat", "bottle", "bus", "car", "chair", "diningtable", "motorbike",
           "sofa", "train", "tvmonitor")
REQUIRED_FIELDS = ("image_name", "image_size", "pascal_class", "cad_idx", "occluded", "truncated",
                   "difficult", "bbox", "kpoints_2d", "intrinsic", "extrinsic")
#: Largest annotation file read (bytes); real ones are about 2 KB.
MAX_ANNOTATION_BYTES = 256_000
#: Tolerance of the rotation check, max |R R^T - I| (annotations store 6 decimals).
ROTATION_TOL = 1e-3


class BadSampleError(ValueError):
    """A sample whose files are missing, corrupt or inconsistent (the message names the file)."""


def _bad(path: Path, name: str, problem: str) -> BadSampleError:
    return BadSampleError(f"{path}: field '{name}': {problem}")


def _integer(path: Path, name: str, value, lo: int, hi: int | None = None) -> int:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
    if isinstance(value, bool) and lo == 0 and hi == 1:
        ok = True
    if not ok or value < lo or (hi is not None and value > hi):
        allowed = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        raise _bad(path, name, f"must be {allowed}, got {value!r}")
    return int(value)


def _array(path: Path, name: str, value, shapes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _bad(path, name, f"must be numbers, got {str(value)[:60]!r}") from None
    if a.shape not in shapes:
        want = " or ".join("x".join(map(str, s)) for s in shapes)
        raise _bad(path, name, f"must be {want} numbers, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise _bad(path, name, "contains NaN or inf")
    return a


def check_image_name(path: Path, name) -> str:
    """``name`` if it is a plain relative path (no ``..``, not absolute), else BadSampleError."""
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise _bad(path, "image_name", f"must be a file name, got {name!r}")
    for p in (PurePosixPath(name), PureWindowsPath(name)):
        if p.is_absolute() or p.anchor or ".." in p.parts:
            raise _bad(path, "image_name", f"{name!r} points outside the class's images folder")
    return name


def check_bbox(path: Path, bbox: np.ndarray, H: int, W: int) -> None:
    """BadSampleError unless ``bbox`` overlaps the W x H image and stays within half an image side
    of it (a crop of a box far outside would be black, or huge)."""
    x1, y1, x2, y2 = bbox
    if x2 < 0 or y2 < 0 or x1 > W - 1 or y1 > H - 1:
        raise _bad(path, "bbox", f"{bbox.tolist()} lies entirely outside the {W}x{H} image")
    if x1 < -W / 2 or y1 < -H / 2 or x2 > 1.5 * W or y2 > 1.5 * H:
        raise _bad(path, "bbox", f"{bbox.tolist()} reaches more than half an image side outside the "
                   f"{W}x{H} image")


def _read(path: Path) -> dict:
    if not path.is_file():
        raise BadSampleError(f"missing annotation file {path}")
    size = path.stat().st_size
    if size > MAX_ANNOTATION_BYTES:
        raise BadSampleError(f"{path}: {size} bytes, more than the {MAX_ANNOTATION_BYTES} an annotation "
                             "may have")
    try:
        ann = parse_yaml(path.read_text(errors="replace"), str(path), MAX_ANNOTATION_BYTES)
    except ValueError as err:
        raise BadSampleError(str(err)) from err
    if not isinstance(ann, dict):
        raise BadSampleError(f"{path}: annotation is not a mapping")
    missing = [k for k in REQUIRED_FIELDS if k not in ann]
    if missing:
        raise BadSampleError(f"{path}: annotation misses field(s) {', '.join(missing)}")
    return ann


def load_annotation(path: str | os.PathLike) -> dict:
    """Read and check one annotation YAML (see the module docstring).

    Returns:
        the annotation's fields, ``image_size`` as [H, W] ints and ``cad_idx`` an int, plus ``K``
        (3, 3), ``R`` (3, 3), ``t`` (3,), ``bbox`` (4,) and ``kp`` (N, 3) float64 arrays.

    Raises:
        BadSampleError: missing, too large or invalid YAML, or a bad field (named in the message).
    """
    path = Path(path)
    ann = _read(path)
    if ann["pascal_class"] not in CLASSES:
        raise _bad(path, "pascal_class", f"unknown class {ann['pascal_class']!r} (not one of the 12 "
                   "Pascal3D+ classes)")
    check_image_name(path, ann["image_name"])
    size = ann["image_size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise _bad(path, "image_size", f"must be [height, width], got {size!r}")
    H, W = (_integer(path, "image_size", s, 1) for s in size)
    cad_idx = _integer(path, "cad_idx", ann["cad_idx"], 1)
    for flag in ("occluded", "truncated", "difficult"):
        _integer(path, flag, ann[flag], 0, 1)
    K = _array(path, "intrinsic", ann["intrinsic"], ((3, 3),))
    E = _array(path, "extrinsic", ann["extrinsic"], ((4, 4), (3, 4)))
    bbox = _array(path, "bbox", ann["bbox"], ((4,),))
    kp_raw = ann["kpoints_2d"] if ann["kpoints_2d"] is not None else []
    if not isinstance(kp_raw, (list, tuple)):
        raise _bad(path, "kpoints_2d", f"must be a list of [x, y, visible] rows, got {kp_raw!r}")
    kp = _array(path, "kpoints_2d", kp_raw, ((len(kp_raw), 3),)) if kp_raw else np.zeros((0, 3))
    if not np.isin(kp[:, 2], (0.0, 1.0)).all():
        raise _bad(path, "kpoints_2d", "visibility (third column) must be 0 or 1")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise _bad(path, "intrinsic", f"focal lengths must be > 0, got fx={K[0, 0]:g}, fy={K[1, 1]:g}")
    if np.abs(K[2] - [0, 0, 1]).max() > 1e-6 or abs(np.linalg.det(K)) < 1e-9:
        raise _bad(path, "intrinsic", f"K must have last row [0, 0, 1] and be invertible, got {K.tolist()}")
    R, t = E[:3, :3], E[:3, 3]
    if np.abs(R @ R.T - np.eye(3)).max() > ROTATION_TOL or np.linalg.det(R) <= 0:
        raise _bad(path, "extrinsic", "the 3x3 part is not a rotation (orthonormal, det +1), got "
                   f"{np.round(R, 4).tolist()}")
    if t[2] <= 0:
        raise _bad(path, "extrinsic", f"the object is not in front of the camera (t_z = {t[2]:g} <= 0)")
    if bbox[2] < bbox[0] or bbox[3] < bbox[1]:
        raise _bad(path, "bbox", f"{bbox.tolist()} has x2 < x1 or y2 < y1")
    check_bbox(path, bbox, max(H, W), max(H, W))  # [H, W] or [W, H]: the loader checks the exact size
    ann.update(image_size=[H, W], cad_idx=cad_idx, K=K, R=R.copy(), t=t.copy(), bbox=bbox, kp=kp)
    return ann
