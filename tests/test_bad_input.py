"""Bad input and untrusted files (issue 13), grouped by what would go wrong without the checks:
code execution, data loss, crash or hang, silent wrong results, unclear errors. Every case asserts
the error type and that the message names the file or the field."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from data_prep import cad, dataset_dir, views
from data_prep import make_dataset as md
from symnb import cli
from symnb.cli_errors import run_main
from symnb.config import parse_overrides
from symnb.data import BadSampleError, DataConfig, Pascal3DDataset, ToyDataset
from symnb.data.annotation import load_annotation
from symnb.experiment import ExperimentConfig, TrainConfig, ensure_dataset, train
from symnb.experiment.config import load_experiment
from symnb.io import MeshFormatError, load_mesh, save_mesh
from symnb.model import ModelConfig, export_mesh, load_model
from symnb.utils import atomic_write, load_yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(classes=("car",), per_class=6, img_size=32, cad_per_class=2, face_budget=400,
            remesh_resolution=32, progress=False)
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True))
V = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
F = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return md.make_dataset(tmp_path_factory.mktemp("bad") / "ds", seed=0, **TINY)


@pytest.fixture
def ds_copy(dataset, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(dataset, dst)
    ids = (dst / "car" / "car_train.txt").read_text().split()
    return dst, ids


class _Touch:
    """Unpickling this would create a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _evil_checkpoint(path: Path, marker: Path, legacy: bool) -> Path:
    state = {"config": {}, "experiment": {}, "model": {}, "payload": _Touch(marker)}
    if legacy:  # a plain (pre-zip) pickle
        path.write_bytes(pickle.dumps(state))
    else:
        torch.save(state, path)
    return path


def _tiny_cfg(out_dir) -> ExperimentConfig:
    return ExperimentConfig(name="tiny", out_dir=str(out_dir),
                            model=ModelConfig(img_size=32, template_verts=162, tex_size=16, deform_hidden=32),
                            train=TrainConfig(steps=2, batch_size=2, progress=False, device="cpu",
                                              val_every=0))


# ------------------------------------------------------------------------------ code execution


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
@pytest.mark.parametrize("entry", ["load_model", "resume"])
def test_crafted_checkpoint_never_runs_code(tmp_path, entry, legacy):
    marker = tmp_path / "pwned"
    ckpt = _evil_checkpoint(tmp_path / ("checkpoint.pt" if entry == "resume" else "model.pt"), marker, legacy)
    with pytest.raises(ValueError, match=r"checkpoint.pt|model.pt") as err:
        if entry == "load_model":
            load_model(ckpt)
        else:
            train(_tiny_cfg(tmp_path), dataset=ToyDataset(n=2, img_size=32))
    assert "not plain data" in str(err.value) and not marker.exists()
    if entry == "resume":
        assert "--fresh" in str(err.value)


def test_yaml_python_tags_never_run_code(ds_copy, tmp_path):
    dst, ids = ds_copy
    marker = tmp_path / "pwned"
    p = dst / "car" / "annotations" / f"{ids[0]}.yaml"
    p.write_text(f"image_name: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path "
                 f"['{marker}']]\n")
    with pytest.raises(BadSampleError, match=ids[0]):
        load_annotation(p)
    assert not marker.exists()


# -------------------------------------------------------------------------------------- data loss


@pytest.mark.parametrize("kind", ["notes_folder", "regular_file", "foreign_dataset_json", "fake_marker"])
def test_generator_never_replaces_what_it_did_not_write(tmp_path, kind):
    out = tmp_path / "out"
    if kind == "regular_file":
        out.write_text("my thesis")
    else:
        out.mkdir()
        name = {"notes_folder": "notes.txt", "foreign_dataset_json": "dataset.json"}.get(
            kind, dataset_dir.MARKER)
        (out / name).write_text('{"mine": 1}')
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(FileExistsError, match="out"):
        md.make_dataset(out, overwrite=True, **TINY)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing moved, deleted or left behind


