"""Training: experiment files, datasets of prepared slices, the Lightning module, presets."""
