"""The two baselines, decoding the same code to the same mesh as the ResGCN decoder.

* :class:`MMRegressionDecoder` (3DDFA-like, Zhu et al. 2016): a linear layer predicts
  identity and expression coefficients of a morphable model and a pose (rotation, translation,
  scale); the mesh is the model's shape under that similarity.
* :class:`UVPositionMapDecoder` (PRNet-like, Feng et al. 2018): transposed convolutions grow
  the code into a position map, an image whose pixels hold x, y, z in the mesh's UV layout;
  the mesh is that map sampled at the vertices' UVs.

Both output ``(B, V, 3)`` vertices in the normalised crop frame (see
:mod:`facegcn_lib.nn.target_mesh`), so they train with the same vertex loss and are measured
with the same metrics as the ResGCN decoder. See :doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from facegcn_lib.config import ConfigError, MMRegressionConfig, UVMapConfig
from facegcn_lib.geometry.rotations import euler_to_rotation_torch
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.nn.resgcn import OUTPUT_INIT_GAIN
from facegcn_lib.nn.target_mesh import MODEL_TO_CROP_FLIP

#: Numbers of pose parameters: rotation (by parametrisation), translation, log-scale.
ROTATION_SIZE = {"6d": 6, "euler": 3}
TRANSLATION_SIZE = 3
SCALE_SIZE = 1
#: The identity rotation in the 6D parametrisation (the first two columns of I).
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: Standard deviation of the coefficient head's initial weights (a near-mean, upright start).
HEAD_INIT_STD = 1e-3
#: Transposed convolutions double the resolution with kernel 4, stride 2, padding 1.
UPCONV_KERNEL, UPCONV_STRIDE, UPCONV_PADDING = 4, 2, 1


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` from 6D vectors ``(..., 6)`` (Zhou et al. 2019).

    The two 3-vectors are orthonormalised by Gram-Schmidt and completed by their cross
    product; they become the first two *columns* of the matrix, so ``IDENTITY_6D`` maps to I.
    """
    a, b = x[..., :3], x[..., 3:]
    c0 = F.normalize(a, dim=-1)
    c1 = F.normalize(b - (c0 * b).sum(-1, keepdim=True) * c0, dim=-1)
    c2 = torch.cross(c0, c1, dim=-1)
    return torch.stack([c0, c1, c2], dim=-1)


class MMParams(NamedTuple):
    """The 3DMM baseline's prediction for a batch.

    Attributes:
        id_coeffs: (B, n_id) identity coefficients.
        exp_coeffs: (B, n_exp) expression coefficients.
        rotation: (B, 3, 3) model-frame rotation (geometry.rotations' convention).
        translation: (B, 3) in the normalised crop frame.
        scale: (B,) crop units per millimetre.
    """

    id_coeffs: torch.Tensor
    exp_coeffs: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    scale: torch.Tensor


