"""Vertex matching under a transform: the one place where symmetric vertices are paired."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def match_vertices(verts, moved, tol: float | None = 1e-6, what: str = "the transform") -> np.ndarray:
    """For each transformed vertex ``moved[i]`` the index of the vertex of ``verts`` at its position.

    Args:
        verts: (V, 3) float positions; moved: (V, 3) their images under a symmetry.
        tol: largest allowed distance of a match, relative to the bounding-box diagonal of ``verts``;
            None pairs every image with its nearest vertex without checking (approximate pairing of
            nearly symmetric meshes).
        what: the transform's name, for the error message.
    Returns:
        (V,) int64 indices.
    Raises:
        ValueError: an image has no vertex within ``tol`` (named in the message).
    """
    v = np.asarray(verts, dtype=np.float64)
    m = np.asarray(moved, dtype=np.float64)
    d, idx = cKDTree(v).query(m)
    if tol is not None:
        scale = float(np.linalg.norm(v.max(0) - v.min(0))) or 1.0
        if d.max() > tol * scale:
            worst = int(np.argmax(d))
            raise ValueError(f"vertices are not symmetric (not invariant under {what}): vertex {worst}'s "
                             f"image is {d.max() / scale:.3g} bbox diagonals from any vertex > tol {tol}")
    return idx.astype(np.int64)
