"""Hair as geometry: a random haircut (cap, fringe, curtains) built around each rendered head.

Photographed faces are framed by hair: it sits above the forehead with some volume, often
falls over the forehead (a fringe) and down beside the cheeks, hiding the face's outline. The
renderer's painted scalp has none of that, so a network trained on it may take "where the
skin ends" for the top of the forehead and the side of the face. This module builds a hair
surface for one sample, in the head's model frame (millimetres), so that it is posed,
projected, rasterized, lit and shadowed with the head (:func:`facegcn_lib.data.synth.render_sample`).

The surface is a grid of columns around the head (azimuth ``phi``, 0 at the face) and rows
from the crown down:

* the **cap** follows the head at ``R(phi, theta) + t``: ``R`` is the head's radius from its
  centre in that direction (the largest vertex radius in a 5-degree bin of the sample's own
  head), ``t`` the hair's thickness, thinner near the hairline; it ends at the hairline
  ``theta_h(phi) = a0 + a1 cos(phi) + a2 cos(2 phi)`` (elevations in degrees: front, side and
  back hairlines as the painted hair draws them);
* a **fringe** continues the front columns down over the forehead, part or all of the way
  to the eyebrows (or a little over them), with a ragged, sometimes slanted edge;
* **curtains** (long hair) hang from the hairline at the sides and back: each column drops
  vertically, flaring out a little, from a horizontal radius that clears the head below it;
  their front edge comes round the face by a random azimuth, so they may cover the cheeks
  and the jaw line; a side may be tucked behind the ear.

Columns carry a random brightness each (strands). The faces are drawn from both sides (the
renderer turns the normals of those seen from behind towards the camera).

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Bin size (degrees) of the head-radius table.
_TABLE_DEG = 5.0
#: Rows of the table below this elevation are not head (neck and shoulders).
_LOWEST_HEAD_DEG = -45.0
#: Above the eyes, millimetres: the centre of the head's spherical coordinates.
HEAD_CENTRE_ABOVE_EYES_MM = 10.0
#: The crown row's elevation (degrees): the cap's columns start just below the pole.
_CROWN_DEG = 88.0
#: The cap is thinner near its end: ``t * (floor + (1 - floor) * ramp)``.
_EDGE_THICKNESS_FLOOR = 0.3
_EDGE_RAMP_DEG = 20.0
#: The fringe lies close to the forehead: its thickness (mm) at the edge.
_FRINGE_THICKNESS_MM = 2.5
#: Strands: relative brightness variation along a column (the columns vary by ``strand_noise``).
_ALONG_STRAND = 0.3
#: Curtain columns next to the front edge shorten over this many degrees (a rounded edge).
_CURTAIN_EDGE_RAMP_DEG = 12.0
#: A tucked side's curtain starts this far round (behind the ear).
_TUCKED_FRONT_DEG = 105.0


@dataclass(frozen=True)
class HairConfig:
    """Ranges of the random haircut.

    Attributes:
        prob: probability that a sample has hair geometry (else only the painted scalp). Off
            by default: with 0.8 (the programme's step "v4, hair") the shipped recipe's error on
            every real development set rose (the book's results page).
        thickness_mm: range of the hair's thickness over the crown.
        hairline_front_deg: range of the front hairline's elevation above the head centre.
        hairline_side_deg: range of the side hairline's elevation.
        hairline_back_deg: range of the back hairline's elevation (the nape).
        fringe_prob: probability of a fringe.
        fringe_depth: range of how far it comes down, as a fraction of the way from the
            hairline to the eyebrows (above 1: over the brows).
        fringe_slant_deg: largest tilt of the fringe's edge (degrees of elevation across it).
        long_prob: probability of curtains (hair below the ears).
        length_mm: range of the curtains' length below the side hairline.
        curtain_front_deg: range of the azimuth where a curtain's front edge starts (0 is the
            middle of the face, 90 the ear).
        tuck_prob: probability that one side is tucked behind the ear.
        flare: range of the curtains' outward flare (millimetres per millimetre of drop).
        ragged_mm: range of the random length of the strand tips.
        strand_noise: log-brightness std of the strands (columns).
        specular: range of the highlight strength.
        column_deg: azimuth step of the columns.
        cap_rows: rows of the cap (and fringe).
        curtain_rows: rows of the curtains.
    """

    prob: float = 0.0
    thickness_mm: tuple[float, float] = (2.0, 22.0)
    hairline_front_deg: tuple[float, float] = (24.0, 48.0)
    hairline_side_deg: tuple[float, float] = (5.0, 25.0)
    hairline_back_deg: tuple[float, float] = (-60.0, -25.0)
    fringe_prob: float = 0.3
    fringe_depth: tuple[float, float] = (0.3, 1.2)
    fringe_slant_deg: float = 12.0
    long_prob: float = 0.45
    length_mm: tuple[float, float] = (30.0, 200.0)
    curtain_front_deg: tuple[float, float] = (40.0, 85.0)
    tuck_prob: float = 0.2
    flare: tuple[float, float] = (0.0, 0.25)
    ragged_mm: tuple[float, float] = (1.0, 12.0)
    strand_noise: float = 0.3
    specular: tuple[float, float] = (0.1, 0.6)
    column_deg: float = 2.0
    cap_rows: int = 24
    curtain_rows: int = 16

    def __post_init__(self) -> None:
        for name in ("prob", "fringe_prob", "long_prob", "tuck_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"HairConfig.{name} must be a probability in [0, 1], "
                                 f"got {getattr(self, name)}")
        for name in ("thickness_mm", "hairline_front_deg", "hairline_side_deg", "hairline_back_deg",
                     "fringe_depth", "length_mm", "curtain_front_deg", "flare", "ragged_mm", "specular"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"HairConfig.{name} must be a range (low, high), got {(lo, hi)}")
        if self.thickness_mm[0] < 0.0 or self.length_mm[0] < 0.0 or self.ragged_mm[0] < 0.0:
            raise ValueError("HairConfig thicknesses and lengths must not be negative")
        if not 0.0 < self.column_deg <= 90.0 or self.cap_rows < 2 or self.curtain_rows < 1:
            raise ValueError(f"HairConfig grid: column_deg in (0, 90], cap_rows >= 2 and "
                             f"curtain_rows >= 1, got {self.column_deg}, {self.cap_rows}, "
                             f"{self.curtain_rows}")


@dataclass(frozen=True)
class Hair:
    """One sample's hair surface (model frame, millimetres).

    Attributes:
        verts: (N, 3) float32 positions.
        faces: (F, 3) int64 triangles, indexing ``verts``.
        shade: (N,) float relative brightness of the strands (multiplies the hair colour).
        specular: the highlight strength.
    """

    verts: NDArray[np.float32]
    faces: NDArray[np.int64]
    shade: NDArray[np.float64]
    specular: float

    @classmethod
    def empty(cls) -> Hair:
        """No hair."""
        return cls(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64), np.zeros(0), 0.0)


class HairBuilder:
    """Builds :class:`Hair` for heads of one topology (the bins of its vertices are fixed).

    Args:
        neutral: (V, 3) the neutral head (model frame, millimetres; y up, z towards the face).
        head_vertices: (K,) indices of the head's outer skin (face and scalp).
        lmks68: (68,) the landmark vertices (eyes for the centre, brows for the fringe).
    """

    def __init__(self, neutral: NDArray, head_vertices: NDArray, lmks68: NDArray) -> None:
        self.head = np.asarray(head_vertices, dtype=np.int64)
        self.lmks68 = np.asarray(lmks68, dtype=np.int64)
        az, el, _ = self._spherical(np.asarray(neutral, dtype=np.float64)[self.head],
                                    self.centre(neutral))
        self.n_az = round(360.0 / _TABLE_DEG)
        self.n_el = round(180.0 / _TABLE_DEG)
        col = np.clip(((az + 180.0) / _TABLE_DEG).astype(np.int64), 0, self.n_az - 1)
        row = np.clip(((el + 90.0) / _TABLE_DEG).astype(np.int64), 0, self.n_el - 1)
        self.bin = row * self.n_az + col
        # every empty bin reads its nearest filled one (on the sphere)
        filled = np.zeros(self.n_el * self.n_az, dtype=bool)
        filled[self.bin] = True
        centres = self._bin_directions()
        near = np.argmax(centres @ centres[filled].T, axis=1)
        self.source = np.flatnonzero(filled)[near]

    def centre(self, verts: NDArray) -> NDArray[np.float64]:
        """The head's centre (3,): above the eyes, halfway between front and back."""
        v = np.asarray(verts, dtype=np.float64)
        eyes = v[self.lmks68[36:48]].mean(axis=0)
        z = v[self.head, 2]
        return np.array([0.0, eyes[1] + HEAD_CENTRE_ABOVE_EYES_MM, 0.5 * (z.min() + z.max())])

    @staticmethod
    def _spherical(p: NDArray, centre: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        rel = p - centre
        az = np.degrees(np.arctan2(rel[:, 0], rel[:, 2]))
        el = np.degrees(np.arctan2(rel[:, 1], np.hypot(rel[:, 0], rel[:, 2])))
        return az, el, np.linalg.norm(rel, axis=1)

    def _bin_directions(self) -> NDArray[np.float64]:
        el = np.radians(-90.0 + _TABLE_DEG * (np.arange(self.n_el) + 0.5))
        az = np.radians(-180.0 + _TABLE_DEG * (np.arange(self.n_az) + 0.5))
        e, a = np.meshgrid(el, az, indexing="ij")
        return np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], axis=-1).reshape(-1, 3)

    def radius_table(self, verts: NDArray, centre: NDArray) -> NDArray[np.float64]:
        """(n_el, n_az) the head's largest radius per direction bin (millimetres)."""
        r = np.linalg.norm(np.asarray(verts, dtype=np.float64)[self.head] - centre, axis=1)
        table = np.zeros(self.n_el * self.n_az)
        np.maximum.at(table, self.bin, r)
        return np.asarray(table[self.source].reshape(self.n_el, self.n_az), dtype=np.float64)

    def _lookup(self, table: NDArray, az: NDArray, el: NDArray) -> NDArray[np.float64]:
        """Bilinear interpolation of a table at (az, el) degrees (azimuth wraps)."""
        x = (np.asarray(az) + 180.0) / _TABLE_DEG - 0.5
        y = np.clip((np.asarray(el) + 90.0) / _TABLE_DEG - 0.5, 0.0, self.n_el - 1.0)
        x0 = np.floor(x).astype(np.int64)
        y0 = np.minimum(np.floor(y).astype(np.int64), self.n_el - 2)
        fx, fy = x - x0, y - y0
        x0 %= self.n_az
        x1 = (x0 + 1) % self.n_az
        top = table[y0, x0] * (1 - fx) + table[y0, x1] * fx
        bot = table[y0 + 1, x0] * (1 - fx) + table[y0 + 1, x1] * fx
        return np.asarray(top * (1 - fy) + bot * fy)

    def sample(self, verts: NDArray, rng: np.random.Generator, cfg: HairConfig | None = None) -> Hair:
        """A random haircut for the head ``verts`` (V, 3) (model frame, millimetres)."""
        c = cfg or HairConfig()
        if rng.random() >= c.prob:
            return Hair.empty()
        v = np.asarray(verts, dtype=np.float64)
        centre = self.centre(v)
        table = self.radius_table(v, centre)
        n_col = round(360.0 / c.column_deg)
        phi = -180.0 + c.column_deg * np.arange(n_col)
        cos_phi = np.cos(np.radians(phi))

        # the hairline (as the painted hair's), the thickness and the strand tips
        front, side, back = (rng.uniform(*c.hairline_front_deg), rng.uniform(*c.hairline_side_deg),
                             rng.uniform(*c.hairline_back_deg))
        a0, a1, a2 = hairline_coefficients(front, side, back)
        end_el = a0 + a1 * cos_phi + a2 * (2.0 * cos_phi ** 2 - 1.0)
        thickness = rng.uniform(*c.thickness_mm)
        ragged = rng.uniform(*c.ragged_mm)
        tips = _smooth_noise(rng, n_col, 2) * ragged  # millimetres, per column

        # a fringe: the front columns come down towards the brows
        fringe = np.zeros(n_col, dtype=bool)
        if rng.random() < c.fringe_prob:
            _, brow_el, brow_r = self._spherical(v[self.lmks68[17:27]].mean(axis=0)[None], centre)
            width = rng.uniform(50.0, 80.0)
            fringe = np.abs(phi) < width
            depth = rng.uniform(*c.fringe_depth)
            slant = rng.uniform(-1.0, 1.0) * c.fringe_slant_deg * phi / width
            mm_per_deg = np.radians(1.0) * float(brow_r[0])
            level = front - depth * (front - float(brow_el[0])) + slant - tips / mm_per_deg
            shape = np.cos(np.radians(0.5 * 90.0 * phi / width)) ** 2  # fuller in the middle
            end_el = np.where(fringe, np.minimum(end_el, end_el + (level - end_el) * shape), end_el)

        # the cap: rows from the crown to the end of each column
        t_row = np.linspace(0.0, 1.0, c.cap_rows)
        el = _CROWN_DEG + (end_el[None, :] - _CROWN_DEG) * t_row[:, None]  # (rows, cols)
        az = np.broadcast_to(phi, el.shape)
        ramp = np.clip((el - end_el[None, :]) / _EDGE_RAMP_DEG, 0.0, 1.0)
        t_cap = thickness * (_EDGE_THICKNESS_FLOOR + (1.0 - _EDGE_THICKNESS_FLOOR) * ramp)
        t_cap = np.where(fringe[None, :], np.minimum(t_cap, _FRINGE_THICKNESS_MM + ramp * thickness), t_cap)
        radius = self._lookup(table, az, el) + t_cap
        cap = centre + radius[..., None] * _direction(az, el)

        # curtains: long hair hangs from the ends of the side and back columns
        length = np.zeros(n_col)
        if rng.random() < c.long_prob:
            base = rng.uniform(*c.length_mm)
            starts = [rng.uniform(*c.curtain_front_deg) for _ in range(2)]
            if rng.random() < c.tuck_prob:
                starts[int(rng.integers(0, 2))] = _TUCKED_FRONT_DEG
            edge = np.where(phi >= 0.0, starts[1], starts[0])
            ramp_in = np.clip((np.abs(phi) - edge) / _CURTAIN_EDGE_RAMP_DEG, 0.0, 1.0)
            length = np.maximum(base + tips, 0.0) * np.sqrt(ramp_in)
        flare = rng.uniform(*c.flare)
        end = cap[-1]  # (cols, 3)
        # a horizontal radius that clears the head below the column's end
        below = np.linspace(0.0, 1.0, 8)
        el_below = end_el[None, :] + (np.maximum(end_el - 60.0, _LOWEST_HEAD_DEG)[None, :]
                                      - end_el[None, :]) * below[:, None]
        el_below = np.minimum(el_below, end_el[None, :])
        clear = (self._lookup(table, np.broadcast_to(phi, el_below.shape), el_below)
                 * np.cos(np.radians(el_below))).max(axis=0) + thickness
        rel = end - centre
        horiz0 = np.maximum(np.hypot(rel[:, 0], rel[:, 2]), clear)
        drop = np.linspace(0.0, 1.0, c.curtain_rows + 1)[1:, None] * length[None, :]
        horiz = horiz0[None, :] + flare * drop
        rad = np.radians(phi)
        curtain = np.stack([centre[0] + horiz * np.sin(rad), end[None, :, 1] - drop,
                            centre[2] + horiz * np.cos(rad)], axis=-1)
        # where there is no curtain its rows collapse onto the column's end (no area)
        curtain = np.where((length > 0.0)[None, :, None], curtain, end[None, :, :])

        grid = np.concatenate([cap, curtain], axis=0)  # (rows, cols, 3)
        rows = grid.shape[0]
        strands = np.exp(c.strand_noise * (rng.standard_normal(n_col)[None, :]
                                           + _ALONG_STRAND * rng.standard_normal((rows, n_col))))
        return Hair(verts=grid.reshape(-1, 3).astype(np.float32), faces=_grid_faces(rows, n_col),
                    shade=strands.reshape(-1), specular=float(rng.uniform(*c.specular)))


