"""A disk cache of synthetic faces: render once in parallel, then train from memory-mapped shards.

``facegcn data synth --n 50000 --out DIR`` renders samples ``0 .. n-1`` of
:class:`facegcn_lib.data.synth.SyntheticFaces` in worker processes and writes them in shards
of ``shard_size`` samples; :class:`SynthCache` reads them back as the same dicts
``SyntheticFaces`` returns (without ``"mask"``). Layout::

    DIR/meta.json                  format version, seed, count, shard size, the SynthConfig
    DIR/shard-00000/jpeg.npy       (B,) uint8: the images' JPEG streams, concatenated
    DIR/shard-00000/offsets.npy    (N + 1,) int64: where each image's stream starts and ends
    DIR/shard-00000/vertices.npy   (N, 9409, 3) float16: vertices minus their mean...
    DIR/shard-00000/origin.npy     (N, 3) float32: ...which is stored here
    DIR/shard-00000/landmarks.npy  (N, 68, 3) float32
    DIR/shard-00000/pose.npy       (N, 3) float32 yaw, pitch, roll (radians)
    DIR/shard-00000/visibility.npy (N, ceil(9409 / 8)) uint8: packed bits

Images are stored as JPEG (quality 95, no chroma subsampling: about 30 kB instead of 192 kB)
and vertices as float16 offsets from their mean (error below 0.07 pixel for offsets under 256
pixels): about 90 kB a sample, 4.5 GB for 50,000. Shards are written to a temporary folder and
renamed when complete, so an interrupted run resumes where it stopped; the arrays are
memory-mapped on reading, so every DataLoader worker shares the page cache.

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from facegcn_lib.data.synth import SynthConfig, SyntheticFaces, renderer_sources
from facegcn_lib.paths import hash_inputs

log = logging.getLogger(__name__)

#: Version of the cache layout; readers refuse other versions.
CACHE_FORMAT = 1
META = "meta.json"
JPEG_QUALITY = 95
_FIELDS = ("jpeg", "offsets", "vertices", "origin", "landmarks", "pose", "visibility")


class SynthCacheError(ValueError):
    """A cache folder is missing, incomplete, of another format, or made with another config."""


@dataclass(frozen=True)
class CacheInfo:
    """The contents of ``meta.json``.

    Attributes:
        format: :data:`CACHE_FORMAT` of the writer.
        count: the number of samples (indices ``0 .. count - 1`` of the generator).
        shard_size: samples per shard (the last shard may hold fewer).
        seed: the generator's seed.
        config: the :class:`facegcn_lib.data.synth.SynthConfig` as a dict (for the record
            and to refuse resuming with a different one).
        renderer: a hash of the renderer's code (:func:`facegcn_lib.data.synth.renderer_sources`),
            to refuse resuming with a renderer that draws faces differently ("" in caches
            written before it was recorded).
    """

    format: int
    count: int
    shard_size: int
    seed: int
    config: dict[str, Any]
    renderer: str = ""

    @property
    def num_shards(self) -> int:
        """How many shards the cache has when complete."""
        return -(-self.count // self.shard_size)


def shard_dir(root: Path, shard: int) -> Path:
    """The folder of shard number ``shard``."""
    return root / f"shard-{shard:05d}"


def _encode(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("JPEG encoding failed")
    return np.asarray(buf, dtype=np.uint8).reshape(-1)


def _write_shard(args: tuple[Path, int, int, int, SynthConfig, int]) -> int:
    """Render samples ``[start, stop)`` into shard ``shard`` (run in a worker process)."""
    root, shard, start, stop, cfg, seed = args
    final = shard_dir(root, shard)
    if final.is_dir():
        return 0
    ds = SyntheticFaces(cfg, seed=seed, length=stop)
    streams, verts, origins, lmks, poses, vis = [], [], [], [], [], []
    for i in range(start, stop):
        s = ds.sample(i)
        streams.append(_encode(s.image))
        origin = s.verts_img.mean(axis=0)
        verts.append((s.verts_img - origin).astype(np.float16))
        origins.append(origin.astype(np.float32))
        lmks.append(s.lmks68)
        poses.append(np.radians(s.pose_deg).astype(np.float32))
        vis.append(np.packbits(s.visibility))
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, NDArray] = {
        "jpeg": np.concatenate(streams),
        "offsets": np.concatenate([[0], np.cumsum([len(b) for b in streams])]).astype(np.int64),
        "vertices": np.stack(verts), "origin": np.stack(origins), "landmarks": np.stack(lmks),
        "pose": np.stack(poses), "visibility": np.stack(vis),
    }
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr)
    tmp.rename(final)
    return stop - start


def _config_dict(cfg: SynthConfig) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(asdict(cfg)))  # tuples -> lists, as JSON reads them
    return out


def write_cache(out: str | Path, count: int, cfg: SynthConfig | None = None, seed: int = 0,
                shard_size: int = 1000, workers: int = 2,
                progress: Callable[[int, int], None] | None = None) -> CacheInfo:
    """Render ``count`` synthetic samples into a cache folder (resumes an interrupted run).

    Args:
        out: the cache folder (created).
        count: number of samples.
        cfg: the generator's configuration.
        seed: the generator's seed.
        shard_size: samples per shard file set.
        workers: processes rendering in parallel (1: in this process).
        progress: called with ``(samples done, count)`` after each shard.

    Raises:
        SynthCacheError: ``out`` holds a cache made with another seed, configuration or
            shard size (delete it or choose another folder).
    """
    c = cfg or SynthConfig()
    if count <= 0 or shard_size <= 0 or workers <= 0:
        raise ValueError(f"count, shard_size and workers must be positive, got {count}, "
                         f"{shard_size}, {workers}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    info = CacheInfo(CACHE_FORMAT, count, shard_size, seed, _config_dict(c),
                     hash_inputs(*renderer_sources()))
    meta = root / META
    if meta.is_file():
        old = read_info(root)
        if (old.seed, old.shard_size, old.config, old.format, old.renderer) != (
                seed, shard_size, info.config, CACHE_FORMAT, info.renderer):
            raise SynthCacheError(f"{root} holds a cache made with another seed, configuration, shard "
                                  "size, format or renderer; delete it or write to another folder")
    for stale in root.glob(".shard-*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    meta.write_text(json.dumps(asdict(info), indent=1))
    jobs = [(root, k, k * shard_size, min((k + 1) * shard_size, count), c, seed)
            for k in range(info.num_shards)]
    todo = [j for j in jobs if not shard_dir(root, j[1]).is_dir()]
    done = count - sum(j[3] - j[2] for j in todo)
    if progress:
        progress(done, count)
    results: Iterator[int]
    if workers == 1:
        results = map(_write_shard, todo)
        for n in results:
            done += n
            if progress:
                progress(done, count)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for n in pool.map(_write_shard, todo):
                done += n
                if progress:
                    progress(done, count)
    return info


def read_info(root: str | Path) -> CacheInfo:
    """The :class:`CacheInfo` of a cache folder.

    Raises:
        SynthCacheError: no ``meta.json``, or one of another format.
    """
    meta = Path(root) / META
    if not meta.is_file():
        raise SynthCacheError(f"{root} is not a synthetic-face cache (no {META}); create one with "
                              "`facegcn data synth --n N --out DIR`")
    info = CacheInfo(**json.loads(meta.read_text()))
    if info.format != CACHE_FORMAT:
        raise SynthCacheError(f"{root} has cache format {info.format}, this library reads "
                              f"{CACHE_FORMAT}: write it again with `facegcn data synth`")
    return info


class SynthCache(Dataset[dict[str, torch.Tensor]]):
    """The samples of a cache folder, as the dicts :class:`SyntheticFaces` returns.

    Keys: ``"image"`` (3, H, W) uint8, ``"vertices"`` (9409, 3) float32, ``"landmarks"``
    (68, 3) float32, ``"pose"`` (3,) float32 radians, ``"visibility"`` (9409,) bool.

    Args:
        root: the cache folder written by :func:`write_cache`.

    Raises:
        SynthCacheError: the folder is not a complete cache.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.info = read_info(self.root)
        missing = [k for k in range(self.info.num_shards) if not shard_dir(self.root, k).is_dir()]
        if missing:
            raise SynthCacheError(f"{self.root} is incomplete: {len(missing)} of {self.info.num_shards} "
                                  "shards missing; run `facegcn data synth` again with the same "
                                  "arguments to finish it")
        self._shards: dict[int, dict[str, NDArray]] = {}

    def __len__(self) -> int:
        return self.info.count

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_shards"] = {}  # memory maps are reopened in each worker
        return state

    def _shard(self, k: int) -> dict[str, NDArray]:
        if k not in self._shards:
            folder = shard_dir(self.root, k)
            self._shards[k] = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _FIELDS}
        return self._shards[k]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.info.count:
            raise IndexError(f"index {index} out of range for {self.info.count} samples")
        shard, row = divmod(index, self.info.shard_size)
        a = self._shard(shard)
        lo, hi = int(a["offsets"][row]), int(a["offsets"][row + 1])
        decoded = cv2.imdecode(np.asarray(a["jpeg"][lo:hi]), cv2.IMREAD_COLOR)
        if decoded is None:
            raise SynthCacheError(f"{shard_dir(self.root, shard)}: image {row} is corrupt; delete "
                                  "the shard folder and run `facegcn data synth` again")
        image = decoded[:, :, ::-1]
        verts = np.asarray(a["vertices"][row], dtype=np.float32) + np.asarray(a["origin"][row])
        nv = verts.shape[0]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "vertices": torch.from_numpy(verts),
            "landmarks": torch.from_numpy(np.array(a["landmarks"][row], dtype=np.float32)),
            "pose": torch.from_numpy(np.array(a["pose"][row], dtype=np.float32)),
            "visibility": torch.from_numpy(np.unpackbits(np.asarray(a["visibility"][row]))[:nv].astype(bool)),
        }
