"""Texture fidelity, artefact metrics, and the generator's ground-truth textures and occluded split."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from pytorch3d.transforms import quaternion_to_matrix

from data_prep import make_dataset as md
from symnb.camera import project, viewpoint_angles
from symnb.data import Pascal3DDataset, ToyDataset, collate
from symnb.experiment.artefacts import artefact_metrics, artefact_table
from symnb.experiment.fidelity import (
    PSNR_MAX,
    image_metrics,
    input_view_gain,
    masked_psnr,
    registered_by_annotation,
    render_vertex_colours,
    texture_fidelity,
    view_camera,
)
from symnb.model import ModelConfig, ReconstructionNet
from symnb.symmetry.templates import sphere_template

TINY = dict(classes=("car",), per_class=12, img_size=64, cad_per_class=2, face_budget=400,
            remesh_resolution=32, image_format="png", progress=False, seed=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The same tiny dataset without and with occluded copies of 2 test images."""
    tmp = tmp_path_factory.mktemp("fidelity")
    return md.make_dataset(tmp / "clean", **TINY), md.make_dataset(tmp / "occ", occluded_test=2, **TINY)


@pytest.fixture(scope="module")
def toy():
    return ToyDataset(n=2, img_size=48, seed=3)


def _camera(item):
    return item["scale"][None], item["trans"][None], item["quat"][None]


def _colours(v, symmetric=True):
    x = v[:, 0].abs() if symmetric else v[:, 0]
    return torch.stack([0.5 + 0.4 * torch.sin(12 * x), 0.5 + 0.4 * torch.cos(9 * v[:, 1]),
                        0.5 + 0.4 * torch.sin(7 * v[:, 2] + 4 * x)], -1)


