from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from data_prep import make_dataset as md
from data_prep import views
from symnb.data import REQUIRED_FIELDS
from symnb.io import load_mesh

TINY = dict(classes=("car",), per_class=6, img_size=32, cad_per_class=2, face_budget=400,
            remesh_resolution=32, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_annotations(tmp_path):
    root = md.make_dataset(tmp_path / "ds", seed=0, **TINY)
    car = root / "car"
    ids = sorted(p.stem for p in (car / "annotations").glob("*.yaml"))
    assert len(ids) == 6
    for split in md.SPLITS:
        assert (car / f"car_{split}.txt").is_file() and (car / f"car_small_{split}.txt").is_file()
    listed = [i for s in md.SPLITS for i in (car / f"car_{s}.txt").read_text().split()]
    assert sorted(listed) == ids  # splits partition the ids
    small = (car / "car_small_train.txt").read_text().split()
    assert set(small) <= set((car / "car_train.txt").read_text().split()) and small
    for n in (1, 2):
        v, f = load_mesh(root / "CAD" / "car" / f"{n:02d}.off")
        lo, hi = v.min(0).values, v.max(0).values
        assert float((hi - lo).norm()) == pytest.approx(1.0, abs=1e-5)
    for i in ids:
        ann = yaml.safe_load((car / "annotations" / f"{i}.yaml").read_text())
        assert set(REQUIRED_FIELDS) <= set(ann)
        assert ann["pascal_class"] == "car" and ann["cad_idx"] in (1, 2)
        img = Image.open(car / "images" / ann["image_name"])
        mask = np.asarray(Image.open(car / "masks" / f"{i}.png"))
        assert img.size == (32, 32) and mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max(), ys.max()]
        E = np.asarray(ann["extrinsic"])
        np.testing.assert_allclose(E[:3, :3] @ E[:3, :3].T, np.eye(3), atol=1e-5)
        assert len(ann["kpoints_2d"]) == len(views.KEYPOINT_SPECS["car"])
    meta = md.load_json(root / "dataset.json")
    assert all(c["watertight_after"] for c in meta["classes"]["car"]["cad"])


def test_deterministic_for_a_seed(tmp_path):
    a = _files(md.make_dataset(tmp_path / "a", seed=3, **TINY))
    b = _files(md.make_dataset(tmp_path / "b", seed=3, **TINY))
    c = _files(md.make_dataset(tmp_path / "c", seed=4, **TINY))
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real = views.render_views

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "render_views", flaky)
    with pytest.raises(KeyboardInterrupt):
        md.make_dataset(tmp_path / "ds", seed=0, **TINY)
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor a temporary folder


def test_reuse_and_overwrite(tmp_path, monkeypatch):
    root = md.make_dataset(tmp_path / "ds", seed=0, **TINY)
    before = _files(root)

    def fail(*a, **k):
        raise AssertionError("should not render again")

    monkeypatch.setattr(views, "render_views", fail)
    assert md.make_dataset(tmp_path / "ds", seed=0, **TINY) == root  # same settings: reused
    with pytest.raises(ValueError, match="overwrite"):
        md.make_dataset(tmp_path / "ds", seed=1, **TINY)
    monkeypatch.undo()
    md.make_dataset(tmp_path / "ds", seed=1, overwrite=True, **TINY)
    assert _files(root) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    # same settings, other generator code: regenerated (a stale dataset is never reused)
    monkeypatch.setattr(md, "generator_hash", lambda: "other-code")
    md.make_dataset(tmp_path / "ds", seed=1, **TINY)
    assert md.load_json(root / "dataset.json")["generator_hash"] == "other-code"


