import numpy as np
import pytest
import pyvista as pv
import torch
from pytorch3d.utils import ico_sphere

from symnb import io as mio


@pytest.fixture
def sphere():
    m = ico_sphere(1)
    return m.verts_packed(), m.faces_packed()


@pytest.mark.parametrize("suffix", [".off", ".obj", ".ply"])
def test_roundtrip(tmp_path, sphere, suffix):
    v, f = sphere
    path = mio.save_mesh(tmp_path / f"m{suffix}", v, f, precision=7)
    v2, f2 = mio.load_mesh(path)
    assert v2.dtype == torch.float32 and f2.dtype == torch.int64
    assert torch.equal(f2, f)
    assert torch.allclose(v2, v, atol=1e-6)


@pytest.mark.parametrize("suffix", [".off", ".obj", ".ply"])
def test_roundtrip_float64_and_pytorch3d_writers(tmp_path, suffix):
    """float64 coordinates come back rounded to float32; files from PyTorch3D's writers read back."""
    from pytorch3d.io import IO
    from pytorch3d.structures import Meshes

    g = torch.Generator().manual_seed(0)
    v = torch.randn(50, 3, generator=g, dtype=torch.float64) * 10
    f = torch.randint(0, 50, (80, 3), generator=g)
    v2, f2 = mio.load_mesh(mio.save_mesh(tmp_path / f"m{suffix}", v, f, precision=9))
    assert torch.equal(f2, f) and torch.allclose(v2.double(), v, rtol=1e-6, atol=1e-6)
    IO().save_mesh(Meshes([v.float()], [f]), tmp_path / f"p3d{suffix}")
    v3, f3 = mio.load_mesh(tmp_path / f"p3d{suffix}")
    assert torch.equal(f3, f) and torch.allclose(v3.double(), v, atol=1e-4)


def test_ply_written_by_pyvista(tmp_path):
    """Binary PLY from a second writer (VTK) reads back to the same points and triangles."""
    s = pv.Sphere(theta_resolution=8, phi_resolution=6)
    s.save(tmp_path / "s.ply", binary=True)
    v, f = mio.load_mesh(tmp_path / "s.ply")
    np.testing.assert_allclose(v.numpy(), np.asarray(s.points), atol=1e-6)
    assert f.shape == (s.n_cells, 3)


def test_obj_polygons_and_slashes(tmp_path):
    (tmp_path / "q.obj").write_text(
        "# a unit square as one quad\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1 -1/1\n"
    )
    v, f = mio.load_mesh(tmp_path / "q.obj")
    assert v.shape == (4, 3)
    assert f.tolist() == [[0, 1, 2], [0, 2, 3]]  # fan triangulation, negative index -1 -> last vertex


def test_off_quads_and_mixed_polygons_are_fan_triangulated(tmp_path):
    (tmp_path / "q.off").write_text(
        "OFF\n5 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0 2 0\n4 0 1 2 3\n5 0 1 2 3 4\n"
    )
    v, f = mio.load_mesh(tmp_path / "q.off")
    assert v.shape == (5, 3)
    assert f.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 2, 3], [0, 3, 4]]


def test_ply_quads(tmp_path):
    (tmp_path / "q.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"
    )
    v, f = mio.load_mesh(tmp_path / "q.ply")
    assert v.shape == (4, 3) and f.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_obj_relative_indices_count_from_the_vertices_read_so_far(tmp_path):
    (tmp_path / "g.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\nv 0 0 1\nv 1 0 1\nv 0 1 1\nf -3 -2 -1\n"
    )
    _, f = mio.load_mesh(tmp_path / "g.obj")
    assert f.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_off_variants_and_trailing_comments(tmp_path):
    (tmp_path / "c.off").write_text(  # COFF (vertex colours), two counts, a comment after the faces
        "COFF\n3 1\n0 0 0 1 0 0 1\n1 0 0 1 0 0 1\n0 1 0 1 0 0 1\n3 0 1 2 # a face\n# end\n"
    )
    v, f = mio.load_mesh(tmp_path / "c.off")
    assert v.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]] and f.tolist() == [[0, 1, 2]]


