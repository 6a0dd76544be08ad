"""Frozen dataclass configurations shared across the library (no magic numbers elsewhere).

Each subsystem's config lives in its own section below; a config is saved inside every
checkpoint and cache key, so it must stay a plain frozen dataclass of simple values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar, get_origin, get_type_hints

_T = TypeVar("_T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as a plain dict (for JSON, checkpoints and cache keys)."""
    return asdict(cfg)


@dataclass(frozen=True)
class DownloadConfig:
    """How ``facegcn data download`` talks to the network."""

    retries: int = 4
    timeout_s: float = 60.0


# --- mesh (graph, decimation, pyramid) ---------------------------------------------------

# --- morphable models and synthetic data ---------------------------------------------------

# --- networks -------------------------------------------------------------------------------
# The encoder, the ResGCN decoder, the two baselines and the whole model (chapter 4,
# chapters/04_resgcn_decoder.ipynb). A ModelConfig is saved in every checkpoint and rebuilds
# the model from it (facegcn_lib.train.checkpoint).

#: The torchvision backbones an encoder can use.
ENCODER_ARCHS = ("resnet50", "resnet18", "mobilenet_v3_large", "mobilenet_v3_small")
#: How the encoder pools its last feature map (:mod:`facegcn_lib.nn.pooling`): ``mean``, the
#: backbone's global average (the paper's), or ``moments``, the mean and the first spatial
#: moments of every channel (where a feature is, not only how strong).
ENCODER_POOLINGS = ("mean", "moments")
#: The normalisations of the ResGCN blocks.
NORMS = ("instance", "batch", "none")
#: The decoders: the paper's ResGCN and the two baselines.
DECODER_KINDS = ("gcn", "uvmap", "3dmm")
#: The rotation parametrisations of the 3DMM baseline.
ROTATION_PARAMS = ("6d", "euler")


class ConfigError(ValueError):
    """A configuration value is invalid or inconsistent; the message names the field."""


