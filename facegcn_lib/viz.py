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
    """Make plotly embed plotly.js in notebook outputs (so figures show in the built book)."""
    import plotly.io as pio

    pio.renderers.default = "notebook"


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
