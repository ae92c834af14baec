"""Dataset adapters on fixture-sized fakes of their layouts: RSNA-STR PE, FUMPE, folders, COCO."""

from __future__ import annotations

import csv
import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from pydicom.uid import generate_uid

from pe_models.data.coco import (
    boxes_from_mask,
    coco_from_study,
    read_coco,
    write_coco,
)
from pe_models.data.errors import DatasetError
from pe_models.data.folder import folder_records
from pe_models.data.fumpe import fumpe_records
from pe_models.data.records import NO_PE, Box, LabelledStudy, split_by_patient
from pe_models.data.rsna import EXAM_COLUMNS, rsna_records
from pe_models.io import StudyReadError, load, write_image
from pe_models.synth.phantom import Phantom, generate_phantom
from pe_models.synth.writers import write_study
from pe_models.volume import Volume
from tests.dicom_factory import ct_dataset, ramp_volume, write_series

HEADER = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "pe_present_on_image"]


def _write_rsna_series(root: Path, study: str, n: int, seed: int) -> tuple[str, list[str]]:
    """An RSNA-style series of ``n`` slices (pixel [0, 0] = 100 * z); SOP UIDs in z order."""
    series = generate_uid()
    folder = root / "train" / study / series
    folder.mkdir(parents=True)
    hu = ramp_volume((n, 8, 8), seed=seed)
    uids = []
    for z in np.random.default_rng(seed).permutation(n):  # files written in shuffled order
        position = (0.0, 0.0, 2.0 * z)  # z written = z loaded: inferior → superior
        ds = ct_dataset(
            hu[z], position, series_uid=series, study_uid=study, instance_number=int(n - z)
        )
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
        uids.append((int(z), str(ds.SOPInstanceUID)))
    return series, [uid for _, uid in sorted(uids)]


def _rsna_rows(study: str, series: str, uids: list[str], pe_z: set[int]) -> list[list[str]]:
    exam = ["0" if pe_z else "1"] + ["0"] * (len(EXAM_COLUMNS) - 2) + ["1" if pe_z else "0"]
    return [[study, series, uid, str(int(z in pe_z)), *exam] for z, uid in enumerate(uids)]


def _write_csv(path: Path, rows: list[list[str]], header: list[str] | None = None) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header or [*HEADER, *EXAM_COLUMNS])
        writer.writerows(rows)


@pytest.fixture
def rsna_root(tmp_path: Path) -> tuple[Path, dict[str, set[int]]]:
    """Three patients (one with two series); PE on known slices; csv rows shuffled."""
    rows: list[list[str]] = []
    truth: dict[str, set[int]] = {}
    for index, pe_z in enumerate([{1, 2}, set(), {0}, {3}]):
        study = f"1.2.3.{min(index, 2)}"
        series, uids = _write_rsna_series(tmp_path, study, 4, seed=index)
        rows += _rsna_rows(study, series, uids, pe_z)
        truth[series] = pe_z
    order = np.random.default_rng(0).permutation(len(rows))
    _write_csv(tmp_path / "train.csv", [rows[i] for i in order])
    return tmp_path, truth


def test_rsna_labels_land_on_their_slices(rsna_root: tuple[Path, dict[str, set[int]]]) -> None:
    root, truth = rsna_root
    records = rsna_records(root)
    assert sorted(r.study_id for r in records) == sorted(truth)
    assert len({r.patient_id for r in records}) == 3
    for record in records:
        study = pickle.loads(pickle.dumps(record)).load()  # loaders travel to workers
        z_written = study.volume.hu[:, 0, 0] // 100  # the z each file was written for
        np.testing.assert_array_equal(z_written, np.arange(4))
        expected = ["pe" if z in truth[record.study_id] else NO_PE for z in range(4)]
        assert list(study.slice_labels or ()) == expected
        assert study.exam_labels["negative_exam_for_pe"] == float(not truth[record.study_id])
        assert set(study.exam_labels) == set(EXAM_COLUMNS)
    assert len(rsna_records(root, limit=2)) == 2


def test_patient_splits_never_share_a_patient(
    rsna_root: tuple[Path, dict[str, set[int]]],
) -> None:
    records = rsna_records(rsna_root[0])
    for seed in range(5):
        parts = split_by_patient(records, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=seed)
        patients = [{r.patient_id for r in part} for part in parts.values()]
        assert sum(len(p) for p in patients) == len(set().union(*patients)) == 3
        assert sum(len(part) for part in parts.values()) == len(records)


