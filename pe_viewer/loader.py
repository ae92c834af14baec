"""Background study loading: wraps ``pe_models.io`` in a thread pool task with Qt signals."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from pe_models import io


class _Signals(QtCore.QObject):
    preview = QtCore.Signal(int, int, object)  # job, z, (y, x) int16 HU
    progress = QtCore.Signal(int, int, int)  # job, done, total
    loaded = QtCore.Signal(int, object)  # job, Volume
    failed = QtCore.Signal(int, str)  # job, message
    choose_series = QtCore.Signal(int, object)  # job, list[SeriesInfo]
    cancelled = QtCore.Signal(int)


class _LoadTask(QtCore.QRunnable):
    def __init__(self, job: int, path: Path, series_uid: str | None, signals: _Signals) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.job = job
        self.path = path
        self.series_uid = series_uid
        self.signals = signals
        self.cancel_event = threading.Event()

    def run(self) -> None:
        def on_progress(event: io.LoadProgress) -> None:
            if event.done == 1:
                self.signals.preview.emit(self.job, event.index, np.array(event.hu_slice))
            self.signals.progress.emit(self.job, event.done, event.total)

        try:
            found = io.scan(self.path)
            series = io.choose_series(self.path, found, self.series_uid)
            volume = io.load_series(
                series, progress=on_progress, should_cancel=self.cancel_event.is_set
            )
        except io.MultipleSeriesError as several:
            self.signals.choose_series.emit(self.job, list(several.series))
        except io.LoadCancelled:
            self.signals.cancelled.emit(self.job)
        except (io.StudyReadError, FileNotFoundError, PermissionError) as error:
            self.signals.failed.emit(self.job, str(error))
        except Exception as error:  # a bug, not bad input: still shown, never a crash
            self.signals.failed.emit(self.job, f"{self.path}: unexpected error: {error!r}")
        else:
            self.signals.loaded.emit(self.job, volume)


class StudyLoader(QtCore.QObject):
    """Loads one study at a time off the GUI thread; a new request cancels the running one.

    Signals
    -------
    preview(int, object)
        z index and (y, x) HU of the first decoded slice.
    progress(int, int)
        Slices decoded, slices in the series.
    loaded(object)
        The :class:`~pe_models.volume.Volume`.
    failed(str)
        A message naming the file and the problem.
    choose_series(object)
        Several series were found; the list of :class:`~pe_models.io.SeriesInfo`.
    """

    preview = QtCore.Signal(int, object)
    progress = QtCore.Signal(int, int)
    loaded = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    choose_series = QtCore.Signal(object)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QtCore.QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._jobs = itertools.count(1)
        self._current: _LoadTask | None = None
        self._live: dict[int, _LoadTask] = {}  # keep tasks alive until they report back
        self._signals = _Signals()
        self._signals.preview.connect(self._on_preview)
        self._signals.progress.connect(self._on_progress)
        self._signals.loaded.connect(self._on_loaded)
        self._signals.failed.connect(self._on_failed)
        self._signals.choose_series.connect(self._on_choose_series)
        self._signals.cancelled.connect(self._forget)

    @property
    def busy(self) -> bool:
        """True while a load is running or queued."""
        return self._current is not None

    def load(self, path: str | Path, series_uid: str | None = None) -> None:
        """Start loading ``path``; any load still running is cancelled."""
        self.cancel()
        task = _LoadTask(next(self._jobs), Path(path), series_uid, self._signals)
        self._current = task
        self._live[task.job] = task
        self._pool.start(task)

    def cancel(self) -> None:
        """Ask the running load to stop; its results are dropped."""
        if self._current is not None:
            self._current.cancel_event.set()
            self._current = None

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the pool is idle (for shutdown and tests)."""
        return self._pool.waitForDone(timeout_ms)

    def _is_current(self, job: int) -> bool:
        return self._current is not None and self._current.job == job

    def _forget(self, job: int) -> None:
        self._live.pop(job, None)
        if self._is_current(job):
            self._current = None

    def _on_preview(self, job: int, z: int, hu_slice: np.ndarray) -> None:
        if self._is_current(job):
            self.preview.emit(z, hu_slice)

    def _on_progress(self, job: int, done: int, total: int) -> None:
        if self._is_current(job):
            self.progress.emit(done, total)

    def _finish(self, job: int) -> bool:
        """Forget a job that reported its end; True if its result is still wanted."""
        current = self._is_current(job)
        self._forget(job)
        return current

    def _on_loaded(self, job: int, volume: object) -> None:
        if self._finish(job):
            self.loaded.emit(volume)

    def _on_failed(self, job: int, message: str) -> None:
        if self._finish(job):
            self.failed.emit(message)

    def _on_choose_series(self, job: int, series: object) -> None:
        if self._finish(job):
            self.choose_series.emit(series)
