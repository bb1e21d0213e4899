"""The symmetry groups of the canonical object frame: a registry from a group's name to its
matrices and its template family.

Canonical frame (shared with templates, data and model): main reflection plane x = 0, y up,
rotation axis y, origin on every symmetry element.

    ============  =====================================================  =====  ================
    name          group G (orthogonal 3x3 matrices)                      |G|    template
    ============  =====================================================  =====  ================
    none          {I}                                                    1      geodesic
    reflection    {I, x -> -x}                                           2      geodesic
    two_planes    {I, x -> -x, z -> -z, rotation by pi about y}          4      geodesic planes
    rotation n    {rotation by 2 pi k / n about y, k = 0..n-1}, n >= 2   n      geodesic (n = 5),
                                                                                geodesic planes
                                                                                (n = 2), else uv
    ============  =====================================================  =====  ================

A new group is one :func:`register_group` call with its matrices and its template (see
``symnb.symmetry.templates``); every map, symmetrization, error and parameter count then works for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .templates import sphere_template

_EYE = torch.eye(3, dtype=torch.float64)


def rotation_y(angle: float) -> torch.Tensor:
    """(3, 3) float64 rotation by `angle` about +y (right-handed: z -> x); entries that are 0 or
    +-1 in exact arithmetic (multiples of pi / 2) are set exactly."""
    c, s = (round(t) if abs(t - round(t)) < 1e-12 else t for t in (math.cos(angle), math.sin(angle)))
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def _mirror(axis: int) -> torch.Tensor:
    m = _EYE.clone()
    m[axis, axis] = -1.0
    return m


def reflection_matrix(normal) -> torch.Tensor:
    """(3, 3) float64 reflection I - 2 n n^T about the plane through the origin with normal `normal`."""
    n = torch.as_tensor(normal, dtype=torch.float64).reshape(3)
    if n.norm() == 0:
        raise ValueError("zero plane normal")
    n = n / n.norm()
    return _EYE - 2 * torch.outer(n, n)


@dataclass(frozen=True)
class Group:
    """One symmetry group of the registry.

    Attributes:
        name: registry key ("none", "reflection", ...).
        elements: order -> (matrices (G, 3, 3) float64 with the identity first, their names).
        template_family: order -> the template family invariant under the group ("geodesic",
            "geodesic planes" or "uv"; see ``symnb.symmetry.templates.sphere_template``).
        reduction: order -> factor by which the group divides the free parameters (ranks the
            representations in ``choose_representation``; inf for a continuous rotation).
        ordered: the group takes an order n (rotations).
        mirror: the group contains the main mirror x -> -x as its second element, so the one-plane
            modes "r2l" and per-slice lists are defined for it.
    """

    name: str
    elements: Callable[[int], tuple[torch.Tensor, list[str]]]
    template_family: Callable[[int], str]
    reduction: Callable[[int], float]
    ordered: bool = False
    mirror: bool = False


GROUPS: dict[str, Group] = {}


def register_group(group: Group) -> Group:
    """Add a group to the registry (a new symmetry representation is one such entry)."""
    GROUPS[group.name] = group
    return group


def _rotations(n: int) -> tuple[torch.Tensor, list[str]]:
    mats = [_EYE] + [rotation_y(2 * math.pi * k / n) for k in range(1, n)]
    return torch.stack(mats), ["identity"] + [f"rotation by 2 pi {k}/{n} about y" for k in range(1, n)]


register_group(Group("none", lambda n: (_EYE[None], ["identity"]), lambda n: "geodesic", lambda n: 1.0))
register_group(Group(
    "reflection", lambda n: (torch.stack([_EYE, _mirror(0)]), ["identity", "reflection x -> -x"]),
    lambda n: "geodesic", lambda n: 2.0, mirror=True))
register_group(Group(
    "two_planes",
    lambda n: (torch.stack([_EYE, _mirror(0), _mirror(2), _mirror(0) @ _mirror(2)]),
               ["identity", "reflection x -> -x", "reflection z -> -z", "rotation by pi about y"]),
    lambda n: "geodesic planes", lambda n: 4.0, mirror=True))
register_group(Group(
    "rotation", _rotations,
    lambda n: {5: "geodesic", 2: "geodesic planes"}.get(n, "uv"),
    lambda n: math.inf if n == 0 else float(n), ordered=True))

#: Names of the registered groups (the representations of ``choose_representation``).
GROUP_NAMES = tuple(GROUPS)


def parse_group(group, order: int | None = None, finite: bool = True) -> tuple[Group, int]:
    """(registry entry, order) of a group name or a ``Representation``; the order is 1 unless the
    group is ordered. ``finite=False`` also accepts a continuous rotation (order 0)."""
    if not isinstance(group, str):  # a symnb.symmetry.Representation
        order = group.order if order is None else order
        group = group.name
    if group not in GROUPS:
        raise ValueError(f"unknown representation {group!r}; use {tuple(GROUPS)}")
    entry = GROUPS[group]
    if not entry.ordered:
        return entry, 1
    if order is None:
        raise ValueError(f"representation {group!r} needs its order n >= 2")
    if order == 0 and finite:
        raise ValueError("a continuous rotation (order 0) has no finite group: use a finite order n >= 2 "
                         "(n_free_params(smap, 'rotation', order=0) counts its rings)")
    if order < 0 or order == 1:
        raise ValueError(f"rotation order must be >= 2, got {order}")
    return entry, int(order)


def symmetry_group(representation="reflection", order: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """The group of a representation: matrices (G, 3, 3) float64 (identity first) and their names.

    Args:
        representation: a registered name ("none", "reflection", "two_planes", "rotation") or a
            ``Representation``.
        order: n >= 2 for "rotation".
    """
    entry, n = parse_group(representation, order)
    return entry.elements(n)


def template_family(representation: str, order: int | None = None) -> str:
    """Which template family is invariant under a representation: "geodesic", "geodesic planes" or "uv"."""
    entry, n = parse_group(representation, order, finite=False)
    return entry.template_family(n)


def template_for(representation: str, n_verts: int = 642, order: int | None = None):
    """A sphere template of about `n_verts` invariant under a representation's symmetry group.

    * "none", "reflection", 5-fold "rotation": the geodesic sphere (mirror x = 0, 5-fold about y);
    * "two_planes", 2-fold "rotation": the geodesic sphere with mirrors x = 0, y = 0, z = 0;
    * other "rotation" orders n (and 0, continuous): a uv sphere whose meridian count is a
      multiple of lcm(2, n).

    Returns:
        verts (V, 3) float32, faces (F, 3) long.
    """
    family = template_family(representation, order)
    if family == "geodesic":
        return sphere_template(n_verts)
    if family == "geodesic planes":
        return sphere_template(n_verts, orientation="planes")
    return sphere_template(n_verts, family="uv", n_fold=max(int(order), 1))