class _Oracle(torch.nn.Module):
    """A "network" predicting a fixed mesh with a UV image that reproduces per-vertex colours exactly:
    face k owns a 2x2 texel block, its corners sit on three texel centres and the fourth texel is
    c1 + c2 - c0, so bilinear sampling inside the face equals barycentric interpolation."""

    def __init__(self, verts, faces, colours):
        super().__init__()
        n = len(faces)
        T = 4
        while (T // 2) * T < n:
            T *= 2
        H, W = T, 2 * T
        k = torch.arange(n)
        r0, c0 = 2 * (k // T), 2 * (k % T)
        c = colours[faces]  # (F, 3 corners, 3)
        img = torch.zeros(H, W, 3)
        img[r0, c0], img[r0, c0 + 1], img[r0 + 1, c0] = c[:, 0], c[:, 1], c[:, 2]
        img[r0 + 1, c0 + 1] = c[:, 1] + c[:, 2] - c[:, 0]
        rows, cols = torch.stack([r0, r0, r0 + 1], 1), torch.stack([c0, c0 + 1, c0], 1)
        uv = torch.stack([cols / (W - 1), 1 - rows / (H - 1)], -1).reshape(-1, 2)  # align_corners, v up
        self.register_buffer("template", verts.float())
        self.faces, self.uv, self.image = faces, uv.float(), img.permute(2, 0, 1)[None]

    def reconstruct(self, images):
        B = len(images)
        return {"verts": self.template[None].expand(B, -1, -1), "faces": self.faces,
                "texture": self.image.expand(B, -1, -1, -1), "verts_uvs": self.uv,
                "faces_uvs": torch.arange(3 * len(self.faces)).reshape(-1, 3)}


# ---------------------------------------------------------------------------- metrics on renders


def test_image_metrics_identical_constant_and_empty(toy):
    v, f = toy.cad_mesh("toy", 1)
    gt, mask = render_vertex_colours([(v, f)], [_colours(v)], _camera(toy[0]), 48, "albedo")
    same = image_metrics(gt[0], gt[0], mask[0], mask[0])
    assert same["psnr"] == PSNR_MAX and same["l1"] == 0 and same["ssim"] == pytest.approx(1.0)
    assert same["mask_iou"] == 1.0 and same["gt_pixels"] == int(mask.sum()) > 100
    grey = torch.full_like(gt[0], 0.5) * mask[0]
    worse = image_metrics(gt[0], grey, mask[0], mask[0])
    assert worse["psnr"] < 25 and worse["l1"] > 0.05 and worse["ssim"] < 0.9
    empty = image_metrics(gt[0], gt[0], torch.zeros_like(mask[0]), torch.zeros_like(mask[0]))
    assert all(math.isnan(empty[k]) for k in ("psnr", "ssim", "l1", "mask_iou"))


def test_masked_psnr_known_values():
    target = torch.full((3, 50), 0.6)
    assert masked_psnr(torch.full((3, 50), 0.5), target) == pytest.approx(20.0)  # MSE 0.01
    assert masked_psnr(target, target) == PSNR_MAX
    assert math.isnan(masked_psnr(target[:, :0], target[:, :0]))
    half = torch.cat([torch.full((3, 25), 0.5), torch.full((3, 25), 0.7)], 1)  # MSE 0.01 again
    assert masked_psnr(half, target) == pytest.approx(20.0)


def test_mirror_view_of_a_symmetric_object_is_the_input_flipped(toy):
    v, f = toy.cad_mesh("toy", 1)  # an ellipsoid symmetric about x = 0
    cam = _camera(toy[0])
    for symmetric in (True, False):
        col = [_colours(v, symmetric)]
        a, ma = render_vertex_colours([(v, f)], col, cam, 48, "albedo")
        b, mb = render_vertex_colours([(v, f)], col, view_camera(*cam, "mirror"), 48, "albedo")
        assert (ma.flip(-1) != mb).float().mean() < 0.01  # the same silhouette, flipped
        err = (a.flip(-1) - b).abs().sum(1)[ma.flip(-1) & mb].mean()
        assert (err < 0.01) if symmetric else (err > 0.05)


def test_azimuth_views_turn_the_camera_about_the_up_axis(toy):
    quat = torch.stack([toy[i]["quat"] for i in range(2)])
    base = viewpoint_angles(quaternion_to_matrix(quat))
    for view, deg in (("az+90", 90.0), ("az-90", -90.0), ("az+30", 30.0)):
        _, _, q = view_camera(torch.ones(2), torch.zeros(2, 2), quat, view)
        vp = viewpoint_angles(quaternion_to_matrix(q))
        turned = (vp[:, 0] - base[:, 0] - deg + 180) % 360 - 180
        assert torch.allclose(turned, torch.zeros(2, dtype=turned.dtype), atol=1e-3)
        assert torch.allclose(vp[:, 1:], base[:, 1:], atol=1e-3)  # elevation and roll unchanged
    with pytest.raises(ValueError, match="view"):
        view_camera(torch.ones(2), torch.zeros(2, 2), quat, "side")


# ---------------------------------------------------------------------------- artefacts


def test_artefact_metrics_smooth_noisy_folded_and_asymmetric():
    g = torch.Generator().manual_seed(0)
    v, f = sphere_template(642)
    v = v * 0.5
    smooth = artefact_metrics(v, f, n_samples=2000)
    assert smooth["self_intersections"] == 0 and smooth["symmetry_error"] < 0.02
    assert smooth["normal_consistency"] > 0.97 and smooth["roughness"] < 0.1
    noisy = artefact_metrics(v * (1 + 0.05 * torch.randn(len(v), 1, generator=g)), f, n_samples=2000)
    assert noisy["roughness"] > 2 * smooth["roughness"]
    assert noisy["normal_consistency"] < smooth["normal_consistency"] - 0.02
    folded = v.clone()  # the x > 0 half pushed through the x < 0 half
    folded[:, 0] = torch.where(v[:, 0] > 0, -0.5 * v[:, 0] - 0.05, v[:, 0])
    assert artefact_metrics(folded, f, n_samples=2000)["self_intersections"] > 0.05
    bump = v + 0.4 * torch.exp(-((v - torch.tensor([0.3, 0.2, 0.3])) ** 2).sum(1, keepdim=True) / 0.02) * v
    assert artefact_metrics(bump, f, n_samples=2000)["symmetry_error"] > 0.05


def test_artefact_table_before_and_after_symmetrization(toy):
    model = ReconstructionNet(ModelConfig(img_size=48, template_verts=162, tex_size=16, deform_hidden=32,
                                          n_feat=32))
    with torch.no_grad():
        model.deform.out.weight.normal_(0, 0.5)  # an asymmetric prediction
    raw = artefact_table(model, toy, n_samples=1000)
    cent = artefact_table(model, toy, symmetrize="cent", n_samples=1000)
    assert len(raw) == 2 and list(cent.symmetrize) == ["cent", "cent"]
    assert (raw.symmetry_error > 0.02).all() and (cent.symmetry_error < 0.01).all()
    with pytest.raises(ValueError, match="symmetrize"):
        artefact_table(model, toy, symmetrize="best")


# ---------------------------------------------------------------------------- generated data


def test_generator_writes_textures_and_an_occluded_test_split(data):
    clean, occ = data
    a = {str(p.relative_to(clean)): p.read_bytes() for p in clean.rglob("*") if p.is_file()}
    b = {str(p.relative_to(occ)): p.read_bytes() for p in occ.rglob("*") if p.is_file()}
    extra = sorted(set(b) - set(a))
    meta = ("dataset.json", ".symnb-dataset.json")  # the settings (and the folder's marker)
    assert all(b[k] == a[k] for k in a if k not in meta)  # the copies change no other file
    assert "occluded_test" not in md.load_json(clean / "dataset.json")["config"]
    test_ids = (occ / "car" / "car_test.txt").read_text().split()
    copies = (occ / "car" / "car_occluded_test.txt").read_text().split()
    assert copies == [f"{i}_occ" for i in test_ids[:2]] and len(extra) == 1 + 4 * len(copies)
    ds = Pascal3DDataset(occ, "car", "test", index_name="occluded", img_size=64)
    ref = Pascal3DDataset(occ, "car", "test", img_size=64)
    for j, i in enumerate(copies):
        ann = yaml.safe_load((occ / "car" / "annotations" / f"{i}.yaml").read_text())
        assert ann["occluded"] == 1 and ds[j]["id"] == i and int(ds[j]["cad_idx"]) == int(ref[j]["cad_idx"])
        assert torch.equal(ds[j]["mask"], ref[j]["mask"])  # amodal: the clean image's mask
        img, orig = (np.asarray(Image.open(occ / "car" / "images" / f"{x}.png"), dtype=int)
                     for x in (i, test_ids[j]))
        x1, y1, x2, y2 = (int(c) for c in ann["bbox"])
        outside = np.ones(img.shape[:2], bool)
        outside[y1:y2 + 1, x1:x2 + 1] = False
        assert (img != orig).any() and (img[outside] == orig[outside]).all()  # an occluder inside the box
        assert torch.equal(ds.cad_texture("car", i), ref.cad_texture("car", test_ids[j]))
    for split in md.SPLITS:
        d = Pascal3DDataset(clean, "car", split)
        for k, (c, i) in enumerate(d.items):
            t = d.cad_texture(c, i)
            assert t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
            assert t.shape == d.cad_mesh(c, int(d[k]["cad_idx"]))[0].shape
    assert d.cad_texture("car", "no_such_id") is None


def test_ground_truth_render_reproduces_the_images(data):
    """The stored texture, rendered with the annotated camera and the generator's shading, is the image:
    a check of the texture files, the camera and the shading constants against the generator."""
    ds = Pascal3DDataset(data[0], "car", "train", img_size=64)
    b = collate([ds[i] for i in range(4)])
    meshes = [ds.cad_mesh("car", int(c)) for c in b["cad_idx"]]
    tex = [ds.cad_texture("car", i) for i in b["id"]]
    inner = -F.max_pool2d(-b["mask"], 5, 1, 2)[:, 0] > 0.5  # away from the resampled silhouette
    psnr = {}
    for shading in ("generator", "albedo"):
        rgb, mask = render_vertex_colours(meshes, tex, (b["scale"], b["trans"], b["quat"]), 64, shading)
        assert all(image_metrics(b["image"][j], rgb[j], b["mask"][j, 0] > 0, mask[j])["mask_iou"] > 0.9
                   for j in range(4))
        psnr[shading] = [image_metrics(b["image"][j], rgb[j], inner[j] & mask[j], inner[j] & mask[j])["psnr"]
                         for j in range(4)]
    assert min(psnr["generator"]) > 28 and max(psnr["albedo"]) < min(psnr["generator"]) - 8, psnr


def test_texture_fidelity_oracle_and_wrong_texture(data, toy):
    ds = Pascal3DDataset(data[0], "car", "train", img_size=64)
    item = ds[0]
    v, f = ds.cad_mesh("car", int(item["cad_idx"]))
    tex = ds.cad_texture("car", item["id"])
    good = texture_fidelity(_Oracle(v, f, tex), ds, max_items=1, shading="albedo")
    assert list(good.view) == ["input", "mirror", "az+90", "az-90"] and (good.id == item["id"]).all()
    assert (good.psnr > 40).all() and (good.l1 < 1e-3).all() and (good.ssim > 0.99).all(), good
    assert (good.mask_iou > 0.99).all()
    bad = texture_fidelity(_Oracle(v, f, torch.full_like(tex, 0.5)), ds, max_items=1, shading="albedo")
    assert (bad.psnr < good.psnr - 20).all() and (bad.l1 > 10 * good.l1 + 0.02).all()
    model = ReconstructionNet(ModelConfig(img_size=64, template_verts=162, tex_size=16, deform_hidden=32,
                                          n_feat=32))
    df = texture_fidelity(model, ds, max_items=3, batch_size=2, views=("input", "az+45"))
    assert len(df) == 6 and df[["psnr", "ssim", "l1", "mask_iou"]].notna().all().all()
    with pytest.raises(ValueError, match="ToyDataset"):
        texture_fidelity(model, toy)


def test_input_view_gain_oracle_constant_and_errors(data, toy):
    """The CAD model coloured by the image at its vertices' projections carries the image (a gain over
    the best single colour); a constant texture cannot beat the best single colour (gain <= 0: the mean
    is optimal); the bare albedo loses to it too, as the images are shaded."""
    ds = Pascal3DDataset(data[0], "car", "train", img_size=64)
    item = ds[0]
    v, f = ds.cad_mesh("car", int(item["cad_idx"]))
    xy = project(v[None].float(), *_camera(item))  # (1, V, 2) normalised image coordinates
    tex = F.grid_sample(item["image"][None], xy[:, :, None], align_corners=False)[0, :, :, 0].T  # (V, 3)
    sub = torch.utils.data.Subset(ds, [0])
    good = input_view_gain(_Oracle(v, f, tex), sub)
    flat = input_view_gain(_Oracle(v, f, torch.full_like(tex, 0.3)), sub)
    assert list(good.id) == [item["id"]] and good.pixels.iloc[0] > 0.9 * float(item["mask"].sum())
    assert good.gain.iloc[0] > 3 and flat.gain.iloc[0] < 0, (good, flat)
    assert good.psnr_mean_colour.iloc[0] == pytest.approx(flat.psnr_mean_colour.iloc[0])
    albedo = input_view_gain(_Oracle(v, f, ds.cad_texture("car", item["id"])), sub)
    assert albedo.gain.iloc[0] < good.gain.iloc[0] - 3
    model = ReconstructionNet(ModelConfig(img_size=64, template_verts=162, tex_size=16, texture=False,
                                          deform_hidden=32, n_feat=32))
    with pytest.raises(ValueError, match="no texture"):
        input_view_gain(model, ds, max_items=1)


def test_input_view_gain_oracle_registration(data):
    """'oracle' projects the image onto the predicted mesh through the annotated camera and renders it
    with that camera: the image comes back on the covered pixels, whatever the (here untrained) network's
    camera, which its own texture ('gt') pays for."""
    ds = Pascal3DDataset(data[0], "car", "train", img_size=64)
    sub = torch.utils.data.Subset(ds, [0, 1, 2])
    cfg = dict(img_size=64, template_verts=162, tex_size=32, deform_hidden=32, n_feat=32)
    torch.manual_seed(0)
    model = ReconstructionNet(ModelConfig(texture_source="projection", **cfg))
    df = input_view_gain(model, sub, cameras=("gt", "oracle", "oracle_rotation", "oracle_position"))
    assert {"gain", "gain_oracle", "psnr_oracle", "pixels_oracle"} <= set(df)
    assert (df.gain_oracle > 6).all() and (df.gain_oracle > df.gain + 6).all(), df
    # the camera split between rotation and position: the untrained network's camera is off in both, so
    # either half alone stays well under the whole
    halves = df[["gain_oracle_rotation", "gain_oracle_position"]].mean()
    assert df.gain_oracle.mean() > halves.max() + 3, (df.gain_oracle.mean(), halves)
    b = collate([ds[i] for i in range(3)])
    model.eval()
    with torch.no_grad():
        out = model.reconstruct(b["image"])
        own = registered_by_annotation(model, out, b, annotated=())  # nothing annotated: its own texture
        assert torch.allclose(own["texture"], out["texture"], atol=1e-6)
        whole = registered_by_annotation(model, out, b)
        split = registered_by_annotation(model, out, b, annotated=("scale", "translation", "rotation"))
        assert torch.equal(whole["texture"], split["texture"])
    with pytest.raises(ValueError, match="annotated camera parts must be among"):
        registered_by_annotation(model, out, b, annotated=("focal",))
    assert ((df.gain_oracle - (df.psnr_oracle - df.psnr_mean_colour_oracle)).abs() < 1e-9).all()
    fid = {o: texture_fidelity(model, ds, max_items=3, views=("input",), oracle=o).set_index("id").psnr
           for o in (False, True)}
    assert (fid[True] > fid[False] + 1).all() and (fid[True] - fid[False]).mean() > 3, fid
    with pytest.raises(ValueError, match="has no projector"):
        input_view_gain(ReconstructionNet(ModelConfig(**cfg)), sub, cameras=("oracle",))
    with pytest.raises(ValueError, match="among 'gt', 'pred', 'oracle'"):
        input_view_gain(model, sub, cameras=("annotated",))
