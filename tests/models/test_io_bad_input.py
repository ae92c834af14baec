"""Bad input gets one of our exceptions naming the file and the problem, never a hang."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate

from pe_models import io
from tests.dicom_factory import ct_dataset, ramp_volume, write_series


def _one_image(folder: Path, name: str = "one.dcm", **kwargs: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ds = ct_dataset(
        ramp_volume((1, 64, 64))[0], (0, 0, 0), series_uid="1.2.7", study_uid="1.2", **kwargs
    )
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_folder_without_dicom(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "scan.jpg").write_bytes(b"\xff\xd8\xff\xe0 jpeg-ish")
    with pytest.raises(io.NoDicomFoundError) as caught:
        io.load(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert "no DICOM image found among 2" in str(caught.value)


def test_missing_path() -> None:
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        io.load("/nonexistent/study")


def test_single_non_dicom_file(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7")
    with pytest.raises(io.UnsupportedFileError, match=r"report\.pdf: is neither DICOM"):
        io.load(path)


@pytest.mark.parametrize("keep_fraction", [0.5, 0.99])
def test_truncated_file(tmp_path: Path, keep_fraction: float) -> None:
    path = _one_image(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises((io.CorruptFileError, io.NoPixelDataError)) as caught:
        io.load(path)
    assert caught.value.path == path
    assert "pixel data" in caught.value.problem


def test_truncated_header(tmp_path: Path) -> None:
    path = _one_image(tmp_path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(io.StudyReadError) as caught:
        io.load(path)
    assert caught.value.path == path


def test_file_without_pixel_data(tmp_path: Path) -> None:
    path = _one_image(tmp_path)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(
        io.NoPixelDataError, match=r"one\.dcm: (has an image header but no pixel|is DICOM)"
    ):
        io.load(path)


def test_non_ct_series(tmp_path: Path) -> None:
    path = _one_image(tmp_path, modality="MR")
    with pytest.raises(io.NotCTError, match=r"one\.dcm: modality MR is not CT"):
        io.load(tmp_path)
    assert io.scan(tmp_path)[0].problem == "modality MR is not CT"
    assert path.exists()


def test_unsupported_transfer_syntax(tmp_path: Path) -> None:
    path = _one_image(tmp_path)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder exists
    ds.PixelData = encapsulate([ds.PixelData])
    ds.save_as(path)
    with pytest.raises(io.UnsupportedTransferSyntaxError, match=r"one\.dcm: transfer syntax MPEG2"):
        io.load(path)


def test_unknown_series_uid(tmp_path: Path) -> None:
    write_series(tmp_path, ramp_volume((2, 8, 8)))
    with pytest.raises(io.StudyReadError, match=r"has no series 9\.9\.9"):
        io.load(tmp_path, "9.9.9")


def test_damaged_file_beside_good_series_is_skipped(tmp_path: Path) -> None:
    hu = ramp_volume((3, 8, 8))
    write_series(tmp_path, hu)
    (tmp_path / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10")
    volume = io.load(tmp_path)
    assert volume.shape == (3, 8, 8)
