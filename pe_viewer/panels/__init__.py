"""Dockable panels of the main window: findings, z-plot, layers, model input, series browser."""
