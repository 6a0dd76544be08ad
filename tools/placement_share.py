"""How much of a model's landmark error is placement: on the AFLW2000-3D images and on rendered faces.

The book's results page (section "Where the error is") splits the shipped model's 68-point
error into placement (the 2D similarity that fits the prediction best to the annotations:
shift, in-plane angle, size) and shape (what is left), and shows that the predicted size leans
towards the training's framing. This script measures the same for any checkpoints, side by
side, so that a change meant for the placement (e.g. ``facegcn train --pooling moments``) is
judged on what it is for, not only on the total.

Usage::

    FACEGCN_DATA=/path/to/data python tools/placement_share.py [CHECKPOINT ...] [--synthetic N]

No checkpoint: the shipped model. Prints one line per checkpoint:

* ``photos``: the mean 68-point NME (%) of the AFLW2000-3D images (full pipeline, flip
  averaging), the NME after the best similarity, and placement's share of the NME;
* ``lean``: the correlation between the face's size in the crop (against the training's
  framing) and its true / predicted size (0: the predicted size does not lean towards the
  framing);
* ``rendered``: the same split on ``N`` faces of the synthetic test set, read directly;
* ``gains``: how far the prediction follows the face when the crop moves. Each rendered face
  is also read from sub-windows of its crop (side 0.95 and 0.9, centred; side 0.92 shifted by
  4 % of the crop left, right, up and down), resized to the crop size; the slope of the
  predicted against the true log-size of the 68 points over all readings is the *size gain*,
  and that of the predicted against the true centroid the *x* and *y gains*. 1 follows the face
  exactly; below 1 the prediction leans towards the training's framing.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from facegcn_lib.data.aflw2000 import AFLW2000
from facegcn_lib.data.crop import landmark_box
from facegcn_lib.detect import FaceBox
from facegcn_lib.eval.benchmarks import (
    predict_crops,
    reconstruct_matched,
    render_synthetic_test_set,
)
from facegcn_lib.eval.metrics import placement_split
from facegcn_lib.pipeline import (
    PipelineConfig,
    Reconstructor,
    detector_crop_box,
    reported_landmarks,
)

PERCENT = 100.0
#: The sub-windows of a rendered crop that :func:`gains` reads: (side, shift x, shift y), in
#: fractions of the crop's side (the window's centre moves by the shift).
#: The face grows by at most 1 / 0.9 and moves by at most 4 % of the crop: inside the ranges
#: the training's crops were drawn from (:class:`~facegcn_lib.data.crop.AugmentConfig`).
WINDOWS = ((1.0, 0.0, 0.0), (0.95, 0.0, 0.0), (0.9, 0.0, 0.0), (0.92, -0.04, 0.0), (0.92, 0.04, 0.0),
           (0.92, 0.0, -0.04), (0.92, 0.0, 0.04))


def _slope(pred: NDArray[np.float64], true: NDArray[np.float64]) -> float:
    """Least-squares slope of ``pred`` against ``true`` (both (N,))."""
    t = true - true.mean()
    return float((t * (pred - pred.mean())).sum() / (t * t).sum())


def gains(rec: Reconstructor, images: NDArray[np.uint8],
          lmks_true: NDArray[np.float64]) -> dict[str, float]:
    """Size, x and y gains of a model on crops ``images`` (N, S, S, 3) with true 68 points
    ``lmks_true`` (N, 68, 2+) in their pixels (see the module docstring)."""
    size = images.shape[1]
    points = reported_landmarks(rec.model.target)
    pred_all, true_all = [], []
    for side, sx, sy in WINDOWS:
        w = side * size
        x0, y0 = (size - w) / 2 + sx * size, (size - w) / 2 + sy * size
        to_window = np.array([[size / w, 0.0, -x0 * size / w], [0.0, size / w, -y0 * size / w]])
        windows = np.stack([cv2.warpAffine(img, to_window, (size, size), flags=cv2.INTER_AREA)
                            for img in images])
        verts, _ = predict_crops(rec.model, windows)
        pred_all.append(points.apply(verts)[..., :2])
        true_all.append((lmks_true[..., :2] - [x0, y0]) * size / w)
    pred, true = np.concatenate(pred_all).astype(np.float64), np.concatenate(true_all)

    def log_size(p: NDArray[np.float64]) -> NDArray[np.float64]:
        c = p - p.mean(axis=1, keepdims=True)
        return np.asarray(0.5 * np.log((c ** 2).sum(axis=2).mean(axis=1)))

    return {"size_gain": _slope(log_size(pred), log_size(true)),
            "x_gain": _slope(pred[..., 0].mean(axis=1), true[..., 0].mean(axis=1)),
            "y_gain": _slope(pred[..., 1].mean(axis=1), true[..., 1].mean(axis=1))}


def measure(checkpoint: str | None, n_synthetic: int) -> dict[str, float]:
    """Placement and shape error of one model on the AFLW2000-3D images and rendered faces."""
    rec = Reconstructor(checkpoint, config=PipelineConfig(flip=True))
    aflw = AFLW2000()
    pred, gt, framing = [], [], []
    for i in range(len(aflw)):
        sample = aflw[i]
        img = sample["image"].permute(1, 2, 0).numpy()
        lmks = sample["landmarks"].numpy().astype(np.float64)
        face = reconstruct_matched(rec, img, [lmks])[0].face
        pred.append(face.lmks68[:, :2])
        gt.append(lmks[:, :2])
        framing.append(landmark_box(lmks[:, :2], rec.config.crop).side
                       / detector_crop_box(FaceBox(*face.box, score=face.score), rec.config).side)
    photos = placement_split(np.stack(pred), np.stack(gt))
    synth = render_synthetic_test_set(n_synthetic, rec.model.cfg.encoder.image_size)
    synth_verts, _ = predict_crops(rec.model, synth.images)
    points = reported_landmarks(rec.model.target)
    lmks_true = points.apply(synth.vertices).astype(np.float64)
    rendered = placement_split(points.apply(synth_verts), lmks_true)
    return {**gains(rec, synth.images, lmks_true),"photos_nme": PERCENT * photos.nme.mean(),
            "photos_shape_nme": PERCENT * photos.shape_nme.mean(),
            "photos_share": 1 - photos.shape_nme.mean() / photos.nme.mean(),
            "lean": float(np.corrcoef(framing, photos.scale)[0, 1]),
            "rendered_nme": PERCENT * rendered.nme.mean(),
            "rendered_shape_nme": PERCENT * rendered.shape_nme.mean(),
            "rendered_share": 1 - rendered.shape_nme.mean() / rendered.nme.mean()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", help="model checkpoints (default: the shipped model)")
    parser.add_argument("--synthetic", type=int, default=60, metavar="N",
                        help="faces of the synthetic test set (default: 60, as the results page)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for checkpoint in args.checkpoints or [None]:
        m = measure(checkpoint, args.synthetic)
        print(f"{checkpoint or 'shipped model'}: "
              f"photos {m['photos_nme']:.2f} -> {m['photos_shape_nme']:.2f} after the best "
              f"similarity (placement {m['photos_share']:.0%}), lean {m['lean']:+.2f}; "
              f"rendered {m['rendered_nme']:.2f} -> {m['rendered_shape_nme']:.2f} "
              f"(placement {m['rendered_share']:.0%}); gains: size {m['size_gain']:.2f}, "
              f"x {m['x_gain']:.2f}, y {m['y_gain']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