def test_cli(tmp_path, capsys):
    out = md.main(["--out", str(tmp_path / "cli"), "--classes", "bottle", "--per-class", "3",
                   "--img-size", "32",
                   "--cad-per-class", "1", "--face-budget", "300", "--image-format", "png", "--no-progress",
                   "--occlusion-prob", "1"])
    assert "bottle: 3 images" in capsys.readouterr().out
    anns = [yaml.safe_load(p.read_text()) for p in (out / "bottle" / "annotations").glob("*.yaml")]
    assert all(a["image_name"].endswith(".png") and a["occluded"] == 1 for a in anns)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown classes"):
        md.make_dataset(tmp_path / "x", classes=("car", "unicorn"), progress=False)
    with pytest.raises(ValueError, match="image_format"):
        md.make_dataset(tmp_path / "x", classes=("car",), image_format="gif", progress=False)
    with pytest.raises(ValueError, match="none given"):
        md.make_dataset(tmp_path / "x", classes=(), progress=False)
    with pytest.raises(ValueError, match="DatasetConfig.per_class must be an integer"):
        md.make_dataset(tmp_path / "x", classes=("car",), per_class="ten", progress=False)
    with pytest.raises(ValueError, match="DatasetConfig.occlusion_prob must be >= 0 and <= 1"):
        md.make_dataset(tmp_path / "x", classes=("car",), occlusion_prob=1.5, progress=False)
    with pytest.raises(ValueError, match="leaves no CAD model for training"):  # before any folder is made
        md.make_dataset(tmp_path / "x", classes=("car",), cad_per_class=2, heldout_cads=2, progress=False)
    for bad, match in (({"occluded_test": -1}, "DatasetConfig.occluded_test must be >= 0"),
                       ({"seed": -1}, "DatasetConfig.seed must be >= 0"),
                       ({"split_fractions": (0.9, 0.5)}, r"DatasetConfig.split_fractions .* sum <= 1"),
                       ({"split_fractions": (-0.5, 0.2)}, r"DatasetConfig.split_fractions .* >= 0"),
                       ({"views": {"azimuth": [0, 90, 180]}}, r"ViewSettings.azimuth must be a range \(low")):
        with pytest.raises(ValueError, match=match):
            md.make_dataset(tmp_path / "x", classes=("car",), progress=False, **bad)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="ViewSettings.elevation must be a range"):
        md.make_dataset(tmp_path / "x", classes=("car",), views={"elevation": [40, -10]}, progress=False)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['zoom'\] in DatasetConfig.views"):
        md.make_dataset(tmp_path / "x", classes=("car",), views={"zoom": 2}, progress=False)
    assert md.DatasetConfig(views={"azimuth": [0, 90]}).views.azimuth == (0.0, 90.0)  # YAML lists
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError, match="busy.*without the .symnb-dataset.json marker"):
        md.make_dataset(tmp_path / "busy", classes=("car",), progress=False)


def test_photo_backgrounds(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    colour = np.array([10, 200, 30], np.uint8)
    Image.fromarray(np.broadcast_to(colour, (40, 70, 3)).copy()).save(photos / "field.png")
    root = md.make_dataset(tmp_path / "ds", classes=("bottle",), per_class=8, img_size=32, cad_per_class=1,
                           face_budget=300, remesh_resolution=32, backgrounds_dir=str(photos),
                           image_format="png", progress=False)
    kinds = []
    for p in (root / "bottle" / "annotations").glob("*.yaml"):
        ann = yaml.safe_load(p.read_text())
        kinds.append(ann["background"])
        if ann["background"] == "photo":
            img = np.asarray(Image.open(root / "bottle" / "images" / ann["image_name"]))
            mask = np.asarray(Image.open(root / "bottle" / "masks" / f"{p.stem}.png")) > 0
            assert np.abs(img[~mask].astype(int) - colour).max() <= 1
    assert "photo" in kinds and set(kinds) <= {"plain", "noise", "photo"}
    with pytest.raises(FileNotFoundError, match="no .jpg/.png photos"):
        md.make_dataset(tmp_path / "ds2", classes=("bottle",), backgrounds_dir=str(tmp_path / "ds"),
                        progress=False, per_class=1, img_size=32)


def test_weak_perspective_camera_draws_every_stored_mask(tmp_path):
    """The benchmark is rendered the way the network sees the world: every CAD model rendered
    through its annotation's weak-perspective camera matches its stored mask (IoU >= 0.98); the
    former true-perspective views (distance_scale 1) do not, so the check has teeth."""
    from data_prep.check import weak_perspective_iou

    kw = dict(classes=("aeroplane", "car"), per_class=10, img_size=64, cad_per_class=3, face_budget=400,
              remesh_resolution=32, progress=False, seed=0)
    weak = weak_perspective_iou(md.make_dataset(tmp_path / "weak", heldout_cads=1, **kw))
    assert len(weak) == 20 and weak.iou_weak.min() >= 0.98, weak.sort_values("iou_weak").head()
    persp = weak_perspective_iou(md.make_dataset(tmp_path / "persp", views={"distance_scale": 1.0}, **kw))
    assert persp.iou_weak.min() < 0.95


def test_heldout_cad_instances_are_a_separate_test_split(tmp_path):
    from symnb.data import Pascal3DDataset

    root = md.make_dataset(tmp_path / "ds", classes=("car",), per_class=12, img_size=32, cad_per_class=3,
                           heldout_cads=1, face_budget=400, remesh_resolution=32, progress=False, seed=0)
    seen = {int(Pascal3DDataset(root, "car", split)[i]["cad_idx"]) for split in ("train", "eval", "test")
            for i in range(len(Pascal3DDataset(root, "car", split)))}
    novel = Pascal3DDataset(root, "car", "test", index_name="novelcad")
    assert len(novel) == 4 and {int(novel[i]["cad_idx"]) for i in range(len(novel))} == {3}
    assert 3 not in seen and seen <= {1, 2}
    with pytest.raises(ValueError, match="heldout_cads"):
        md.make_dataset(tmp_path / "bad", classes=("car",), per_class=4, cad_per_class=2, heldout_cads=2,
                        progress=False)
