"""Morphable face models and template meshes (ICT Face Model, Basel Face Model)."""
