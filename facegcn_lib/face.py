"""A reconstructed face in a photo: its mesh, 68 landmarks, head pose and box, saved and drawn.

:class:`Face` is what :class:`facegcn_lib.pipeline.Reconstructor` returns, one per face found.
All positions are in the *image frame* of the photo: x right and y down in pixels (pixel
centres at integer coordinates, as OpenCV), z towards the camera at the same scale as x (so
the mesh has the face's true proportions; z's origin is arbitrary).

Files written by :meth:`Face.save` (``<stem>`` chosen by the caller):

* ``<stem>.obj`` and ``<stem>.ply``: the mesh in image-frame pixels with per-vertex colours
  sampled (bilinearly) from the photo at each vertex's ``(x, y)``;
* ``<stem>_lmks68.json``: the 68 landmarks (see :data:`LANDMARKS_NOTE`);
* ``<stem>_pose.json``: yaw, pitch and roll in degrees (see :data:`POSE_NOTE`), box and score;
* ``<stem>_overlay.png``: the photo around the face with the wireframe and landmarks;
* ``<stem>_depth.png``: a 16-bit depth image of the same region (see :data:`DEPTH_NOTE`).

See :doc:`chapter 7 </chapters/07_in_the_wild>`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facegcn_lib.overlay import OverlayConfig, draw_box, draw_landmarks, draw_wireframe

#: How the 68 landmarks are defined (written into the landmark JSON).
LANDMARKS_NOTE = (
    "The 68 points of AFLW2000-3D's ground truth (the Basel Face Model's 68 keypoint vertices, "
    "Multi-PIE scheme: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67), located on "
    "the predicted mesh. Image frame: x right, y down in pixels (pixel centres at integers), "
    "z towards the camera at the same scale as x.")

#: The pose convention (written into the pose JSON).
POSE_NOTE = (
    "Degrees, 3DDFA's Pose_Para convention (R = Rx(pitch) Ry(yaw) Rz(roll), the convention of "
    "AFLW2000-3D's and 300W-LP's labels): positive yaw turns the face towards the image's left "
    "(the subject's right), positive pitch tilts it up, positive roll turns it clockwise on "
    "screen. Fitted by a similarity (Umeyama) from the template mesh to the predicted mesh; "
    "see facegcn_lib.geometry.rotations.")

#: How the depth PNG encodes depth.
DEPTH_NOTE = (
    "16-bit PNG of the image region [x0, x0 + width) x [y0, y0 + height) of the photo; 0 where "
    "no triangle is seen, else v in 1..65535 with z = z_min + (v - 1) / 65534 * (z_max - z_min), "
    "z towards the camera in image pixels (brighter is nearer). x0, y0, z_min, z_max are in the "
    "PNG's text chunks and in the pose JSON.")

#: The largest 16-bit depth code (0 is background).
_DEPTH_MAX_CODE = 65535
#: zlib level of the PNGs written (1: fast, files about a third larger than the default 6).
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class FaceViewConfig:
    """The image region that a face's overlay and depth images cover.

    Attributes:
        margin: the region is the mesh's 2D bounding box grown by this fraction of its size
            on every side (then clipped to the photo).
    """

    margin: float = 0.15


@dataclass(frozen=True)
class DepthMap:
    """A face's depth over an image region.

    Attributes:
        z: (h, w) float32, z towards the camera in image pixels; NaN where no triangle is seen.
        x0, y0: the region's top-left pixel in the photo.
    """

    z: NDArray[np.float32]
    x0: int
    y0: int

    def encode(self) -> tuple[NDArray[np.uint16], float, float]:
        """``(image (h, w) uint16, z_min, z_max)`` as :data:`DEPTH_NOTE` describes."""
        seen = np.isfinite(self.z)
        if not seen.any():
            return np.zeros(self.z.shape, dtype=np.uint16), 0.0, 0.0
        lo, hi = float(self.z[seen].min()), float(self.z[seen].max())
        scale = (_DEPTH_MAX_CODE - 1) / (hi - lo) if hi > lo else 0.0
        code = np.zeros(self.z.shape, dtype=np.uint16)
        code[seen] = np.round((self.z[seen] - lo) * scale).astype(np.uint16) + 1
        return code, lo, hi


def sample_colors(image: NDArray[np.uint8], points: NDArray) -> NDArray[np.uint8]:
    """Bilinear colour samples of an image at ``(N, 2+)`` pixel positions (edges clamped).

    Args:
        image: (H, W, 3) uint8 RGB.
        points: (N, 2+) x, y in pixels (pixel centres at integer coordinates); positions
            outside the image take the nearest edge pixel's colour, NaN ones pixel (0, 0)'s.
    Returns:
        (N, 3) uint8 RGB, rounded.
    """
    h, w = image.shape[:2]
    p = np.asarray(points, dtype=np.float64)[:, :2]
    p = np.where(np.isfinite(p), p, 0.0)
    x = np.clip(p[:, 0], 0.0, w - 1.0)
    y = np.clip(p[:, 1], 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.int64), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = image.astype(np.float64)
    top = (1.0 - fx) * img[y0, x0] + fx * img[y0, x1]
    bottom = (1.0 - fx) * img[y1, x0] + fx * img[y1, x1]
    out: NDArray[np.uint8] = np.clip(np.round((1.0 - fy) * top + fy * bottom), 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True, eq=False)
class Face:
    """One reconstructed face (see the module docstring for the frame).

    Attributes:
        verts_img: (V, 3) float32 mesh vertices, image pixels (x right, y down, z towards the
            camera scaled like x).
        faces: (F, 3) int64 triangles.
        lmks68: (68, 3) float32 the 68 landmarks (:data:`LANDMARKS_NOTE`), image frame.
        pose: yaw, pitch, roll in degrees (:data:`POSE_NOTE`).
        box: (4,) float64 ``[x0, y0, x1, y1]`` the detector's box in image pixels.
        score: the detector's confidence in [0, 1].
        metadata: extra JSON-compatible values (e.g. the frame index in a video).
    """

    verts_img: NDArray[np.float32]
    faces: NDArray[np.int64]
    lmks68: NDArray[np.float32]
    pose: tuple[float, float, float]
    box: NDArray[np.float64]
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def yaw(self) -> float:
        """Yaw in degrees."""
        return self.pose[0]

    @property
    def pitch(self) -> float:
        """Pitch in degrees."""
        return self.pose[1]

    @property
    def roll(self) -> float:
        """Roll in degrees."""
        return self.pose[2]

    @property
    def size(self) -> float:
        """The larger side of the landmarks' 2D bounding box, in pixels."""
        xy = self.lmks68[:, :2]
        return float((xy.max(axis=0) - xy.min(axis=0)).max())

    def colors(self, image: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """(V, 3) uint8 vertex colours sampled from the photo at each vertex's ``(x, y)``."""
        return sample_colors(image, self.verts_img)

    def region(self, height: int, width: int,
               cfg: FaceViewConfig | None = None) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` integer pixel region around the mesh, clipped to the photo
        (``x1``, ``y1`` exclusive; never empty)."""
        c = cfg or FaceViewConfig()
        xy = self.verts_img[:, :2].astype(np.float64)
        xy = xy[np.isfinite(xy).all(axis=1)]
        lo, hi = (xy.min(axis=0), xy.max(axis=0)) if len(xy) else (np.zeros(2), np.zeros(2))
        pad = c.margin * float((hi - lo).max())
        x0 = min(max(math.floor(lo[0] - pad), 0), width - 1)
        y0 = min(max(math.floor(lo[1] - pad), 0), height - 1)
        x1 = max(min(math.ceil(hi[0] + pad) + 1, width), x0 + 1)
        y1 = max(min(math.ceil(hi[1] + pad) + 1, height), y0 + 1)
        return x0, y0, x1, y1

    def depth(self, height: int, width: int, cfg: FaceViewConfig | None = None) -> DepthMap:
        """The z-buffered depth of the mesh over :meth:`region` (nearest surface wins).

        Args:
            height, width: the photo's size in pixels.
        """
        from facegcn_lib.render.raster import rasterize

        x0, y0, x1, y1 = self.region(height, width, cfg)
        pts = self.verts_img.astype(np.float64) - np.array([x0, y0, 0.0])
        pts[:, 2] *= -1.0  # the rasterizer keeps the smallest key: nearest = largest z
        gbuf = rasterize(pts, self.faces, y1 - y0, x1 - x0)
        z = np.where(gbuf.mask, -gbuf.depth, np.nan).astype(np.float32)
        return DepthMap(z, x0, y0)

    def draw(self, image: NDArray[np.uint8], *, wireframe: bool = True, landmarks: bool = True,
             box: bool = False, cfg: OverlayConfig | None = None) -> NDArray[np.uint8]:
        """The photo with this face drawn on it (a new (H, W, 3) uint8 RGB array)."""
        return draw_faces(image, [self], wireframe=wireframe, landmarks=landmarks, box=box,
                          cfg=cfg)

    def to_json(self) -> dict[str, Any]:
        """Pose, box, score and landmarks as JSON-compatible values."""
        return {"yaw": self.yaw, "pitch": self.pitch, "roll": self.roll,
                "box": [float(v) for v in self.box], "score": float(self.score),
                "lmks68": np.asarray(self.lmks68, dtype=np.float64).round(3).tolist(),
                **self.metadata}

    def save(self, out_dir: str | Path, stem: str, image: NDArray[np.uint8],
             view: FaceViewConfig | None = None, cfg: OverlayConfig | None = None) -> dict[str, Path]:
        """Write the mesh, landmarks, pose, overlay and depth files (module docstring).

        Args:
            out_dir: the folder (created if needed).
            stem: the files' common name, e.g. ``"photo_face00"``.
            image: (H, W, 3) uint8 RGB, the photo the face was found in.
        Returns:
            The written paths by kind: ``obj``, ``ply``, ``lmks68``, ``pose``, ``overlay``,
            ``depth``.
        """
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        from facegcn_lib.mesh.io import write_obj, write_ply

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        h, w = image.shape[:2]
        colors = self.colors(image)
        paths = {"obj": write_obj(out / f"{stem}.obj", self.verts_img, self.faces, colors),
                 "ply": write_ply(out / f"{stem}.ply", self.verts_img, self.faces, colors)}

        paths["lmks68"] = out / f"{stem}_lmks68.json"
        _write_json(paths["lmks68"], {
            "convention": LANDMARKS_NOTE,
            "landmarks": np.asarray(self.lmks68, dtype=np.float64).round(3).tolist()})

        depth = self.depth(h, w, view)
        code, z_min, z_max = depth.encode()
        x0, y0, x1, y1 = self.region(h, w, view)
        paths["pose"] = out / f"{stem}_pose.json"
        _write_json(paths["pose"], {
            "yaw": self.yaw, "pitch": self.pitch, "roll": self.roll, "units": "degrees",
            "convention": POSE_NOTE, "box": [float(v) for v in self.box],
            "score": float(self.score),
            "depth": {"x0": x0, "y0": y0, "z_min": z_min, "z_max": z_max, "encoding": DEPTH_NOTE},
            **self.metadata})

        paths["overlay"] = out / f"{stem}_overlay.png"
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        shifted = _shifted(self, float(x0), float(y0))
        Image.fromarray(shifted.draw(crop, cfg=cfg)).save(paths["overlay"],
                                                          compress_level=PNG_COMPRESS_LEVEL)

        paths["depth"] = out / f"{stem}_depth.png"
        info = PngInfo()
        for key, value in (("x0", x0), ("y0", y0), ("z_min", z_min), ("z_max", z_max),
                           ("encoding", DEPTH_NOTE)):
            info.add_text(key, str(value))
        Image.fromarray(code).save(paths["depth"], pnginfo=info, compress_level=PNG_COMPRESS_LEVEL)
        return paths


def _shifted(face: Face, dx: float, dy: float) -> Face:
    """The face moved by ``(-dx, -dy)`` pixels (for drawing on a crop of the photo)."""
    d = np.array([dx, dy, 0.0], dtype=np.float32)
    b = np.array([dx, dy, dx, dy])
    return replace(face, verts_img=face.verts_img - d, lmks68=face.lmks68 - d, box=face.box - b)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")


def draw_faces(image: NDArray[np.uint8], faces: list[Face], *, wireframe: bool = True,
               landmarks: bool = True, box: bool = False,
               cfg: OverlayConfig | None = None) -> NDArray[np.uint8]:
    """The photo with every face drawn on it (a new (H, W, 3) uint8 RGB array).

    Args:
        image: (H, W, 3) uint8 RGB.
        faces: the faces to draw (wireframes first, then landmarks and boxes on top).
        wireframe, landmarks, box: what to draw.
    """
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if wireframe:
        for f in faces:
            out = draw_wireframe(out, f.verts_img, f.faces, f.size, cfg)
    for f in faces:
        if landmarks:
            draw_landmarks(out, f.lmks68, f.size, cfg)
        if box:
            draw_box(out, f.box, f.size, cfg)
    return out