def test_truncated_binary_ply(tmp_path):
    """Every truncation of a binary PLY (inside the header, the vertices or the faces) is a
    MeshFormatError naming the file, never a crash or a hang."""
    s = pv.Sphere(theta_resolution=8, phi_resolution=6)
    s.save(tmp_path / "s.ply", binary=True)
    data = (tmp_path / "s.ply").read_bytes()
    header_end = data.index(b"end_header")
    for cut in (3, header_end // 2, header_end + 20, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.ply").write_bytes(data[:cut])
        with pytest.raises(mio.MeshFormatError, match="truncated") as err:
            mio.load_mesh(tmp_path / "cut.ply")
        assert "cut.ply" in str(err.value)


def test_off_header_on_one_line(tmp_path):
    (tmp_path / "t.off").write_text("OFF 3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    v, f = mio.load_mesh(tmp_path / "t.off")
    assert f.tolist() == [[0, 1, 2]]


PLY_TRIANGLE_HEADER = ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                       "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
                       "end_header\n")


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("trunc.off", "OFF\n4 2 0\n0 0 0\n1 0 0\n", "truncated"),
        ("count.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n5 0 1 2\n", "line 6: face count 5"),
        ("count2.off", "OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n4 0 1 2\n", "line 8"),
        ("nan.off", "OFF\n3 1 0\n0 0 0\n1 inf 0\n0 1 0\n3 0 1 2\n", "NaN or inf"),
        ("empty.off", "", "empty"),
        ("blank.ply", "\n\n", "empty"),
        ("nocounts.off", "OFF\n# nothing else\n", "counts"),
        ("extra.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 1 2\n", "line 7"),
        ("range.ply", PLY_TRIANGLE_HEADER + "0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", "out of range"),
        ("nan.ply", PLY_TRIANGLE_HEADER + "0 0 nan\n1 0 0\n0 1 0\n3 0 1 2\n", "NaN"),
        ("trunc.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n", "truncated"),
        ("range.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", "out of range"),
        ("zero.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n", "line 4: OBJ vertex index 0"),
        ("head.off", "PLY\n3 1 0\n", "header"),
        ("range.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "out of range"),
        ("nan.obj", "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "NaN"),
        ("empty.obj", "# nothing\n", "no vertices"),
        ("bad.obj", "v 0 zero 0\n", "corrupt"),
        ("m.stl", "solid\n", "unsupported"),
        ("m.OFF.bak", "OFF\n", "unsupported"),
    ],
)
def test_bad_files_name_the_file(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(mio.MeshFormatError, match=match) as err:
        mio.load_mesh(tmp_path / name)
    assert isinstance(err.value, ValueError) and name in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.off"):
        mio.load_mesh(tmp_path / "nope.off")


def test_save_refuses_bad_input_and_is_atomic(tmp_path, sphere, monkeypatch):
    v, f = sphere
    path = mio.save_mesh(tmp_path / "m.off", v, f)
    before = path.read_text()
    bad = v.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        mio.save_mesh(path, bad, f)
    with pytest.raises(ValueError, match="out of range"):
        mio.save_mesh(path, v, f + len(v))
    with pytest.raises(ValueError, match="unsupported"):
        mio.save_mesh(tmp_path / "m.xyz", v, f)

    # a crash in the middle of writing leaves the previous file intact and no temporary file
    def boom(*a, **k):
        raise RuntimeError("disk full")

    import symnb.utils as utils

    real = utils.os.replace
    monkeypatch.setattr(utils.os, "replace", boom)
    with pytest.raises(RuntimeError):
        mio.save_mesh(path, v * 2, f)
    monkeypatch.setattr(utils.os, "replace", real)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.off"]
