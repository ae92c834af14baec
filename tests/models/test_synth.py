"""Synthetic CTPA phantoms: tissue values, exact and consistent labels, writers, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from pe_models import io
from pe_models.cli.synth import main as pe_synth
from pe_models.synth.anatomy import Tissue
from pe_models.synth.grid import Segment
from pe_models.synth.pathology import _artery_for_cross_section
from pe_models.synth.phantom import Phantom, generate_phantom
from pe_models.synth.writers import write_study


@pytest.fixture(scope="module")
def pe_phantom() -> Phantom:
    for seed in range(20):  # the first seed whose clots are big enough to see at test size
        phantom = generate_phantom(seed, "pe", "test")
        if phantom.pe_mask.sum() >= 20:
            return phantom
    raise AssertionError("no visible clot in 20 seeds")


def _median_hu(phantom: Phantom, tissue: Tissue) -> float:
    inside = ndimage.binary_erosion(phantom.tissue == tissue)  # away from partial volume
    assert inside.any(), tissue
    return float(np.median(phantom.volume.hu[inside]))


@pytest.mark.parametrize(
    ("tissue", "low", "high"),
    [
        (Tissue.LUNG, -920, -780),
        (Tissue.FAT, -130, -60),
        (Tissue.MUSCLE, 20, 80),
        (Tissue.PA_BLOOD, 230, 470),
        (Tissue.LIVER, 40, 90),
    ],
)
def test_tissues_have_ctpa_values(
    pe_phantom: Phantom, tissue: Tissue, low: float, high: float
) -> None:
    assert low <= _median_hu(pe_phantom, tissue) <= high


def test_bone_is_dense_and_outside_the_body_is_air(pe_phantom: Phantom) -> None:
    bone = pe_phantom.tissue == Tissue.CORTICAL_BONE
    assert np.percentile(pe_phantom.volume.hu[bone], 90) > 400
    corner = pe_phantom.volume.hu[:, :4, :4]
    assert (corner == -1024).all()  # outside the reconstruction circle


def test_non_contrast_blood_is_about_40_hu() -> None:
    phantom = generate_phantom(1, "normal", "test", contrast=False)
    assert 20 <= _median_hu(phantom, Tissue.PA_BLOOD) <= 60
    assert not phantom.study.contrast
    assert phantom.volume.meta.contrast_hint == "non-contrast"


def test_every_clot_voxel_is_inside_an_artery_and_darker_than_contrast(pe_phantom: Phantom) -> None:
    pe = pe_phantom.pe_mask.astype(bool)
    artery = pe_phantom.artery_mask.astype(bool)
    assert pe.any()
    assert not (pe & ~artery).any()
    # compare the clot with the opacified lumen of the same vessels
    near = ndimage.binary_dilation(pe, iterations=2) & artery & ~pe
    clot_hu = np.median(pe_phantom.volume.hu[pe])
    lumen_hu = np.median(pe_phantom.volume.hu[near])
    assert clot_hu < lumen_hu - 60
    assert 0 <= pe_phantom.study.clots[0].hu <= 80


def test_masks_slice_labels_and_boxes_agree(pe_phantom: Phantom) -> None:
    pe_on_slice = pe_phantom.pe_mask.any(axis=(1, 2))
    other_on_slice = pe_phantom.other_mask.any(axis=(1, 2))
    for z, label in enumerate(pe_phantom.slice_labels):
        expected = "pe" if pe_on_slice[z] else "other_disease" if other_on_slice[z] else "normal"
        assert label == expected
        boxes = pe_phantom.boxes[z]
        _, n_components = ndimage.label(pe_phantom.pe_mask[z], structure=np.ones((3, 3)))
        assert len(boxes) == n_components
        covered = np.zeros_like(pe_phantom.pe_mask[z], dtype=bool)
        for x0, y0, x1, y1 in boxes:
            covered[y0:y1, x0:x1] = True
            assert pe_phantom.pe_mask[z, y0, x0:x1].any()
            assert pe_phantom.pe_mask[z, y1 - 1, x0:x1].any()
            assert pe_phantom.pe_mask[z, y0:y1, x0].any()
            assert pe_phantom.pe_mask[z, y0:y1, x1 - 1].any()
        assert not (pe_phantom.pe_mask[z].astype(bool) & ~covered).any()
    assert pe_phantom.study.pe_present
    sides = {c.side for c in pe_phantom.study.clots}
    assert pe_phantom.study.leftsided_pe == ("left" in sides)
    assert pe_phantom.study.rightsided_pe == ("right" in sides)


def test_other_and_normal_studies() -> None:
    other = generate_phantom(2, "other", "test")
    normal = generate_phantom(2, "normal", "test")
    assert other.study.other_disease_present
    assert other.other_mask.any()
    assert not other.pe_mask.any()
    assert "other_disease" in other.slice_labels
    assert not (other.other_mask.astype(bool) & ~other.lung_mask.astype(bool)).any()
    assert set(normal.slice_labels) == {"normal"}
    assert not normal.pe_mask.any()
    assert not normal.other_mask.any()


def test_written_study_loads_back_with_the_same_hu_and_geometry(
    pe_phantom: Phantom, tmp_path: Path
) -> None:
    folder = write_study(pe_phantom, tmp_path / "study")
    volume = io.load(folder / "dicom")
    np.testing.assert_array_equal(volume.hu, pe_phantom.volume.hu)
    np.testing.assert_allclose(volume.spacing, pe_phantom.volume.spacing, atol=1e-6)
    np.testing.assert_allclose(volume.origin, pe_phantom.volume.origin, atol=1e-6)
    assert volume.meta.padding_values_hu == (-3024,)
    assert volume.meta.contrast_hint == "contrast"
    mask = io.load(folder / "pe_mask.nii.gz")
    np.testing.assert_array_equal(mask.hu, pe_phantom.pe_mask)
    np.testing.assert_allclose(mask.origin, volume.origin, atol=1e-4)

    labels = json.loads((folder / "labels.json").read_text())
    assert [s["label"] for s in labels["slices"]] == list(pe_phantom.slice_labels)
    coco = json.loads((folder / "boxes_coco.json").read_text())
    assert len(coco["images"]) == volume.shape[0]
    assert len(coco["annotations"]) == sum(len(b) for b in pe_phantom.boxes)
    assert (folder / "preview.png").stat().st_size > 1000


def test_same_seed_same_bytes_and_other_seeds_differ(tmp_path: Path) -> None:
    first = write_study(generate_phantom(11, "pe", "test"), tmp_path / "a")
    second = write_study(generate_phantom(11, "pe", "test"), tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) > 40
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative
    other = generate_phantom(12, "pe", "test")
    assert not np.array_equal(other.volume.hu, generate_phantom(11, "pe", "test").volume.hu)


def test_write_never_overwrites(pe_phantom: Phantom, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        write_study(pe_phantom, tmp_path / "taken")


def test_unknown_kind_and_size_are_refused() -> None:
    with pytest.raises(ValueError, match="valid: pe, other, normal"):
        generate_phantom(0, "saddle")
    with pytest.raises(ValueError, match="valid: test, full"):
        generate_phantom(0, "pe", "huge")


def test_cli_writes_loadable_studies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pe_synth(["--out", str(tmp_path), "--n", "2", "--seed", "3", "--kind", "mix"]) == 0
    studies = sorted(tmp_path.iterdir())
    assert [s.name.split("_")[1] for s in studies] == ["00003", "00004"]
    for study in studies:
        assert io.load(study / "dicom").shape == (48, 128, 128)
    assert "phantom_00003" in capsys.readouterr().out
    assert pe_synth(["--out", str(tmp_path), "--n", "1", "--seed", "3", "--kind", "mix"]) == 1


@pytest.mark.slow
def test_full_size_phantom_matches_ctpa_geometry() -> None:
    phantom = generate_phantom(5, "pe", "full")
    z, y, x = phantom.volume.shape
    assert (y, x) == (512, 512)
    assert 200 <= z <= 300
    assert phantom.volume.spacing[0] in (1.0, 1.25)
    assert phantom.volume.spacing[1] == pytest.approx(0.703, abs=0.001)
    assert phantom.pe_mask.any()


def test_clots_go_to_the_artery_that_gives_them_their_cross_section() -> None:
    arteries = tuple(
        Segment(np.zeros(3), np.array([0.0, 0.0, 20.0]), radius, radius, level=level)
        for level, radius in enumerate((12.0, 8.0, 5.0, 3.0, 2.0))
    )
    rng = np.random.default_rng(0)
    for radius, lumen_fraction in ((5.0, 1.0), (8.0, 0.6), (3.0, 0.65)):
        area = np.pi * (radius * lumen_fraction) ** 2
        chosen = {
            _artery_for_cross_section(rng, arteries, area, lumen_fraction, min_radius_mm=1.5)
            for _ in range(20)
        }
        assert {arteries[i].radius0 for i in chosen} == {radius}
    assert _artery_for_cross_section(rng, arteries, 50.0, 1.0, min_radius_mm=20.0) is None


@pytest.mark.slow
def test_clot_pieces_on_slices_are_as_large_as_fumpe_ones() -> None:
    # FUMPE's radiologist masks: 8 % of 2-D clot pieces are 15 mm² or less, median 67.7 mm²
    # (benchmarks/phantom_realism.py); clots placed by artery level gave 42 % and 17-20 mm².
    areas = []
    for seed in (2000, 2001, 2002):
        phantom = generate_phantom(seed, "pe", "full")
        pixel_mm2 = phantom.volume.spacing[1] * phantom.volume.spacing[2]
        for plane in phantom.pe_mask:
            labels, _ = ndimage.label(plane, structure=np.ones((3, 3)))
            areas += list(np.bincount(labels.ravel())[1:] * pixel_mm2)
    areas_mm2 = np.array(areas)
    assert len(areas_mm2) >= 30
    assert np.mean(areas_mm2 <= 15) <= 0.2
    assert 35 <= np.median(areas_mm2) <= 150
