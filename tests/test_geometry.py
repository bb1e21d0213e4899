import math

import pytest
import pyvista as pv
import torch
from pytorch3d.ops import SubdivideMeshes
from pytorch3d.structures import Meshes

from symnb.geometry import (
    check_mesh,
    closest_point_on_triangles,
    face_areas_normals,
    from_pyvista,
    normalize,
    point_mesh_closest,
    sample_surface,
    subdivide_centroid,
    subdivide_loop,
    subdivide_midpoint,
)
from symnb.symmetry.templates import geodesic_sphere, sphere_template


def test_from_pyvista_triangulates_quads():
    v, f = from_pyvista(pv.Box(level=0))  # 6 quads
    assert v.dtype == torch.float32 and f.dtype == torch.int64
    assert f.shape == (12, 3) and len(v) == 8


def test_normalize():
    v = torch.randn(50, 3) * torch.tensor([3.0, 1.0, 0.5]) + 7
    n = normalize(v)
    assert torch.allclose((n.amax(0) - n.amin(0)).norm(), torch.tensor(1.0))
    assert torch.allclose(n.amax(0) + n.amin(0), torch.zeros(3), atol=1e-6)
    with pytest.raises(ValueError, match="degenerate"):
        normalize(torch.ones(4, 3))


def test_check_mesh_errors():
    v, f = geodesic_sphere(1)
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        check_mesh(v[:, :2], f)
    with pytest.raises(ValueError, match="no faces"):
        check_mesh(v, f[:0])
    with pytest.raises(ValueError, match="outside"):
        check_mesh(v, f + 100)


def test_closest_point_matches_dense_barycentric_search():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(300, 3, generator=g, dtype=torch.float64)
    t = torch.randn(300, 3, 3, generator=g, dtype=torch.float64)
    c = closest_point_on_triangles(p, t[:, 0], t[:, 1], t[:, 2])
    n = 120
    i, j = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    m = i + j <= n
    u, w = (i[m] / n).double(), (j[m] / n).double()
    grid = t[:, None, 0] + u[None, :, None] * (t[:, None, 1] - t[:, None, 0]) + w[None, :, None] * (
        t[:, None, 2] - t[:, None, 0]
    )
    brute = (grid - p[:, None]).norm(dim=-1).min(1).values
    d = (c - p).norm(dim=-1)
    assert (d <= brute + 1e-9).all()  # never worse than the grid
    assert (brute - d).max() < 0.05  # and the grid is close to exact


def test_point_mesh_closest_on_sphere():
    v, f = geodesic_sphere(8)
    p = torch.randn(200, 3, dtype=torch.float64) * 2
    d, c, face = point_mesh_closest(p, v, f)
    assert torch.allclose(d, (p.norm(dim=1) - 1).abs(), atol=0.01)  # inscribed polyhedron
    assert torch.allclose((c - p).norm(dim=1), d)


def test_sample_surface_is_area_weighted():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [3, 0, 0], [0, 3, 0]])
    f = torch.tensor([[0, 1, 2], [0, 3, 4]])  # areas 0.5 and 4.5
    pts, fidx = sample_surface(v, f, 20000, seed=1)
    frac = (fidx == 0).float().mean()
    assert abs(frac - 0.1) < 0.01
    assert (pts[:, 0] + pts[:, 1] <= 3 + 1e-5).all() and (pts >= -1e-6).all()
    pts2, _ = sample_surface(v, f, 20000, seed=1)
    assert torch.equal(pts, pts2)


def test_subdivide_midpoint_matches_pytorch3d():
    v, f = geodesic_sphere(2)
    v2, f2 = subdivide_midpoint(v, f)
    ref = SubdivideMeshes()(Meshes([v], [f]))
    assert torch.equal(v2, ref.verts_packed()) and torch.equal(f2, ref.faces_packed())
    assert len(v2) == len(v) + len(f) * 3 // 2 and len(f2) == 4 * len(f)


def test_subdivide_centroid():
    v, f = geodesic_sphere(2)
    v2, f2 = subdivide_centroid(v, f)
    assert len(v2) == len(v) + len(f) and len(f2) == 3 * len(f)
    a1, n1 = face_areas_normals(v, f)
    a2, n2 = face_areas_normals(v2, f2)
    assert torch.allclose(a1.sum(), a2.sum(), rtol=1e-5)  # flat split: same surface
    assert torch.allclose(n2, n1.repeat(3, 1), atol=1e-5)  # orientation kept