def test_overwrite_replaces_only_our_dataset_and_cleans_leftovers(tmp_path):
    out = md.make_dataset(tmp_path / "ds", seed=0, **TINY)
    assert dataset_dir.is_ours(out)
    (tmp_path / ".ds.tmp-0123abcd").mkdir()  # left by a killed generation
    (tmp_path / ".ds.old-89abcdef").mkdir()
    (tmp_path / ".ds.notes").write_text("a user's file that only looks similar")
    with pytest.raises(ValueError, match="overwrite"):
        md.make_dataset(out, seed=1, **TINY)
    md.make_dataset(out, seed=1, overwrite=True, **TINY)
    assert dataset_dir.read_marker(out)["config"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds.notes", "ds"]


def test_concurrent_generations_with_other_settings_never_replace_each_other(tmp_path, monkeypatch):
    import fcntl

    release, entered, waiting, errors = threading.Event(), threading.Event(), threading.Event(), {}
    real_render, real_flock = views.render_views, fcntl.flock

    def slow_render(*a, **k):
        entered.set()
        release.wait(30)
        return real_render(*a, **k)

    def flock(fd, op):
        try:
            return real_flock(fd, op)
        except BlockingIOError:
            waiting.set()
            raise

    monkeypatch.setattr(views, "render_views", slow_render)
    monkeypatch.setattr(fcntl, "flock", flock)

    def gen(name, seed):
        try:
            md.make_dataset(tmp_path / "ds", seed=seed, overwrite=True, **TINY)
        except Exception as err:  # noqa: BLE001 - collected for the assertions
            errors[name] = err

    a = threading.Thread(target=gen, args=("a", 0))
    a.start()
    assert entered.wait(30)
    b = threading.Thread(target=gen, args=("b", 1))
    b.start()
    assert waiting.wait(30)  # b waits for a's lock
    release.set()
    a.join(60)
    b.join(60)
    assert "a" not in errors and isinstance(errors.get("b"), FileExistsError) and "ds" in str(errors["b"])
    assert dataset_dir.read_marker(tmp_path / "ds")["config"]["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize("case", ["generate_then_reuse", "foreign_dataset_json", "unknown_setting"])
def test_ensure_dataset_keeps_working_and_refuses_foreign_folders(tmp_path, case):
    root = tmp_path / "gen"
    gen = {k: v for k, v in TINY.items() if k not in ("classes", "progress", "img_size")}
    if case == "foreign_dataset_json":
        root.mkdir()
        (root / "dataset.json").write_text('{"my": "own data"}')
    if case == "unknown_setting":
        gen["bogus"] = 1
    cfg = ExperimentConfig(data=DataConfig(root=str(root), classes=("car",), generate=gen),
                           train=TrainConfig(progress=False))
    if case == "generate_then_reuse":
        assert ensure_dataset(cfg) == root and dataset_dir.is_ours(root)
        stamp = (root / "dataset.json").stat().st_mtime_ns
        assert ensure_dataset(cfg) == root and (root / "dataset.json").stat().st_mtime_ns == stamp
        return
    with pytest.raises(FileExistsError if case == "foreign_dataset_json" else ValueError,
                       match="gen" if case == "foreign_dataset_json" else "bogus"):
        ensure_dataset(cfg)
    assert case != "foreign_dataset_json" or (root / "dataset.json").read_text() == '{"my": "own data"}'


@pytest.mark.parametrize("user_file", ["car.obj", "car.mtl", "car.png"])
def test_export_never_replaces_user_files(tmp_path, user_file):
    (tmp_path / user_file).write_bytes(b"belongs to the user")
    tex, uvs = torch.rand(3, 8, 8), torch.rand(len(V), 2)
    with pytest.raises(FileExistsError, match=user_file):
        export_mesh(tmp_path / "car.obj", V, F, tex, uvs)
    assert (tmp_path / user_file).read_bytes() == b"belongs to the user"
    assert sorted(p.name for p in tmp_path.iterdir()) == [user_file]
    export_mesh(tmp_path / "car.obj", V, F, tex, uvs, overwrite=True)  # explicit: replaced
    export_mesh(tmp_path / "car.obj", V * 2, F, tex, uvs)  # ours now: re-export replaces silently
    assert sorted(p.name for p in tmp_path.iterdir()) == ["car.mtl", "car.obj", "car.png"]


@pytest.mark.parametrize("writer", ["save_mesh", "export_ply", "cad_cli"])
def test_mesh_writers_never_replace_user_files(tmp_path, writer):
    target = tmp_path / ("out.off" if writer == "save_mesh" else "out.ply")
    target.write_text("user data")
    with pytest.raises(FileExistsError, match="out"):
        if writer == "save_mesh":
            save_mesh(target, V, F)
        elif writer == "export_ply":
            export_mesh(target, V, F)
        else:  # refused before any remeshing
            save_mesh(tmp_path / "in.off", V, F)
            cad.main([str(tmp_path / "in.off"), str(target), "--resolution", "8"])
    assert target.read_text() == "user data"


def test_atomic_write_cleans_up_and_follows_the_umask(tmp_path):
    target = tmp_path / "f.txt"
    for exc in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc), atomic_write(target) as f:
            f.write("half")
            raise exc
    assert list(tmp_path.iterdir()) == []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale, live = tmp_path / f".f.txt.{dead}-abc123.tmp", tmp_path / f".f.txt.{os.getpid()}-def456.tmp"
    for p in (stale, live):
        p.write_text("x")
        os.utime(p, (time.time() - 600,) * 2)
    old = os.umask(0o027)
    try:
        with atomic_write(target) as f:
            f.write("ok")
    finally:
        os.umask(old)
    assert oct(target.stat().st_mode & 0o777) == oct(0o640) and target.read_text() == "ok"
    assert not stale.exists() and live.exists()  # a running process's temporary file is kept


# --------------------------------------------------------------------------------- crash or hang

PLY_CUTS = [0.99, 0.5, 0.2]


@pytest.mark.parametrize("cut", PLY_CUTS + ["header"])
def test_truncated_binary_ply_is_a_clear_error(tmp_path, cut):
    from pytorch3d.io import save_ply

    save_ply(tmp_path / "full.ply", torch.rand(50, 3), torch.randint(0, 50, (80, 3)), ascii=False)
    data = (tmp_path / "full.ply").read_bytes()
    end = data.index(b"end_header")
    keep = end if cut == "header" else max(end + 12, int(cut * len(data)))
    (tmp_path / "t.ply").write_bytes(data[:keep])
    with pytest.raises(MeshFormatError, match=r"t\.ply.*(truncated|corrupt)"):
        load_mesh(tmp_path / "t.ply")


@pytest.mark.parametrize("where", ["annotation", "config"])
def test_alias_bomb_is_refused_at_once(ds_copy, tmp_path, where):
    dst, ids = ds_copy
    p = dst / "car" / "annotations" / f"{ids[0]}.yaml" if where == "annotation" else tmp_path / "bomb.yaml"
    p.write_text(BOMB)
    t0 = time.perf_counter()
    with pytest.raises(BadSampleError if where == "annotation" else ValueError, match=rf"{p.name}.*alias"):
        load_annotation(p) if where == "annotation" else load_yaml(p)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("case", ["huge_counts", "oversized_yaml", "huge_bbox", "huge_image", "huge_remesh"])
def test_inputs_that_would_exhaust_memory_or_time(ds_copy, case):
    dst, ids = ds_copy
    ann = dst / "car" / "annotations" / f"{ids[0]}.yaml"
    t0 = time.perf_counter()
    if case == "huge_counts":
        (dst / "m.off").write_text("OFF\n1000000000 1000000000 0\n0 0 0\n")
        with pytest.raises(MeshFormatError, match=r"m\.off.*truncated"):
            load_mesh(dst / "m.off")
    elif case == "oversized_yaml":
        ann.write_text("image_name: x\n" + "# padding\n" * 50_000)
        with pytest.raises(BadSampleError, match=rf"{ids[0]}.*bytes"):
            load_annotation(ann)
    elif case == "huge_bbox":
        _edit(ann, bbox=[-1e7, -1e7, 1e7, 1e7])
        with pytest.raises(BadSampleError, match=rf"{ids[0]}.*'bbox'"):
            load_annotation(ann)
    elif case == "huge_image":
        with pytest.raises(ValueError, match="img_size"):
            md.make_dataset(dst / "big", **{**TINY, "img_size": 100_000})
    else:
        with pytest.raises(ValueError, match="resolution"):
            cad.CleanupSettings(resolution=100_000)
    assert time.perf_counter() - t0 < 2.0


# ------------------------------------------------------------------------ silent wrong results


@pytest.mark.parametrize("section,key,value", [
    ("train", "steps", -5), ("train", "steps", 0), ("train", "batch_size", -2), ("train", "batch_size", 0),
    ("train", "ckpt_every", 0), ("train", "log_every", 0), ("model", "n_shapes", 0),
    ("train", "render_camera", "bogus"), ("model", "symmetry", "mirror"), ("data", "classes", 3),
])
def test_bad_config_values_name_the_field(tmp_path, section, key, value):
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump({section: {key: value}}))
    with pytest.raises(ValueError, match=key):
        load_experiment(p)


