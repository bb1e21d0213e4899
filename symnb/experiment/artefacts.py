"""Mesh artefacts of a model's predictions: what redundant representations break.

:func:`artefact_metrics` per mesh, :func:`artefact_table` per predicted mesh of a dataset: the geometric
symmetry error about x = 0, Laplacian roughness, normal consistency (PyTorch3D's losses) and the fraction
of self-intersecting faces (MeshLab's filter through pymeshlab).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from pytorch3d.structures import Meshes
from tqdm.auto import tqdm

from ..data import evenly_spaced_subset, loader
from ..geometry import check_mesh
from ..symmetry import MODES, geometric_symmetry_error


def self_intersections(verts: torch.Tensor, faces: torch.Tensor) -> float:
    """Fraction of faces that intersect another face of the mesh (MeshLab's
    ``compute_selection_by_self_intersections_per_face`` through pymeshlab)."""
    import pymeshlab

    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(vertex_matrix=verts.detach().double().cpu().numpy(),
                               face_matrix=faces.cpu().numpy().astype(np.int32)))
    ms.compute_selection_by_self_intersections_per_face()
    m = ms.current_mesh()
    return m.selected_face_number() / max(1, m.face_number())


def artefact_metrics(verts: torch.Tensor, faces: torch.Tensor, n_samples: int = 4000) -> dict:
    """What redundant representations break, for one mesh.

    Args:
        verts: (V, 3) float; faces: (F, 3) long; n_samples: surface samples of the symmetry error.
    Returns:
        dict of floats: "symmetry_error" (Hausdorff distance between the surface and its mirror image
        about x = 0 over the bbox diagonal, :func:`symnb.symmetry.geometric_symmetry_error`);
        "roughness" (mean norm of the uniform Laplacian, ``pytorch3d.loss.mesh_laplacian_smoothing``,
        over the mean edge length: 0 on a plane, about edge / (2 radius) on a fine sphere);
        "normal_consistency" (mean cosine between the normals of faces sharing an edge, 1 - PyTorch3D's
        ``mesh_normal_consistency``; 1 = smooth); "self_intersections" (:func:`self_intersections`).
    """
    from pytorch3d.loss import mesh_laplacian_smoothing, mesh_normal_consistency

    v, f = check_mesh(verts.detach().cpu(), faces.cpu())
    m = Meshes([v.float()], [f])
    edges = m.edges_packed()
    mean_edge = float((m.verts_packed()[edges[:, 0]] - m.verts_packed()[edges[:, 1]]).norm(dim=1).mean())
    lap = float(mesh_laplacian_smoothing(m, method="uniform"))
    return {"symmetry_error": float(geometric_symmetry_error(v, f, "reflection", n_samples=n_samples)),
            "roughness": lap / max(mean_edge, 1e-12),
            "normal_consistency": 1.0 - float(mesh_normal_consistency(m)),
            "self_intersections": self_intersections(v, f)}


@torch.no_grad()
def artefact_table(model, dataset, max_items: int | None = None, symmetrize: str | None = None,
                   batch_size: int = 8, n_samples: int = 4000, progress: bool = False) -> pd.DataFrame:
    """:func:`artefact_metrics` of each predicted mesh (``model.reconstruct``).

    Args:
        model: a :class:`symnb.model.ReconstructionNet`; dataset: items of the data contract.
        max_items: at most this many items, evenly spaced over the dataset.
        symmetrize: post-hoc symmetrization of the outputs first (``model.posthoc_symmetrize``):
            None, "l2r", "r2l" or "cent".
    Returns:
        DataFrame, one row per item: id, class_name, symmetrize ("none" for None), symmetry_error,
        roughness, normal_consistency, self_intersections.
    """
    if symmetrize is not None and symmetrize not in MODES:
        raise ValueError(f"symmetrize must be None or one of {MODES}, got {symmetrize!r}")
    subset = evenly_spaced_subset(dataset, max_items)
    rows = []
    for b in tqdm(loader(subset, batch_size), desc="artefacts", disable=not progress):
        out = model.reconstruct(b["image"].to(model.template.device))
        verts = out["verts"] if symmetrize is None else model.posthoc_symmetrize(out["verts"], symmetrize)
        rows += [{"id": i, "class_name": c, "symmetrize": symmetrize or "none",
                  **artefact_metrics(v, out["faces"], n_samples)}
                 for i, c, v in zip(b["id"], b["class_name"], verts, strict=True)]
    return pd.DataFrame(rows)


__all__ = ["artefact_metrics", "artefact_table", "self_intersections"]
