"""Install a trained model checkpoint into the package as the pretrained model.

Usage: ``python tools/export_pretrained.py runs/cpu/model_best.pt facegcn_lib/resources/facegcn_cpu.pt [MADE_BY]``

``MADE_BY`` is the command recorded in the file's metadata (default: ``bash tools/train_pretrained.sh``).

Floating-point weights are stored as float16 to keep the file under the 50 MB the package
allows (``load_state_dict`` casts them back to float32 on loading; the largest change to a
prediction is far below a pixel). The training metrics and the command are written into the
checkpoint's metadata.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

MAX_BYTES = 50 * 1024 * 1024


def main(src: Path, dst: Path, made_by: str = "bash tools/train_pretrained.sh") -> None:
    from facegcn_lib.train.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint

    ckpt = read_checkpoint(src)
    if ckpt.pyramid_npz is None:  # an older file: store the pyramid it was trained with in it
        model, ckpt = load_checkpoint(src)
        src = save_checkpoint(dst.with_suffix(".full.pt"), model, ckpt.step, ckpt.metadata)
    raw = torch.load(src, map_location="cpu", weights_only=True)
    raw["state_dict"] = {k: (v.half() if v.is_floating_point() else v) for k, v in raw["state_dict"].items()}
    meta = json.loads(raw.get("metadata", "{}"))
    meta["exported_from"] = str(ckpt.metadata.get("exported_from", src))
    meta["weights_dtype"] = "float16"
    meta["made_by"] = made_by
    raw["metadata"] = json.dumps(meta)
    tmp = dst.with_suffix(".tmp")
    torch.save(raw, tmp)
    if tmp.stat().st_size > MAX_BYTES:
        tmp.unlink()
        raise SystemExit(f"{src} exports to more than 50 MB; use a smaller model")
    tmp.replace(dst)
    dst.with_suffix(".full.pt").unlink(missing_ok=True)
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB, step {raw['step']})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:4])
