"""Fine-tuning a trained network into another representation (the research's schemes).

:func:`transfer` starts a network from a trained one, e.g. a baseline without symmetry, so that
only the loss's representation changes: every weight of the same name and shape is copied (encoder,
class, deformation, camera and texture heads: the same architecture), and the mean shapes are moved
onto the new network's template and group:

* the same group, template and smooth coordinates (a texture or output-constraint variant of a trained
  network): the mean-shape parameters are copied bit for bit;
* reflection scheme: same template; the mean shapes are symmetrized (``modes``: the group average, or
  one side kept and mirrored) and only their independent half is kept;
* refinement scheme: the ~2x template; the mean shapes are interpolated at the new template's
  vertices (barycentric, on the old template's triangles) and symmetrized. The deformation MLP
  takes template positions as input, so the offsets move to the new template unchanged, and the UV
  maps are functions of the sphere direction, so the texture does too.
"""

from __future__ import annotations

import torch

from ..geometry import point_mesh_closest
from ..symmetry.maps import symmetrize
from .network import ReconstructionNet


def resample_on_template(values: torch.Tensor, src_template: torch.Tensor, src_faces: torch.Tensor,
                         dst_template: torch.Tensor) -> torch.Tensor:
    """Per-vertex values (K, Vs, C) of one sphere template, interpolated at another's vertices.

    Each destination vertex takes the barycentric interpolation of the values at the closest point
    of the source template's triangles (exact for a vertex the two templates share).

    Returns:
        (K, Vd, C).
    """
    _, closest, face = point_mesh_closest(dst_template.double(), src_template.double(), src_faces)
    tri = src_template.double()[src_faces[face]]  # (Vd, 3, 3)
    # barycentric coordinates of the closest points in their triangles (least squares, well posed)
    e1, e2, p = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], closest - tri[:, 0]
    d00, d01, d11 = (e1 * e1).sum(-1), (e1 * e2).sum(-1), (e2 * e2).sum(-1)
    d20, d21 = (p * e1).sum(-1), (p * e2).sum(-1)
    den = (d00 * d11 - d01 * d01).clamp_min(1e-30)
    b1, b2 = (d11 * d20 - d01 * d21) / den, (d00 * d21 - d01 * d20) / den
    bary = torch.stack([1 - b1 - b2, b1, b2], -1).to(values.dtype)  # (Vd, 3)
    corners = values[:, src_faces[face]]  # (K, Vd, 3, C)
    return (bary[None, :, :, None] * corners).sum(2)


def same_representation(model: ReconstructionNet, source: ReconstructionNet) -> bool:
    """Whether the two networks' mean shapes have the same group, template and smooth coordinates (then
    :func:`transfer` copies them as they are and ``modes`` play no part)."""
    return (source.symmetry == model.symmetry and torch.equal(source.template.cpu(), model.template.cpu())
            and torch.equal(source.faces.cpu(), model.faces.cpu())
            and source.config.mean_shape_smoothing == model.config.mean_shape_smoothing)


@torch.no_grad()
def transfer(model: ReconstructionNet, source: ReconstructionNet, modes: list | None = None) -> list[str]:
    """Initialise ``model`` from a trained ``source`` network (see the module docstring).

    Args:
        modes: how each mean shape is symmetrized onto the new group (:func:`symmetrize`'s ``mode``, one
            per mean shape; default "cent", the group average). The average blends each vertex with its
            mirror vertex, which shrinks thin parts when the learned vertices slid apart on the two
            sides; "l2r" / "r2l" keep one side's surface and mirror it
            (:func:`symnb.experiment.train.transfer_fitting` picks per mean shape from training masks).

    Returns:
        the names of ``model``'s parameters and buffers that were *not* copied (kept as initialised).
    Raises:
        ValueError: the two networks have different numbers of mean shapes, or ``modes`` another number.
    """
    if source.mean_shape.shape[0] != model.mean_shape.shape[0]:
        raise ValueError(f"cannot fine-tune: the source has {source.mean_shape.shape[0]} mean shapes, the "
                         f"model {model.mean_shape.shape[0]}")
    src = source.state_dict()
    own = model.state_dict()
    template_keys = {"mean_shape", "template", "faces", "verts_uvs", "faces_uvs", "kp_logits"}
    copied = {k: v for k, v in src.items() if k in own and k not in template_keys and v.shape == own[k].shape}
    model.load_state_dict(copied, strict=False)
    if same_representation(model, source):  # e.g. a texture variant: the parameters themselves, bit for bit
        model.mean_shape.copy_(source.mean_shape)
        return sorted(k for k in own if k not in copied and k != "mean_shape")
    full = source.full_mean_shapes().detach().cpu()
    mean = resample_on_template(full, source.template.cpu(), source.faces.cpu(), model.template.cpu())
    modes = modes or ["cent"] * len(mean)
    if len(modes) != len(mean):
        raise ValueError(f"transfer: {len(modes)} symmetrize modes for {len(mean)} mean shapes")
    smap = model.smap.to("cpu")  # onto the new group (identity: unchanged)
    mean = torch.stack([symmetrize(m, smap, mode) for m, mode in zip(mean, modes, strict=True)])
    model.set_mean_shapes(mean.to(model.template))
    return sorted(k for k in own if k not in copied and k != "mean_shape")
