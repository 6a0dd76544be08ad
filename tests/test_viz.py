"""Figures of chapters 5 and 7: training curves from a metrics log, coloured face meshes."""

from __future__ import annotations

import numpy as np

from facegcn_lib import viz


def test_training_curves_skip_missing_metrics_and_show_nme_in_percent() -> None:
    metrics = {"train/loss": [(1, 0.9), (2, 0.8)], "train/lr": [(1, 1e-3), (2, 5e-4)],
               "val/nme": [(2, 0.25)]}
    fig = viz.training_curves_figure(metrics, title="run")
    names = [t.name for t in fig.data]
    assert names == ["train/loss", "val/nme", "train/lr"]  # vertex/smooth terms absent: skipped
    nme = fig.data[1]
    assert list(nme.x) == [2] and np.allclose(nme.y, [25.0])
    assert fig.layout.yaxis3.type == "log"  # the learning rate
    assert [a.text for a in fig.layout.annotations] == list(viz.TRAINING_CURVE_PANELS)


def test_face_meshes_are_centred_seen_with_y_up_and_coloured() -> None:
    verts = np.array([[10.0, 20.0, 1.0], [12.0, 20.0, 2.0], [10.0, 24.0, 3.0]])
    faces = np.array([[0, 1, 2]])
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    fig = viz.face_meshes_figure([(verts, faces, colors), (verts, faces, None)], ["a", "b"],
                                 points=[verts[:1], None])
    mesh, points, plain = fig.data
    centred = verts - verts.mean(axis=0)
    assert np.allclose(mesh.x, centred[:, 0]) and np.allclose(mesh.y, -centred[:, 1])
    assert list(mesh.vertexcolor) == ["#ff0000", "#00ff00", "#0000ff"]
    assert np.allclose(points.y, -centred[:1, 1])
    assert plain.vertexcolor is None and plain.color == viz.MESH_COLOR
