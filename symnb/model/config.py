"""The network's settings (:class:`ModelConfig`), validated at construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config
from ..symmetry.groups import GROUPS
from ..symmetry.maps import MODES

#: Values of ``ModelConfig.symmetry``: the registered groups plus "auto" (chosen from CAD models).
SYMMETRIES = (*GROUPS, "auto")


@dataclass
class ModelConfig(Config):
    """Network settings."""

    img_size: int = 64
    """Input resolution in pixels (the data's crop size); ``reconstruct`` resizes to it."""
    encoder: str = "resnet18"
    """Image encoder, a name of ``symnb.model.encoders.ENCODERS`` ("resnet18", ...)."""
    n_feat: int = 256
    """Size of the image feature."""
    n_shapes: int = 1
    """Number K of learnable mean shapes (blended by the class-probability head)."""
    template_verts: int = 642
    """Vertex count of the (baseline) sphere template."""
    template_radius: float = 0.3
    """Radius of the initial mean shape (objects have unit bbox diagonal)."""
    mean_shape_smoothing: float = 10.0
    """Lambda of the mean shapes' smooth coordinates: the parameters u give the vertices ``sphere + (I -
    lambda L)^-1 u`` (L the template's uniform Laplacian; Nicolet et al. 2021), so that a gradient step
    moves a neighbourhood, not one vertex (0: the vertices themselves). Without it Adam moves single
    vertices and the mean shapes barely leave the sphere in a short run (docs/results.md, the ceilings)."""
    offset_smoothing: float = 0.0
    """The same operator applied to the predicted offsets (0: off)."""
    deform_input: str = "template"
    """The vertex positions the deformation MLP reads: "template" (the sphere) or "mean_shape" (the blended
    mean shape, MCMR's DeepSDF-style decoder input)."""
    symmetry: str = "none"
    """A group of ``symnb.symmetry.GROUPS`` ("none", "reflection", "two_planes", "rotation") or "auto"."""
    sym_order: int = 0
    """Rotation order n >= 2 for symmetry "rotation" (about y)."""
    sym_mode: str | list[str] = "l2r"
    """"l2r" | "r2l" | "cent", or a list of such modes, one per slice (reflection); two_planes and rotation
    take "cent" (group average) or "l2r" (representatives copied)."""
    n_slices: int = 0
    """Horizontal bands for per-slice modes (0: as many as ``sym_mode`` has entries)."""
    refine: bool = False
    """Reflection only: use a ~2x template whose independent half matches the baseline's vertex count (same
    parameter count, ~2x output vertices)."""
    keep_side: bool = False
    """Reflection only: the independent half's vertices stay on their side of the plane (at least
    ``network.SIDE_MARGIN`` from it), so the half and its mirror image cannot interpenetrate (the
    self-intersections of a free half crossing the plane)."""
    deform_hidden: int = 256
    """Width of the deformation MLP."""
    deform_layers: int = 2
    """Hidden layers of the deformation MLP."""
    max_offset: float = 0.5
    """Offsets are ``max_offset * tanh(.)`` (keeps early training stable)."""
    texture: bool = True
    """Predict a texture (UV image)."""
    tex_size: int = 32
    """UV image height (4 * 2^n); width is 2 * tex_size."""
    uv_map: str = "symmetric"
    """"spherical" | "symmetric" (seam on the symmetry plane, mirrored halves)."""
    symmetric_texture: bool = False
    """Decode one half of the UV image and mirror it (needs uv_map "symmetric"); with texture_source "flow" a
    texel the predicted camera cannot see samples where its mirror texel samples, when that one is visible
    (the hidden side takes the visible side's colours); with "projection": hidden texels take their visible
    mirror texel's colour."""
    texture_source: str = "decoder"
    """"flow" (CMR's texture flow: for each texel, a learned position in the input image whose colour it
    copies), "decoder" (colours decoded from the feature map, MCMR) or "projection" (the input image
    sampled at each texel's projection through the predicted camera, :mod:`symnb.model.texture`; nothing
    learned, hidden texels filled)."""
    texture_detach: bool = True
    """The texture decoder reads the encoder's feature map without passing gradients back (the texture terms
    train the decoder only): measured here, letting MCMR-sized texture terms reach the encoder cost the
    shape and the camera (docs/results.md)."""
    flow_base: str = "projection"
    """With ``texture_source="flow"``: "projection" (the flow is where each texel projects through the
    predicted shape and camera, plus a learned correction of at most ``flow_residual``) or "none" (CMR: the
    decoder's flow alone, in [-1, 1])."""
    flow_residual: float = 0.5
    """The largest correction of a "projection"-based flow (normalised image units)."""
    n_keypoints: int = 0
    """> 0: learn a soft assignment of this many 3-D keypoints to template vertices per mean shape (CMR), for
    the keypoint reprojection loss."""
    pretrained_path: str | None = None
    """Optional local file with the encoder's ImageNet weights (torchvision format)."""
    init_scale: float = 1.5
    """Initial predicted camera scale."""
    camera_head: str = "bins"
    """"hypotheses" (:class:`~symnb.model.heads.CameraHead`: ``cam_hypotheses`` rotations in the ``rotation``
    parameterisation, winner-take-all) or "bins" (:class:`~symnb.model.heads.ViewpointHead`: azimuth,
    elevation and roll classified into ``view_bins`` bins plus residuals)."""
    rotation: str = "6d"
    """Camera rotation parameterisation of the "hypotheses" head: "6d" (continuous 6-D, Zhou et al. 2019) or
    "quat" (unit quaternion, MCMR)."""
    cam_hypotheses: int = 8
    """K rotation hypotheses with logits (K > 1: winner-take-all training, the most probable one is used;
    resolves the front / back ambiguity of silhouettes)."""
    view_bins: tuple[int, ...] = (24, 12, 24)
    """Bins of azimuth (over 360 degrees), elevation (over [-90, 90]) and roll (over 360) of the "bins"
    head."""
    silhouette_decoder: bool = True
    """Decode the object's silhouette (32 x 32) from the image feature, an auxiliary task
    (``LossWeights.silhouette``) that teaches the encoder the outline the camera is read from."""
    camera_refine_steps: int = 0
    """At inference (eval mode): Adam steps that refine the predicted scale and translation so that the
    predicted shape's silhouette matches the silhouette decoder's, at its size (32 px;
    :func:`symnb.model.refine.refine_camera`; render and compare, nothing annotated is used; 0: off; needs
    ``silhouette_decoder``)."""
    camera_refine_lr: float = 0.01
    """Their learning rate."""
    auto_threshold: float = field(default=0.02, repr=False)
    """"auto": detection tolerance on the CAD models."""
    auto_order: int = 8
    """Rotation order used by "auto" for a continuous rotation (order 0)."""
    auto_two_planes: bool = False
    """"auto" maps two planes to "two_planes" (default False: "reflection")."""

    def validate(self) -> None:
        from .encoders import ENCODERS

        self._range("img_size", 16)
        self._choice("encoder", ENCODERS)
        for name in ("n_feat", "n_shapes", "deform_hidden"):
            self._range(name, 1)
        self._range("template_verts", 12)
        self._range("template_radius", 0, lo_open=True)
        self._range("mean_shape_smoothing", 0)
        self._range("offset_smoothing", 0)
        self._choice("deform_input", ("template", "mean_shape"))
        self._range("max_offset", 0, lo_open=True)
        self._range("init_scale", 0, lo_open=True)
        self._range("camera_refine_lr", 0, lo_open=True)
        if self.camera_refine_steps and not self.silhouette_decoder:
            raise ValueError("ModelConfig.camera_refine_steps > 0 needs silhouette_decoder = True (its "
                             "silhouette is the refinement's target)")
        for name in ("deform_layers", "n_slices", "n_keypoints", "sym_order", "camera_refine_steps"):
            self._range(name, 0)
        self._range("auto_order", 2)
        self._range("cam_hypotheses", 1)
        self._choice("rotation", ("6d", "quat"))
        self._choice("camera_head", ("hypotheses", "bins"))
        if len(self.view_bins) != 3 or min(self.view_bins) < 1:
            raise ValueError("ModelConfig.view_bins must be 3 bin counts >= 1 (azimuth, elevation, roll), "
                             f"got {self.view_bins}")
        self._range("auto_threshold", 0, lo_open=True)
        self._choice("symmetry", SYMMETRIES)
        self._choice("uv_map", ("spherical", "symmetric"))
        self._choice("texture_source", ("flow", "decoder", "projection"))
        self._choice("flow_base", ("projection", "none"))
        self._range("flow_residual", 0, lo_open=True)
        if self.tex_size < 4 or self.tex_size & (self.tex_size - 1):
            raise ValueError(f"ModelConfig.tex_size must be 4 * 2^n (4, 8, 16, 32, ...), got {self.tex_size}")
        if self.symmetry == "rotation" and self.sym_order < 2:
            raise ValueError(f"ModelConfig.sym_order must be >= 2 for symmetry='rotation', got "
                             f"{self.sym_order}")
        modes = self.sym_mode if isinstance(self.sym_mode, list) else [self.sym_mode]
        for m in modes:
            if m not in MODES:
                raise ValueError(f"ModelConfig.sym_mode entries must be one of {MODES}, got {m!r}")
        if self.symmetry in ("two_planes", "rotation") and self.sym_mode not in ("cent", "l2r"):
            raise ValueError(f"ModelConfig.sym_mode for symmetry={self.symmetry!r} must be 'cent' (group "
                             f"average) or 'l2r' (representatives copied), got {self.sym_mode!r}")
        if self.refine and self.symmetry not in ("reflection", "auto"):
            raise ValueError("ModelConfig.refine=True needs symmetry='reflection' (or 'auto'), got "
                             f"{self.symmetry!r}")
        if self.keep_side and self.symmetry not in ("reflection", "auto"):
            raise ValueError(f"ModelConfig.keep_side=True needs symmetry='reflection' (or 'auto'), got "
                             f"{self.symmetry!r}")
        if self.symmetric_texture and self.uv_map != "symmetric":
            raise ValueError("ModelConfig.symmetric_texture needs uv_map='symmetric'")