@pytest.mark.parametrize("item", ["train.steps=[1", "train.steps=*x", "train.steps", "train.steps=-3"])
def test_bad_command_line_overrides_name_the_override(item):
    with pytest.raises(ValueError, match=r"train\.steps|steps"):
        ExperimentConfig.from_dict(parse_overrides([item]))


def test_exponent_notation_is_a_number_in_files_and_overrides(tmp_path):
    """PyYAML reads ``3e-4`` (no decimal point) as a string; a float field takes it as YAML 1.2 does."""
    p = tmp_path / "exp.yaml"
    p.write_text("train: {lr: 3e-4, mean_shape_lr_scale: 1E+1}\n")
    cfg = load_experiment(p, overrides=parse_overrides(["loss.deformation=5e-2", "train.min_lr=2.5e-1"]))
    assert (cfg.train.lr, cfg.train.mean_shape_lr_scale, cfg.train.min_lr) == (3e-4, 10.0, 0.25)
    assert cfg.loss.deformation == 0.05 and isinstance(cfg.train.lr, float)
    with pytest.raises(ValueError, match=r"TrainConfig\.lr must be a number, got '3e-4x'"):
        ExperimentConfig.from_dict(parse_overrides(["train.lr=3e-4x"]))


def test_single_class_name_is_one_class(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("data: {classes: car}\n")
    assert load_experiment(p).data.classes == ("car",)


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    torch.save({"experiment": {"train": {"lr": 123.0}}, "model": {}}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"checkpoint.pt.*another config.*--fresh"):
        train(_tiny_cfg(tmp_path), dataset=ToyDataset(n=2, img_size=32))


def _edit(path: Path, **fields):
    ann = yaml.safe_load(path.read_text())
    ann.update(fields)
    path.write_text(yaml.safe_dump(ann))


def _rot(scale=1.0, mirror=False, tz=None):
    def f(ann):
        E = np.asarray(ann["extrinsic"], dtype=float)
        E[:3, :3] *= scale
        if mirror:
            E[:3, 0] *= -1
        if tz is not None:
            E[2, 3] = tz
        return {"extrinsic": E.tolist()}
    return f


def _k(i: int, j: int, value: float):
    def f(ann):
        K = np.asarray(ann["intrinsic"], dtype=float)
        K[i, j] = value
        return {"intrinsic": K.tolist()}
    return f


ANNOTATION_CASES = {
    "zero_rotation": ("extrinsic", _rot(scale=0.0)), "scaled_rotation": ("extrinsic", _rot(scale=2.0)),
    "mirror_rotation": ("extrinsic", _rot(mirror=True)), "behind_camera": ("extrinsic", _rot(tz=-2.0)),
    "extrinsic_shape": ("extrinsic", {"extrinsic": [[1, 0], [0, 1]]}),
    "focal_zero": ("intrinsic", _k(0, 0, 0.0)), "focal_negative": ("intrinsic", _k(1, 1, -5.0)),
    "K_last_row": ("intrinsic", _k(2, 2, 0.0)), "K_nan": ("intrinsic", _k(0, 2, float("nan"))),
    "bbox_off_image": ("bbox", {"bbox": [100.0, 100.0, 120.0, 120.0]}),
    "bbox_negative": ("bbox", {"bbox": [-40.0, -40.0, -10.0, -10.0]}),
    "bbox_reversed": ("bbox", {"bbox": [20.0, 20.0, 10.0, 10.0]}), "bbox_3": ("bbox", {"bbox": [1, 2, 3]}),
    "cad_idx_abc": ("cad_idx", {"cad_idx": "abc"}), "cad_idx_0": ("cad_idx", {"cad_idx": 0}),
    "cad_idx_frac": ("cad_idx", {"cad_idx": 1.5}),
    "image_size_64": ("image_size", {"image_size": 64}), "image_size_1": ("image_size", {"image_size": [64]}),
    "image_size_text": ("image_size", {"image_size": ["a", "b"]}),
    "image_size_zero": ("image_size", {"image_size": [0, 32]}),
    "image_name_up": ("image_name", {"image_name": "../../../../etc/passwd"}),
    "image_name_abs": ("image_name", {"image_name": "/etc/passwd"}),
    "image_name_win": ("image_name", {"image_name": "C:\\Windows\\win.ini"}),
    "image_name_empty": ("image_name", {"image_name": ""}),
    "image_name_int": ("image_name", {"image_name": 5}),
    "kp_two_columns": ("kpoints_2d", {"kpoints_2d": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]}),
    "kp_visibility": ("kpoints_2d", {"kpoints_2d": [[1.0, 2.0, 2.0]]}),
    "kp_text": ("kpoints_2d", {"kpoints_2d": "abc"}), "occluded_text": ("occluded", {"occluded": "yes"}),
    "unknown_class": ("pascal_class", {"pascal_class": "spaceship"}),
}


