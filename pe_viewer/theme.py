"""The dark theme: a Fusion palette for a dim reading room plus a small style sheet."""

from __future__ import annotations

from PySide6 import QtGui, QtWidgets

from pe_models.resources import resources_dir

COLORS = {
    "Window": "#1e1f22",
    "WindowText": "#d8d8d8",
    "Base": "#141517",
    "AlternateBase": "#202124",
    "Text": "#d8d8d8",
    "Button": "#2a2b2f",
    "ButtonText": "#d8d8d8",
    "Highlight": "#3d6fb4",
    "HighlightedText": "#ffffff",
    "ToolTipBase": "#2a2b2f",
    "ToolTipText": "#d8d8d8",
    "PlaceholderText": "#808080",
}

DISABLED_COLORS = {
    "WindowText": "#6b6b6b",
    "Text": "#6b6b6b",
    "ButtonText": "#6b6b6b",
    "Highlight": "#4a4b4f",
}
"""Colours of disabled controls (e.g. a layer no loaded model can draw): dimmer text, and a
grey instead of the blue highlight for a disabled slider's filled groove."""


def dark_palette() -> QtGui.QPalette:
    """A dark palette suited to reading CT in a dim room."""
    palette = QtGui.QPalette()
    for role, color in COLORS.items():
        palette.setColor(getattr(QtGui.QPalette.ColorRole, role), QtGui.QColor(color))
    for role, color in DISABLED_COLORS.items():
        palette.setColor(
            QtGui.QPalette.ColorGroup.Disabled,
            getattr(QtGui.QPalette.ColorRole, role),
            QtGui.QColor(color),
        )
    return palette


def apply_dark_theme(app: QtWidgets.QApplication) -> None:
    """Fusion style, the dark palette and ``resources/theme/dark.qss``."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    sheet = resources_dir() / "theme" / "dark.qss"
    if sheet.is_file():
        app.setStyleSheet(sheet.read_text(encoding="utf-8"))
