"""Overlays: drawn with their probability, seeded by the generator, in order, targets kept."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from facegcn_lib.data.glasses import AddGlasses
from facegcn_lib.data.loose_hair import AddLooseHair
from facegcn_lib.data.overlays import CropOverlay, Overlays
from tests.data.test_glasses import PLAIN, frontal_face, sample_of
from tests.data.test_loose_hair import FRINGE


class Stamp(CropOverlay):
    """Writes its value, plus a random draw, into the crop's first pixel."""

    def __init__(self, prob: float, value: int) -> None:
        super().__init__(type("Cfg", (), {"prob": prob})())
        self.value = value

    def draw(self, image: NDArray[np.uint8], sample: dict[str, Any],
             rng: np.random.Generator) -> NDArray[np.uint8]:
        out = image.copy()
        out[0, 0] = self.value + int(rng.integers(0, 10))
        return out


def test_an_overlay_draws_with_its_probability_and_keeps_the_rest() -> None:
    lmks, verts = frontal_face()
    s = sample_of(lmks, verts)
    assert Stamp(0.0, 100)(s) is s
    out = Stamp(1.0, 100)(s)
    assert 100 <= int(out["image"][0, 0, 0]) < 110 and int(s["image"][0, 0, 0]) == 128
    assert out["vertices"] is s["vertices"] and out["landmarks"] is s["landmarks"]
    assert repr(Stamp(1.0, 1)).startswith("Stamp(cfg=")
    with pytest.raises(NotImplementedError):
        CropOverlay(PLAIN)(s)


def test_overlays_share_one_generator_and_apply_in_order() -> None:
    lmks, verts = frontal_face()
    s = sample_of(lmks, verts)
    both = Overlays([Stamp(1.0, 100), Stamp(1.0, 200)])
    both.generator = torch.Generator().manual_seed(3)
    first = both(s)
    assert 200 <= int(first["image"][0, 0, 0]) < 210  # the second drew last
    both.generator = torch.Generator().manual_seed(3)
    assert torch.equal(both(s)["image"], first["image"])  # the generator decides everything


def test_glasses_then_hair_as_one_transform() -> None:
    """``Overlays([AddGlasses, AddLooseHair])`` draws what the two do one after the other."""
    lmks, verts = frontal_face()
    s = sample_of(lmks, verts)
    chain = Overlays([AddGlasses(PLAIN), AddLooseHair(FRINGE)])
    chain.generator = torch.Generator().manual_seed(9)
    g = torch.Generator().manual_seed(9)
    by_hand = AddLooseHair(FRINGE, g)(AddGlasses(PLAIN, g)(s))
    assert torch.equal(chain(s)["image"], by_hand["image"])
    assert "AddGlasses" in repr(chain) and "AddLooseHair" in repr(chain)
