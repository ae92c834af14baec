"""The series browser: pick one series of a folder that holds several."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from pe_models.io import SeriesInfo, StudyReadError
from pe_models.io.decode import decode_hu
from pe_models.preprocess.windows import apply_window
from pe_viewer.pixmaps import to_pixmap

THUMBNAIL_PX = 96
COLUMNS = ("", "Series", "Description", "Images", "Orientation", "Contrast", "Problem")


def thumbnail(series: SeriesInfo) -> QtGui.QPixmap | None:
    """The middle image of a DICOM series in the mediastinal window, or None."""
    if not series.headers or series.problem:
        return None
    header = series.headers[len(series.headers) // 2]
    try:
        grey = (apply_window(decode_hu(header), "mediastinal") * 255).astype(np.uint8)
    except (StudyReadError, OSError, ValueError):
        return None
    return to_pixmap(grey).scaled(
        THUMBNAIL_PX,
        THUMBNAIL_PX,
        QtCore.Qt.AspectRatioMode.KeepAspectRatio,
        QtCore.Qt.TransformationMode.SmoothTransformation,
    )


class SeriesBrowserDialog(QtWidgets.QDialog):
    """A table of the series found, with thumbnails; the largest loadable one is preselected.

    Parameters
    ----------
    series
        What :func:`pe_models.io.scan` found.
    source
        The folder or file scanned (for the title).
    """

    def __init__(
        self, series: Sequence[SeriesInfo], source: str, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self.series = list(series)
        self.table = QtWidgets.QTableWidget(len(self.series), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QtCore.QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.table.verticalHeader().hide()
        for row, info in enumerate(self.series):
            picture = QtWidgets.QTableWidgetItem()
            pixmap = thumbnail(info)
            if pixmap is not None:
                picture.setIcon(QtGui.QIcon(pixmap))
            values = (
                "" if info.series_number is None else str(info.series_number),
                info.description or "(no description)",
                str(info.n_images),
                info.orientation,
                info.contrast_hint,
                info.problem or "",
            )
            self.table.setItem(row, 0, picture)
            for column, value in enumerate(values, start=1):
                item = QtWidgets.QTableWidgetItem(value)
                if info.problem:
                    item.setForeground(QtGui.QColor("#d98c8c"))
                self.table.setItem(row, column, item)
            self.table.setRowHeight(row, THUMBNAIL_PX + 4)
        self.table.resizeColumnsToContents()
        self.table.selectRow(self.default_row())
        self.table.doubleClicked.connect(self.accept)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Open
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel(f"{source} holds {len(self.series)} series:"))
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(820, 420)

    def default_row(self) -> int:
        """The loadable series with the most images (else the first)."""
        loadable = [i for i, s in enumerate(self.series) if s.problem is None]
        return max(loadable, key=lambda i: self.series[i].n_images) if loadable else 0

    def chosen(self) -> SeriesInfo | None:
        """The selected series, if it can be loaded."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        info = self.series[rows[0].row()]
        return None if info.problem else info
