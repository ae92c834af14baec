"""Window presets, window stacks and the lung crop on constructed slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pe_models.data.phantoms import phantom_records
from pe_models.preprocess import (
    CropBox,
    WindowStack,
    apply_window,
    dynamic_lung_crop,
    fixed_center_crop,
    get_preset,
    study_lung_crop,
    thorax_crop,
    window_presets,
)
from pe_models.preprocess.model_input import channel_names, context_slices, crop_box, model_input
from pe_models.volume import Volume


def test_fixed_presets_have_the_design_values() -> None:
    values = {name: (p.level, p.width) for name, p in window_presets().items()}
    assert values["vascular"] == (100, 700)
    assert values["lung"] == (-600, 1500)
    assert values["mediastinal"] == (40, 400)
    assert (get_preset("seed2_vessel").low, get_preset("seed2_vessel").high) == (0, 650)
    assert (get_preset("seed2_wide").low, get_preset("seed2_wide").high) == (-1000, 1600)
    assert [window_presets()[n].key for n in ("vascular", "lung", "mediastinal")] == ["1", "2", "3"]


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="valid: vascular, lung, mediastinal"):
        get_preset("bone")


def test_apply_window_maps_low_to_zero_and_high_to_one() -> None:
    hu = np.array([-1000, -250, 100, 450, 3000], dtype=np.int16)
    np.testing.assert_allclose(apply_window(hu, "vascular"), [0, 0, 0.5, 1, 1])
    assert apply_window(hu, "vascular").dtype == np.float32


def test_dwl_twl_and_rgb_stacks_have_one_channel_per_window() -> None:
    hu = np.full((2, 8, 8), 100, dtype=np.int16)  # vascular centre, above lung / mediastinal?
    dwl = WindowStack("dwl")(hu)
    assert dwl.shape == (2, 2, 8, 8)
    np.testing.assert_allclose(dwl[:, 0], 0.5)
    np.testing.assert_allclose(dwl[:, 1], apply_window(hu, "lung"))
    twl = WindowStack("twl", normalisation="zero_center")(hu[0])
    assert twl.shape == (3, 8, 8)
    np.testing.assert_allclose(twl[0], 0.0)  # vascular centre is the zero of [-1, 1]
    assert WindowStack("rgb").channel_windows == ("lung", "vascular", "mediastinal")
    assert WindowStack(("seed2_vessel",)).channel_windows == ("seed2_vessel",)


def test_window_stack_fails_early_on_bad_names() -> None:
    with pytest.raises(KeyError, match="unknown window stack"):
        WindowStack("quad")
    with pytest.raises(ValueError, match="unknown normalisation"):
        WindowStack("dwl", normalisation="imagenet")


def _chest(shape: tuple[int, int] = (256, 256)) -> np.ndarray:
    """Air around an elliptic body (40 HU) with two lungs (-850 HU) and a table below."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    hu = np.full(shape, -1000, dtype=np.int16)
    hu[((y - 120) / 80) ** 2 + ((x - 128) / 110) ** 2 < 1] = 40
    hu[((y - 115) / 50) ** 2 + ((x - 80) / 35) ** 2 < 1] = -850  # right lung (image left)
    hu[((y - 115) / 50) ** 2 + ((x - 176) / 35) ** 2 < 1] = -850
    hu[215:222, 20:236] = 300  # table, separated from the body by air
    return hu


def test_dynamic_crop_boxes_both_lungs_with_the_margin() -> None:
    box = dynamic_lung_crop(_chest(), (1.0, 1.0), margin_mm=5)
    assert box.method == "dynamic"
    assert (box.y0, box.y1) == pytest.approx((60, 171), abs=2)
    assert (box.x0, box.x1) == pytest.approx((40, 217), abs=2)
    assert box.y1 < 215  # the table stays out


def test_crop_falls_back_to_the_fixed_central_crop_without_lungs() -> None:
    hu = _chest()
    hu[hu == -850] = 40
    box = dynamic_lung_crop(hu, (1.0, 1.0))
    assert box == fixed_center_crop((256, 256))
    assert box.method == "fixed"
    assert fixed_center_crop((512, 512)) == CropBox(166, 346, 106, 406, "fixed")