@pytest.mark.parametrize("case", list(ANNOTATION_CASES))
def test_bad_annotation_names_file_and_field(ds_copy, case):
    dst, ids = ds_copy
    field, change = ANNOTATION_CASES[case]
    p = dst / "car" / "annotations" / f"{ids[0]}.yaml"
    _edit(p, **(change(yaml.safe_load(p.read_text())) if callable(change) else change))
    with pytest.raises(BadSampleError, match=rf"{ids[0]}\.yaml: field '{field}'"):
        load_annotation(p)
    ds = Pascal3DDataset(dst, "car", "train", img_size=32)
    with pytest.raises(BadSampleError, match=rf"{ids[0]}\.yaml"):
        ds[ds.items.index(("car", ids[0]))]


def test_skip_bad_checks_everything_getitem_needs(ds_copy):
    dst, ids = ds_copy
    bad = {ids[0]: {"cad_idx": "abc"}, ids[1]: {"bbox": [100.0, 100.0, 120.0, 120.0]},
           ids[2]: {"kpoints_2d": [[1.0, 2.0, 1.0]]}}  # fewer keypoints than keypoints.json names
    for i, fields in bad.items():
        _edit(dst / "car" / "annotations" / f"{i}.yaml", **fields)
    ds = Pascal3DDataset(dst, "car", "train", img_size=32, skip_bad=True, flip=True, flip_prob=1.0)
    assert {s.split("/")[1] for s, _ in ds.skipped} == set(bad) and len(ds) == len(ids) - 3
    assert all(ds[k]["mask"].sum() > 0 for k in range(len(ds)))  # nothing left that stops training


