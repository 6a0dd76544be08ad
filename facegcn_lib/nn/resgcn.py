"""The ResGCN decoder: residual blocks of Chebyshev convolutions, coarse to fine over a mesh pyramid.

:class:`ResGCNBlock` is the paper's Figure 4: two Chebyshev convolutions (K = 3), each followed
by instance normalisation, a Leaky ReLU between them, and an identity path (a per-vertex
linear projection where the channel count changes) added before the last Leaky ReLU.

:class:`ResGCNDecoder` is the paper's Figure 3: a fully connected layer turns the 256-d code
into features on the coarsest mesh of the pyramid; one block per level refines them, and an
up-sampling (the pyramid's ``U`` matrices) carries them to the next finer level; two more
graph convolutions map the finest features to x, y, z.

See :doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facegcn_lib.config import ConfigError, DecoderConfig
from facegcn_lib.mesh.pyramid import MeshPyramid
from facegcn_lib.nn.cheb_conv import ChebConv
from facegcn_lib.nn.resample import VertexResample

#: Coordinates per output vertex.
XYZ = 3
#: Added to the variance in the normalisations (torch's default).
NORM_EPS = 1e-5
#: The last convolution's initial weights are scaled by this, so that an untrained decoder's
#: output is small (a few millimetres when added to the template) rather than metres.
OUTPUT_INIT_GAIN = 0.01


class VertexNorm(nn.Module):
    """Instance or batch normalisation of per-vertex features ``(B, V, C)`` over the vertices.

    ``instance`` (the paper's): each sample's and channel's mean and variance over its V
    vertices, the same in training and evaluation; equal to ``nn.InstanceNorm1d`` on
    ``(B, C, V)``, but computed on the ``(B, V, C)`` layout the graph convolutions use, with
    the averages over vertices as matrix-vector products (several times faster on a CPU than
    a reduction over the middle axis; the ONNX export uses ``InstanceNormalization``). ``batch``: statistics over the batch and the vertices,
    with running averages for evaluation. ``none``: the identity. Both norms learn a
    per-channel scale and shift.

    Args:
        channels: C.
        kind: ``instance``, ``batch`` or ``none``.
        n_verts: V (``instance`` only).
        eps: added to the variance.
    """

    average: torch.Tensor

    def __init__(self, channels: int, kind: str, n_verts: int = 0, eps: float = NORM_EPS) -> None:
        super().__init__()
        if kind not in ("instance", "batch", "none"):
            raise ConfigError(f"normalisation must be 'instance', 'batch' or 'none', got {kind!r}")
        self.kind = kind
        self.eps = eps
        #: compute ``instance`` with ``F.instance_norm`` (ONNX ``InstanceNormalization``); set
        #: by :func:`facegcn_lib.nn.export.export_kernels`.
        self.native = False
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        self.batch_norm: nn.BatchNorm1d | None = None
        if kind == "instance":
            if n_verts < 1:
                raise ValueError("instance normalisation needs the vertex count n_verts")
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
            self.register_buffer("average", torch.full((n_verts,), 1.0 / n_verts), persistent=False)
        elif kind == "batch":
            self.batch_norm = nn.BatchNorm1d(channels, eps=eps)

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        """``x.mean(dim=1, keepdim=True)`` of (B, V, C) as one matrix-vector product."""
        v, c = x.shape[1], x.shape[2]
        flat = x.transpose(0, 1).reshape(v, -1)  # a view for the convolutions' layout
        return (self.average.to(x.dtype) @ flat).reshape(-1, 1, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``(B, V, C)`` features; the shape is unchanged."""
        if self.weight is not None and self.bias is not None:
            if self.native:
                native = F.instance_norm(x.transpose(1, 2), weight=self.weight, bias=self.bias,
                                         eps=self.eps)
                return native.transpose(1, 2)
            centred = x - self._mean(x)
            var = self._mean(centred * centred)
            # (x - mean) * scale + shift in one pass over the features
            return torch.addcmul(self.bias, centred, torch.rsqrt(var + self.eps) * self.weight)
        if self.batch_norm is not None:
            _, v, c = x.shape
            flat: torch.Tensor = self.batch_norm(x.transpose(0, 1).reshape(-1, c))
            return flat.reshape(v, -1, c).transpose(0, 1)
        return x


class ResGCNBlock(nn.Module):
    """The residual graph-convolution block (the paper's Figure 4).

    ``y = act(N2(G2(act(N1(G1(x))))) + P x)`` with ``G`` Chebyshev convolutions, ``N``
    normalisations, ``act`` a Leaky ReLU and ``P`` the identity, or a linear projection (no
    bias) when ``in_channels != out_channels``. Without the identity path
    (``residual=False``) the sum drops ``P x``.

    Args:
        in_channels: features per vertex in.
        out_channels: features per vertex out.
        laplacian: (V, V) scaled Laplacian of the level's mesh (see
            :func:`facegcn_lib.nn.cheb_conv.cheb_laplacian`).
        K: Chebyshev order.
        norm: ``instance`` (the paper), ``batch`` or ``none``.
        residual: keep the identity path.
        negative_slope: the Leaky ReLU's slope for negative inputs.

    Shapes: ``(B, V, in_channels) -> (B, V, out_channels)``.
    """

    def __init__(self, in_channels: int, out_channels: int, laplacian: Any, K: int = 3,
                 norm: str = "instance", residual: bool = True,
                 negative_slope: float = 0.2) -> None:
        super().__init__()
        self.conv1 = ChebConv(in_channels, out_channels, laplacian, K=K)
        n_verts = self.conv1.num_verts
        self.norm1 = VertexNorm(out_channels, norm, n_verts)
        self.conv2 = ChebConv(out_channels, out_channels, laplacian, K=K)
        self.norm2 = VertexNorm(out_channels, norm, n_verts)
        self.act = nn.LeakyReLU(negative_slope)
        self.residual = residual
        self.shortcut: nn.Module | None = None
        if residual:
            self.shortcut = (nn.Identity() if in_channels == out_channels
                             else nn.Linear(in_channels, out_channels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine ``(B, V, in_channels)`` features to ``(B, V, out_channels)``."""
        if torch.is_grad_enabled():
            h = self.act(self.norm1(self.conv1(x)))
            h = self.norm2(self.conv2(h))
            if self.shortcut is not None:
                h = h + self.shortcut(x)
            out: torch.Tensor = self.act(h)
            return out
        # inference: the same operations, in place on the fresh intermediate results
        slope = self.act.negative_slope
        h = F.leaky_relu_(self.norm1(self.conv1(x)), slope)
        h = self.norm2(self.conv2(h))
        if self.shortcut is not None:
            h = h.add_(self.shortcut(x))
        return F.leaky_relu_(h, slope)


class ResGCNDecoder(nn.Module):
    """The decoder of the paper's Figure 3: code -> coarsest mesh -> blocks and up-sampling -> xyz.

    With ``n`` pyramid levels and ``channels = (c_0, ..., c_{n-1})`` (coarsest first): a linear
    layer maps the code to ``(V_{n-1}, c_0)`` features; block ``i`` (``c_{i-1} -> c_i``
    channels, ``c_{-1} = c_0``) runs on level ``n - 1 - i``, followed, except after the last
    block, by the up-sampling ``U_{n-2-i}`` to the next finer level; two Chebyshev
    convolutions (``c_{n-1} -> c_{n-1} -> 3``, a Leaky ReLU between) give the vertices; the
    last is initialised small (:data:`OUTPUT_INIT_GAIN`), so an untrained decoder outputs small
    offsets.

    Parameters: ``code_dim * V_{n-1} * c_0 + V_{n-1} * c_0`` in the linear layer; per block
    ``K c_in c + c + K c^2 + c`` in the convolutions, ``4 c`` in two normalisations (instance or
    batch; none without) and ``c_in c`` in a projection; ``K c^2 + c + 3 K c + 3`` in the head.
    With a 256-d code and K = 3 that is 1,378,595 for the ICT face (levels 9,409 ... 37,
    channels 128-64-32-16-16) and 1,878,371 for the paper's BFM decoder (53,215 ... 52,
    128-64-32-32-16-16); the linear layer holds 88 % and 91 % of them.

    Args:
        code_dim: length of the input code.
        cfg: channels per level, Chebyshev order, normalisation, identity path.
        pyramid: the mesh pyramid (level 0 is the output mesh).

    Raises:
        ConfigError: ``len(cfg.channels)`` differs from the pyramid's number of levels.
    """

    def __init__(self, code_dim: int, cfg: DecoderConfig, pyramid: MeshPyramid) -> None:
        super().__init__()
        n = len(pyramid.verts)
        if len(cfg.channels) != n:
            raise ConfigError(f"DecoderConfig.channels {cfg.channels} has {len(cfg.channels)} "
                              f"entries for a pyramid of {n} levels: give one per level")
        self.cfg = cfg
        self.level_sizes = tuple(len(v) for v in pyramid.verts)
        ch = cfg.channels
        self.fc = nn.Linear(code_dim, self.level_sizes[-1] * ch[0])
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in range(n):
            level = n - 1 - i
            self.blocks.append(ResGCNBlock(ch[max(i - 1, 0)], ch[i], pyramid.laplacian(level),
                                           K=cfg.cheb_k, norm=cfg.norm, residual=cfg.residual,
                                           negative_slope=cfg.negative_slope))
            if level > 0:
                self.ups.append(VertexResample(pyramid.up[level - 1]))
        lap0 = pyramid.laplacian(0)
        self.head1 = ChebConv(ch[-1], ch[-1], lap0, K=cfg.cheb_k)
        self.head_act = nn.LeakyReLU(cfg.negative_slope)
        self.head2 = ChebConv(ch[-1], XYZ, lap0, K=cfg.cheb_k)
        with torch.no_grad():
            self.head2.weight.mul_(OUTPUT_INIT_GAIN)

    def levels(self, code: torch.Tensor) -> list[torch.Tensor]:
        """The features after each block, coarsest first: ``(B, V_level, c_i)`` per level."""
        x = self.fc(code).reshape(-1, self.level_sizes[-1], self.cfg.channels[0])
        out: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            out.append(x)
            if i < len(self.ups):
                x = self.ups[i](x)
        return out

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """Vertices ``(B, V_0, 3)`` from codes ``(B, code_dim)``."""
        x = self.levels(code)[-1]
        out: torch.Tensor = self.head2(self.head_act(self.head1(x)))
        return out
