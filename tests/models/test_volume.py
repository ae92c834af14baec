from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from pe_models.io import write_image
from pe_models.io.image_file import to_sitk
from pe_models.volume import Volume


def _volume(direction: np.ndarray | None = None) -> Volume:
    return Volume(
        hu=np.zeros((4, 5, 6), np.int16),
        spacing=(2.5, 0.8, 0.7),
        origin=(-10.0, 20.0, -30.0),
        direction=np.eye(3) if direction is None else direction,
    )


@pytest.mark.parametrize(
    "direction",
    [np.eye(3), np.array([[0.0, 0, 1], [1, 0, 0], [0, -1, 0]])],
)
def test_index_to_lps_agrees_with_simpleitk(direction: np.ndarray) -> None:
    volume = _volume(direction)
    image = to_sitk(volume.hu, volume)
    for z, y, x in [(0, 0, 0), (3, 4, 5), (1.5, 2, 0.25)]:
        expected = image.TransformContinuousIndexToPhysicalPoint((x, y, z))
        np.testing.assert_allclose(volume.index_to_lps(z, y, x), expected)


def test_slice_positions_follow_the_slice_axis() -> None:
    np.testing.assert_allclose(_volume().slice_positions_mm(), [-30, -27.5, -25, -22.5])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hu": np.zeros((4, 5, 6), np.float32)}, "int16"),
        ({"hu": np.zeros((5, 6), np.int16)}, "int16"),
        ({"direction": np.eye(2)}, "3 × 3"),
        ({"slice_uids": ("1.2",)}, "1 slice UIDs for 4 slices"),
    ],
)
def test_invalid_volumes_are_refused(kwargs: dict, message: str) -> None:
    fields = {
        "hu": np.zeros((4, 5, 6), np.int16),
        "spacing": (1.0, 1.0, 1.0),
        "origin": (0.0, 0.0, 0.0),
        "direction": np.eye(3),
    }
    with pytest.raises(ValueError, match=message):
        Volume(**{**fields, **kwargs})


def test_written_mask_has_the_volume_geometry(tmp_path) -> None:
    volume = _volume(np.array([[0.0, 0, 1], [1, 0, 0], [0, -1, 0]]))
    mask = np.zeros(volume.shape, np.uint8)
    mask[1, 2, 3] = 1
    path = write_image(mask, volume, tmp_path / "mask.nii.gz")
    image = sitk.ReadImage(str(path))
    assert image.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_allclose(image.GetSpacing(), (0.7, 0.8, 2.5))
    np.testing.assert_allclose(image.GetOrigin(), volume.origin)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), mask)
