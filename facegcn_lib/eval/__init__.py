"""Evaluation protocols: landmark and dense NME by yaw bin, CED curves, ICP-aligned errors."""