def test_rsna_bad_inputs_name_the_file(rsna_root: tuple[Path, dict[str, set[int]]]) -> None:
    root, _ = rsna_root
    rows = list(csv.reader((root / "train.csv").open()))
    without = [c for c in rows[0] if c != "pe_present_on_image"]
    _write_csv(root / "bad.csv", [], header=without)
    with pytest.raises(DatasetError, match=r"bad\.csv: has no column\(s\) pe_present_on_image"):
        rsna_records(root, csv="bad.csv", images="train")
    with pytest.raises(DatasetError, match="label csv not found"):
        rsna_records(root, csv="missing.csv")

    dropped = rows[1][2]
    _write_csv(root / "short.csv", [r for r in rows[1:] if r[2] != dropped])
    short = rsna_records(root, csv="short.csv", images="train")
    (record,) = [r for r in short if r.study_id == rows[1][1]]
    with pytest.raises(StudyReadError, match=f"{dropped}.dcm: SOPInstanceUID {dropped} has no"):
        record.load()

    _write_csv(root / "extra.csv", [*rows[1:], ["9.9", "9.9.1", "9.9.1.1", "0", *["0"] * 13]])
    with pytest.raises(DatasetError, match="DICOM folder not found"):
        rsna_records(root, csv="extra.csv", images="train")
    assert len(rsna_records(root, csv="extra.csv", images="train", skip_missing=True)) == 4


def _write_fumpe_patient(
    root: Path, name: str, pe_zyx: np.ndarray, *, mat: bool = True, **mat_vars: np.ndarray
) -> None:
    """CT whose InstanceNumber runs superior → inferior; mask stored (y, x, z) by instance."""
    write_series(root / "CT_scans" / name, ramp_volume(pe_zyx.shape, seed=3))
    by_instance = pe_zyx[::-1]  # write_series numbers instances from the top down
    (root / "GroundTruth").mkdir(exist_ok=True)
    if mat:
        variables = {"mask": np.transpose(by_instance, (1, 2, 0)).astype(np.uint8), **mat_vars}
        scipy.io.savemat(root / "GroundTruth" / f"{name}.mat", variables)


def _known_mask(shape: tuple[int, int, int] = (6, 12, 10)) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    mask[1, 2:4, 3:6] = 1  # one clot on slice 1
    mask[4, 0:2, 0:2] = 1  # two on slice 4, touching only diagonally → one 8-connected region
    mask[4, 2, 2] = 1
    mask[4, 8:10, 7:9] = 1  # and a separate one
    return mask


def test_boxes_from_mask_one_box_per_8_connected_region() -> None:
    boxes = boxes_from_mask(_known_mask())
    assert boxes[0] == boxes[2] == boxes[3] == boxes[5] == ()
    assert boxes[1] == ((3, 2, 6, 4),)
    assert sorted(boxes[4]) == [(0, 0, 3, 3), (7, 8, 9, 10)]


def test_fumpe_mat_mask_follows_instance_order(tmp_path: Path) -> None:
    truth = _known_mask()
    _write_fumpe_patient(tmp_path, "PAT001", truth)
    _write_fumpe_patient(tmp_path, "PAT002", np.zeros_like(truth))
    records = fumpe_records(tmp_path)
    assert [(r.patient_id, r.dataset) for r in records] == [
        ("PAT001", "fumpe"),
        ("PAT002", "fumpe"),
    ]
    study = pickle.loads(pickle.dumps(records[0])).load()
    np.testing.assert_array_equal(study.pe_mask, truth)
    assert study.slice_labels == tuple("pe" if z in (1, 4) else NO_PE for z in range(6))
    assert study.boxes == boxes_from_mask(truth)
    assert records[1].load().pe_present is False
    flipped = fumpe_records(tmp_path, mask_z_order="reversed")[0].load()
    np.testing.assert_array_equal(flipped.pe_mask, truth[::-1])


def test_fumpe_nifti_mask_layout(tmp_path: Path) -> None:
    truth = _known_mask()
    _write_fumpe_patient(tmp_path, "PAT003", truth, mat=False)
    with pytest.raises(DatasetError, match=r"PAT003: has no PE mask: looked for GroundTruth"):
        fumpe_records(tmp_path)
    ct = load(tmp_path / "CT_scans" / "PAT003")
    write_image(truth, ct, tmp_path / "PAT003.nii.gz")  # the NIfTI conversion's layout
    study = fumpe_records(tmp_path)[0].load()
    np.testing.assert_array_equal(study.pe_mask, truth)
    assert study.boxes == boxes_from_mask(truth)


def test_fumpe_bad_masks_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="has no CT_scans/ folder"):
        fumpe_records(tmp_path)
    _write_fumpe_patient(tmp_path, "PAT001", _known_mask(), extra=np.zeros((2, 2, 2)))
    with pytest.raises(DatasetError, match=r"PAT001\.mat: needs exactly one 3-D array, found 2"):
        fumpe_records(tmp_path)[0].load()

    scipy.io.savemat(tmp_path / "GroundTruth" / "PAT001.mat", {"m": np.zeros((12, 10, 5))})
    with pytest.raises(DatasetError, match=r"PAT001\.mat: mask \(z, y, x\) \(5, 12, 10\).*CT"):
        fumpe_records(tmp_path)[0].load()

    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 2018 HDF5 schema"
    (tmp_path / "GroundTruth" / "PAT001.mat").write_bytes(header.ljust(512, b" "))
    with pytest.raises(DatasetError, match=r"PAT001\.mat: is a MATLAB v7\.3 \(HDF5\) file"):
        fumpe_records(tmp_path)[0].load()


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return generate_phantom(5, "pe", "test")


