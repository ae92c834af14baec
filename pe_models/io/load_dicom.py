"""Load one DICOM series into a Volume: parallel, streamed, cancellable."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from pe_models.io.decode import decode_hu
from pe_models.io.dicom_header import DicomHeader
from pe_models.io.errors import (
    LoadCancelled,
    NotCTError,
    UnsupportedFileError,
    UnsupportedTransferSyntaxError,
)
from pe_models.io.geometry import series_geometry
from pe_models.io.series import SeriesInfo
from pe_models.io.transfer_syntax import decoder_problem
from pe_models.volume import AIR_HU, Volume, VolumeMeta

PADDING_MAX_HU = -1500
"""HU at or below this are scanner padding (e.g. -2048, -3024): nothing in a body is so low."""

HU_MIN, HU_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max


@dataclass(frozen=True)
class LoadProgress:
    """One slice has been decoded.

    Attributes
    ----------
    done, total
        Slices decoded so far and slices in the series.
    index
        z index of the slice just decoded.
    hu_slice
        That slice, (y, x) int16 HU with padding already air; valid once reported.
    """

    done: int
    total: int
    index: int
    hu_slice: np.ndarray


ProgressCallback = Callable[[LoadProgress], None]
CancelCallback = Callable[[], bool]


@dataclass(frozen=True)
class _SliceStats:
    padded_voxels: int
    padding_values: frozenset[int]


def _refuse_unloadable(series: SeriesInfo) -> None:
    if series.problem is None:
        return
    first = series.headers[0]
    if not first.is_ct:
        raise NotCTError(first.path, f"{series.problem}; PE Viewer reads CT (HU) only")
    if any(map(decoder_problem, series.transfer_syntaxes)):
        raise UnsupportedTransferSyntaxError(first.path, series.problem)
    raise UnsupportedFileError(first.path, series.problem)


def _padding_hu(header: DicomHeader) -> tuple[float, float] | None:
    """HU range declared as padding by PixelPaddingValue (and PixelPaddingRangeLimit)."""
    if header.pixel_padding_value is None:
        return None
    value = header.pixel_padding_value
    limit = value if header.pixel_padding_range_limit is None else header.pixel_padding_range_limit
    low, high = (v * header.rescale_slope + header.rescale_intercept for v in (value, limit))
    return min(low, high), max(low, high)


def _decode_into(out: np.ndarray, header: DicomHeader) -> _SliceStats:
    """Decode one image into ``out`` (y, x) int16, mapping padding to air."""
    hu = decode_hu(header)
    padding = hu <= PADDING_MAX_HU
    declared = _padding_hu(header)
    if declared is not None:
        padding |= (hu >= declared[0]) & (hu <= declared[1])
    if np.issubdtype(hu.dtype, np.floating):
        hu = np.rint(hu)
    np.clip(hu, HU_MIN, HU_MAX, out=out, casting="unsafe")
    count = int(np.count_nonzero(padding))
    values: frozenset[int] = frozenset()
    if count:
        padded = out[padding]
        values = frozenset({int(padded.min()), int(padded.max())})
        out[padding] = AIR_HU
    return _SliceStats(count, values)


def load_dicom_series(
    series: SeriesInfo,
    *,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCallback | None = None,
    workers: int | None = None,
) -> Volume:
    """Decode a scanned DICOM series into a :class:`Volume`.

    Slices are decoded in z order by a thread pool; ``progress`` is called in the caller's
    thread as each one lands, so the first slice can be shown long before the last is read.

    Parameters
    ----------
    series
        A series found by :func:`pe_models.io.scan`.
    progress
        Called with a :class:`LoadProgress` after each slice.
    should_cancel
        Polled between slices; when it returns True the load stops and raises
        :class:`LoadCancelled`.
    workers
        Decoding threads; defaults to the number of CPU cores.

    Raises
    ------
    NotCTError, UnsupportedTransferSyntaxError, UnsupportedFileError
        The series cannot be read as CT.
    InconsistentSeriesError, DuplicateSliceError, CorruptFileError, NoPixelDataError
        An image of the series is at fault; the error names it.
    LoadCancelled
        ``should_cancel`` returned True.
    """
    _refuse_unloadable(series)
    images = [h for h in series.headers if not h.is_localizer] or list(series.headers)
    geometry = series_geometry(images)
    warnings = list(geometry.warnings)
    if len(images) < len(series.headers):
        warnings.append(f"{len(series.headers) - len(images)} localizer image(s) left out")
    ordered = [images[i] for i in geometry.order]
    first = ordered[0]
    hu = np.empty((len(ordered), first.rows, first.columns), dtype=np.int16)

    padded_voxels = 0
    padding_values: set[int] = set()
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(ordered)))
    executor = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="dicom-decode")
    try:
        pending: dict[Future[_SliceStats], int] = {
            executor.submit(_decode_into, hu[z], header): z for z, header in enumerate(ordered)
        }
        done_count = 0

        def check_cancel() -> None:
            if should_cancel is not None and should_cancel():
                raise LoadCancelled(f"loading {series.path} was cancelled")

        while pending:
            check_cancel()
            finished, _ = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
            # On a busy machine one wait may return many slices: answer a cancel after each.
            for future in sorted(finished, key=pending.__getitem__):
                z = pending.pop(future)
                stats = future.result()
                padded_voxels += stats.padded_voxels
                padding_values |= stats.padding_values
                done_count += 1
                if progress is not None:
                    progress(LoadProgress(done_count, len(ordered), z, hu[z]))
                check_cancel()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

    meta = VolumeMeta(
        series_uid=series.series_uid,
        study_uid=series.study_uid,
        description=series.description or series.path.name,
        modality=series.modality,
        contrast_agent=series.contrast_agent,
        contrast_hint=series.contrast_hint,
        orientation=geometry.orientation,
        source=str(series.path),
        padding_values_hu=tuple(sorted(padding_values)),
        padded_voxels=padded_voxels,
        warnings=tuple(warnings),
        extra={
            "manufacturer": first.manufacturer,
            "kvp": first.kvp,
            "slice_thickness_mm": f"{first.slice_thickness:g}" if first.slice_thickness else "",
            "transfer_syntax": ", ".join(series.transfer_syntaxes),
            "patient_id": first.patient_id,
            "study_date": first.study_date,
        },
    )
    return Volume(
        hu=hu,
        spacing=geometry.spacing,
        origin=geometry.origin,
        direction=geometry.direction,
        slice_uids=tuple(h.sop_uid for h in ordered),
        meta=meta,
    )
