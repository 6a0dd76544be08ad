"""Image encoders: a torchvision backbone turns a face crop into the decoder's code vector.

The paper uses ResNet-50 (He et al., 2016); ResNet-18 and MobileNetV3 are faster variants.
ImageNet weights are never downloaded: pass the path of a torchvision ``state_dict`` in
``EncoderConfig.imagenet_weights`` (:class:`~facegcn_lib.config.EncoderConfig`) when you have
one, else the encoder trains from scratch. See :doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from facegcn_lib.config import EncoderConfig
from facegcn_lib.nn.pooling import MomentPool

log = logging.getLogger(__name__)

#: ImageNet channel statistics that torchvision's weights expect (RGB, inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EncoderWeightsError(FileNotFoundError):
    """The ImageNet weights file is missing or does not fit the chosen architecture."""


def _backbone(arch: str, pooling: str = "mean") -> tuple[nn.Module, int, tuple[str, ...]]:
    """A torchvision classifier without ImageNet weights, its feature width, its new layers.

    The head (the last linear layer) is what :class:`ImageEncoder` replaces with a linear
    layer to the code. With ``pooling="moments"`` the backbone's ``avgpool`` becomes a
    :class:`~facegcn_lib.nn.pooling.MomentPool` and the first layer after it reads three times
    the width. The returned prefixes name, in torchvision's ``state_dict``, the layers whose
    ImageNet weights do not fit any more (the head's, and a MobileNet's first classifier layer
    when the pooling is ``moments``).
    """
    from torchvision import models

    moments = pooling == "moments"
    if arch in ("resnet50", "resnet18"):
        net = models.resnet50() if arch == "resnet50" else models.resnet18()
        width = net.fc.in_features
        net.fc = nn.Identity()
        if moments:
            net.avgpool = MomentPool()
            width *= MomentPool.expansion
        return net, width, ("fc.",)
    if arch in ("mobilenet_v3_large", "mobilenet_v3_small"):
        mnet = models.mobilenet_v3_large() if arch == "mobilenet_v3_large" else models.mobilenet_v3_small()
        last = mnet.classifier[-1]
        assert isinstance(last, nn.Linear)
        width = last.in_features
        mnet.classifier[-1] = nn.Identity()
        if not moments:
            return mnet, width, ("classifier.3.",)
        first = mnet.classifier[0]
        assert isinstance(first, nn.Linear)
        mnet.avgpool = MomentPool()
        mnet.classifier[0] = nn.Linear(MomentPool.expansion * first.in_features, first.out_features)
        return mnet, width, ("classifier.3.", "classifier.0.")
    raise ValueError(f"unknown encoder architecture {arch!r}")


class ImageEncoder(nn.Module):
    """A CNN from a face crop to a code vector.

    Inputs are RGB crops with values in [0, 1]; the encoder applies the ImageNet normalisation
    itself. Any input size the backbone accepts works (global pooling, ``cfg.pooling``), e.g.
    64 x 64 in tests and the paper's 256 x 256.

    Args:
        cfg: the architecture and code size.
        load_weights: load ``cfg.imagenet_weights`` if set (``False`` when a checkpoint will
            overwrite every weight anyway).

    Raises:
        EncoderWeightsError: ``cfg.imagenet_weights`` is missing or is not a ``state_dict``
            of ``cfg.arch``.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, cfg: EncoderConfig, load_weights: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone, self.feature_dim, self._new_layers = _backbone(cfg.arch, cfg.pooling)
        self.head = nn.Linear(self.feature_dim, cfg.code_dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if load_weights and cfg.imagenet_weights is not None:
            self.load_imagenet(cfg.imagenet_weights)

    def load_imagenet(self, path: str | Path) -> None:
        """Load a torchvision ImageNet ``state_dict`` into the backbone (its classifier dropped).

        Read with ``torch.load(weights_only=True)``: the file must hold tensors only. The layers
        that the encoder made anew (the head; after a ``moments`` pooling, a MobileNet's
        first classifier layer too) keep their random initialisation.
        """
        p = Path(path).expanduser()
        if not p.is_file():
            raise EncoderWeightsError(
                f"ImageNet weights {p} not found. Download torchvision's {self.cfg.arch} weights "
                "on a machine with network access and pass their path, or set "
                "EncoderConfig.imagenet_weights=None to train from scratch.")
        state = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise EncoderWeightsError(f"{p} does not hold a state_dict")
        state = {k: v for k, v in state.items() if not k.startswith(self._new_layers)}
        missing, unexpected = self.backbone.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(self._new_layers)]
        if missing or unexpected:
            raise EncoderWeightsError(
                f"{p} is not a torchvision {self.cfg.arch} state_dict: {len(missing)} missing keys "
                f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        log.info("loaded ImageNet weights for %s from %s", self.cfg.arch, p)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled backbone features ``(B, feature_dim)`` of images ``(B, 3, H, W)`` in [0, 1]."""
        out: torch.Tensor = self.backbone((images - self.mean) / self.std)
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, code_dim)`` of RGB images ``(B, 3, H, W)`` with values in [0, 1]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected RGB images (B, 3, H, W), got shape {tuple(images.shape)}")
        out: torch.Tensor = self.head(self.features(images))
        return out


def build_encoder(cfg: EncoderConfig, load_weights: bool = True) -> ImageEncoder:
    """The encoder that ``cfg`` describes (see :class:`ImageEncoder`)."""
    return ImageEncoder(cfg, load_weights=load_weights)
