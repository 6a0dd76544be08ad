"""Things drawn over a finished face crop (glasses, loose hair), as seeded dataset transforms.

An overlay changes only the pixels of a sample: the vertices and landmarks (the targets) stay
the face's, as they are under real glasses or hair. So overlays apply to cached faces without
re-rendering, after the mirror and the re-crop (:mod:`facegcn_lib.data.reaugment`), and to
faces rendered on the fly (:func:`facegcn_lib.train.build.build_from_preset`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray


class OverlayConfig(Protocol):
    """What an overlay's configuration has at least: the probability of drawing it."""

    @property
    def prob(self) -> float: ...


class CropOverlay:
    """A dataset transform: draw something over a sample's crop with probability ``cfg.prob``.

    The sample is a dict with ``image`` (3, S, S) uint8 tensor, ``vertices`` (V, 3) and
    ``landmarks`` (68, 3) crop pixels (:class:`facegcn_lib.data.synth.SyntheticFaces`'s and
    :class:`facegcn_lib.data.synth_cache.SynthCache`'s format); only the image changes.
    Subclasses implement :meth:`draw`.

    Args:
        cfg: the probability and the ranges.
        generator: the random source; :class:`~facegcn_lib.train.build.SeededAugment` sets it
            per item.
    """

    def __init__(self, cfg: OverlayConfig, generator: torch.Generator | None = None) -> None:
        self.cfg = cfg
        self.generator = generator

    def draw(self, image: NDArray[np.uint8], sample: dict[str, Any],
             rng: np.random.Generator) -> NDArray[np.uint8]:
        """(S, S, 3) uint8 crop in, the crop with the overlay out (``image`` is not modified)."""
        raise NotImplementedError

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if float(torch.rand((), generator=self.generator)) >= self.cfg.prob:
            return sample
        seed = int(torch.randint(0, 2**62, (), generator=self.generator))
        image = np.ascontiguousarray(sample["image"].permute(1, 2, 0).numpy())
        drawn = self.draw(image, sample, np.random.default_rng(seed))
        out = dict(sample)
        out["image"] = torch.from_numpy(drawn).permute(2, 0, 1).contiguous()
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cfg={self.cfg})"


class Overlays:
    """Overlays applied in order, sharing one random generator.

    The ``generator`` attribute (which :class:`~facegcn_lib.train.build.SeededAugment` seeds per
    item) is handed to each in turn, as inside :class:`~facegcn_lib.data.reaugment.Reaugment`.

    Args:
        overlays: e.g. :class:`~facegcn_lib.data.glasses.AddGlasses`, then
            :class:`~facegcn_lib.data.loose_hair.AddLooseHair`.
    """

    def __init__(self, overlays: Sequence[CropOverlay]) -> None:
        self.overlays = list(overlays)
        self.generator: torch.Generator | None = None

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        for overlay in self.overlays:
            overlay.generator = self.generator
            sample = overlay(sample)
        return sample

    def __repr__(self) -> str:
        return f"Overlays({self.overlays!r})"
