"""Geometry on ``(verts, faces)`` arrays: graphs, decimation, sampling, pyramids, file I/O.

This package is a functional core: numpy/scipy arrays in and out, no torch modules.
"""
