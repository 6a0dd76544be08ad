"""An ensemble of models of one mesh: each crop read by every member, their meshes averaged.

Models trained the same way from different seeds make different errors on photographs, which
are unlike their rendered training faces; the average of their meshes is nearer the truth than
the typical member's (the results page of the book measures it: :doc:`/chapters/results`).
A :class:`FaceGCNEnsemble` is a :class:`~facegcn_lib.nn.model.FaceGCN` to every caller that
runs or places predictions (the photo pipeline, the benchmarks), so an ensemble is used
wherever a model is: ``Reconstructor(checkpoint=[a, b])``, ``facegcn reconstruct
--checkpoint a.pt --checkpoint b.pt``.

For M members with codes of size D:

.. math::

    \\hat{V}(x) = \\frac{1}{M} \\sum_{m=1}^{M} \\operatorname{dec}_m(\\operatorname{enc}_m(x)),

computed as one encoder, :class:`EnsembleEncoder`, that writes the members' codes side by side
``(B, M D)``, and one :meth:`FaceGCNEnsemble.decode` that splits them and averages the
members' meshes. The two halves therefore keep the split the pipeline relies on (the encoder
runs in onnxruntime, the decoder in torch).

Shapes:
    - **input:** crops ``(B, 3, S, S)`` in [0, 1], S the members' common input size.
    - **codes:** ``(B, M D)``, member m's in columns ``[m D, (m + 1) D)``.
    - **output:** vertices ``(B, V, 3)`` in the normalised crop frame, V the common mesh's.

An ensemble is for inference: it cannot be trained or saved as one file (keep the members'
checkpoints). See :doc:`chapter 7 </chapters/07_in_the_wild>`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from facegcn_lib.nn.encoders import ImageEncoder
from facegcn_lib.nn.model import FaceGCN


class EnsembleError(ValueError):
    """The models cannot form an ensemble (none given, or different meshes or input sizes)."""


class EnsembleEncoder(nn.Module):
    """The members' encoders side by side: crops ``(B, 3, S, S)`` -> codes ``(B, M D)``.

    Args:
        encoders: the members' image encoders, all with the same code size D.
    """

    def __init__(self, encoders: Sequence[ImageEncoder]) -> None:
        super().__init__()
        self.members = nn.ModuleList(encoders)
        self.cfg = encoders[0].cfg  # the architecture of the first (names the onnx cache file)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The members' codes ``(B, M D)`` for crops ``(B, 3, S, S)``."""
        return torch.cat([enc(images) for enc in self.members], dim=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.members)} x {self.cfg.arch})"


class FaceGCNEnsemble(FaceGCN):
    """The average of several models' meshes: crops ``(B, 3, S, S)`` -> vertices ``(B, V, 3)``.

    Args:
        members: at least one :class:`~facegcn_lib.nn.model.FaceGCN`, all regressing the same
            mesh (vertex count and triangles) from crops of the same size, in evaluation mode.

    Attributes:
        members: the models.
        encoder: the :class:`EnsembleEncoder` of the members' encoders.
        cfg, target: the first member's (the mesh, the input size and the placement are
            common to all).

    Raises:
        EnsembleError: no member, or members of different meshes or input sizes.
    """

    def __init__(self, members: Sequence[FaceGCN]) -> None:
        check_members(members)
        nn.Module.__init__(self)  # the members hold the layers: FaceGCN's own are not built
        first = members[0]
        self.members = nn.ModuleList(members)
        self._models: tuple[FaceGCN, ...] = tuple(members)  # the same modules, typed
        self.cfg = first.cfg
        self.target = first.target
        self.adds_template = False
        # duck-typed for an ImageEncoder: callers only call it and read its cfg
        self.encoder = EnsembleEncoder([m.encoder for m in members])  # type: ignore[assignment]
        self.code_dims = [m.cfg.encoder.code_dim for m in members]
        self.register_buffer("template", first.template.clone(), persistent=False)
        self.register_buffer("lmks68", first.lmks68.clone(), persistent=False)
        self.eval()

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """The mean of the members' vertices ``(B, V, 3)`` from their codes ``(B, M D)``."""
        parts = torch.split(code, self.code_dims, dim=1)
        out = self._models[0].decode(parts[0])
        for member, part in zip(self._models[1:], parts[1:], strict=True):
            out = out + member.decode(part)
        return out / len(self._models)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.members)} x {self.cfg.encoder.arch} "
                f"{self.cfg.encoder.image_size}px, {self.target.n_verts} vertices)")


def check_members(members: Sequence[FaceGCN]) -> None:
    """Raise :class:`EnsembleError` unless the models can be averaged (see :class:`FaceGCNEnsemble`)."""
    if len(members) == 0:
        raise EnsembleError("an ensemble needs at least one model")
    first = members[0]
    faces = np.asarray(first.target.faces)
    for i, m in enumerate(members[1:], start=1):
        if m.cfg.encoder.image_size != first.cfg.encoder.image_size:
            raise EnsembleError(
                f"model {i} reads {m.cfg.encoder.image_size}-pixel crops, model 0 "
                f"{first.cfg.encoder.image_size}-pixel ones: an ensemble needs models of one "
                "input size")
        same_mesh = (m.target.n_verts == first.target.n_verts
                     and np.array_equal(np.asarray(m.target.faces), faces))
        if not same_mesh:
            raise EnsembleError(
                f"model {i} regresses another mesh ({m.cfg.mesh.topology}, {m.target.n_verts} "
                f"vertices) than model 0 ({first.cfg.mesh.topology}, {first.target.n_verts}): "
                "an ensemble averages meshes vertex by vertex, so use models trained on one mesh")
