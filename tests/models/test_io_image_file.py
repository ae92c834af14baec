"""NIfTI / NRRD / MHA volumes read through SimpleITK, and atomic writes back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from pe_models import io
from pe_models.volume import Volume
from tests.dicom_factory import ramp_volume, write_series


@pytest.fixture
def dicom_volume(tmp_path: Path) -> Volume:
    write_series(tmp_path / "dicom", ramp_volume((5, 12, 14)))
    return io.load(tmp_path / "dicom")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_write_then_load_keeps_values_and_geometry(
    tmp_path: Path, dicom_volume: Volume, suffix: str
) -> None:
    path = io.write_image(dicom_volume.hu, dicom_volume, tmp_path / f"ct{suffix}")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    assert io.scan(path)[0].n_images == 5
    loaded = io.load(path)
    np.testing.assert_array_equal(loaded.hu, dicom_volume.hu)
    np.testing.assert_allclose(loaded.spacing, dicom_volume.spacing, atol=1e-5)
    np.testing.assert_allclose(loaded.origin, dicom_volume.origin, atol=1e-4)
    np.testing.assert_allclose(loaded.direction, dicom_volume.direction, atol=1e-6)
    assert loaded.slice_uids is None


def test_superior_to_inferior_file_is_flipped_to_inferior_first(
    tmp_path: Path, dicom_volume: Volume
) -> None:
    image = sitk.GetImageFromArray(dicom_volume.hu[::-1].copy())
    image.SetSpacing(dicom_volume.spacing[::-1])
    top = dicom_volume.index_to_lps(dicom_volume.shape[0] - 1, 0, 0)
    image.SetOrigin(tuple(top))
    image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    sitk.WriteImage(image, str(tmp_path / "flipped.nii.gz"))
    loaded = io.load(tmp_path / "flipped.nii.gz")
    np.testing.assert_array_equal(loaded.hu, dicom_volume.hu)
    np.testing.assert_allclose(loaded.origin, dicom_volume.origin, atol=1e-4)
    np.testing.assert_allclose(loaded.direction, np.eye(3), atol=1e-6)


def test_float_image_is_rounded_and_padding_mapped(tmp_path: Path) -> None:
    values = np.full((2, 4, 4), 10.6, dtype=np.float32)
    values[0, 0, 0] = -3024.0
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / "f.mha"))
    loaded = io.load(tmp_path / "f.mha")
    assert loaded.hu[1, 1, 1] == 11
    assert loaded.hu[0, 0, 0] == -1024
    assert loaded.meta.padding_values_hu == (-3024,)


def test_vector_and_4d_images_are_refused(tmp_path: Path) -> None:
    rgb = sitk.GetImageFromArray(np.zeros((4, 4, 4, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.nrrd"))
    with pytest.raises(io.UnsupportedFileError, match=r"rgb\.nrrd: has 3 channels"):
        io.load(tmp_path / "rgb.nrrd")
    sitk.WriteImage(sitk.Image([3, 3, 3, 2], sitk.sitkInt16), str(tmp_path / "t.nii.gz"))
    with pytest.raises(io.UnsupportedFileError, match=r"t\.nii\.gz: is 4-D"):
        io.load(tmp_path / "t.nii.gz")


def test_damaged_image_file(tmp_path: Path) -> None:
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(io.CorruptFileError, match=r"bad\.nii\.gz: cannot be read"):
        io.load(tmp_path / "bad.nii.gz")


def test_write_refuses_a_mismatched_array(dicom_volume: Volume, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="differs from volume"):
        io.write_image(np.zeros((1, 2, 3), np.uint8), dicom_volume, tmp_path / "m.nii.gz")
    assert list(tmp_path.glob("*.nii.gz")) == []
