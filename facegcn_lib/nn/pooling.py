"""Moment pooling: a feature map's channel means and where in the map each channel fires.

Global average pooling keeps how strongly each channel fires and forgets where; the network
then has to write the face's position and size into channel strengths (through the padding's
edge effects). :class:`MomentPool` also keeps each channel's first spatial moments, so a
channel that fires on the nose tells the head where the nose is. See the results page of the
book (section "Where the error is") for the placement error it addresses.
"""

from __future__ import annotations

import torch
from torch import nn


def pixel_centres(n: int, device: torch.device | None = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The centres of ``n`` pixels on the unit interval's frame ``[-1, 1]``: ``(2 i + 1) / n - 1``.

    Shapes:
        output: ``(n,)``.
    """
    return (2 * torch.arange(n, device=device, dtype=dtype) + 1) / n - 1


def moment_pool(features: torch.Tensor) -> torch.Tensor:
    """Each channel's mean and first spatial moments over a feature map.

    .. math::
        m_c = \\frac{1}{HW} \\sum_{i,j} f_{cij}, \\quad
        m^x_c = \\frac{1}{HW} \\sum_{i,j} x_j f_{cij}, \\quad
        m^y_c = \\frac{1}{HW} \\sum_{i,j} y_i f_{cij},

    with ``x_j``, ``y_i`` the pixel centres on ``[-1, 1]`` (:func:`pixel_centres`; x right,
    y down). For a channel that is not negative, ``m^x_c / m_c`` is its centroid.

    Args:
        features: ``(B, C, H, W)``.

    Returns:
        ``(B, 3 C)``: ``[m, m^x, m^y]``, each ``(B, C)``, side by side.
    """
    if features.ndim != 4:
        raise ValueError(f"expected a feature map (B, C, H, W), got shape {tuple(features.shape)}")
    _, _, h, w = features.shape
    xs = pixel_centres(w, features.device, features.dtype)
    ys = pixel_centres(h, features.device, features.dtype)
    mean = features.mean(dim=(2, 3))
    mean_x = (features.mean(dim=2) * xs).mean(dim=2)
    mean_y = (features.mean(dim=3) * ys).mean(dim=2)
    return torch.cat([mean, mean_x, mean_y], dim=1)


class MomentPool(nn.Module):
    """:func:`moment_pool` as a module, in the slot of a torchvision ``avgpool``.

    It returns ``(B, 3 C, 1, 1)`` like ``nn.AdaptiveAvgPool2d(1)`` returns ``(B, C, 1, 1)``, so
    the backbone's own ``flatten`` and head follow unchanged (the head's first linear layer
    reads three times the width).

    Shapes:
        input: ``(B, C, H, W)``; output: ``(B, 3 C, 1, 1)``.
    """

    #: How many numbers per channel the pooling writes.
    expansion = 3

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return moment_pool(features)[:, :, None, None]

    def extra_repr(self) -> str:
        return "mean, x and y moments"
