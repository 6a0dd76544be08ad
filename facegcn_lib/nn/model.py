"""The whole model: an image encoder and a mesh decoder (the ResGCN or one of the two baselines).

:class:`FaceGCN` maps face crops to vertices in the *normalised crop frame* (x right, y down,
z towards the viewer, ``[-1, 1]`` spanning the crop; see :mod:`facegcn_lib.nn.target_mesh`).
:meth:`FaceGCN.predict` maps them back to the original image and reads off the 68 landmarks
and the head pose. :func:`build_model` makes a model from a :class:`~facegcn_lib.config.ModelConfig`
alone, which is how checkpoints rebuild it (:mod:`facegcn_lib.train.checkpoint`).

See :doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from facegcn_lib.config import ConfigError, ModelConfig
from facegcn_lib.data.crop import uncrop_points
from facegcn_lib.geometry.umeyama import pose_from_mesh_batch
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.nn.baselines import MMRegressionDecoder, UVPositionMapDecoder
from facegcn_lib.nn.encoders import ImageEncoder
from facegcn_lib.nn.resgcn import ResGCNDecoder
from facegcn_lib.nn.target_mesh import TargetMesh, load_target_mesh


def normalized_to_crop(verts: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised crop frame -> crop pixels (pixel centres at integers, as OpenCV).

    ``u = (x + 1) S / 2 - 1/2`` (so ``x = -1`` and ``x = 1`` are the crop's outer edges),
    likewise ``v`` from ``y``, and ``z_px = z S / 2``.

    Args:
        verts: (..., 3) normalised vertices.
        size: S, the crop's side in pixels.
    """
    half = size / 2.0
    offset = torch.tensor([half - 0.5, half - 0.5, 0.0], dtype=verts.dtype, device=verts.device)
    return verts * half + offset


def crop_to_normalized(verts: torch.Tensor, size: int) -> torch.Tensor:
    """Crop pixels -> normalised crop frame (inverse of :func:`normalized_to_crop`)."""
    half = size / 2.0
    offset = torch.tensor([half - 0.5, half - 0.5, 0.0], dtype=verts.dtype, device=verts.device)
    return (verts - offset) / half


@dataclass(frozen=True)
class Prediction:
    """What :meth:`FaceGCN.predict` returns for a batch of B crops (image frame, pixels).

    Attributes:
        verts: (B, V, 3) vertices: x right, y down in image pixels, z towards the viewer at
            the same scale.
        lmks68: (B, 68, 3) the 68 landmark vertices.
        pose: (B, 3) float64 yaw, pitch, roll in radians
            (:mod:`facegcn_lib.geometry.rotations`' convention), fitted to the template.
        verts_crop: (B, V, 3) the network's raw output (normalised crop frame).
    """

    verts: torch.Tensor
    lmks68: torch.Tensor
    pose: NDArray[np.float64]
    verts_crop: torch.Tensor


