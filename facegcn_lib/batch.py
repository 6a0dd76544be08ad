"""Reconstruct photo files, folders and videos into output files (``facegcn reconstruct``).

:func:`reconstruct_files` walks the inputs (a folder stands for the files directly in it, in
name order), reconstructs each photo with a :class:`~facegcn_lib.pipeline.Reconstructor` and
each video with :func:`~facegcn_lib.video.reconstruct_video`, and writes, per photo
``<stem>`` with faces:

* ``<stem>_face<NN>.obj/.ply/_lmks68.json/_pose.json/_overlay.png/_depth.png`` per face
  (:meth:`facegcn_lib.face.Face.save`; ``NN`` in the detector's order, best first);
* ``<stem>_overlay.png``: the whole photo with every face drawn;
* ``<stem>_faces.json``: the faces' boxes, scores, poses and landmarks.

A file that cannot be read (corrupt, not an image, an unreadable video) does not stop the
run: it is recorded in the :class:`BatchReport` with the reason, as are photos without a face.

See :doc:`chapter 7 </chapters/07_in_the_wild>`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from facegcn_lib.data.images import ImageLoadError
from facegcn_lib.face import PNG_COMPRESS_LEVEL, draw_faces
from facegcn_lib.video import SmoothingConfig, VideoReadError, reconstruct_video

if TYPE_CHECKING:  # pragma: no cover
    from facegcn_lib.pipeline import Reconstructor

log = logging.getLogger(__name__)

#: File name suffixes read as videos (anything else is tried as a photo).
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                            ".wmv"})


class InputNotFoundError(FileNotFoundError):
    """An input path that does not exist."""


@dataclass(frozen=True)
class FileResult:
    """The outcome for one input file.

    Attributes:
        path: the input.
        kind: ``"photo"`` or ``"video"``.
        faces: faces reconstructed (over all frames for a video).
        error: why the file could not be processed (``None`` when it was).
        outputs: the files written.
    """

    path: Path
    kind: str
    faces: int = 0
    error: str | None = None
    outputs: tuple[Path, ...] = ()


@dataclass
class BatchReport:
    """Every input file's :class:`FileResult`, in processing order."""

    results: list[FileResult] = field(default_factory=list)

    @property
    def faces(self) -> int:
        """Faces reconstructed over all inputs."""
        return sum(r.faces for r in self.results)

    @property
    def failed(self) -> list[FileResult]:
        """Files that could not be read."""
        return [r for r in self.results if r.error is not None]

    @property
    def without_faces(self) -> list[FileResult]:
        """Files read without problems in which no face was found."""
        return [r for r in self.results if r.error is None and r.faces == 0]


def collect_inputs(paths: list[str | Path]) -> list[Path]:
    """The files to process: each file as given, each folder's files (not hidden, sorted).

    Raises:
        InputNotFoundError: a path does not exist.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        elif p.is_file():
            out.append(p)
        else:
            raise InputNotFoundError(f"input {p} does not exist: give photo or video files, or "
                                     "folders of them")
    return out


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, k = path.stem, 2
    while stem in used:
        stem, k = f"{path.stem}_{k}", k + 1
    used.add(stem)
    return stem


def reconstruct_photo(path: Path, reconstructor: Reconstructor, out_dir: Path,
                      stem: str) -> FileResult:
    """Reconstruct one photo file and write its files (see the module docstring)."""
    from PIL import Image

    from facegcn_lib.data.images import load_image

    image = load_image(path)
    faces = reconstructor(image)
    if not faces:
        return FileResult(path, "photo")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for k, face in enumerate(faces):
        written += face.save(out_dir, f"{stem}_face{k:02d}", image).values()
    overlay = out_dir / f"{stem}_overlay.png"
    Image.fromarray(draw_faces(image, faces)).save(overlay, compress_level=PNG_COMPRESS_LEVEL)
    summary = out_dir / f"{stem}_faces.json"
    summary.write_text(json.dumps({
        "image": str(path), "width": image.shape[1], "height": image.shape[0],
        "faces": [{"stem": f"{stem}_face{k:02d}", **f.to_json()} for k, f in enumerate(faces)],
    }, indent=1) + "\n")
    return FileResult(path, "photo", len(faces), None, (*written, overlay, summary))


def reconstruct_files(paths: list[str | Path], out_dir: str | Path,
                      reconstructor: Reconstructor, smoothing: SmoothingConfig | None = None,
                      progress: bool = True) -> BatchReport:
    """Reconstruct photos, folders and videos (see the module docstring).

    Args:
        paths: files and folders.
        out_dir: where the outputs go (created).
        reconstructor: the reconstructor.
        smoothing: temporal smoothing of videos (default: the 1-euro filter).
        progress: show progress bars (over files, and over a video's frames).
    Raises:
        InputNotFoundError: an input does not exist (nothing is processed).
    """
    from PIL import Image
    from tqdm.auto import tqdm

    files = collect_inputs(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = BatchReport()
    used: set[str] = set()
    bar = tqdm(files, desc="reconstruct", unit="file", disable=not progress or len(files) < 2)
    for path in bar:
        stem = _unique_stem(path, used)
        is_video = path.suffix.lower() in VIDEO_SUFFIXES
        kind = "video" if is_video else "photo"
        try:
            if is_video:
                v = reconstruct_video(path, reconstructor, out, smoothing, progress, stem)
                result = FileResult(path, kind, v.faces, None, (v.overlay, v.frame_dir))
            else:
                result = reconstruct_photo(path, reconstructor, out, stem)
        except (ImageLoadError, VideoReadError) as err:
            result = FileResult(path, kind, error=str(err))
            log.debug("skipped: %s", err)
        except Image.DecompressionBombError as err:  # Pillow's guard against absurd sizes
            result = FileResult(path, kind, error=f"{path} is too large to decode safely: {err}")
            log.debug("skipped: %s", result.error)
        report.results.append(result)
        bar.set_postfix(faces=report.faces)
    return report
