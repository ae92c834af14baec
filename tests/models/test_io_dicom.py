"""DICOM series discovery and loading on synthetic series with known answers."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from pe_models import io
from pe_models.io import LoadProgress
from pe_models.io.decode import _decode_with_gdcm, _decode_with_pydicom
from pe_models.io.dicom_header import read_header, read_header_fast
from tests.dicom_factory import CORONAL, SAGITTAL, ct_dataset, ramp_volume, write_series


def test_slices_are_ordered_by_position_not_by_name_or_instance_number(tmp_path: Path) -> None:
    hu = ramp_volume()
    paths = write_series(tmp_path, hu)
    volume = io.load(tmp_path)
    np.testing.assert_array_equal(volume.hu, hu)
    assert volume.hu.dtype == np.int16
    assert volume.spacing == pytest.approx((2.5, 0.7, 0.7))  # from positions, not thickness 3
    assert volume.origin == pytest.approx((-100.0, -120.0, -50.0))
    np.testing.assert_allclose(volume.direction, np.eye(3))
    expected_uids = tuple(pydicom.dcmread(p).SOPInstanceUID for p in paths)
    assert volume.slice_uids == expected_uids
    np.testing.assert_allclose(volume.slice_positions_mm(), [-50 + 2.5 * z for z in range(6)])
    assert volume.meta.warnings == ()


def test_superior_first_positions_are_reordered_inferior_to_superior(tmp_path: Path) -> None:
    hu = ramp_volume()
    write_series(tmp_path, hu[::-1], z_positions=[10.0 - 2.0 * z for z in range(6)])
    volume = io.load(tmp_path)
    np.testing.assert_array_equal(volume.hu, hu)
    assert volume.origin[2] == pytest.approx(0.0)


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path) -> None:
    hu = (ramp_volume() // 2) * 2  # representable with slope 2
    write_series(tmp_path, hu, slope=2.0, intercept=-1000.0)
    np.testing.assert_array_equal(io.load(tmp_path).hu, hu)


def test_padding_becomes_air_and_is_recorded(tmp_path: Path) -> None:
    hu = ramp_volume()
    hu[:, :4, :] = -2000 - 1024  # stored -2000, declared as PixelPaddingValue
    hu[:, -3:, :] = -3024
    write_series(tmp_path, hu, padding_value=-2000)
    volume = io.load(tmp_path)
    assert (volume.hu[:, :4, :] == -1024).all()
    assert (volume.hu[:, -3:, :] == -1024).all()
    np.testing.assert_array_equal(volume.hu[:, 4:-3, :], hu[:, 4:-3, :])
    assert volume.meta.padding_values_hu == (-3024,)
    assert volume.meta.padded_voxels == 7 * 40 * 6


def test_padding_value_declared_above_minus_1500_is_still_mapped(tmp_path: Path) -> None:
    hu = ramp_volume()
    hu[:, :2, :] = -1100  # stored -76: a vendor padding that is not an impossible HU
    write_series(tmp_path, hu, padding_value=-76)
    volume = io.load(tmp_path)
    assert (volume.hu[:, :2, :] == -1024).all()


def test_irregular_spacing_missing_slices_and_tilt_are_warned(tmp_path: Path) -> None:
    hu = ramp_volume((8, 16, 16))
    z = [0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.3]
    write_series(tmp_path / "gap", hu, z_positions=z)
    warnings = " | ".join(io.load(tmp_path / "gap").meta.warnings)
    assert "about 2 slice(s) missing between 3.00 and 6.00 mm" in warnings
    assert "irregular slice spacing" in warnings

    tilted = tmp_path / "tilt"
    tilted.mkdir()
    for k, hu_slice in enumerate(hu):
        ds = ct_dataset(hu_slice, (0.0, 0.3 * k, 1.0 * k), series_uid="1.2.3", study_uid="1.2")
        ds.save_as(tilted / f"{k}.dcm", enforce_file_format=True)
    volume = io.load(tilted)
    assert any("gantry tilt of 16.7°" in w for w in volume.meta.warnings)


def test_duplicate_positions_name_both_files(tmp_path: Path) -> None:
    hu = ramp_volume((3, 8, 8))
    paths = write_series(tmp_path, hu, z_positions=[0.0, 1.0, 1.0], shuffle_names=False)
    with pytest.raises(io.DuplicateSliceError) as caught:
        io.load(tmp_path)
    message = str(caught.value)
    assert paths[2].name in message
    assert paths[1].name in message
    assert "same position" in message


def test_the_same_image_copied_twice_is_read_once(tmp_path: Path) -> None:
    hu = ramp_volume((3, 8, 8))
    paths = write_series(tmp_path / "a", hu)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    volume = io.load(tmp_path)
    assert volume.shape == (3, 8, 8)
    assert len(paths) == 3


def test_mixed_series_must_be_chosen_and_load_by_uid(tmp_path: Path) -> None:
    hu_a, hu_b = ramp_volume((3, 8, 8), seed=1), ramp_volume((4, 8, 8), seed=2)
    write_series(tmp_path / "a", hu_a, series_uid="1.2.826.0.1.1", description="THIN")
    write_series(tmp_path / "b", hu_b, series_uid="1.2.826.0.1.2", description="THICK")
    found = io.scan(tmp_path)
    assert [(s.series_uid, s.n_images, s.description) for s in found] == [
        ("1.2.826.0.1.2", 4, "THICK"),
        ("1.2.826.0.1.1", 3, "THIN"),
    ] or {s.series_uid for s in found} == {"1.2.826.0.1.1", "1.2.826.0.1.2"}
    with pytest.raises(io.MultipleSeriesError) as caught:
        io.load(tmp_path)
    assert "1.2.826.0.1.1" in str(caught.value)
    assert "THICK" in str(caught.value)
    assert len(caught.value.series) == 2
    np.testing.assert_array_equal(io.load(tmp_path, "1.2.826.0.1.2").hu, hu_b)


def test_the_one_ct_series_is_taken_when_an_mr_series_lies_beside_it(tmp_path: Path) -> None:
    hu = ramp_volume((3, 8, 8))
    write_series(tmp_path / "ct", hu)
    write_series(tmp_path / "mr", ramp_volume((2, 8, 8)), modality="MR")
    assert len(io.scan(tmp_path)) == 2
    np.testing.assert_array_equal(io.load(tmp_path).hu, hu)


def test_images_of_different_size_in_one_series_are_refused(tmp_path: Path) -> None:
    write_series(tmp_path, ramp_volume((3, 8, 8)), series_uid="1.2.3.4", study_uid="1.2")
    odd = ct_dataset(ramp_volume((1, 8, 10))[0], (0, 0, 99), series_uid="1.2.3.4", study_uid="1.2")
    odd.save_as(tmp_path / "odd.dcm", enforce_file_format=True)
    with pytest.raises(io.InconsistentSeriesError, match=r"odd\.dcm: image is 8×10"):
        io.load(tmp_path)


def test_localizer_in_the_series_is_left_out(tmp_path: Path) -> None:
    hu = ramp_volume((3, 8, 8))
    write_series(tmp_path, hu, series_uid="1.2.3.5", study_uid="1.2")
    scout = ct_dataset(
        ramp_volume((1, 8, 8))[0],
        (0, 0, 0),
        series_uid="1.2.3.5",
        study_uid="1.2",
        orientation=CORONAL,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
    )
    scout.save_as(tmp_path / "scout.dcm", enforce_file_format=True)
    volume = io.load(tmp_path)
    np.testing.assert_array_equal(volume.hu, hu)
    assert "1 localizer image(s) left out" in volume.meta.warnings


@pytest.mark.parametrize(
    ("orientation", "name", "normal"),
    [(CORONAL, "coronal", (0, 1, 0)), (SAGITTAL, "sagittal", (1, 0, 0))],
)
def test_single_coronal_and_sagittal_slices_load_with_their_plane(
    tmp_path: Path, orientation: tuple[float, ...], name: str, normal: tuple[int, ...]
) -> None:
    hu_slice = ramp_volume((1, 12, 20))[0]
    ds = ct_dataset(
        hu_slice, (5, 6, 7), series_uid="1.2.9", study_uid="1.2", orientation=orientation
    )
    ds.save_as(tmp_path / "one.dcm", enforce_file_format=True)
    volume = io.load(tmp_path / "one.dcm")
    assert volume.meta.orientation == name
    np.testing.assert_allclose(np.abs(volume.direction[:, 2]), normal)
    np.testing.assert_array_equal(volume.hu[0], hu_slice)
    assert volume.spacing[0] == pytest.approx(3.0)  # single image: its thickness


def test_progress_streams_slices_before_the_last_is_decoded(tmp_path: Path) -> None:
    hu = ramp_volume((12, 16, 16))
    write_series(tmp_path, hu)
    events: list[LoadProgress] = []

    def on_progress(event: LoadProgress) -> None:
        events.append(event)
        np.testing.assert_array_equal(event.hu_slice, hu[event.index])  # valid when reported

    volume = io.load(tmp_path, progress=on_progress)
    assert [e.done for e in events] == list(range(1, 13))
    assert all(e.total == 12 for e in events)
    assert sorted(e.index for e in events) == list(range(12))
    np.testing.assert_array_equal(volume.hu, hu)


def test_cancel_stops_the_load(tmp_path: Path) -> None:
    write_series(tmp_path, ramp_volume((40, 64, 64)))
    seen: list[int] = []
    with pytest.raises(io.LoadCancelled):
        io.load(
            tmp_path, progress=lambda e: seen.append(e.done), should_cancel=lambda: len(seen) >= 3
        )
    assert 3 <= len(seen) < 40


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_series_match_uncompressed(tmp_path: Path, syntax: str) -> None:
    hu = ramp_volume((3, 64, 64))  # OpenJPEG needs at least 64 px for its default levels
    paths = write_series(tmp_path, hu)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)
    assert io.scan(tmp_path)[0].transfer_syntaxes == (syntax,)
    np.testing.assert_array_equal(io.load(tmp_path).hu, hu)
    header = read_header(paths[0])
    assert header is not None
    np.testing.assert_array_equal(_decode_with_pydicom(header), _decode_with_gdcm(header))


def test_dicomdir_lists_and_loads_its_series(tmp_path: Path) -> None:
    from pydicom.fileset import FileSet

    hu = ramp_volume((4, 8, 8))
    paths = write_series(tmp_path / "src", hu)
    file_set = FileSet()
    for path in paths:
        ds = pydicom.dcmread(path)
        file_set.add(ds)
    file_set.write(tmp_path / "media")
    found = io.scan(tmp_path / "media" / "DICOMDIR")
    assert len(found) == 1
    assert found[0].n_images == 4
    np.testing.assert_array_equal(io.load(tmp_path / "media" / "DICOMDIR").hu, hu)


def test_scan_reports_header_facts_without_decoding(tmp_path: Path) -> None:
    write_series(tmp_path / "cta", ramp_volume((3, 8, 8)), description="CTA CHEST PE")
    write_series(
        tmp_path / "plain",
        ramp_volume((2, 8, 8)),
        description="CHEST W/O CONTRAST",
        contrast_agent=None,
    )
    by_description = {s.description: s for s in io.scan(tmp_path)}
    cta, plain = by_description["CTA CHEST PE"], by_description["CHEST W/O CONTRAST"]
    assert (cta.n_images, cta.orientation, cta.rows, cta.columns) == (3, "axial", 8, 8)
    assert cta.contrast_agent == "OMNIPAQUE"
    assert cta.contrast_hint == "contrast"
    assert plain.contrast_agent is None
    assert plain.contrast_hint == "non-contrast"
    assert cta.problem is None


@pytest.mark.parametrize(
    ("agent", "description", "hint"),
    [
        ("APPLIED", "", "contrast"),
        ("NONE", "CT CHEST", "unknown"),
        (None, "CTPA", "contrast"),
        (None, "ROUTINE CHEST NON-CON", "non-contrast"),
        (None, "Thorax C-", "non-contrast"),
        (None, "Thorax C+ arterial", "contrast"),
        (None, "Body 3.0", "unknown"),
    ],
)
def test_contrast_hint(agent: str | None, description: str, hint: str) -> None:
    assert io.series.contrast_hint(agent, description) == hint


@pytest.mark.parametrize("signed", [False, True])
def test_12_bit_images_ignore_bits_above_bits_stored(tmp_path: Path, signed: bool) -> None:
    rng = np.random.default_rng(3)
    low, high = (-400, 2047) if signed else (0, 4095)  # HU stay above the padding range
    stored = rng.integers(low, high + 1, size=(16, 16)).astype(np.int16 if signed else np.uint16)
    ds = ct_dataset(np.zeros((16, 16)), (0, 0, 0), series_uid="1.2.8", study_uid="1.2")
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, int(signed)
    ds.RescaleIntercept = 0 if signed else -1024
    overlay = np.zeros((16, 16), np.uint16)
    overlay[::3] = 0x3000  # an overlay in the unused high bits
    raw = (stored.view(np.uint16) & np.uint16(0x0FFF)) | overlay
    ds.PixelData = raw.astype("<u2").tobytes()
    ds.save_as(tmp_path / "twelve.dcm", enforce_file_format=True)
    volume = io.load(tmp_path / "twelve.dcm")
    expected = stored.astype(np.int32) + int(ds.RescaleIntercept)
    np.testing.assert_array_equal(volume.hu[0], expected)
    reference = pydicom.dcmread(tmp_path / "twelve.dcm").pixel_array.astype(np.int32)
    np.testing.assert_array_equal(volume.hu[0], reference + int(ds.RescaleIntercept))


def test_gdcm_and_pydicom_header_readers_agree(tmp_path: Path) -> None:
    paths = write_series(tmp_path, ramp_volume((2, 8, 8)), padding_value=-2000)
    for path in paths:
        thorough, fast = read_header(path), read_header_fast(path)
        assert thorough is not None
        assert fast is not None
        assert thorough.transfer_syntax_uid == "1.2.840.10008.1.2.1"
        assert replace(fast, transfer_syntax_uid=thorough.transfer_syntax_uid) == thorough