def hairline_coefficients(front: float, side: float, back: float) -> tuple[float, float, float]:
    """``(a0, a1, a2)`` of the hairline ``theta(phi) = a0 + a1 cos(phi) + a2 cos(2 phi)`` through
    the elevations ``front`` (at ``phi = 0``), ``side`` (90 degrees) and ``back`` (180), degrees.

    The painted hair (:func:`facegcn_lib.data.appearance.sample_appearance`) and the hair
    geometry draw their hairlines with it.
    """
    a1 = 0.5 * (front - back)
    a0 = 0.5 * (0.5 * (front + back) + side)
    a2 = 0.5 * (0.5 * (front + back) - side)
    return a0, a1, a2


def _direction(az: NDArray, el: NDArray) -> NDArray[np.float64]:
    a, e = np.radians(az), np.radians(el)
    return np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], axis=-1)


def _smooth_noise(rng: np.random.Generator, n: int, passes: int) -> NDArray[np.float64]:
    """(n,) periodic noise in about [-1, 1], smoothed by ``passes`` neighbour averages."""
    x = rng.uniform(-1.0, 1.0, n)
    for _ in range(passes):
        x = (np.roll(x, 1) + 2.0 * x + np.roll(x, -1)) / 4.0
    return np.asarray(x / max(float(np.abs(x).max()), 1e-9))


def _grid_faces(rows: int, cols: int) -> NDArray[np.int64]:
    """(2 (rows - 1) cols, 3) triangles of a grid whose columns wrap around."""
    r, k = np.meshgrid(np.arange(rows - 1), np.arange(cols), indexing="ij")
    a = r * cols + k
    b = r * cols + (k + 1) % cols
    cc, d = a + cols, b + cols
    return np.concatenate([np.stack([a, cc, b], -1).reshape(-1, 3),
                           np.stack([b, cc, d], -1).reshape(-1, 3)]).astype(np.int64)
