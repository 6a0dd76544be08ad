"""Rotations, camera projections and similarity fits (pose from a mesh)."""