def _check_choice(owner: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{owner}.{name}={value!r} is not one of {choices}")


def _check_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ConfigError(f"{owner}.{name} must be positive, got {value}")


@dataclass(frozen=True)
class EncoderConfig:
    """The image encoder: a torchvision backbone, a pooling and a linear layer to the code.

    Attributes:
        arch: one of :data:`ENCODER_ARCHS` (``resnet50`` is the paper's).
        code_dim: length of the code vector the decoder reads.
        image_size: side of the square input crop in pixels.
        imagenet_weights: path of a torchvision ImageNet ``state_dict`` for ``arch`` (``.pth``),
            loaded when the model is first built; ``None`` trains from scratch.
        pooling: one of :data:`ENCODER_POOLINGS`: ``mean`` (global average pooling, the
            paper's) or ``moments`` (:class:`~facegcn_lib.nn.pooling.MomentPool`: each
            channel's mean and its activation-weighted mean x and y, three times the width).
    """

    arch: str = "resnet50"
    code_dim: int = 256
    image_size: int = 256
    imagenet_weights: str | None = None
    pooling: str = "mean"

    def __post_init__(self) -> None:
        _check_choice("EncoderConfig", "arch", self.arch, ENCODER_ARCHS)
        _check_choice("EncoderConfig", "pooling", self.pooling, ENCODER_POOLINGS)
        _check_positive("EncoderConfig", code_dim=self.code_dim, image_size=self.image_size)


@dataclass(frozen=True)
class MeshConfig:
    """The mesh the network regresses and its down-sampling pyramid.

    Attributes:
        topology: a registered topology name (``ict-face``: the 9,409-vertex ICT face region;
            ``bfm``: the paper's 53,215-vertex BFM mesh); see
            :func:`facegcn_lib.nn.target_mesh.register_topology`.
        factor: vertex reduction factor between pyramid levels.
        n_levels: number of meshes in the pyramid, the full mesh included.
    """

    topology: str = "ict-face"
    factor: int = 4
    n_levels: int = 5

    def __post_init__(self) -> None:
        _check_positive("MeshConfig", factor=self.factor - 1, n_levels=self.n_levels)


@dataclass(frozen=True)
class DecoderConfig:
    """The ResGCN decoder (the paper's Figure 3).

    Attributes:
        channels: output channels of the residual block at each pyramid level, coarsest level
            first; its length must equal the pyramid's ``n_levels``. The paper's BFM decoder
            has ``(128, 64, 32, 32, 16, 16)``.
        cheb_k: order of the Chebyshev polynomials in every graph convolution.
        norm: normalisation inside the blocks (``instance``, ``batch`` or ``none``).
        residual: whether the blocks have their identity path (for the ablation).
        negative_slope: slope of the Leaky ReLU for negative inputs.
    """

    channels: tuple[int, ...] = (128, 64, 32, 16, 16)
    cheb_k: int = 3
    norm: str = "instance"
    residual: bool = True
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        _check_choice("DecoderConfig", "norm", self.norm, NORMS)
        _check_positive("DecoderConfig", cheb_k=self.cheb_k, n_channels=len(self.channels),
                        min_channel=min(self.channels, default=0))


@dataclass(frozen=True)
class UVMapConfig:
    """The UV position-map baseline (PRNet-like convolutional decoder).

    Attributes:
        size: side of the predicted position map in pixels (a power of two times ``seed_size``).
        seed_size: side of the first feature map, made by a linear layer from the code.
        max_channels: channels of the first feature map; each up-sampling halves them ...
        min_channels: ... down to this floor.
    """

    size: int = 128
    seed_size: int = 4
    max_channels: int = 256
    min_channels: int = 16

    def __post_init__(self) -> None:
        _check_positive("UVMapConfig", size=self.size, seed_size=self.seed_size,
                        max_channels=self.max_channels, min_channels=self.min_channels)
        ratio = self.size // self.seed_size
        if self.size % self.seed_size or ratio & (ratio - 1):
            raise ConfigError(f"UVMapConfig.size={self.size} must be seed_size={self.seed_size} "
                              "times a power of two")


@dataclass(frozen=True)
class MMRegressionConfig:
    """The 3DMM-regression baseline (3DDFA-like): coefficients and a pose from the code.

    Attributes:
        n_id: identity coefficients (at most the morphable model's identity basis size).
        n_exp: expression coefficients (at most its expression basis size).
        rotation: rotation parameters, ``6d`` (two columns, Gram-Schmidt) or ``euler``
            (yaw, pitch, roll).
    """

    n_id: int = 100
    n_exp: int = 53
    rotation: str = "6d"

    def __post_init__(self) -> None:
        _check_choice("MMRegressionConfig", "rotation", self.rotation, ROTATION_PARAMS)
        _check_positive("MMRegressionConfig", n_id=self.n_id, n_exp=self.n_exp)


@dataclass(frozen=True)
class ModelConfig:
    """The whole model: encoder, mesh, and which decoder (the ResGCN or a baseline).

    Attributes:
        encoder: the image encoder.
        mesh: the regressed mesh and its pyramid.
        decoder: ``gcn`` (the paper), ``uvmap`` (PRNet-like) or ``3dmm`` (3DDFA-like).
        gcn: settings of the ResGCN decoder (used when ``decoder == "gcn"``).
        uvmap: settings of the UV position-map decoder.
        mm: settings of the 3DMM-regression decoder.
        add_template: the ``gcn`` and ``uvmap`` decoders predict offsets from the template
            placed in the crop (so an untrained model outputs the mean face); ``False``
            regresses absolute positions as the paper does.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    decoder: str = "gcn"
    gcn: DecoderConfig = field(default_factory=DecoderConfig)
    uvmap: UVMapConfig = field(default_factory=UVMapConfig)
    mm: MMRegressionConfig = field(default_factory=MMRegressionConfig)
    add_template: bool = True

    def __post_init__(self) -> None:
        _check_choice("ModelConfig", "decoder", self.decoder, DECODER_KINDS)
        if self.decoder == "gcn" and len(self.gcn.channels) != self.mesh.n_levels:
            raise ConfigError(
                f"DecoderConfig.channels has {len(self.gcn.channels)} entries but the pyramid has "
                f"MeshConfig.n_levels={self.mesh.n_levels} levels: give one channel count per level")

    @classmethod
    def paper(cls) -> ModelConfig:
        """The paper's setting: ResNet-50, the BFM mesh, six levels, 128-64-32-32-16-16."""
        return cls(encoder=EncoderConfig(arch="resnet50"),
                   mesh=MeshConfig(topology="bfm", n_levels=6),
                   gcn=DecoderConfig(channels=(128, 64, 32, 32, 16, 16)))


@dataclass(frozen=True)
class ExportConfig:
    """ONNX export of a whole model (``facegcn_lib.nn.export``).

    Attributes:
        opset: the ONNX opset (16 or later: ``GridSample`` for the UV-map baseline).
        dense_max_verts: sparse mesh operators on at most this many vertices are exported as
            dense matrix products, larger ones as gathers (ONNX has no sparse product).
        atol: the largest absolute difference from torch that :func:`check_onnx` accepts.
    """

    opset: int = 17
    dense_max_verts: int = 1024
    atol: float = 1e-4


def from_dict(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """Rebuild a (nested) frozen config dataclass from :func:`to_dict`'s output or its JSON.

    Lists become tuples where the field is a tuple; missing keys take their defaults.

    Raises:
        ConfigError: a key is not a field of ``cls`` (e.g. a config written by a newer version).
    """
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field(s) {sorted(unknown)}: was this config "
                          "written by another version of facegcn?")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if is_dataclass(hint) and isinstance(value, Mapping):
            kwargs[name] = from_dict(hint, value)  # type: ignore[arg-type]
        elif get_origin(hint) is tuple and isinstance(value, list | tuple):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


# --- training ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LossConfig:
    """The training loss: the paper's L1 on vertices plus a weighted Laplacian smoothness term,
    and optionally an L1 term on the 68 landmarks in the image plane.

    Attributes:
        smooth_weight: the weight alpha of ``||(D - W) Y||`` (0.1 in the paper).
        smooth_on: ``prediction`` penalises the Laplacian of the predicted mesh (the paper);
            ``residual`` that of the prediction minus the ground truth, which does not pull
            a curved face towards a flat one.
        landmark_weight: the weight beta of the landmark term, the mean over the 68 reported
            landmarks (AFLW2000-3D's definition, points on the mesh's triangles) of their
            ``|dx| + |dy|`` error in the crop; 0, the default, is the paper's loss. The dense
            L1 spreads its gradient over thousands of vertices, so the few that the 68-point
            benchmarks measure get little of it; this term gives them a share of their own.
    """

    smooth_weight: float = 0.1
    smooth_on: str = "prediction"
    landmark_weight: float = 0.0

    def __post_init__(self) -> None:
        _check_choice("LossConfig", "smooth_on", self.smooth_on, ("prediction", "residual"))
        if self.smooth_weight < 0 or self.landmark_weight < 0:
            raise ConfigError(f"LossConfig weights must be >= 0, got smooth_weight="
                              f"{self.smooth_weight}, landmark_weight={self.landmark_weight}")

