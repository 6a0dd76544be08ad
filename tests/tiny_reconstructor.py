"""An untrained small model on the real ICT face mesh, saved as a checkpoint, for pipeline tests.

The outputs are a noisy mean face in every crop (``build_untrained``), but every file, shape
and code path of the pipeline is the one a trained model goes through.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facegcn_lib.config import DecoderConfig, EncoderConfig, ModelConfig

#: MobileNetV3-small on 64 x 64 crops, a thin decoder on the default mesh pyramid.
TINY_CONFIG = ModelConfig(encoder=EncoderConfig(arch="mobilenet_v3_small", code_dim=32, image_size=64),
                          gcn=DecoderConfig(channels=(16, 8, 8, 8, 8)))

PHOTO = "photos/Tom_Cruise_avp_2014_4.jpg"
GROUP = "photos/bald_guys.jpg"
NO_FACE = "photos/dogs.jpg"


def save_tiny_checkpoint(folder: Path, seed: int = 0, config: ModelConfig = TINY_CONFIG) -> Path:
    """Build an untrained tiny model and save it as ``folder/tiny.pt`` (``tiny-seed<N>.pt``
    for another seed)."""
    from facegcn_lib.pipeline import build_untrained
    from facegcn_lib.train.checkpoint import save_checkpoint

    name = "tiny.pt" if seed == 0 else f"tiny-seed{seed}.pt"
    return save_checkpoint(folder / name, build_untrained(config, seed=seed))


def shifted_frames(image: np.ndarray, n: int, height: int = 240, step: int = 4) -> list[np.ndarray]:
    """``n`` frames of a photo scaled to ``height`` rows, moving right by ``step`` pixels each."""
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w * height / h), height), interpolation=cv2.INTER_AREA)
    pad = step * n
    canvas = np.full((height, small.shape[1] + pad, 3), 127, dtype=np.uint8)
    frames = []
    for k in range(n):
        frame = canvas.copy()
        frame[:, k * step:k * step + small.shape[1]] = small
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write RGB frames as an mp4 video with OpenCV."""
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path
