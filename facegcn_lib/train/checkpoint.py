"""Model files: weights plus the model configuration, loadable without pickled code.

A checkpoint stores the :class:`~facegcn_lib.config.ModelConfig` (as JSON), the hash of the
regressed mesh's triangles and of its pyramid, the ``state_dict`` and optional metadata. It is
written atomically (a temporary file renamed over the target) and read with
``torch.load(weights_only=True)``: tensors and plain values only, no code runs on load.
:func:`load_checkpoint` rebuilds the model from the stored configuration and refuses weights
trained on another mesh with :class:`TopologyMismatchError`.

The full training state (optimiser, random generators) is :mod:`facegcn_lib.train.train_state`'s.
See :doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from facegcn_lib.config import ModelConfig, from_dict, to_dict
from facegcn_lib.mesh.pyramid import MeshPyramid
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.nn.model import FaceGCN
from facegcn_lib.nn.target_mesh import TargetMesh, load_target_mesh, target_mesh_with_pyramid
from facegcn_lib.train.train_state import atomic_torch_save

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "facegcn-model"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file is not a facegcn model checkpoint, or not one this version can read."""


class TopologyMismatchError(CheckpointError):
    """A checkpoint's weights belong to another mesh (or pyramid) than the one at hand."""


@dataclass(frozen=True)
class Checkpoint:
    """The contents of a model checkpoint.

    Attributes:
        config: the model configuration.
        state_dict: the weights (CPU tensors).
        topology_hash: hash of the regressed mesh's triangles
            (:meth:`~facegcn_lib.nn.target_mesh.TargetMesh.topology_hash`).
        pyramid_hash: hash of the pyramid's meshes and matrices.
        step: training step at which it was saved.
        metadata: JSON-compatible extra values (metrics, notes).
        pyramid_npz: the pyramid the model was trained with, as the bytes of a
            :meth:`~facegcn_lib.mesh.pyramid.MeshPyramid.save` file (``None`` in old files), so
            that a checkpoint keeps working when the decimation code or its cache changes.
    """

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    topology_hash: str
    pyramid_hash: str
    step: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    pyramid_npz: bytes | None = None

    def stored_pyramid(self) -> MeshPyramid | None:
        """The pyramid stored in the checkpoint, if any."""
        if self.pyramid_npz is None:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pyramid.npz"
            path.write_bytes(self.pyramid_npz)
            return MeshPyramid.load(path)


def _pyramid_bytes(pyramid: MeshPyramid) -> torch.Tensor:
    with tempfile.TemporaryDirectory() as tmp:
        data = pyramid.save(Path(tmp) / "pyramid.npz").read_bytes()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def save_checkpoint(path: str | Path, model: FaceGCN, step: int = 0,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and configuration to ``path`` atomically; returns the path.

    Args:
        path: the file to write (its folder is created).
        model: the model.
        step: the training step, for the record.
        metadata: JSON-serialisable extra values (stored as JSON text).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": json.dumps(to_dict(model.cfg)),
        "topology_hash": model.target.topology_hash(),
        "pyramid_hash": model.target.pyramid_hash(),
        "step": int(step),
        "metadata": json.dumps(metadata or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "pyramid_npz": _pyramid_bytes(model.target.pyramid),
    }
    atomic_torch_save(payload, p)
    log.info("saved checkpoint %s (step %d)", p, step)
    return p


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint's contents without building a model.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a facegcn model checkpoint, or a newer format version.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} not found")
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise CheckpointError(f"{p} cannot be read as a weights-only torch file: {err}") from err
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p} is not a facegcn model checkpoint (a training state file? "
                              "those load with facegcn_lib.train.train_state)")
    if int(raw["version"]) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{p} has checkpoint version {raw['version']}; this facegcn reads "
                              f"up to {CHECKPOINT_VERSION}: upgrade facegcn")
    return Checkpoint(
        config=from_dict(ModelConfig, json.loads(raw["config"])),
        state_dict=raw["state_dict"], topology_hash=str(raw["topology_hash"]),
        pyramid_hash=str(raw["pyramid_hash"]), step=int(raw["step"]),
        metadata=json.loads(raw["metadata"]),
        pyramid_npz=bytes(raw["pyramid_npz"].numpy().tobytes()) if "pyramid_npz" in raw else None)


def check_topology(ckpt: Checkpoint, target: TargetMesh, source: str = "checkpoint") -> None:
    """Raise :class:`TopologyMismatchError` unless ``ckpt`` was trained on ``target``'s mesh."""
    if ckpt.topology_hash != target.topology_hash():
        raise TopologyMismatchError(
            f"the {source} was trained on another mesh: its topology hash is {ckpt.topology_hash}, "
            f"the {target.name!r} mesh ({target.n_verts} vertices) has {target.topology_hash()}. "
            "Its weights only fit the mesh it was trained on; build that mesh or retrain.")
    if ckpt.pyramid_hash != target.pyramid_hash():
        raise TopologyMismatchError(
            f"the {source} was trained on the same mesh but another pyramid (hash "
            f"{ckpt.pyramid_hash}, now {target.pyramid_hash()}): the decimation or its settings "
            "changed since; clear the pyramid cache built since, or retrain.")


def init_from_checkpoint(model: FaceGCN, path: str | Path) -> Checkpoint:
    """Load a checkpoint's weights into ``model`` to fine-tune it (same mesh, any pyramid).

    The triangles must match; the pyramid may differ (its matrices hold no weights, and every
    level keeps its vertex count), so a model can continue training after the decimation changed.

    Raises:
        TopologyMismatchError: the checkpoint was trained on another mesh.
        CheckpointError: the architectures differ.
    """
    ckpt = read_checkpoint(path)
    if ckpt.topology_hash != model.target.topology_hash():
        raise TopologyMismatchError(f"{path} was trained on another mesh; it cannot initialise this model")
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as err:
        raise CheckpointError(f"{path} holds another architecture: {err}") from err
    log.info("initialised the model from %s (step %d)", path, ckpt.step)
    return ckpt


def load_checkpoint(path: str | Path, target: TargetMesh | None = None,
                    morphable: MorphableModel | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[FaceGCN, Checkpoint]:
    """Rebuild a model from a checkpoint and load its weights.

    Args:
        path: the checkpoint.
        target: the mesh to load onto (default: the one the stored config names).
        morphable: the morphable model of a ``3dmm`` model whose mesh has no bases.
        map_location: device of the returned model.

    Returns:
        ``(model, checkpoint)``, the model in evaluation mode.

    Raises:
        TopologyMismatchError: the weights belong to another mesh or pyramid.
        CheckpointError: the file is not a model checkpoint.
    """
    ckpt = read_checkpoint(path)
    if target is not None:
        tgt = target
    else:
        stored = ckpt.stored_pyramid()
        tgt = (load_target_mesh(ckpt.config.mesh) if stored is None
               else target_mesh_with_pyramid(ckpt.config.mesh, stored))
    check_topology(ckpt, tgt, source=f"checkpoint {path}")
    model = FaceGCN(ckpt.config, tgt, morphable=morphable, load_weights=False)
    model.load_state_dict(ckpt.state_dict)
    return model.to(map_location).eval(), ckpt
