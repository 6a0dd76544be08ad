"""Torch modules: graph convolutions over meshes, encoders, the ResGCN decoder, the model."""