class MMRegressionDecoder(nn.Module):
    """3DMM regression: code -> coefficients and pose -> mesh in the crop.

    ``verts = flip_y(s R (mean + A_id a + A_exp b - c)) + t`` where ``c`` is the template's
    centre and ``s = s0 exp(sigma)``, with ``s0`` the template's placement scale. The head starts
    near zero, so an untrained decoder outputs the mean face upright in the crop's centre.

    Args:
        code_dim: length of the input code.
        cfg: coefficient counts and rotation parametrisation.
        model: the morphable model on the target mesh (its first ``n_id``/``n_exp`` modes).
        placement: ``(s0, centre)`` from :meth:`facegcn_lib.nn.target_mesh.TargetMesh.placement`.

    Raises:
        ConfigError: the model has fewer modes than ``cfg`` asks for.
    """

    flip: torch.Tensor
    centre: torch.Tensor

    def __init__(self, code_dim: int, cfg: MMRegressionConfig, model: MorphableModel,
                 placement: tuple[float, NDArray[np.float64]]) -> None:
        super().__init__()
        if cfg.n_id > model.num_id or cfg.n_exp > model.num_exp:
            raise ConfigError(
                f"MMRegressionConfig asks for {cfg.n_id} identity and {cfg.n_exp} expression "
                f"modes but {model.name} has {model.num_id} and {model.num_exp}; lower n_id/n_exp")
        self.cfg = cfg
        self.model = model.truncated(cfg.n_id, cfg.n_exp)
        self.n_rot = ROTATION_SIZE[cfg.rotation]
        n_out = cfg.n_id + cfg.n_exp + self.n_rot + TRANSLATION_SIZE + SCALE_SIZE
        self.head = nn.Linear(code_dim, n_out)
        nn.init.normal_(self.head.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(self.head.bias)
        if cfg.rotation == "6d":
            with torch.no_grad():
                start = cfg.n_id + cfg.n_exp
                self.head.bias[start:start + self.n_rot] = torch.tensor(IDENTITY_6D)
        scale0, centre = placement
        self.log_scale0 = float(np.log(scale0))
        self.register_buffer("flip", torch.tensor(MODEL_TO_CROP_FLIP, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float32), persistent=False)

    def params(self, code: torch.Tensor) -> MMParams:
        """The coefficients and pose that ``code`` (B, code_dim) predicts."""
        out = self.head(code)
        sizes = [self.cfg.n_id, self.cfg.n_exp, self.n_rot, TRANSLATION_SIZE, SCALE_SIZE]
        ids, exps, rot, trans, log_s = torch.split(out, sizes, dim=-1)
        if self.cfg.rotation == "6d":
            rmat = rotation_6d_to_matrix(rot)
        else:
            rmat = euler_to_rotation_torch(rot[..., 0], rot[..., 1], rot[..., 2])
        return MMParams(ids, exps, rmat, trans, torch.exp(log_s[..., 0] + self.log_scale0))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """Vertices ``(B, V, 3)`` in the normalised crop frame from codes ``(B, code_dim)``."""
        p = self.params(code)
        shape = self.model.sample(p.id_coeffs, p.exp_coeffs) - self.centre.to(code.dtype)
        posed = p.scale[:, None, None] * (shape @ p.rotation.transpose(-1, -2))
        return posed * self.flip.to(code.dtype) + p.translation[:, None, :]


class UVPositionMapDecoder(nn.Module):
    """PRNet-like decoder: code -> (3, S, S) position map -> sampled at the vertices' UVs.

    A linear layer makes a ``max_channels x seed x seed`` map; each stage (transposed
    convolution with stride 2, batch norm, ReLU) doubles its side and halves its channels
    (down to ``min_channels``) until the side is ``cfg.size``; a 3 x 3 convolution gives x, y, z.
    The vertices are read from the map by bilinear interpolation (``grid_sample``).

    Args:
        code_dim: length of the input code.
        cfg: map size and widths.
        vertex_uvs: (V, 2) per-vertex UVs in [0, 1] (u right, v up), e.g. from
            :meth:`facegcn_lib.nn.target_mesh.TargetMesh.vertex_uvs`.
    """

    grid: torch.Tensor

    def __init__(self, code_dim: int, cfg: UVMapConfig, vertex_uvs: NDArray[np.float64]) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.max_channels
        self.seed = nn.Linear(code_dim, c * cfg.seed_size * cfg.seed_size)
        layers: list[nn.Module] = []
        size = cfg.seed_size
        while size < cfg.size:
            c_next = max(c // 2, cfg.min_channels)
            layers += [nn.ConvTranspose2d(c, c_next, UPCONV_KERNEL, UPCONV_STRIDE, UPCONV_PADDING),
                       nn.BatchNorm2d(c_next), nn.ReLU(inplace=True)]
            c, size = c_next, size * 2
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, 3, kernel_size=3, padding=1)
        with torch.no_grad():  # small initial offsets, as the ResGCN decoder's
            self.out.weight.mul_(OUTPUT_INIT_GAIN)
        uv = np.asarray(vertex_uvs, dtype=np.float32)
        # grid_sample's x runs left to right, y top to bottom, both in [-1, 1]
        grid = np.stack([2.0 * uv[:, 0] - 1.0, 1.0 - 2.0 * uv[:, 1]], axis=-1)
        self.register_buffer("grid", torch.from_numpy(grid)[None, None], persistent=False)

    def position_map(self, code: torch.Tensor) -> torch.Tensor:
        """The position map ``(B, 3, S, S)`` of codes ``(B, code_dim)`` (row 0 is v = 1)."""
        s = self.cfg.seed_size
        x = F.relu(self.seed(code)).view(code.shape[0], self.cfg.max_channels, s, s)
        out: torch.Tensor = self.out(self.up(x))
        return out

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """Vertices ``(B, V, 3)`` in the normalised crop frame from codes ``(B, code_dim)``."""
        pos = self.position_map(code)
        grid = self.grid.to(pos.dtype).expand(pos.shape[0], -1, -1, -1)
        sampled = F.grid_sample(pos, grid, mode="bilinear", padding_mode="border",
                                align_corners=False)
        return sampled[:, :, 0, :].transpose(1, 2)