def _naive_loop(v, f):
    """Per-vertex / per-edge loops with Loop's masks (interior and boundary)."""
    V = len(v)
    edge_faces = {}
    for tri in f.tolist():
        for k in range(3):
            a, b = tri[k], tri[(k + 1) % 3]
            edge_faces.setdefault((min(a, b), max(a, b)), []).append(tri[(k + 2) % 3])
    edges = sorted(edge_faces)
    nbrs = {i: set() for i in range(V)}
    bnbrs = {i: [] for i in range(V)}
    for a, b in edges:
        nbrs[a].add(b)
        nbrs[b].add(a)
        if len(edge_faces[a, b]) == 1:
            bnbrs[a].append(b)
            bnbrs[b].append(a)
    even = []
    for i in range(V):
        if not nbrs[i]:
            even.append(v[i])
        elif bnbrs[i]:
            even.append(0.75 * v[i] + 0.125 * (v[bnbrs[i][0]] + v[bnbrs[i][1]]))
        else:
            n = len(nbrs[i])
            beta = (5 / 8 - (3 / 8 + math.cos(2 * math.pi / n) / 4) ** 2) / n
            even.append((1 - n * beta) * v[i] + beta * sum(v[j] for j in nbrs[i]))
    odd = []
    for a, b in edges:
        o = edge_faces[a, b]
        if len(o) == 1:
            odd.append((v[a] + v[b]) / 2)
        else:
            odd.append(3 / 8 * (v[a] + v[b]) + 1 / 8 * (v[o[0]] + v[o[1]]))
    return torch.stack(even + odd)


@pytest.mark.parametrize("open_surface", [False, True])
def test_subdivide_loop_matches_naive(open_surface):
    v, f = geodesic_sphere(2)
    v = v.double() * torch.tensor([1.0, 0.7, 1.3], dtype=torch.float64)
    if open_surface:
        f = f[v[f].mean(1)[:, 1] < 0.3]  # cut off the top: a boundary loop
    v2, f2 = subdivide_loop(v, f)
    assert len(f2) == 4 * len(f)
    used = torch.unique(f)
    ref = _naive_loop(v, f)
    assert torch.allclose(v2[used], ref[used], atol=1e-12)
    assert torch.allclose(v2[len(v):], ref[len(v):], atol=1e-12)


def test_loop_converges_to_closed_form_limit_positions():
    """Loop's limit position of a valence-n vertex is (1 - n chi) v + chi sum(nbrs),
    chi = 1 / (n + 3 / (8 beta)). For the unit icosahedron (n = 5, neighbours at cos = 1/sqrt 5)
    the original vertices converge to that radius, monotonically from above."""
    v, f = geodesic_sphere(1)  # icosahedron
    v = v.double()
    n = 5
    beta = (5 / 8 - (3 / 8 + math.cos(2 * math.pi / n) / 4) ** 2) / n
    chi = 1 / (n + 3 / (8 * beta))
    limit = (1 - n * chi) + chi * n / math.sqrt(5)
    gaps = []
    for _ in range(4):
        v, f = subdivide_loop(v, f)
        r = v[:12].norm(dim=1)
        assert torch.allclose(r, r[0].expand(12))
        gaps.append(float(r[0]) - limit)
    assert all(g > 0 for g in gaps) and all(b < a for a, b in zip(gaps, gaps[1:], strict=False))
    assert gaps[-1] < 0.005
    assert float(v.norm(dim=1).max()) < 1.0  # inside the convex polyhedron
    # a regular valence-6 grid of a plane stays flat
    g, gf = from_pyvista(pv.Plane(i_resolution=4, j_resolution=4))
    g2, _ = subdivide_loop(g, gf)
    assert torch.allclose(g2[:, 2], torch.zeros(len(g2)), atol=1e-6)


def test_subdivide_loop_differentiable():
    v, f = geodesic_sphere(1)
    v = v.double().requires_grad_()
    v2, _ = subdivide_loop(v, f)
    v2.sum().backward()
    assert torch.allclose(v.grad, torch.ones_like(v) * (len(v2) / len(v)), rtol=0.5)


def _folded_sphere():
    """A crumpled sphere as networks predict it (faces overlapping and folded over), and away from it a
    zero-area face (three collinear corners, zero normal) and a sliver (1e-12 high, its normal only
    roughly known), with points on the sphere and next to the two faces, whose closest face they are."""
    v, f = sphere_template(162)
    g = torch.Generator().manual_seed(1)
    v = v.double() * 0.3 + 0.08 * torch.randn(len(v), 3, generator=g, dtype=torch.float64)
    extra = torch.tensor([[2.0, 0, 0], [2.2, 0, 0], [2.4, 0, 0],  # collinear
                          [1.0, 1, 1], [1.3, 1.1, 0.9], [1.6, 1.2 + 1e-12, 0.8]], dtype=torch.float64)
    n = len(v)
    f = torch.cat([f, torch.tensor([[n, n + 1, n + 2], [n + 3, n + 4, n + 5]])])
    v = torch.cat([v, extra])
    on, _ = sample_surface(v, f, 150, seed=2)
    near = torch.cat([extra[[0, 1, 2]].mean(0).expand(20, 3), extra[[3, 4, 5]].mean(0).expand(20, 3)])
    near = near + 0.01 * torch.randn(near.shape, generator=g, dtype=torch.float64)
    return v, f, torch.cat([on, near])


