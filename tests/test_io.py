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


def test_off_header_on_one_line(tmp_path):
    (tmp_path / "t.off").write_text("OFF 3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    v, f = mio.load_mesh(tmp_path / "t.off")
    assert f.tolist() == [[0, 1, 2]]


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("trunc.off", "OFF\n4 2 0\n0 0 0\n1 0 0\n", "truncated"),
        ("head.off", "PLY\n3 1 0\n", "header"),
        ("range.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "out of range"),
        ("nan.obj", "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "NaN"),
        ("empty.obj", "# nothing\n", "no vertices"),
        ("bad.obj", "v 0 zero 0\n", "corrupt"),
        ("m.stl", "solid\n", "unsupported"),
    ],
)
def test_bad_files_name_the_file(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        mio.load_mesh(tmp_path / name)
    assert name in str(err.value)


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