def test_thorax_crop_keeps_dense_dependent_lung_that_the_lung_crop_cuts_off() -> None:
    hu = _chest()
    y = np.mgrid[:256, :256][0]
    hu[(hu == -850) & (y > 140)] = 30  # both posterior (dependent) lungs consolidated
    hu[150:154, 180:184] = 50  # a clot lying in it
    lungs = dynamic_lung_crop(hu, (1.0, 1.0), margin_mm=5)
    thorax = thorax_crop(hu, (1.0, 1.0), chest_wall_mm=10, margin_mm=5)
    assert lungs.y1 < 150  # the clot is outside seed 2's crop
    assert thorax.method == "thorax"
    assert thorax.y0 <= 150 < 154 <= thorax.y1
    assert (thorax.y1, thorax.x0, thorax.x1) == pytest.approx((190, 28, 228), abs=3)  # body - wall
    assert thorax.y1 < 215  # the table stays out
    assert crop_box(hu, (1.0, 1.0), "thorax") == thorax_crop(hu, (1.0, 1.0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5004, 5023])  # effusions on both sides; a consolidation
def test_thorax_crop_holds_every_clot_of_a_phantom_with_dense_lung(seed: int) -> None:
    # Generator version 1 put many clots in small peripheral arteries of consolidated lung,
    # which the dynamic lung crop cut off on 50+ slices; version 2's FUMPE-sized clots sit in
    # larger arteries, so the synthetic chest above is what shows the lung crop's loss now.
    study = phantom_records([seed], "mix")[0].load()
    spacing = study.volume.spacing[1:]
    pe_slices = np.flatnonzero(study.pe_mask.any(axis=(1, 2)))
    assert len(pe_slices) > 20
    for z in pe_slices:
        crop = crop_box(study.volume.hu[z], spacing, "thorax")
        assert crop.apply(study.pe_mask[z]).sum() == study.pe_mask[z].sum(), z


def test_study_crop_is_the_union_of_slice_crops() -> None:
    upper, lower = _chest(), _chest()
    lower[:, 128:] = np.where(lower[:, 128:] == -850, 40, lower[:, 128:])  # one lung only
    box = study_lung_crop(np.stack([upper, lower]), (1.0, 1.0), margin_mm=5)
    assert box == dynamic_lung_crop(upper, (1.0, 1.0), margin_mm=5)


def test_boxes_and_masks_map_back_through_crop_and_resize() -> None:
    crop = CropBox(y0=100, y1=300, x0=50, x1=450)  # 200 × 400 crop, model input 100 × 100
    boxes = np.array([[10.0, 20.0, 30.0, 40.0, 0.9]])
    mapped = crop.boxes_to_original(boxes, (100, 100))
    np.testing.assert_allclose(mapped, [[90.0, 140.0, 170.0, 180.0, 0.9]])

    model_mask = np.zeros((100, 100), np.uint8)
    model_mask[20:40, 10:30] = 1  # the same region as the box
    full = crop.mask_to_original(model_mask, (512, 512))
    rows, columns = np.nonzero(full)
    assert (rows.min(), rows.max() + 1, columns.min(), columns.max() + 1) == (140, 180, 90, 170)
    assert full.dtype == np.uint8
    assert full.shape == (512, 512)


def test_a_2_5d_input_adds_the_neighbour_slices_in_the_vascular_window() -> None:
    hu = np.stack([np.full((32, 32), 10 * z, np.int16) for z in range(8)])  # HU = 10 z
    windows = WindowStack(("lung", "vascular"))
    crops = [CropBox(0, 32, 0, 32, "none")] * 3
    volume = Volume(hu, (1.25, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    images = model_input(volume, [0, 4, 7], crops, windows, 32, context_mm=2.5)
    assert images.shape == (3, 4, 32, 32)

    def vascular(z: int) -> float:
        return float(apply_window(np.array([10.0 * z]), "vascular")[0])

    # 2.5 mm at 1.25 mm per slice is 2 slices; the stack's ends stand in beyond it.
    expected = {0: (0, 2), 4: (2, 6), 7: (5, 7)}
    for image, (before, after) in zip(images, expected.values(), strict=True):
        assert image[2].mean().item() == pytest.approx(vascular(before), abs=1e-5)
        assert image[3].mean().item() == pytest.approx(vascular(after), abs=1e-5)
    plain = model_input(volume, [4], crops[:1], windows, 32)
    assert torch.equal(plain[0], images[1, :2])  # the slice's own channels are unchanged
    assert channel_names(windows, 2.5) == (
        "lung",
        "vascular",
        "vascular -2.5 mm",
        "vascular +2.5 mm",
    )


def test_thick_slices_take_the_next_slice_as_context() -> None:
    assert context_slices(3, 10, z_spacing_mm=5.0, context_mm=2.5) == (2, 4)