@pytest.mark.parametrize("case", ["airplane", "folded"])
def test_triangle_index_matches_brute_force_including_far_points(case):
    from symnb.examples import example_mesh
    from symnb.geometry import TriangleIndex

    g = torch.Generator().manual_seed(0)
    if case == "airplane":
        v, f = example_mesh("airplane")
        v = v.double() / 1000
        jitter = 0.05 * torch.randn(100, 3, generator=g, dtype=torch.float64)
        near = v[torch.randint(len(v), (100,), generator=g)] + jitter
    else:
        v, f, near = _folded_sphere()
    far = 50 * torch.randn(200, 3, generator=g, dtype=torch.float64)  # loose upper bounds
    p = torch.cat([near, far])
    d, c, face = TriangleIndex(v, f).closest(p)
    t = v[f]
    if case == "folded":  # the points beside the zero-area face and the sliver are closest to them
        assert (face[-240:-220] == len(f) - 2).all() and (face[-220:-200] == len(f) - 1).all()
    brute = torch.stack([
        (closest_point_on_triangles(q[None], t[:, 0], t[:, 1], t[:, 2]) - q).norm(dim=-1).min() for q in p
    ])
    assert torch.allclose(d, brute, atol=1e-12)
    assert torch.allclose((c - p).norm(dim=-1), d, atol=1e-12)
    tf = t[face]
    assert torch.allclose(closest_point_on_triangles(p, tf[:, 0], tf[:, 1], tf[:, 2]), c, atol=1e-12)


def test_triangle_index_ignores_vertices_of_no_face():
    """A stray vertex (in no face) next to the query must not bound its distance to the surface."""
    from symnb.geometry import TriangleIndex

    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2]])
    d, c, face = TriangleIndex(v, f).closest(torch.tensor([[5.0, 5, 5.01], [0.2, 0.2, 1.0]]))
    expected = torch.tensor([float(torch.tensor([4.5, 4.5, 5.01]).norm()), 1.0], dtype=torch.float64)
    assert torch.allclose(d, expected)
    assert torch.allclose(c[0], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)) and (face == 0).all()


def _old_unique_edges(faces):
    """The hand-written formula _unique_edges replaced (torch.unique over sorted corner pairs)."""
    e = torch.stack([faces, faces.roll(-1, dims=1)], -1).reshape(-1, 2)
    edges, inv = torch.unique(e.sort(-1).values, dim=0, return_inverse=True)
    return edges, inv.reshape(-1, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unique_edges_from_meshes_equal_the_old_formula(dtype):
    from symnb.geometry import _unique_edges

    v, f = geodesic_sphere(3)
    g = torch.Generator().manual_seed(0)
    f = f[torch.randperm(len(f), generator=g)][: len(f) // 2]  # open surface, shuffled faces
    v = torch.cat([v, torch.zeros(3, 3)]).to(dtype)  # unused vertices
    edges, fe = _unique_edges(v, f)
    old_edges, old_fe = _old_unique_edges(f)
    assert torch.equal(edges, old_edges) and torch.equal(fe, old_fe)
    assert torch.equal(edges[fe[:, 0]], f[:, :2].sort(-1).values)  # edge k of face f = (f[k], f[k+1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_face_areas_normals_against_pytorch3d_and_the_cross_product(dtype):
    """Hand-written areas / normals (float64 kept) agree with Meshes' float32 kernel; that kernel
    casts float64 down, the reason face_areas_normals stays hand-written."""
    v, f = geodesic_sphere(2)
    g = torch.Generator().manual_seed(1)
    v = (v * (1 + 0.3 * torch.rand(len(v), 1, generator=g))).to(dtype)
    areas, normals = face_areas_normals(v, f)
    assert areas.dtype == dtype and normals.dtype == dtype
    a, b, c = v.double()[f].unbind(-2)
    cr = torch.cross(b - a, c - a, dim=-1)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(areas.double(), cr.norm(dim=-1) / 2, rtol=tol, atol=0)
    torch.testing.assert_close(normals.double(), cr / cr.norm(dim=-1, keepdim=True), rtol=0, atol=tol)
    mesh = Meshes([v], [f])
    assert mesh.faces_areas_packed().dtype == torch.float32  # PyTorch3D's kernel: float32 only
    torch.testing.assert_close(mesh.faces_areas_packed().double(), areas.double(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(mesh.faces_normals_packed().double(), normals.double(), rtol=0, atol=1e-5)
