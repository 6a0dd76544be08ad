"""AFLW2000-3D (the paper's test set) as a torch ``Dataset``: images, 68 3D landmarks, yaw bins.

Layout in the data directory (``<data>/aflw2000-3d/``): the 2000-row ground-truth arrays of
3DDFA's benchmark (``AFLW2000-3D.pts68.npy`` (2000, 3, 68), ``AFLW2000-3D.pose.npy`` yaw in
degrees, ``AFLW2000-3D-Reannotated.pts68.npy``, ``AFLW2000-3D_crop.roi_box.npy``), rows in
sorted image-name order; and ``images/`` with ``imageNNNNN.jpg`` + ``.mat`` pairs (8 here; the
full set from the AFLW2000-3D archive works the same, pointed at by ``image_dir``).

Landmarks are returned in the library's 0-based pixels (3DDFA's are MATLAB 1-based).

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from facegcn_lib.data.fits3ddfa import (
    as_float_tensor,
    matlab_to_pixels,
    mesh_from_fit,
    read_fit,
    yaw_bin,
)
from facegcn_lib.data.images import image_to_tensor, load_image
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.paths import DataMissingError, require

AFLW_DIR = "aflw2000-3d"
AFLW_NUM_IMAGES = 2000
PTS68 = f"{AFLW_DIR}/AFLW2000-3D.pts68.npy"
PTS68_REANNOTATED = f"{AFLW_DIR}/AFLW2000-3D-Reannotated.pts68.npy"
POSE = f"{AFLW_DIR}/AFLW2000-3D.pose.npy"
ROI_BOX = f"{AFLW_DIR}/AFLW2000-3D_crop.roi_box.npy"

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]


class AFLW2000(Dataset[Sample]):
    """AFLW2000-3D images with their benchmark ground truth.

    Each sample is a dict:

    * ``"image"``: (3, H, W) uint8 RGB; ``"name"``: e.g. ``"image00050"``; ``"row"``: its row
      in the 2000-row arrays;
    * ``"landmarks"``: (68, 3) float32, x, y in 0-based pixels, z towards the viewer (pixels);
    * ``"landmarks_reannotated"``: (68, 2) float32, the re-annotated 2D landmarks;
    * ``"yaw_deg"``: float64 scalar (the benchmark's), ``"yaw_bin"``: int64 (0, 1, 2 for
      |yaw| <= 30, <= 60, > 60); ``"roi_box"``: (4,) float32;
    * ``"pose"``: (3,) float32 yaw, pitch, roll in radians from the ``.mat`` fit;
    * ``"vertices"``: (V, 3) float32 dense image-frame mesh, only when ``basis`` is given.

    Args:
        root: the data directory (default :func:`facegcn_lib.paths.data_dir`).
        image_dir: the folder of ``.jpg`` + ``.mat`` files (default ``<root>/aflw2000-3d/images``).
            With all 2000 images present, rows follow sorted names; otherwise ``rows.csv``
            (beside the arrays or in ``image_dir``) gives each image's row.
        transform: applied to each sample (e.g. :class:`facegcn_lib.data.crop.CropAndAugment`).
        basis: a Basel Face Model to build dense meshes from the fits (optional).
        allow_missing_expression: build meshes with a basis without expressions.
    """

    def __init__(self, root: Path | None = None, *, image_dir: Path | None = None,
                 transform: Transform | None = None, basis: MorphableModel | None = None,
                 allow_missing_expression: bool = False) -> None:
        self.pts68 = np.load(require(PTS68, root))
        self.pts68_reannotated = np.load(require(PTS68_REANNOTATED, root))
        self.yaw_deg = np.load(require(POSE, root))
        self.roi_box = np.load(require(ROI_BOX, root))
        gt_dir = require(PTS68, root).parent
        self.image_dir = Path(image_dir) if image_dir is not None else gt_dir / "images"
        if not self.image_dir.is_dir():
            if image_dir is None:  # the data directory's images: name the command that fetches them
                raise DataMissingError(f"{AFLW_DIR}/images", gt_dir.parent)
            raise FileNotFoundError(f"AFLW2000-3D image folder not found: {self.image_dir}")
        self.names = sorted(p.stem for p in self.image_dir.glob("*.jpg"))
        if not self.names:
            raise FileNotFoundError(f"no .jpg images in {self.image_dir}")
        self.rows = self._rows(gt_dir)
        self.transform = transform
        self.basis = basis
        self.allow_missing_expression = allow_missing_expression

    def _rows(self, gt_dir: Path) -> list[int]:
        if len(self.names) == AFLW_NUM_IMAGES:
            return list(range(AFLW_NUM_IMAGES))
        table: dict[str, int] = {}
        for candidate in (self.image_dir / "rows.csv", gt_dir / "rows.csv"):
            if candidate.is_file():
                with open(candidate, newline="") as f:
                    table = {r["image"]: int(r["row"]) for r in csv.DictReader(f)}
                break
        unknown = [n for n in self.names if n not in table]
        if unknown:
            raise FileNotFoundError(
                f"{self.image_dir} holds {len(self.names)} of the {AFLW_NUM_IMAGES} images and no "
                f"rows.csv row for {unknown[:5]}: add them to rows.csv (columns image,row) or "
                "use the full image folder")
        return [table[n] for n in self.names]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Sample:
        name, row = self.names[index], self.rows[index]
        image = load_image(self.image_dir / f"{name}.jpg")
        sample: Sample = {
            "image": image_to_tensor(image),
            "name": name,
            "row": row,
            "landmarks": as_float_tensor(matlab_to_pixels(self.pts68[row].T)),
            "landmarks_reannotated": as_float_tensor(matlab_to_pixels(self.pts68_reannotated[row].T)),
            "yaw_deg": torch.tensor(float(self.yaw_deg[row]), dtype=torch.float64),
            "yaw_bin": torch.tensor(yaw_bin(self.yaw_deg[row]), dtype=torch.int64),
            "roi_box": as_float_tensor(self.roi_box[row]),
        }
        mat = self.image_dir / f"{name}.mat"
        if mat.is_file():
            fit = read_fit(mat)
            sample["pose"] = as_float_tensor(fit.yaw_pitch_roll)
            if self.basis is not None:
                verts = mesh_from_fit(self.basis, fit, image.shape[0],
                                      allow_missing_expression=self.allow_missing_expression)
                sample["vertices"] = as_float_tensor(verts)
        elif self.basis is not None:
            raise FileNotFoundError(f"{mat} not found: dense meshes need each image's .mat fit")
        return self.transform(sample) if self.transform else sample

    def yaw_bins(self) -> np.ndarray:
        """(N,) int64 yaw bin of every sample (for per-bin metrics), without loading images."""
        return np.array([yaw_bin(self.yaw_deg[r]) for r in self.rows], dtype=np.int64)
