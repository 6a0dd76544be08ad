"""Tests of model checkpoints: round trip, weights-only loading, topology checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from facegcn_lib.nn.model import FaceGCN
from facegcn_lib.nn.target_mesh import TargetMesh
from facegcn_lib.train.checkpoint import (
    CheckpointError,
    TopologyMismatchError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from tests.nn.tiny_mesh import make_tiny_target, tiny_config


@pytest.fixture(scope="module")
def tiny_target() -> TargetMesh:
    return make_tiny_target()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("decoder", ["gcn", "uvmap", "3dmm"])
def test_round_trip(tmp_path: Path, tiny_target: TargetMesh, decoder: str) -> None:
    torch.manual_seed(0)
    model = FaceGCN(tiny_config(decoder, norm="batch"), tiny_target)
    model.train()
    model(torch.rand(2, 3, 64, 64))  # move the batch-norm running statistics
    model.eval()
    path = save_checkpoint(tmp_path / "ckpt" / "model.pt", model, step=7, metadata={"nme": 3.5})
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary left
    raw = torch.load(path, weights_only=True)  # no pickled code inside
    assert raw["format"] == "facegcn-model"
    loaded, ckpt = load_checkpoint(path)  # rebuilds the registered tiny mesh by name
    assert ckpt.config == model.cfg and ckpt.step == 7 and ckpt.metadata == {"nme": 3.5}
    assert not loaded.training
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_refuses_another_topology(tmp_path: Path, tiny_target: TargetMesh) -> None:
    path = save_checkpoint(tmp_path / "m.pt", FaceGCN(tiny_config("gcn"), tiny_target))
    model = tiny_target.model
    flipped = replace(model, faces=np.ascontiguousarray(model.faces[:, ::-1]), _torch_cache={})
    other = TargetMesh(tiny_target.cfg, flipped, tiny_target.pyramid)
    with pytest.raises(TopologyMismatchError, match="trained on another mesh"):
        load_checkpoint(path, target=other)


def test_refuses_another_pyramid(tmp_path: Path, tiny_target: TargetMesh) -> None:
    path = save_checkpoint(tmp_path / "m.pt", FaceGCN(tiny_config("gcn"), tiny_target))

    class Other:
        def __init__(self, base: object) -> None:
            self.__dict__.update(base.__dict__)
            self.up = [u * 0.5 for u in base.up]  # type: ignore[attr-defined]

        def laplacian(self, i: int) -> torch.Tensor:
            return tiny_target.pyramid.laplacian(i)

    other = TargetMesh(tiny_target.cfg, tiny_target.model, Other(tiny_target.pyramid))  # type: ignore[arg-type]
    with pytest.raises(TopologyMismatchError, match="another pyramid"):
        load_checkpoint(path, target=other)


def test_rejects_files_that_are_not_model_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "absent.pt")
    other = tmp_path / "state.pt"
    torch.save({"step": 3}, other)
    with pytest.raises(CheckpointError, match="not a facegcn model checkpoint"):
        read_checkpoint(other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="weights-only"):
        read_checkpoint(junk)


def test_checkpoint_carries_its_pyramid(tmp_path: Path, tiny_target: TargetMesh) -> None:
    """A checkpoint keeps working after the decimation changes: it stores its own pyramid."""
    from facegcn_lib.train.checkpoint import init_from_checkpoint

    torch.manual_seed(0)
    model = FaceGCN(tiny_config("gcn"), tiny_target)
    path = save_checkpoint(tmp_path / "m.pt", model)
    ckpt = read_checkpoint(path)
    stored = ckpt.stored_pyramid()
    assert stored is not None
    assert [len(v) for v in stored.verts] == [len(v) for v in model.target.pyramid.verts]
    for a, b in zip(stored.down, model.target.pyramid.down, strict=True):
        assert (a != b).nnz == 0
    torch.manual_seed(1)
    other = FaceGCN(tiny_config("gcn"), tiny_target)
    init_from_checkpoint(other, path)
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