MESH_CASES = {
    "five.off": ("OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n5 0 1 2\n", r"line 7.*face count 5"),
    "two.off": ("OFF\n3 1 0\n0 0 0\n1 0 0\n1 1 0\n2 0 1\n", "corners"),
    "range.off": ("OFF\n3 1 0\n0 0 0\n1 0 0\n1 1 0\n3 0 1 7\n", "out of range"),
    "nan.off": ("OFF\n3 1 0\nnan 0 0\n1 0 0\n1 1 0\n3 0 1 2\n", "NaN"),
    "short.off": ("OFF\n3 2 0\n0 0 0\n1 0 0\n1 1 0\n3 0 1 2\n", "truncated"),
    "zero.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n", "index 0"),
    "range.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "out of range"),
    "range.ply": ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                  "property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
                  "0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n", "out of range"),
    "empty.off": ("", "empty"), "empty.ply": ("\n", "empty"), "mesh.stl": ("solid x\n", "unsupported"),
}


@pytest.mark.parametrize("name", list(MESH_CASES))
def test_bad_mesh_files_name_the_file(tmp_path, name):
    text, msg = MESH_CASES[name]
    (tmp_path / name).write_text(text)
    with pytest.raises(MeshFormatError, match=rf"{name}.*{msg}"):
        load_mesh(tmp_path / name)


