"""Voxel-wise encoding models: cross-validation, ridge fits, scores and statistics."""
