"""Loading and cropping real scanner CT from ../shared/data/real (facts from its README)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage

from pe_models import io
from pe_models.io.decode import _decode_with_gdcm, _decode_with_pydicom
from pe_models.io.dicom_header import read_header, read_header_fast
from pe_models.preprocess import dynamic_lung_crop
from pe_models.study_checks import assess, contrast_check
from pe_models.volume import Volume
from tests.dicom_factory import CORONAL, SAGITTAL

pytestmark = pytest.mark.real_data

MIDRC = "midrc_ricord_1a_chest_24slices"
SIEMENS = "siemens_j2k_20slices"


@pytest.fixture(scope="module")
def midrc(real_data: Path) -> Volume:
    return io.load(real_data / MIDRC)


def _simpleitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_midrc_jpeg_lossless_series_geometry(real_data: Path) -> None:
    volume = io.load(real_data / MIDRC)
    assert volume.shape == (24, 512, 512)
    assert volume.spacing == pytest.approx((1.25, 0.703125, 0.703125))
    z = volume.slice_positions_mm()
    assert z[0] == pytest.approx(119.5)
    assert z[-1] == pytest.approx(148.25)
    assert np.all(np.diff(z) > 0)  # inferior → superior
    highest = pydicom.dcmread(real_data / MIDRC / "1-113.dcm", stop_before_pixels=True)
    assert volume.slice_uids is not None
    assert volume.slice_uids[-1] == highest.SOPInstanceUID
    assert volume.meta.extra["transfer_syntax"] == "1.2.840.10008.1.2.4.70"
    assert volume.meta.warnings == ()
    assert volume.meta.contrast_hint == "non-contrast"


def test_midrc_hounsfield_units(real_data: Path) -> None:
    volume = io.load(real_data / MIDRC)
    assert volume.meta.padding_values_hu == (-3024,)
    assert volume.meta.padded_voxels > 0
    assert volume.hu.min() >= -1024
    air_above_patient = np.median(volume.hu[:, 60:80, 200:300])
    assert -1030 <= air_above_patient <= -970
    counts, edges = np.histogram(volume.hu, bins=np.arange(-200, 301, 10))
    assert 0 <= edges[np.argmax(counts)] <= 80  # the soft-tissue peak


@pytest.mark.parametrize("folder", [MIDRC, SIEMENS])
def test_same_voxels_and_geometry_as_simpleitk_series_reader(real_data: Path, folder: str) -> None:
    volume = io.load(real_data / folder)
    reference = _simpleitk_series(real_data / folder)
    expected = sitk.GetArrayFromImage(reference)
    expected[expected <= -1500] = -1024
    np.testing.assert_array_equal(volume.hu, expected)
    np.testing.assert_allclose(volume.spacing[::-1], reference.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(volume.origin, reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(volume.direction.ravel(), reference.GetDirection(), atol=1e-6)


def test_siemens_jpeg2000_series(real_data: Path) -> None:
    found = io.scan(real_data / SIEMENS)
    assert len(found) == 1
    assert found[0].transfer_syntaxes == ("1.2.840.10008.1.2.4.90",)
    assert found[0].contrast_agent == "APPLIED"
    assert found[0].contrast_hint == "contrast"
    volume = io.load_series(found[0])
    assert volume.shape == (20, 512, 512)
    assert volume.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    z = volume.slice_positions_mm()
    assert (z[0], z[-1]) == pytest.approx((-804.5, -766.5))


@pytest.mark.parametrize("folder", [MIDRC, SIEMENS])
def test_pylibjpeg_plugins_decode_the_same_pixels_as_gdcm(real_data: Path, folder: str) -> None:
    for path in sorted((real_data / folder).iterdir())[:3]:
        header = read_header(path)
        assert header is not None
        np.testing.assert_array_equal(_decode_with_pydicom(header), _decode_with_gdcm(header))


def test_gdcm_and_pydicom_header_readers_agree_on_real_files(real_data: Path) -> None:
    paths = [
        *sorted((real_data / MIDRC).iterdir())[:2],
        *sorted((real_data / SIEMENS).iterdir())[:2],
    ]
    paths += sorted((real_data / "single_slices").glob("*/*.dcm"))
    for path in paths:
        thorough, fast = read_header(path), read_header_fast(path)
        assert thorough is not None, path
        assert fast is not None, path
        assert replace(fast, transfer_syntax_uid=thorough.transfer_syntax_uid) == thorough


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("dicompyler_example", (1, 512, 512)),
        ("lungmask_tests", (2, 512, 512)),  # no Modality tag: CT by its SOP class
        ("pydicom_CT_small", (1, 128, 128)),
    ],
)
def test_single_slices_load(real_data: Path, name: str, shape: tuple[int, int, int]) -> None:
    volume = io.load(real_data / "single_slices" / name)
    assert volume.shape == shape
    assert volume.meta.orientation == "axial"


def test_contrast_check_flags_the_non_contrast_covid_series(midrc: Volume) -> None:
    check = contrast_check(midrc)
    assert not check.adequate
    assert check.p90_hu < 150
    checks = assess(midrc)
    assert checks.lungs.adequate  # a chest series: the contrast verdict stands
    assert checks.reasons == ("no arterial contrast",)


def test_an_upper_abdomen_series_is_flagged_for_lung_coverage_not_contrast(
    real_data: Path,
) -> None:
    checks = assess(io.load(real_data / SIEMENS))  # contrast-enhanced; liver, stomach, spleen
    assert not checks.lungs.adequate
    assert checks.lungs.median_fraction < 0.05
    assert checks.reasons == ("little lung in the series",)
    assert "little lung" in checks.warnings[0]


def test_pydicom_ct_small_hu_range(real_data: Path) -> None:
    volume = io.load(real_data / "single_slices" / "pydicom_CT_small" / "CT_small.dcm")
    assert (volume.hu.min(), volume.hu.max()) == (-896, 1167)


@pytest.mark.parametrize(("orientation", "plane"), [(CORONAL, "coronal"), (SAGITTAL, "sagittal")])
def test_real_slice_relabelled_coronal_or_sagittal_is_handled(
    real_data: Path, tmp_path: Path, orientation: tuple[float, ...], plane: str
) -> None:
    ds = pydicom.dcmread(real_data / "single_slices" / "dicompyler_example" / "ct.0.dcm")
    ds.ImageOrientationPatient = list(orientation)
    ds.save_as(tmp_path / "slice.dcm")
    volume = io.load(tmp_path / "slice.dcm")
    assert volume.meta.orientation == plane
    assert io.scan(tmp_path)[0].orientation == plane
    np.testing.assert_array_equal(volume.hu[0], ds.pixel_array)  # intercept 0, slope 1


def _reference_lungs(hu: np.ndarray) -> np.ndarray:
    """Lungs by another route: 3-D air components not touching the in-plane border."""
    labels, _ = ndimage.label(hu < -500)
    border = np.unique(
        np.concatenate(
            [
                labels[:, 0].ravel(),
                labels[:, -1].ravel(),
                labels[:, :, 0].ravel(),
                labels[:, :, -1].ravel(),
            ]
        )
    )
    sizes = np.bincount(labels.ravel())
    sizes[border] = 0
    return np.isin(labels, np.flatnonzero(sizes > 0.05 * sizes.max()))


def _table_top(hu_slice: np.ndarray) -> int:
    """First row of the widest tissue object lying wholly below the patient."""
    labels, _ = ndimage.label(hu_slice > -300)
    body = labels == labels[256, 256]  # the mediastinum at hilum level
    body_bottom = np.flatnonzero(body.any(axis=1))[-1]
    below = [
        found
        for found in ndimage.find_objects(labels)
        if found[0].start > body_bottom and found[1].stop - found[1].start > 100
    ]
    return min(found[0].start for found in below)


def test_lung_crop_holds_both_lungs_and_leaves_out_table_and_arms(midrc: Volume) -> None:
    lungs = _reference_lungs(midrc.hu)
    for z, hu_slice in enumerate(midrc.hu):
        box = dynamic_lung_crop(hu_slice, midrc.spacing[1:])
        assert box.method == "dynamic"
        inside = box.apply(lungs[z]).sum()
        assert inside >= 0.99 * lungs[z].sum(), f"slice {z}: lung outside the crop"
        assert box.x0 < 256 < box.x1  # both sides of the midline
        table_top = _table_top(hu_slice)
        assert box.y1 <= table_top, f"slice {z}: crop reaches the table"
        labels, _ = ndimage.label(hu_slice > -300)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        others = np.flatnonzero(sizes > 500)
        others = others[others != np.argmax(sizes)]  # arm, table parts: all but the trunk
        assert len(others) >= 3
        assert not box.apply(np.isin(labels, others)).any(), f"slice {z}: arm or table in crop"
        assert box.x0 > 50, "left arm region in crop"
        assert box.x1 < 512 - 50, "right arm region in crop"
        assert box.shape[0] * box.shape[1] < 0.45 * 512 * 512