@pytest.mark.parametrize("n", [4, 5])
def test_off_polygons_are_fan_triangulated(tmp_path, n):
    ring = [(np.cos(a), np.sin(a), 0.0) for a in np.linspace(0, 2 * np.pi, n, endpoint=False)]
    body = "".join(f"{x} {y} {z}\n" for x, y, z in ring)
    (tmp_path / "p.off").write_text(f"OFF\n{n} 1 0\n{body}{n} {' '.join(map(str, range(n)))}\n")
    _, f = load_mesh(tmp_path / "p.off")
    assert f.tolist() == [[0, k, k + 1] for k in range(1, n - 1)]


@pytest.mark.parametrize("case", ["nan", "inf", "too_large", "negative"])
@pytest.mark.parametrize("writer", ["save_mesh", "export_mesh"])
def test_writers_refuse_broken_meshes(tmp_path, writer, case):
    v, f = V.clone(), F.clone()
    if case in ("nan", "inf"):
        v[1, 2] = float(case)
    else:
        f[0, 1] = 4 if case == "too_large" else -1
    path = tmp_path / "m.obj"
    with pytest.raises(ValueError, match=r"m\.obj.*(NaN|out of range)"):
        save_mesh(path, v, f) if writer == "save_mesh" else export_mesh(path, v, f)
    assert not path.exists()


# ------------------------------------------------------------------------------- unclear errors


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04trunc", b"hello world"], ids=["empty", "zip", "text"])
def test_unreadable_model_and_training_checkpoints(tmp_path, content):
    (tmp_path / "model.pt").write_bytes(content)
    with pytest.raises(ValueError, match=r"model\.pt"):
        load_model(tmp_path / "model.pt")
    (tmp_path / "checkpoint.pt").write_bytes(content)
    with pytest.raises(ValueError, match=r"checkpoint\.pt.*--fresh"):
        train(_tiny_cfg(tmp_path), dataset=ToyDataset(n=2, img_size=32))


def test_cad_cli_rejects_bad_output_and_hints_before_remeshing(tmp_path):
    save_mesh(tmp_path / "in.off", V, F)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"out\.stl"):
        cad.main([str(tmp_path / "in.off"), str(tmp_path / "out.stl")])
    with pytest.raises(ValueError, match=r"in\.off.*up direction"):
        cad.main([str(tmp_path / "in.off"), str(tmp_path / "out.off"), "--up", "0", "0", "0"])
    flat = tmp_path / "flat.off"
    save_mesh(flat, V[:3], F[:1])
    with pytest.raises(ValueError, match=r"flat\.off.*no solid"):
        cad.main([str(flat), str(tmp_path / "out.off"), "--resolution", "16"])
    assert time.perf_counter() - t0 < 10 and not (tmp_path / "out.off").exists()


def test_symnb_command_in_process(tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(b"")
    assert cli.main(["evaluate", str(tmp_path / "model.pt"), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "model.pt" in err and "--fresh" not in err
    with pytest.raises(ValueError, match=r"model\.pt"):  # --debug: the exception (and traceback) itself
        cli.main(["evaluate", str(tmp_path / "model.pt"), str(tmp_path), "--debug"])
    assert run_main(lambda argv: (_ for _ in ()).throw(KeyboardInterrupt), []) == 130


def _run(*args, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("entry", ["make_dataset", "cad", "demo", "symnb"])
def test_command_line_user_errors_are_one_line_exit_2(tmp_path, entry):
    (tmp_path / "notes").write_text("mine")
    (tmp_path / "five.off").write_text(MESH_CASES["five.off"][0])
    (tmp_path / "bomb.yaml").write_text(BOMB)
    (tmp_path / "model.pt").write_bytes(b"")
    args, name = {
        "make_dataset": (["-m", "data_prep.make_dataset", "--out", "notes", "--overwrite"], "notes"),
        "cad": (["-m", "data_prep.cad", "five.off", "out.obj"], "five.off"),
        "demo": (["-m", "symnb.demo", "--config", "bomb.yaml"], "bomb.yaml"),
        "symnb": (["-m", "symnb.cli", "evaluate", "model.pt", "."], "model.pt"),
    }[entry]
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], r.stderr
    assert (tmp_path / "notes").read_text() == "mine"
