"""Software rendering of meshes on the CPU: a numba z-buffer rasterizer and numpy shading."""
