"""Real face datasets (AFLW2000-3D, 300W-LP, 68-landmark photo sets), image loading, crops."""
