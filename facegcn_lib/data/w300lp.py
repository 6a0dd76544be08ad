"""300W-LP (the paper's real training set) as a torch ``Dataset``: images, 68 2D landmarks, fits.

300W-LP is a folder tree of ``<name>.jpg`` + ``<name>.mat`` pairs (``AFW/``, ``HELEN/``,
``IBUG/``, ``LFPW/`` and their ``_Flip`` twins); each ``.mat`` holds ``pt2d`` (2, 68) in
MATLAB 1-based pixels, ``roi``, and a 3DDFA fit (``Shape_Para``, ``Exp_Para``, ``Pose_Para``).
Dense meshes need a Basel Face Model basis that the user supplies (the BFM is not
redistributable): :func:`facegcn_lib.morphable.bfm.load_bfm2009` of face3d's ``BFM.mat`` (with
3DDFA's expression basis) or of the BFM 2009 file (``allow_missing_expression=True``).

The data directory holds one sample (``<data>/300w-lp-sample/``), which is the default root.

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from facegcn_lib.data.fits3ddfa import as_float_tensor, matlab_to_pixels, mesh_from_fit, read_fit
from facegcn_lib.data.images import image_to_tensor, load_image
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.paths import DataMissingError, data_dir

W300LP_SAMPLE_DIR = "300w-lp-sample"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
NUM_LANDMARKS = 68

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]


class W300LP(Dataset[Sample]):
    """300W-LP samples (every ``.mat`` with an image of the same name, found recursively).

    Each sample is a dict: ``"image"`` (3, H, W) uint8; ``"name"`` (path relative to the root,
    without suffix); ``"landmarks"`` (68, 2) float32 in 0-based pixels; ``"pose"`` (3,) float32
    yaw, pitch, roll (radians); ``"roi"`` (4,) float32; and, with a ``basis``,
    ``"vertices"`` (V, 3) float32, the dense image-frame mesh (0-based pixels, z towards the
    viewer).

    Args:
        root: the 300W-LP folder (default ``<data>/300w-lp-sample``).
        transform: applied to each sample.
        basis: a Basel Face Model to build dense meshes (optional).
        allow_missing_expression: accept a basis without expressions (meshes lack expression).
    """

    def __init__(self, root: Path | str | None = None, *, transform: Transform | None = None,
                 basis: MorphableModel | None = None, allow_missing_expression: bool = False) -> None:
        self.root = Path(root) if root is not None else data_dir() / W300LP_SAMPLE_DIR
        if not self.root.is_dir():
            if root is None:  # the data directory's sample: name the command that fetches it
                raise DataMissingError(W300LP_SAMPLE_DIR, data_dir())
            raise FileNotFoundError(f"300W-LP folder not found: {self.root}")
        self.items: list[tuple[Path, Path]] = []
        for mat in sorted(self.root.rglob("*.mat")):
            image = next((mat.with_suffix(s) for s in IMAGE_SUFFIXES if mat.with_suffix(s).is_file()), None)
            if image is not None:
                self.items.append((image, mat))
        if not self.items:
            raise FileNotFoundError(f"no .mat + image pairs under {self.root}; is it a 300W-LP folder?")
        self.transform = transform
        self.basis = basis
        self.allow_missing_expression = allow_missing_expression

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_path, mat = self.items[index]
        image = load_image(image_path)
        fit = read_fit(mat)
        if fit.pt2d is None or fit.pt2d.shape != (2, NUM_LANDMARKS):
            raise ValueError(f"{mat}: pt2d must be (2, {NUM_LANDMARKS}); not a 300W-LP file")
        sample: Sample = {
            "image": image_to_tensor(image),
            "name": mat.relative_to(self.root).with_suffix("").as_posix(),
            "landmarks": as_float_tensor(matlab_to_pixels(fit.pt2d.T)),
            "pose": as_float_tensor(fit.yaw_pitch_roll),
        }
        if fit.roi is not None:
            sample["roi"] = as_float_tensor(fit.roi)
        if self.basis is not None:
            verts = mesh_from_fit(self.basis, fit, image.shape[0],
                                  allow_missing_expression=self.allow_missing_expression)
            sample["vertices"] = as_float_tensor(verts)
        return self.transform(sample) if self.transform else sample