class FaceGCN(nn.Module):
    """Encoder + decoder: face crops ``(B, 3, S, S)`` in [0, 1] -> vertices ``(B, V, 3)``.

    Args:
        cfg: the model configuration (saved in checkpoints).
        target: the regressed mesh with its pyramid (default: built from ``cfg.mesh``).
        morphable: the morphable model for the ``3dmm`` decoder (default: ``target.model``,
            which must then have identity and expression modes).
        load_weights: load the encoder's ImageNet weights if ``cfg`` names a file.

    Attributes:
        encoder: the :class:`~facegcn_lib.nn.encoders.ImageEncoder`.
        decoder: a :class:`~facegcn_lib.nn.resgcn.ResGCNDecoder`,
            :class:`~facegcn_lib.nn.baselines.UVPositionMapDecoder` or
            :class:`~facegcn_lib.nn.baselines.MMRegressionDecoder`.
        target: the :class:`~facegcn_lib.nn.target_mesh.TargetMesh`.
    """

    template: torch.Tensor
    lmks68: torch.Tensor

    def __init__(self, cfg: ModelConfig, target: TargetMesh | None = None,
                 morphable: MorphableModel | None = None, load_weights: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.target = target if target is not None else load_target_mesh(cfg.mesh)
        if self.target.cfg != cfg.mesh:
            raise ConfigError(f"the target mesh was built for {self.target.cfg}, the config asks "
                              f"for {cfg.mesh}")
        self.encoder = ImageEncoder(cfg.encoder, load_weights=load_weights)
        code = cfg.encoder.code_dim
        self.decoder: nn.Module
        if cfg.decoder == "gcn":
            self.decoder = ResGCNDecoder(code, cfg.gcn, self.target.pyramid)
        elif cfg.decoder == "uvmap":
            self.decoder = UVPositionMapDecoder(code, cfg.uvmap, self.target.vertex_uvs())
        else:
            mm = morphable if morphable is not None else self.target.model
            self.decoder = MMRegressionDecoder(code, cfg.mm, mm, self.target.placement())
        self.adds_template = cfg.add_template and cfg.decoder != "3dmm"
        template = torch.tensor(self.target.template_in_crop(), dtype=torch.float32)
        self.register_buffer("template", template, persistent=False)
        self.register_buffer("lmks68", torch.as_tensor(self.target.lmks68, dtype=torch.int64),
                             persistent=False)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Vertices ``(B, V, 3)`` (normalised crop frame) from codes ``(B, code_dim)``."""
        out: torch.Tensor = self.decoder(code)
        if self.adds_template:
            out = out + self.template.to(out.dtype)
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Vertices ``(B, V, 3)`` in the normalised crop frame from crops ``(B, 3, S, S)`` in [0, 1]."""
        return self.decode(self.encoder(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, crop_to_image: torch.Tensor) -> Prediction:
        """Vertices, landmarks and pose in the original images.

        Args:
            images: (B, 3, S, S) crops, RGB in [0, 1] (the encoder normalises them).
            crop_to_image: (B, 3, 3) affine maps from crop pixels to image pixels (the inverse
                of :class:`facegcn_lib.data.crop.CropAndAugment`'s ``crop_matrix``); z is
                scaled by their isotropic scale.
        """
        was_training = self.training
        self.eval()
        try:
            verts_n = self(images)
        finally:
            self.train(was_training)
        return self.place(verts_n, crop_to_image, images.shape[-1])

    @torch.no_grad()
    def place(self, verts_n: torch.Tensor, crop_to_image: torch.Tensor, size: int) -> Prediction:
        """The :class:`Prediction` of vertices the network gave in the normalised crop frame.

        What :meth:`predict` does after the forward pass, for callers that run the network
        themselves (e.g. :class:`~facegcn_lib.pipeline.Reconstructor` with onnxruntime).

        Args:
            verts_n: (B, V, 3) the network's output.
            crop_to_image: (B, 3, 3) crop pixels -> image pixels, as in :meth:`predict`.
            size: S, the crops' side in pixels.
        """
        crop_px = normalized_to_crop(verts_n, size)
        crop_matrix = torch.linalg.inv(crop_to_image.to(torch.float64))
        z_scale = torch.linalg.det(crop_matrix[:, :2, :2]).abs().sqrt()
        verts = uncrop_points(crop_px, crop_matrix.to(crop_px.device), z_scale.to(crop_px.device))
        lmks = verts[:, self.lmks68]
        pose = pose_from_mesh_batch(verts.detach().cpu().double().numpy(), self.target.model.mean)
        return Prediction(verts, lmks, pose, verts_n)


def build_model(cfg: ModelConfig, load_weights: bool = True,
                morphable: MorphableModel | None = None) -> FaceGCN:
    """The model ``cfg`` describes, its mesh and pyramid loaded by name (see :class:`FaceGCN`)."""
    return FaceGCN(cfg, load_target_mesh(cfg.mesh), morphable=morphable, load_weights=load_weights)


def count_parameters(module: nn.Module) -> int:
    """The number of trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
