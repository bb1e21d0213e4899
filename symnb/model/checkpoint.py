"""Model files: save / load checkpoints (weights only, no code executed on load) and mesh export."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..io import WRITER_MARK, check_mesh, check_writable
from ..utils import atomic_write
from .config import ModelConfig
from .network import ReconstructionNet

#: ModelConfig fields of earlier releases that moved elsewhere (texture sampling is a render setting).
_MOVED_FIELDS = ("texture_mode", "atlas_size")


def save_model(model: ReconstructionNet, path: str | os.PathLike, **extra) -> Path:
    """Write config, symmetry and weights atomically to ``path`` (readable by :func:`load_model`).

    ``extra`` values must be plain data (numbers, strings, lists, dicts, tensors): the file is read
    back with ``torch.load(weights_only=True)``.
    """
    state = {"config": model.config.to_dict(), "symmetry": model.symmetry, "state_dict": model.state_dict(),
             **extra}
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    return Path(path)


#: What to do about an unreadable file, by kind (appended to the error).
_HINTS = {"training checkpoint": "delete it or pass --fresh to restart the training"}


def _load_failure(err: Exception) -> str:
    """torch.load's error in a few words (its own text suggests unsafe loading: not repeated)."""
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) or "Weights only load failed" in text:
        what = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        obj = f" ({what.group(1)})" if what else ""
        return f"it holds Python code or objects{obj}, not plain data; such files are never unpickled"
    if "central directory" in text or "zip archive" in text or isinstance(err, EOFError):
        return "truncated or corrupt file"
    if isinstance(err, (KeyError, pickle.UnpicklingError)) or "invalid load key" in text:
        return "not a PyTorch file"
    return " ".join(text.split())[:200] or type(err).__name__


