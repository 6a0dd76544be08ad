"""Figures: the only module that imports matplotlib or plotly (both imported lazily).

Interactive 3D views are plotly figures; call :func:`setup_notebook` once in a notebook so
they are embedded with plotly.js and survive the book build (renderer ``notebook``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

#: A neutral skin-like colour for shaded meshes.
MESH_COLOR = "#d9b99b"
VIEW_EYE = {"x": 0.0, "y": 0.0, "z": 2.2}
FIG_HEIGHT_PX = 420


def setup_notebook() -> None:
    """Prepare a notebook kernel so that every figure lands in the cell outputs.

    * plotly embeds plotly.js in the outputs (renderer ``notebook``), so its figures show in the
      built book, offline;
    * matplotlib draws with the inline backend even where ``MPLBACKEND`` names another one (a
      non-interactive ``Agg`` inherited from a CI shell would silently drop every figure).

    Outside an IPython kernel only the plotly renderer is set.
    """
    import plotly.io as pio

    pio.renderers.default = "notebook"
    pio.renderers._activate_pending_renderers()  # plotly.js goes into this cell's output now
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with plotly's notebook renderer
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")


def mesh_trace(verts: NDArray, faces: NDArray, intensity: NDArray | None = None,
               colorscale: str = "RdBu", name: str = "", showscale: bool = False,
               cmid: float | None = None) -> go.Mesh3d:
    """A plotly ``Mesh3d`` trace.

    Args:
        verts: (V, 3) float positions.
        faces: (F, 3) int triangles.
        intensity: optional (V,) float per-vertex values to colour by.
    """
    import plotly.graph_objects as go

    v = np.asarray(verts, dtype=np.float32)
    f = np.asarray(faces, dtype=np.int32)
    kw: dict[str, Any] = {}
    if intensity is None:
        kw["color"] = MESH_COLOR
    else:
        kw.update(intensity=np.asarray(intensity, dtype=np.float32), colorscale=colorscale,
                  showscale=showscale, cmid=cmid)
    return go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
                     name=name, flatshading=False, hoverinfo="skip",
                     lighting={"ambient": 0.45, "diffuse": 0.7, "specular": 0.15, "roughness": 0.6},
                     lightposition={"x": 0, "y": 0, "z": 1000}, **kw)


def points_trace(points: NDArray, color: str = "crimson", size: float = 3.0,
                 name: str = "") -> go.Scatter3d:
    """A plotly ``Scatter3d`` trace of (N, 3) points (e.g. landmarks)."""
    import plotly.graph_objects as go

    p = np.asarray(points, dtype=np.float32)
    return go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=name,
                        marker={"size": size, "color": color})


def _scene() -> dict[str, Any]:
    axis = {"visible": False}
    return {"xaxis": axis, "yaxis": axis, "zaxis": axis, "aspectmode": "data",
            "camera": {"eye": VIEW_EYE, "up": {"x": 0, "y": 1, "z": 0}}}


def mesh_figure(verts: NDArray, faces: NDArray, intensity: NDArray | None = None,
                title: str = "", points: NDArray | None = None, **trace_kw: Any) -> go.Figure:
    """An interactive view of one mesh, optionally coloured and with points on it."""
    import plotly.graph_objects as go

    traces: list[Any] = [mesh_trace(verts, faces, intensity, **trace_kw)]
    if points is not None:
        traces.append(points_trace(points))
    fig = go.Figure(traces)
    fig.update_layout(title=title, scene=_scene(), height=FIG_HEIGHT_PX,
                      margin={"l": 0, "r": 0, "t": 40 if title else 0, "b": 0}, showlegend=False)
    return fig


def meshes_figure(meshes: Sequence[tuple[NDArray, NDArray]], titles: Sequence[str],
                  intensities: Sequence[NDArray | None] | None = None,
                  points: Sequence[NDArray | None] | None = None, **trace_kw: Any) -> go.Figure:
    """Several meshes side by side, each in its own 3D scene.

    Args:
        meshes: ``(verts (V_i, 3), faces (F_i, 3))`` per panel.
        titles: one title per panel.
        intensities: optional per-vertex values per panel.
        points: optional (N_i, 3) points per panel.
    """
    from plotly.subplots import make_subplots

    n = len(meshes)
    fig = make_subplots(rows=1, cols=n, specs=[[{"type": "scene"}] * n], subplot_titles=list(titles),
                        horizontal_spacing=0.01)
    for k, (verts, faces) in enumerate(meshes):
        inten = intensities[k] if intensities is not None else None
        fig.add_trace(mesh_trace(verts, faces, inten, **trace_kw), row=1, col=k + 1)
        if points is not None and points[k] is not None:
            fig.add_trace(points_trace(points[k]), row=1, col=k + 1)  # type: ignore[arg-type]
        fig.update_layout(**{f"scene{k + 1 if k else ''}": _scene()})
    fig.update_layout(height=FIG_HEIGHT_PX, margin={"l": 0, "r": 0, "t": 40, "b": 0}, showlegend=False)
    return fig


# --- evaluation: CED curves (issue 9; facegcn_lib.eval) ------------------------------------

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Default upper end of a CED plot's error axis (a fraction: 0.1 = 10 % NME).
CED_MAX_ERROR = 0.1
#: Thresholds drawn per CED curve.
CED_NUM_POINTS = 400
CED_FIGSIZE_IN = (5.0, 3.6)


def ced_figure(errors: Mapping[str, NDArray], max_error: float = CED_MAX_ERROR,
               percent: bool = True, title: str = "", ax: Axes | None = None) -> Figure:
    """Cumulative error distribution curves of several methods, with AUC in the legend.

    Args:
        errors: method name -> (N,) per-image errors as fractions (e.g. NME from
            :func:`facegcn_lib.eval.metrics.nme`).
        max_error: right end of the error axis; the legend's AUC is the normalised area
            on ``[0, max_error]`` (:func:`facegcn_lib.eval.metrics.ced_auc`).
        percent: label the error axis in percent.
        title: the axes title.
        ax: draw into these axes instead of a new figure.

    Returns:
        The matplotlib figure (see :doc:`chapter 6 </chapters/06_evaluation>`).
    """
    import matplotlib.pyplot as plt

    from facegcn_lib.eval.metrics import ced_auc, ced_curve

    if ax is None:
        fig, ax = plt.subplots(figsize=CED_FIGSIZE_IN)
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    unit = 100.0 if percent else 1.0
    grid = np.linspace(0.0, max_error, CED_NUM_POINTS)
    for name, err in errors.items():
        t, frac = ced_curve(err, grid)
        auc = ced_auc(err, max_error)
        ax.step(t * unit, frac, where="post", label=f"{name} (AUC {auc:.3f})")
    ax.set_xlim(0.0, max_error * unit)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("NME (%)" if percent else "NME")
    ax.set_ylabel("fraction of images")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    return fig


# --- images: landmarks, galleries, G-buffers, morphable-model sliders (chapter 3) ------------

#: The 68 landmarks as polylines ``(start, stop, closed)``: jaw, brows, nose bridge, nostrils,
#: eyes, outer and inner lips.
LANDMARK_PATHS_68: tuple[tuple[int, int, bool], ...] = (
    (0, 17, False), (17, 22, False), (22, 27, False), (27, 31, False), (31, 36, False),
    (36, 42, True), (42, 48, True), (48, 60, True), (60, 68, True))
#: Colour of landmarks the camera sees.
VISIBLE_COLOR = "#39ff14"
#: Colour of landmarks hidden by the head itself.
HIDDEN_COLOR = "#ff3b3b"
#: Colour of the lines joining the 68 landmarks.
LINE_COLOR = "#ffffff"
#: Side of one gallery panel, in inches.
GALLERY_PANEL_IN = 2.4
#: Landmark marker area, in points squared.
MARKER_SIZE = 7.0
#: Decimals kept in slider meshes (millimetres: 0.1 mm keeps the HTML small).
SLIDER_DECIMALS = 1


def draw_landmarks(ax: Axes, points: NDArray, visible: NDArray | None = None, lines: bool = True,
                   size: float = MARKER_SIZE, color: str = VISIBLE_COLOR) -> None:
    """Draw 2D landmarks (N, 2+) in image pixels on matplotlib axes showing the image.

    Args:
        ax: the axes (an ``imshow`` of the image).
        points: (N, 2) or (N, 3) x, y pixels (pixel centres at integers); NaN rows are skipped.
        visible: optional (N,) bool; hidden points are drawn in :data:`HIDDEN_COLOR`.
        lines: join the 68 landmarks along :data:`LANDMARK_PATHS_68` (when N is 68).
        size: marker area in points squared.
        color: the colour of visible points.
    """
    p = np.asarray(points, dtype=np.float64)[:, :2]
    if lines and len(p) == 68:
        for lo, hi, closed in LANDMARK_PATHS_68:
            idx = [*range(lo, hi), lo] if closed else list(range(lo, hi))
            ax.plot(p[idx, 0], p[idx, 1], color=LINE_COLOR, lw=0.6, alpha=0.6)
    vis = np.ones(len(p), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    ax.scatter(p[vis, 0], p[vis, 1], s=size, c=color, linewidths=0)
    ax.scatter(p[~vis, 0], p[~vis, 1], s=size, c=HIDDEN_COLOR, linewidths=0)


def image_grid(images: Sequence[NDArray], titles: Sequence[str] | None = None,
               points: Sequence[NDArray | None] | None = None,
               visible: Sequence[NDArray | None] | None = None, ncols: int = 4,
               panel_in: float = GALLERY_PANEL_IN, lines: bool = True, cmap: str = "gray",
               suptitle: str = "") -> Figure:
    """A grid of images, optionally with landmarks drawn on each.

    Args:
        images: (H, W, 3) uint8 / float in [0, 1], or (H, W) (drawn with ``cmap``).
        titles: one title per image.
        points: per image, (N, 2+) landmarks in its pixels or ``None``.
        visible: per image, (N,) bool visibility of its points or ``None``.
        ncols: panels per row.
        panel_in: the side of one panel in inches.
        lines: join 68 landmarks into the face's outlines.
        cmap: colour map of single-channel images.
        suptitle: a title over the grid.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    cols = max(1, min(ncols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_in * cols, panel_in * rows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= n:
            continue
        img = np.asarray(images[k])
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None, interpolation="nearest")
        if points is not None and points[k] is not None:
            pts = np.asarray(points[k])
            draw_landmarks(ax, pts, None if visible is None else visible[k], lines=lines)
            ax.set_xlim(-0.5, img.shape[1] - 0.5)
            ax.set_ylim(img.shape[0] - 0.5, -0.5)
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def depth_image(depth: NDArray) -> NDArray[np.float64]:
    """A depth map (``inf`` where empty) as a grey image in [0, 1]: near bright, empty black."""
    d = np.asarray(depth, dtype=np.float64)
    fin = np.isfinite(d)
    out = np.zeros_like(d)
    if fin.any():
        lo, hi = d[fin].min(), d[fin].max()
        out[fin] = 0.15 + 0.85 * (hi - d[fin]) / max(hi - lo, 1e-12)
    return out


def triangle_id_image(tri: NDArray, seed: int = 0) -> NDArray[np.float64]:
    """(H, W, 3) a random colour per triangle id (``-1``, empty, is black)."""
    t = np.asarray(tri, dtype=np.int64)
    palette = np.random.default_rng(seed).uniform(0.2, 1.0, (int(t.max()) + 2, 3))
    palette[0] = 0.0
    out: NDArray[np.float64] = palette[t + 1]
    return out


def mesh_slider_figure(faces: NDArray, modes: Mapping[str, Sequence[tuple[str, NDArray]]],
                       title: str = "") -> go.Figure:
    """An interactive mesh with one slider per mode (e.g. identity and expression modes).

    Args:
        faces: (F, 3) triangles shared by all meshes.
        modes: mode name -> steps ``(label, verts (V, 3))``; each slider moves along its own
            mode (the others stay where their sliders are not: each step sets the whole mesh).
        title: the figure title.
    """
    import plotly.graph_objects as go

    names = list(modes)
    first = np.asarray(modes[names[0]][len(modes[names[0]]) // 2][1])
    trace = mesh_trace(first, faces)
    sliders = []
    for k, name in enumerate(names):
        steps = []
        for label, verts in modes[name]:
            v = np.round(np.asarray(verts, dtype=np.float64), SLIDER_DECIMALS)
            steps.append({"label": label, "method": "restyle",
                          "args": [{"x": [v[:, 0]], "y": [v[:, 1]], "z": [v[:, 2]]}]})
        sliders.append({"active": len(steps) // 2, "steps": steps, "currentvalue": {"prefix": f"{name}: "},
                        "pad": {"t": 10 + 55 * k}, "len": 0.9, "x": 0.05})
    fig = go.Figure([trace])
    fig.update_layout(title=title, scene=_scene(), sliders=sliders, showlegend=False,
                      height=FIG_HEIGHT_PX + 60 * len(names),
                      margin={"l": 0, "r": 0, "t": 40 if title else 0, "b": 0})
    return fig


# --- graph signals and spectra (chapter 1; facegcn_lib.mesh.graph, facegcn_lib.nn.cheb_conv) --

CURVES_FIGSIZE_IN = (5.6, 3.4)


def mesh_signals_figure(verts: NDArray, faces: NDArray, signals: Mapping[str, NDArray],
                        title: str = "", colorscale: str = "RdBu") -> go.Figure:
    """One mesh coloured by one of several per-vertex signals, picked with a slider.

    Each signal gets a colour range symmetric about zero (``+-max |signal|``, white at 0), so
    the sign pattern of, e.g., a Laplacian eigenvector reads directly.

    Args:
        verts: (V, 3) float positions.
        faces: (F, 3) int triangles.
        signals: label -> (V,) float values (the slider steps, in order).
        title: the figure title.
        colorscale: a diverging plotly colour scale.
    """
    import plotly.graph_objects as go

    labels = list(signals)
    arrays = [np.asarray(signals[k], dtype=np.float32) for k in labels]
    ranges = [float(np.abs(a).max()) or 1.0 for a in arrays]
    trace = mesh_trace(verts, faces, arrays[0], colorscale=colorscale, showscale=True)
    trace.update(cmin=-ranges[0], cmax=ranges[0])
    steps = [{"label": label, "method": "restyle",
              "args": [{"intensity": [a], "cmin": [-r], "cmax": [r]}]}
             for label, a, r in zip(labels, arrays, ranges, strict=True)]
    fig = go.Figure([trace])
    fig.update_layout(title=title, scene=_scene(), showlegend=False, height=FIG_HEIGHT_PX + 60,
                      sliders=[{"active": 0, "steps": steps, "pad": {"t": 10}, "len": 0.9,
                                "x": 0.05, "currentvalue": {"prefix": "signal: "}}],
                      margin={"l": 0, "r": 0, "t": 40 if title else 0, "b": 0})
    return fig


def curves_figure(curves: Mapping[str, tuple[NDArray, NDArray]], xlabel: str, ylabel: str,
                  title: str = "", logx: bool = False, logy: bool = False,
                  markers: bool = True, ax: Axes | None = None) -> Figure:
    """Several ``y(x)`` curves on one pair of axes (spectra, errors against an order, timings).

    Args:
        curves: label -> ``(x, y)`` arrays of equal length.
        xlabel: the x-axis label.
        ylabel: the y-axis label.
        title: the axes title.
        logx: logarithmic x-axis.
        logy: logarithmic y-axis.
        markers: draw a marker at each point.
        ax: draw into these axes instead of a new figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=CURVES_FIGSIZE_IN)
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    for label, (x, y) in curves.items():
        ax.plot(np.asarray(x), np.asarray(y), marker="o" if markers else None, ms=3, lw=1.2,
                label=label)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    if len(curves) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# --- decimation and pyramids (chapter 2; facegcn_lib.mesh.decimate, facegcn_lib.mesh.pyramid) --
#: Line width (pixels) of mesh outlines drawn over 3D views.
OUTLINE_WIDTH_PX = 5
#: Size (inches) of the 2D quadric figures.
QUADRIC_FIGSIZE_IN = (9.0, 3.6)
#: Contour levels of the 2D quadric figures.
QUADRIC_LEVELS = 14


def outline_trace(verts: NDArray, faces: NDArray, color: str = "crimson",
                  width: float = OUTLINE_WIDTH_PX, name: str = "") -> go.Scatter3d:
    """A plotly line trace of a mesh's boundary edges (the edges of exactly one triangle)."""
    import plotly.graph_objects as go

    from facegcn_lib.mesh.topology import boundary_edges

    v = np.asarray(verts, dtype=np.float32)
    be = boundary_edges(np.asarray(faces))
    seg = np.full((len(be), 3, 3), np.nan, dtype=np.float32)
    seg[:, 0], seg[:, 1] = v[be[:, 0]], v[be[:, 1]]
    pts = seg.reshape(-1, 3)
    return go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="lines", name=name,
                        line={"color": color, "width": width}, hoverinfo="skip")


def quadric_2d_figure(panels: Sequence[tuple[NDArray, NDArray | None, str]],
                      extent: tuple[float, float, float, float] = (-2.0, 2.0, -2.0, 2.0)) -> Any:
    """The 2D picture of quadric error: contours of a sum of squared distances to lines.

    Args:
        panels: per panel, ``(lines, points, title)``: (k, 3) lines ``a x + b y + c = 0`` with
            ``a^2 + b^2 = 1`` (each drawn, and each adding ``(a x + b y + c)^2`` to the error),
            optional (n, 2) points to mark, and a title.
        extent: ``(xmin, xmax, ymin, ymax)`` of every panel.

    Returns:
        A matplotlib figure with one panel per entry.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=QUADRIC_FIGSIZE_IN, squeeze=False)
    x0, x1, y0, y1 = extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    for ax, (lines, points, title) in zip(axes[0], panels, strict=True):
        ln = np.asarray(lines, dtype=np.float64).reshape(-1, 3)
        err = sum((a * gx + b * gy + c) ** 2 for a, b, c in ln)
        ax.contourf(gx, gy, np.sqrt(err), levels=QUADRIC_LEVELS, cmap="viridis")
        ax.contour(gx, gy, np.sqrt(err), levels=QUADRIC_LEVELS, colors="k", linewidths=0.3)
        t = np.linspace(-10, 10, 2)
        for a, b, c in ln:
            px, py = -a * c, -b * c  # the foot of the origin on the line
            ax.plot(px - b * t, py + a * t, color="white", lw=1.5)
        if points is not None:
            p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            ax.plot(p[:, 0], p[:, 1], "o", color="crimson", ms=6)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# --- the decoder and its baselines (chapter 4; facegcn_lib.nn) ------------------------------
#: Size (inches) of one position-map panel.
POSITION_MAP_PANEL_IN = 3.2


def position_maps_figure(maps: Sequence[NDArray], titles: Sequence[str]) -> Figure:
    """UV position maps ``(3, S, S)`` (x, y, z per pixel) as RGB images, side by side.

    Each map's channels are scaled to [0, 1] over its own range, so the colours show how x, y
    and z vary across the UV layout (the PRNet-like baseline of :doc:`chapter 4 </chapters/04_resgcn_decoder>`).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), squeeze=False,
                             figsize=(POSITION_MAP_PANEL_IN * len(maps), POSITION_MAP_PANEL_IN))
    for ax, pmap, title in zip(axes[0], maps, titles, strict=True):
        m = np.asarray(pmap, dtype=np.float64)
        lo = m.min(axis=(1, 2), keepdims=True)
        hi = m.max(axis=(1, 2), keepdims=True)
        ax.imshow(np.moveaxis((m - lo) / np.maximum(hi - lo, 1e-12), 0, -1))
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def wireframe_trace(verts: NDArray, faces: NDArray, color: str = "#555555",
                    width: float = 1.5, name: str = "") -> go.Scatter3d:
    """A plotly line trace of every edge of a (small) mesh, to show its triangles."""
    import plotly.graph_objects as go

    from facegcn_lib.mesh.topology import edges

    v = np.asarray(verts, dtype=np.float32)
    e, _ = edges(np.asarray(faces))
    seg = np.full((len(e), 3, 3), np.nan, dtype=np.float32)
    seg[:, 0], seg[:, 1] = v[e[:, 0]], v[e[:, 1]]
    pts = seg.reshape(-1, 3)
    return go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="lines", name=name,
                        line={"color": color, "width": width}, hoverinfo="skip")


