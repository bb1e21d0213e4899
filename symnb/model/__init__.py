"""The reconstruction network: config, encoders, heads, network, checkpoints and export.

``from symnb.model import ModelConfig, ReconstructionNet, load_model, export_mesh`` is the API;
the modules are :mod:`~symnb.model.config`, :mod:`~symnb.model.encoders` (name -> class registry),
:mod:`~symnb.model.heads`, :mod:`~symnb.model.uv`, :mod:`~symnb.model.network` and
:mod:`~symnb.model.checkpoint`.
"""

from .checkpoint import export_mesh, load_model, model_from_state, read_checkpoint, save_model, vertex_colours
from .config import SYMMETRIES, ModelConfig
from .encoders import ENCODERS, build_encoder, register_encoder
from .heads import CameraHead, DeformMLP, TextureDecoder
from .network import ReconstructionNet, resolve_group, resolve_symmetry
from .transfer import resample_on_template, same_representation, transfer
from .uv import UV_MAPS, spherical_uv, symmetric_uv

__all__ = [
    "ENCODERS", "SYMMETRIES", "UV_MAPS", "CameraHead", "DeformMLP", "ModelConfig", "ReconstructionNet",
    "TextureDecoder", "build_encoder", "export_mesh", "load_model", "model_from_state", "read_checkpoint",
    "register_encoder", "resample_on_template", "resolve_group", "resolve_symmetry",
    "same_representation", "save_model",
    "spherical_uv", "symmetric_uv", "transfer", "vertex_colours",
]
