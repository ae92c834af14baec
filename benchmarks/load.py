"""Series loading: pe_models.io.load vs SimpleITK's ImageSeriesReader, same files, same run.

Prints, per series: our time, SimpleITK's time, their ratio (goal <= 1.0), our time to the
first decoded slice from the folder path (goal <= 0.3 s), and that time split into the header
scan and the first slice once the scan is done (the viewer scans first, for its series
browser). Both readers start from the folder path: discovery, sorting and decoding are all
counted. Medians of --repeats runs, readers alternating, caches warm.

The 300-slice series are written once into benchmarks/_data by re-writing the real 24-slice
JPEG-lossless chest series at new positions (its compressed frames are reused as they are; the
uncompressed copy is decoded once with pydicom).

    .venv/bin/python benchmarks/load.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import pydicom
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pe_models import io

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "midrc_ricord_1a_chest_24slices"
DATA = ROOT / "benchmarks" / "_data"
N_SLICES = 300


def _write_long_series(target: Path, *, decompress: bool) -> Path:
    """Cycle the real slices to N_SLICES positions 1.25 mm apart; skip when present."""
    if target.is_dir() and len(list(target.iterdir())) == N_SLICES:
        return target
    target.mkdir(parents=True, exist_ok=True)
    sources = [pydicom.dcmread(p) for p in sorted(REAL.iterdir())]
    if decompress:
        for ds in sources:
            ds.decompress()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    series_uid = generate_uid()
    for index in range(N_SLICES):
        ds = sources[index % len(sources)]
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = index + 1
        x, y, _ = ds.ImagePositionPatient
        ds.ImagePositionPatient = [x, y, -200.0 + 1.25 * index]
        ds.SliceLocation = -200.0 + 1.25 * index
        ds.save_as(target / f"{N_SLICES - index:04d}.dcm")  # names in reverse z order
    return target


def _ours(folder: Path) -> tuple[float, float]:
    first: list[float] = []
    start = time.perf_counter()
    io.load(folder, progress=lambda _: first.append(time.perf_counter()) if not first else None)
    return time.perf_counter() - start, first[0] - start


def _ours_after_scan(folder: Path) -> tuple[float, float]:
    """(scan time, time to the first slice once the scan is done): the viewer's flow."""
    start = time.perf_counter()
    (series,) = io.scan(folder)
    scanned = time.perf_counter()
    first: list[float] = []
    io.load_series(
        series, progress=lambda _: first.append(time.perf_counter()) if not first else None
    )
    return scanned - start, first[0] - scanned


def _simpleitk(folder: Path) -> float:
    start = time.perf_counter()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    sitk.GetArrayFromImage(reader.Execute())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"real series not found at {REAL}")
    cases = {
        "real 24 slices, JPEG lossless": REAL,
        f"{N_SLICES} slices, uncompressed": _write_long_series(
            DATA / "uncompressed300", decompress=True
        ),
        f"{N_SLICES} slices, JPEG lossless": _write_long_series(
            DATA / "jpeg_lossless300", decompress=False
        ),
    }
    print(
        f"{os.cpu_count()} CPU cores, SimpleITK {sitk.Version.VersionString()}, "
        f"median of {args.repeats}"
    )
    print(
        f"{'series':34} {'ours s':>7} {'sitk s':>7} {'ratio':>6} {'first s':>8} "
        f"{'scan s':>7} {'first after scan s':>19}"
    )
    for name, folder in cases.items():
        _ours(folder), _simpleitk(folder)  # warm the file cache and imports
        ours, first, theirs, scans, after_scan = [], [], [], [], []
        for _ in range(args.repeats):
            total, first_slice = _ours(folder)
            ours.append(total)
            first.append(first_slice)
            theirs.append(_simpleitk(folder))
            scan_s, first_after_scan = _ours_after_scan(folder)
            scans.append(scan_s)
            after_scan.append(first_after_scan)
        ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
        print(
            f"{name:34} {ours_s:7.3f} {theirs_s:7.3f} {ours_s / theirs_s:6.2f} "
            f"{statistics.median(first):8.3f} {statistics.median(scans):7.3f} "
            f"{statistics.median(after_scan):19.3f}"
        )


if __name__ == "__main__":
    main()