# --- training curves and faces in the wild (chapters 5 and 7; facegcn_lib.train, .pipeline) --
#: Height (pixels) of a training-curves figure.
TRAINING_CURVES_HEIGHT_PX = 330
#: The panels of :func:`training_curves_figure`: title -> the ``metrics.csv`` names drawn in it.
TRAINING_CURVE_PANELS: dict[str, tuple[str, ...]] = {
    "training loss": ("train/loss", "train/vertex", "train/smooth"),
    "validation dense NME (%)": ("val/nme",),
    "learning rate": ("train/lr",),
}
#: Metrics drawn in percent by :func:`training_curves_figure`.
PERCENT_METRICS = ("val/nme",)


def training_curves_figure(metrics: Mapping[str, Sequence[tuple[int, float]]], title: str = "",
                           panels: Mapping[str, Sequence[str]] | None = None) -> go.Figure:
    """A training run's curves against the optimiser step, one panel per group of metrics.

    Args:
        metrics: name -> ``[(step, value), ...]``, as
            :func:`facegcn_lib.train.metrics_writer.read_metrics` returns for ``metrics.csv``.
        title: the figure's title.
        panels: panel title -> metric names (default :data:`TRAINING_CURVE_PANELS`); names
            missing from ``metrics`` are skipped, and so are panels left empty.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    groups = {t: [n for n in names if metrics.get(n)]
              for t, names in (panels or TRAINING_CURVE_PANELS).items()}
    groups = {t: names for t, names in groups.items() if names}
    n = max(1, len(groups))
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(groups) or None,
                        horizontal_spacing=0.08)
    for k, names in enumerate(groups.values()):
        for name in names:
            steps, values = zip(*metrics[name], strict=True)
            y = np.asarray(values, dtype=np.float64) * (100.0 if name in PERCENT_METRICS else 1.0)
            mode = "lines+markers" if len(steps) <= 30 else "lines"
            fig.add_trace(go.Scatter(x=list(steps), y=y, mode=mode, name=name,
                                     marker={"size": 5}, legendgroup=name), row=1, col=k + 1)
        fig.update_xaxes(title_text="step", row=1, col=k + 1)
    if "learning rate" in groups:
        fig.update_yaxes(type="log", row=1, col=list(groups).index("learning rate") + 1)
    fig.update_layout(title=title or None, height=TRAINING_CURVES_HEIGHT_PX,
                      margin={"l": 50, "r": 10, "t": 60 if title else 40, "b": 40},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def _hex_colors(colors: NDArray) -> list[str]:
    c = np.clip(np.asarray(colors, dtype=np.int64), 0, 255)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in c.tolist()]


def face_meshes_figure(meshes: Sequence[tuple[NDArray, NDArray, NDArray | None]],
                       titles: Sequence[str],
                       points: Sequence[NDArray | None] | None = None) -> go.Figure:
    """Reconstructed faces side by side in 3D, coloured from their photos.

    The meshes are in the image frame of :class:`facegcn_lib.face.Face` (x right, y down, z
    towards the camera, in pixels); they are shown with y up, seen from the camera.

    Args:
        meshes: ``(verts (V_i, 3), faces (F_i, 3), colors (V_i, 3) uint8 RGB or None)`` per
            panel (``None``: the plain mesh colour).
        titles: one title per panel.
        points: optional (N_i, 3) points per panel in the same frame (e.g. the 68 landmarks).
    """
    from plotly.subplots import make_subplots

    n = len(meshes)
    flip = np.array([1.0, -1.0, 1.0])
    fig = make_subplots(rows=1, cols=n, specs=[[{"type": "scene"}] * n],
                        subplot_titles=list(titles), horizontal_spacing=0.01)
    for k, (verts, faces, colors) in enumerate(meshes):
        v = np.asarray(verts, dtype=np.float64)
        v = (v - np.nanmean(v, axis=0)) * flip
        trace = mesh_trace(v, faces)
        if colors is not None:
            trace.update(color=None, vertexcolor=_hex_colors(colors))
        fig.add_trace(trace, row=1, col=k + 1)
        if points is not None and points[k] is not None:
            p = (np.asarray(points[k], dtype=np.float64) - np.nanmean(np.asarray(verts), axis=0))
            fig.add_trace(points_trace(p * flip, size=2.5), row=1, col=k + 1)
        fig.update_layout(**{f"scene{k + 1 if k else ''}": _scene()})
    fig.update_layout(height=FIG_HEIGHT_PX, margin={"l": 0, "r": 0, "t": 40, "b": 0},
                      showlegend=False)
    return fig


# --- evaluation benchmarks (issue 9: facegcn_lib.eval.benchmarks) ---------------------------
if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

#: Resolution of figures saved by :func:`save_figure`.
SAVE_DPI = 150


def save_figure(fig: Figure, path: str | Path, dpi: int = SAVE_DPI) -> Path:
    """Save a matplotlib figure (format from the suffix, e.g. ``.png``) and close it.

    Closing releases pyplot's reference, so scripts that save many figures do not keep them
    all in memory.
    """
    from pathlib import Path

    import matplotlib.pyplot as plt

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return p