def read_checkpoint(path: str | os.PathLike, what: str = "model checkpoint") -> dict:
    """``torch.load(weights_only=True)`` of one of our files: plain data only, never code.

    Raises:
        FileNotFoundError: no such file. ValueError: empty, truncated, corrupt, or holding objects
        other than plain data (the message names the file; for a training checkpoint it suggests
        ``--fresh``).
    """
    path = Path(path)
    hint = f"; {_HINTS[what]}" if what in _HINTS else ""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not a {what}{hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt or unsafe files
        raise ValueError(f"{path} is not a readable {what} ({_load_failure(err)}){hint}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a {what} (holds a {type(state).__name__}){hint}")
    return state


def model_from_state(state: dict, path="checkpoint") -> ReconstructionNet:
    """Build a model from a :func:`save_model` / training checkpoint dict (eval mode, CPU)."""
    if "config" not in state:
        raise ValueError(f"{path} has no model config; was it written by symnb.model.save_model?")
    sd = state.get("state_dict") or state.get("model")
    if not isinstance(sd, dict):
        raise ValueError(f"{path} has no weights (state_dict)")
    cfg_d = {k: v for k, v in dict(state["config"]).items() if k not in _MOVED_FIELDS}
    cfg_d["symmetry"] = state.get("symmetry", cfg_d.get("symmetry", "none"))
    cfg_d["refine"] = bool(cfg_d.get("refine")) and cfg_d["symmetry"] == "reflection"
    cfg_d["pretrained_path"] = None
    try:
        cfg = ModelConfig(**cfg_d)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid model config ({err})") from err
    model = ReconstructionNet(cfg)
    if "template" in sd and sd["template"].shape != model.template.shape:  # subdivided during training
        zeros = torch.zeros(cfg.n_shapes, len(sd["template"]), 3)
        kp = None if model.kp_logits is None else sd["kp_logits"]
        model._set_template(sd["template"], sd["faces"], mean_full=zeros, kp_logits=kp)
    try:
        model.load_state_dict(sd)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the model config ({str(err).splitlines()[0]})") from err
    return model.eval()


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> ReconstructionNet:
    """Load a model written by :func:`save_model` (or a training checkpoint) in eval mode."""
    return model_from_state(read_checkpoint(path), path).to(device)


def _mark_obj_outputs(folder: Path) -> None:
    """Put :data:`symnb.io.WRITER_MARK` into PyTorch3D's .obj / .mtl (a comment) and .png (metadata)."""
    from PIL import Image, PngImagePlugin

    for f in folder.iterdir():
        if f.suffix in (".obj", ".mtl"):
            f.write_text(f"# {WRITER_MARK}\n" + f.read_text())
        elif f.suffix == ".png":
            info = PngImagePlugin.PngInfo()
            info.add_text("Software", f"symnb ({WRITER_MARK})")
            with Image.open(f) as im:
                im.load()
                im.save(f, pnginfo=info)


def export_mesh(path: str | os.PathLike, verts: torch.Tensor, faces: torch.Tensor,
                texture: torch.Tensor | None = None, verts_uvs: torch.Tensor | None = None,
                faces_uvs: torch.Tensor | None = None, overwrite: bool = False) -> Path:
    """Write one mesh to .obj (with .mtl and .png texture when given) or .ply (texture -> vertex colours).

    Never replaces a file symnb did not write (``path``, or for a textured .obj the ``.mtl`` and
    ``.png`` of the same name beside it): such a file raises ``FileExistsError`` unless
    ``overwrite``; files we wrote (they carry :data:`symnb.io.WRITER_MARK`) are replaced.

    Args:
        verts: (V, 3); faces: (F, 3) long; texture: (3, H, W) in [0, 1]; verts_uvs: (U, 2);
        faces_uvs: (F, 3) long (default: faces).
        overwrite: replace existing files even if symnb did not write them.

    Raises:
        ValueError: unsupported suffix, bad shapes, NaN / inf vertices or UVs, face or UV indices out
        of range (the message names the file). FileExistsError: see above.
    """
    path = Path(path)
    check_writable(path, overwrite, suffixes=(".obj", ".ply"))
    verts, faces = verts.detach().cpu().float(), faces.detach().cpu().long()
    if verts.dim() != 2 or verts.shape[1] != 3 or faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"{path}: expected verts (V, 3) and faces (F, 3), got {tuple(verts.shape)}, "
                         f"{tuple(faces.shape)}")
    check_mesh(path, verts.numpy(), faces.numpy())
    if faces_uvs is None and verts_uvs is not None:
        faces_uvs = faces
    if texture is not None:
        texture = texture.detach().cpu().float()
        if verts_uvs is None or texture.dim() != 3 or texture.shape[0] != 3:
            raise ValueError(f"{path}: a texture must be (3, H, W) and come with verts_uvs, got "
                             f"{tuple(texture.shape)}")
        verts_uvs, faces_uvs = verts_uvs.detach().cpu().float(), faces_uvs.detach().cpu().long()
        if verts_uvs.dim() != 2 or verts_uvs.shape[1] != 2 or faces_uvs.shape != faces.shape:
            raise ValueError(f"{path}: expected verts_uvs (U, 2) and faces_uvs {tuple(faces.shape)}, got "
                             f"{tuple(verts_uvs.shape)}, {tuple(faces_uvs.shape)}")
        if not (torch.isfinite(texture).all() and torch.isfinite(verts_uvs).all()):
            raise ValueError(f"refusing to write {path}: texture or UVs contain NaN or inf")
        if faces_uvs.min() < 0 or faces_uvs.max() >= len(verts_uvs):
            raise ValueError(f"refusing to write {path}: UV index out of range [0, {len(verts_uvs)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".obj":
        import tempfile

        from pytorch3d.io import save_obj

        if texture is not None:
            for side in (path.with_suffix(".mtl"), path.with_suffix(".png")):
                check_writable(side, overwrite, suffixes=None)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            tmp_obj = Path(tmp) / path.name
            kw = {}
            if texture is not None:
                kw = dict(verts_uvs=verts_uvs, faces_uvs=faces_uvs,
                          texture_map=texture.permute(1, 2, 0).clamp(0, 1))
            save_obj(tmp_obj, verts, faces, **kw)
            _mark_obj_outputs(Path(tmp))
            for f in Path(tmp).iterdir():  # .obj last, so a complete .obj implies its .mtl/.png exist
                if f.suffix != ".obj":
                    os.replace(f, path.parent / f.name)
            os.replace(tmp_obj, path)
        return path
    colours = None
    if texture is not None:
        colours = vertex_colours(verts, faces, texture, verts_uvs, faces_uvs)
    lines = ["ply", "format ascii 1.0", f"comment {WRITER_MARK}", f"element vertex {len(verts)}",
             "property float x", "property float y", "property float z"]
    if colours is not None:
        lines += ["property uchar red", "property uchar green", "property uchar blue"]
    lines += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    for i, v in enumerate(verts.tolist()):
        row = f"{v[0]:.6f} {v[1]:.6f} {v[2]:.6f}"
        if colours is not None:
            row += " " + " ".join(str(int(c)) for c in colours[i].tolist())
        lines.append(row)
    lines += [f"3 {a} {b} {c}" for a, b, c in faces.tolist()]
    with atomic_write(path) as f:
        f.write("\n".join(lines) + "\n")
    return path


def vertex_colours(verts, faces, texture, verts_uvs, faces_uvs) -> torch.Tensor:
    """(V, 3) uint8 colours: the UV image sampled at each vertex's (first) UV coordinate."""
    uv_idx = torch.zeros(len(verts), dtype=torch.long)
    uv_idx[faces.reshape(-1)] = faces_uvs.reshape(-1).cpu()
    uv = verts_uvs.cpu()[uv_idx] * 2 - 1
    uv[:, 1] = -uv[:, 1]  # TexturesUV: v = 0 is the bottom row
    col = F.grid_sample(texture[None].cpu().float(), uv[None, :, None], align_corners=False)[0, :, :, 0].T
    return (col.clamp(0, 1) * 255).round().to(torch.uint8)
