"""A linear morphable face model: mean shape plus identity and expression bases, sampled in torch.

A face is ``mean + sum_k a_k * id_basis[k] + sum_j b_j * exp_basis[j]``. Every model the library
loads (the ICT Face Model, the Basel Face Model 2009, the paper's BFM mean) is a
:class:`MorphableModel` in millimetres, in the model frame (x right, y up, z towards the viewer).

Coefficient conventions:

* identity (``exp_kind`` aside, always principal components): one unit of coefficient is one
  standard deviation of the training population, so ``a ~ N(0, 1)`` samples plausible faces.
  The ICT identity modes are distributed already scaled this way (mode 0 moves vertices by up to
  ~9 mm, mode 99 by ~0.3 mm) and are used as given; the BFM's unit principal components are
  multiplied by their standard deviations ``shapeEV`` on load.
* expression: ``exp_kind == "blendshape"`` (ICT, ARKit-style shapes): weights in [0, 1], 1 being
  the full expression; ``exp_kind == "pca"``: like identity, ``b ~ N(0, 1)``.
* ``id_std`` / ``exp_std`` convert a file's own raw coefficients (applied to unit principal
  components, e.g. 300W-LP's ``Shape_Para``) to the model's: ``a = raw / id_std``.

See :doc:`chapter 3 </chapters/03_faces_as_data>` on morphable models and synthetic data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from facegcn_lib.morphable.bfm import TemplateMesh

ExpKind = Literal["blendshape", "pca"]
_NPZ_VERSION = 1


class MorphableModelError(ValueError):
    """Inconsistent arrays or a bad request (unknown region, wrong coefficient count)."""


@dataclass(frozen=True)
class CoeffSampling:
    """How :meth:`MorphableModel.random_coeffs` draws coefficients.

    Attributes:
        id_std: standard deviation of the identity coefficients (in units of the population's).
        exp_std: standard deviation of PCA expression coefficients.
        blend_active_prob: probability that each blendshape is active in a sample.
        blend_max: active blendshape weights are uniform in ``[0, blend_max]``.
    """

    id_std: float = 1.0
    exp_std: float = 1.0
    blend_active_prob: float = 0.15
    blend_max: float = 1.0


@dataclass(frozen=True, eq=False)
class MorphableModel:
    """A linear 3D morphable model (see the module docstring for the coefficient conventions).

    Attributes:
        name: short name for logs and cache keys (``"ict-head"``, ``"ict-face"``, ``"bfm-mean"``).
        faces: (F, 3) int64 triangles, 0-based.
        mean: (V, 3) float64 mean shape, millimetres, model frame (x right, y up, z to viewer).
        id_basis: (K_id, V, 3) float32 identity modes, millimetres per unit coefficient.
        exp_basis: (K_exp, V, 3) float32 expression modes, millimetres per unit coefficient.
        exp_names: K_exp names of the expression modes (ARKit names for ICT).
        lmks68: (68,) int64 vertex indices of the Multi-PIE 68 landmarks, or (0,) when unknown.
        regions: name -> vertex range ``[start, stop)`` (ICT: face, eyeballs, teeth, ...).
        exp_kind: ``"blendshape"`` (weights in [0, 1]) or ``"pca"`` (N(0, 1)).
        uvs: (T, 2) float64 texture coordinates (empty when the model has none). ICT's use
            UDIM tiles: v in [0, 1], u in [0, 7), the integer part of u being the tile.
        face_uvs: (F, 3) int64 index into ``uvs`` of each triangle corner (-1 when none; an
            empty default is filled with -1).
        id_std: (K_id,) raw-to-model divisor of identity coefficients (an empty default is
            filled with ones).
        exp_std: (K_exp,) likewise for expression coefficients.
    """

    name: str
    faces: NDArray[np.int64]
    mean: NDArray[np.float64]
    id_basis: NDArray[np.float32]
    exp_basis: NDArray[np.float32]
    exp_names: tuple[str, ...] = ()
    lmks68: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)
    exp_kind: ExpKind = "pca"
    uvs: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2)))
    face_uvs: NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    id_std: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    exp_std: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _torch_cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, ...]] = field(
        default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        v = self.num_verts
        if self.mean.shape != (v, 3) or self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise MorphableModelError(f"{self.name}: mean must be (V, 3) and faces (F, 3)")
        for label, basis in (("id_basis", self.id_basis), ("exp_basis", self.exp_basis)):
            if basis.ndim != 3 or basis.shape[1:] != (v, 3):
                raise MorphableModelError(f"{self.name}: {label} must be (K, {v}, 3), got {basis.shape}")
        if self.exp_names and len(self.exp_names) != self.num_exp:
            raise MorphableModelError(f"{self.name}: {len(self.exp_names)} expression names "
                                      f"for {self.num_exp} expression modes")
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= v):
            raise MorphableModelError(f"{self.name}: a face refers to a vertex that does not exist")
        if len(self.lmks68) not in (0, 68):
            raise MorphableModelError(f"{self.name}: lmks68 must hold 68 indices (or none)")
        if len(self.face_uvs) == 0:
            object.__setattr__(self, "face_uvs", np.full(self.faces.shape, -1, dtype=np.int64))
        if len(self.id_std) == 0:
            object.__setattr__(self, "id_std", np.ones(self.num_id))
        if len(self.exp_std) == 0:
            object.__setattr__(self, "exp_std", np.ones(self.num_exp))
        if (self.face_uvs.shape != self.faces.shape or self.id_std.shape != (self.num_id,)
                or self.exp_std.shape != (self.num_exp,)):
            raise MorphableModelError(f"{self.name}: face_uvs must match faces, id_std / exp_std "
                                      "the numbers of modes")

    # --- sizes --------------------------------------------------------------------------------

    @property
    def num_verts(self) -> int:
        """V, the number of vertices."""
        return int(self.mean.shape[0])

    @property
    def num_id(self) -> int:
        """K_id, the number of identity modes."""
        return int(self.id_basis.shape[0])

    @property
    def num_exp(self) -> int:
        """K_exp, the number of expression modes."""
        return int(self.exp_basis.shape[0])

    @property
    def has_landmarks(self) -> bool:
        """Whether the 68 landmark vertices are known."""
        return len(self.lmks68) == 68

    # --- sampling -----------------------------------------------------------------------------

    def _tensors(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        key = (str(device), dtype)
        if key not in self._torch_cache:
            v3 = 3 * self.num_verts
            mean = torch.as_tensor(self.mean.reshape(v3)).to(device=device, dtype=dtype)
            idb = torch.as_tensor(self.id_basis.reshape(self.num_id, v3)).to(device=device, dtype=dtype)
            exb = torch.as_tensor(self.exp_basis.reshape(self.num_exp, v3)).to(device=device, dtype=dtype)
            self._torch_cache[key] = (mean, idb, exb)
        return self._torch_cache[key]

    def sample(self, id_coeffs: torch.Tensor | None = None, exp_coeffs: torch.Tensor | None = None,
               *, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Meshes from coefficients (batched, differentiable in the coefficients).

        Args:
            id_coeffs: (B, k) with k <= K_id (missing trailing modes are zero), or ``None``.
            exp_coeffs: (B, k) with k <= K_exp, or ``None``.
            device: where to compute when both coefficients are ``None`` (else theirs).
            dtype: the result's dtype when both coefficients are ``None`` (else theirs).
        Returns:
            (B, V, 3) vertices in millimetres, model frame. B = 1 when both are ``None``.
        """
        ref = id_coeffs if id_coeffs is not None else exp_coeffs
        if ref is not None:
            device, dtype = ref.device, ref.dtype
        dev = torch.device(device) if device is not None else torch.device("cpu")
        mean, idb, exb = self._tensors(dev, dtype)
        batch = ref.shape[0] if ref is not None else 1
        out = mean.expand(batch, -1)
        for label, coeffs, basis in (("id", id_coeffs, idb), ("exp", exp_coeffs, exb)):
            if coeffs is None:
                continue
            if coeffs.ndim != 2 or coeffs.shape[0] != batch or coeffs.shape[1] > basis.shape[0]:
                raise MorphableModelError(
                    f"{self.name}: {label}_coeffs must be (B={batch}, k <= {basis.shape[0]}), "
                    f"got {tuple(coeffs.shape)}")
            out = out + coeffs.to(dtype) @ basis[: coeffs.shape[1]]
        return out.reshape(batch, self.num_verts, 3)

    def sample_numpy(self, id_coeffs: ArrayLike | None = None,
                     exp_coeffs: ArrayLike | None = None) -> NDArray[np.float64]:
        """One mesh in numpy: ``id_coeffs (k,)``, ``exp_coeffs (k,)`` -> (V, 3) float64 mm.

        The products are computed in float32, the bases' precision.
        """
        out = self.mean.copy()
        for coeffs, basis in ((id_coeffs, self.id_basis), (exp_coeffs, self.exp_basis)):
            if coeffs is None:
                continue
            c = np.asarray(coeffs, dtype=np.float32).reshape(-1)
            if len(c) > len(basis):
                raise MorphableModelError(f"{self.name}: {len(c)} coefficients for {len(basis)} modes")
            out += (c @ basis[: len(c)].reshape(len(c), -1)).reshape(-1, 3)
        return out

    def random_coeffs(self, generator: torch.Generator | None, batch: int,
                      cfg: CoeffSampling | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random coefficients: identity ~ N(0, id_std²); expression per :attr:`exp_kind`.

        Blendshape expressions: each is active with probability ``blend_active_prob`` with a
        weight uniform in ``[0, blend_max]``, else 0. PCA expressions: N(0, exp_std²).

        Returns:
            ``(id (B, K_id), exp (B, K_exp))`` float32 CPU tensors (drawn from ``generator``).
        """
        c = cfg or CoeffSampling()
        ids = torch.randn(batch, self.num_id, generator=generator) * c.id_std
        if self.exp_kind == "blendshape":
            active = torch.rand(batch, self.num_exp, generator=generator) < c.blend_active_prob
            weight = torch.rand(batch, self.num_exp, generator=generator) * c.blend_max
            exps = weight * active
        else:
            exps = torch.randn(batch, self.num_exp, generator=generator) * c.exp_std
        return ids, exps

    def landmarks(self, verts: torch.Tensor) -> torch.Tensor:
        """The 68 landmarks ``(..., 68, 3)`` of meshes ``(..., V, 3)``."""
        if not self.has_landmarks:
            raise MorphableModelError(f"{self.name}: the 68 landmark vertices are not known")
        return verts[..., torch.as_tensor(self.lmks68, device=verts.device), :]

    # --- sub-models ---------------------------------------------------------------------------

    def region(self, name: str) -> MorphableModel:
        """The sub-model of a region that starts at vertex 0 (ICT ``"face"``: vertices 0-9408).

        Triangles that use a vertex outside the region are dropped; bases, UV corners and
        regions are restricted accordingly; landmark indices are kept (they must lie inside).
        """
        if name not in self.regions:
            raise MorphableModelError(f"{self.name}: unknown region {name!r}; "
                                      f"known: {sorted(self.regions)}")
        start, stop = self.regions[name]
        if start != 0:
            raise MorphableModelError(f"region {name!r} starts at vertex {start}, not 0; only "
                                      "prefix regions can be cut without renumbering")
        keep = (self.faces < stop).all(axis=1)
        if self.has_landmarks and self.lmks68.max() >= stop:
            raise MorphableModelError(f"{self.name}: landmarks fall outside region {name!r}")
        return replace(
            self, name=f"{self.name.split('-')[0]}-{name}", faces=self.faces[keep],
            mean=self.mean[:stop], id_basis=self.id_basis[:, :stop], exp_basis=self.exp_basis[:, :stop],
            regions={k: (a, min(b, stop)) for k, (a, b) in self.regions.items() if a < stop},
            face_uvs=self.face_uvs[keep], _torch_cache={})

    def truncated(self, num_id: int | None = None, num_exp: int | None = None) -> MorphableModel:
        """The model with only the first ``num_id`` identity / ``num_exp`` expression modes."""
        ki = self.num_id if num_id is None else num_id
        ke = self.num_exp if num_exp is None else num_exp
        return replace(self, id_basis=self.id_basis[:ki], exp_basis=self.exp_basis[:ke],
                       exp_names=self.exp_names[:ke] if self.exp_names else (),
                       id_std=self.id_std[:ki], exp_std=self.exp_std[:ke], _torch_cache={})

    def template(self) -> TemplateMesh:
        """The mean mesh as a :class:`TemplateMesh` (for the mesh pyramid and the decoder)."""
        return TemplateMesh(self.mean, self.faces, self.lmks68, self.name)

    # --- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the model to an uncompressed ``.npz`` (fast to load); returns the path."""
        p = Path(path)
        names = sorted(self.regions)
        tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp.npz")  # atomic even with parallel writers
        np.savez(
            tmp, version=np.int64(_NPZ_VERSION), name=np.str_(self.name), faces=self.faces,
            mean=self.mean, id_basis=self.id_basis, exp_basis=self.exp_basis,
            exp_names=np.asarray(self.exp_names, dtype=np.str_), lmks68=self.lmks68,
            region_names=np.asarray(names, dtype=np.str_),
            region_ranges=np.asarray([self.regions[k] for k in names], dtype=np.int64).reshape(-1, 2),
            exp_kind=np.str_(self.exp_kind), uvs=self.uvs, face_uvs=self.face_uvs,
            id_std=self.id_std, exp_std=self.exp_std)
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> MorphableModel:
        """Read a model written by :meth:`save`."""
        with np.load(Path(path)) as z:
            if int(z["version"]) != _NPZ_VERSION:
                raise MorphableModelError(f"{path}: model file version {int(z['version'])}, "
                                          f"expected {_NPZ_VERSION}; delete it to rebuild")
            kind = str(z["exp_kind"])
            if kind not in ("blendshape", "pca"):
                raise MorphableModelError(f"{path}: unknown exp_kind {kind!r}")
            return cls(
                name=str(z["name"]), faces=z["faces"], mean=z["mean"], id_basis=z["id_basis"],
                exp_basis=z["exp_basis"], exp_names=tuple(str(s) for s in z["exp_names"]),
                lmks68=z["lmks68"],
                regions={str(k): (int(a), int(b))
                         for k, (a, b) in zip(z["region_names"], z["region_ranges"], strict=True)},
                exp_kind="blendshape" if kind == "blendshape" else "pca",
                uvs=z["uvs"], face_uvs=z["face_uvs"], id_std=z["id_std"], exp_std=z["exp_std"])


def mean_only_model(mesh: TemplateMesh, regions: dict[str, tuple[int, int]] | None = None) -> MorphableModel:
    """A :class:`MorphableModel` with empty bases from a template mesh (e.g. the BFM mean)."""
    v = len(mesh.verts)
    return MorphableModel(
        name=mesh.name, faces=mesh.faces, mean=np.asarray(mesh.verts, dtype=np.float64),
        id_basis=np.zeros((0, v, 3), dtype=np.float32), exp_basis=np.zeros((0, v, 3), dtype=np.float32),
        lmks68=mesh.lmks68, regions=dict(regions or {"all": (0, v)}))