def test_phantom_study_loads_through_folder_records(phantom: Phantom, tmp_path: Path) -> None:
    write_study(phantom, tmp_path / "studies" / "phantom_a")
    (record,) = folder_records(tmp_path / "studies")
    assert (record.patient_id, record.study_id, record.dataset) == ("phantom_a",) * 2 + ("folder",)
    study = pickle.loads(pickle.dumps(record)).load()
    assert study.slice_labels == phantom.slice_labels
    np.testing.assert_array_equal(study.pe_mask, phantom.pe_mask)
    np.testing.assert_array_equal(study.other_mask, phantom.other_mask)
    assert study.boxes == phantom.boxes
    assert study.exam_labels["negative_exam_for_pe"] == 0.0
    (same,) = folder_records(tmp_path / "studies" / "phantom_a")  # a study folder by itself
    assert same.load().boxes == phantom.boxes


def test_coco_round_trip_and_study_export(phantom: Phantom, tmp_path: Path) -> None:
    boxes: list[list[Box]] = [[(1.5, 2.0, 4.5, 7.0)], [], [(0, 0, 3, 3), (5, 5, 6, 9)]]
    images = [(f"img{i}.png", 32, 40) for i in range(3)]
    path = write_coco(tmp_path / "boxes.json", images, boxes)
    assert read_coco(path) == {f"img{i}.png": list(b) for i, b in enumerate(boxes)}
    document = json.loads(path.read_text())
    assert document["annotations"][0]["bbox"] == [1.5, 2, 3, 5]
    assert document["categories"] == [{"id": 1, "name": "pe", "supercategory": "lesion"}]

    study = LabelledStudy(phantom.volume, pe_mask=phantom.pe_mask)  # boxes from the mask
    images, study_boxes = coco_from_study(study)
    assert images[0] == ("slice_0000", 128, 128)
    written = read_coco(write_coco(tmp_path / "study.json", images, study_boxes))
    assert [tuple(written[name]) for name, _, _ in images] == list(phantom.boxes)


def test_folder_volume_files_with_masks_and_geometry_check(
    phantom: Phantom, tmp_path: Path
) -> None:
    volume = phantom.volume
    write_image(volume.hu, volume, tmp_path / "a.nii.gz")
    write_image(phantom.pe_mask, volume, tmp_path / "a_pe_mask.nii.gz")
    images, boxes = coco_from_study(LabelledStudy(volume, pe_mask=phantom.pe_mask))
    write_coco(tmp_path / "a_boxes_coco.json", images, boxes)
    write_image(volume.hu[:-1], _shorter(phantom), tmp_path / "b.nii.gz")
    write_image(phantom.pe_mask, volume, tmp_path / "b_pe_mask.nii.gz")
    records = folder_records(tmp_path)
    assert [r.study_id for r in records] == ["a", "b"]
    study = records[0].load()
    np.testing.assert_array_equal(study.pe_mask, phantom.pe_mask)
    assert study.boxes == phantom.boxes
    assert study.slice_labels == tuple("pe" if b else NO_PE for b in phantom.boxes)
    with pytest.raises(DatasetError, match=r"b_pe_mask\.nii\.gz: PE mask does not match CT .*b"):
        records[1].load()


def _shorter(phantom: Phantom) -> Volume:
    """The phantom's volume one slice shorter, same geometry otherwise."""
    return replace(phantom.volume, hu=phantom.volume.hu[:-1])


def test_folder_of_dicom_studies_with_mask_and_patient_labels(tmp_path: Path) -> None:
    truth = _known_mask()
    write_series(tmp_path / "s1", ramp_volume(truth.shape, seed=1))
    write_image(truth, load(tmp_path / "s1"), tmp_path / "s1" / "pe_mask.nii.gz")
    (tmp_path / "s1" / "labels.json").write_text(json.dumps({"patient_id": "P7"}))
    write_series(tmp_path / "s2", ramp_volume((3, 8, 8), seed=2))
    (tmp_path / "notes.txt").write_text("not a study")
    first, second = folder_records(tmp_path)
    assert (first.patient_id, first.study_id, second.patient_id) == ("P7", "s1", "s2")
    study = first.load()
    np.testing.assert_array_equal(study.pe_mask, truth)
    assert study.slice_labels == tuple("pe" if z in (1, 4) else NO_PE for z in range(6))
    assert study.boxes == boxes_from_mask(truth)
    bare = second.load()
    assert (bare.slice_labels, bare.pe_mask, bare.boxes, bare.pe_present) == (None,) * 4

    (tmp_path / "s1" / "labels.json").write_text(json.dumps({"slices": [{"index": 0}]}))
    with pytest.raises(DatasetError, match=r"labels\.json: 'slices' entries need 'index' and"):
        folder_records(tmp_path)[0].load()
