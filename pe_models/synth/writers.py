"""Write a phantom as a study folder: DICOM series, NIfTI masks, COCO boxes, labels, preview.

Layout of ``write_study(phantom, folder)``::

    folder/dicom/IM0000.dcm ...     CT Image Storage, one file per slice
    folder/pe_mask.nii.gz           uint8 0/1, same geometry as the series
    folder/other_mask.nii.gz, artery_mask.nii.gz, lung_mask.nii.gz
    folder/boxes_coco.json          one image per slice, one box per clot cross-section
    folder/labels.json              study, slice and lesion labels
    folder/preview.png              PE-window and lung-window sheet with the PE outlined

The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from pe_models.data.coco import CocoImage, coco_document, write_coco
from pe_models.data.records import Box
from pe_models.io import write_image
from pe_models.io.atomic import atomic_folder
from pe_models.preprocess.windows import apply_window
from pe_models.synth.phantom import SLICE_LABELS, Phantom

RESCALE_INTERCEPT = -1024
PADDING_STORED = -2000
"""Stored value outside the reconstruction circle (-3024 HU), as GE scanners write it."""


def _uid(phantom: Phantom, *parts: object) -> UID:
    """A UID that depends only on the phantom's recipe, so output is byte-for-byte repeatable."""
    recipe = [str(phantom.seed), phantom.kind, phantom.size, str(phantom.study.contrast)]
    return generate_uid(entropy_srcs=[*recipe, *map(str, parts)])


def _outside_fov(phantom: Phantom) -> np.ndarray:
    _, rows, columns = phantom.volume.shape
    y = phantom.volume.origin[1] + np.arange(rows) * phantom.volume.spacing[1]
    x = phantom.volume.origin[0] + np.arange(columns) * phantom.volume.spacing[2]
    return x[None, :] ** 2 + y[:, None] ** 2 > phantom.fov_radius_mm**2


def write_dicom_series(phantom: Phantom, folder: Path) -> list[Path]:
    """Write the CT as an uncompressed CT Image Storage series; returns the files in z order."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = phantom.volume
    study_uid, series_uid, frame_uid = (
        _uid(phantom, name) for name in ("study", "series", "frame")
    )
    outside = _outside_fov(phantom)
    ds = _series_template(phantom, study_uid, series_uid, frame_uid)
    paths = []
    for index, hu_slice in enumerate(volume.hu):
        # One dataset, updated per slice: building 300 datasets costs more than writing them.
        sop_uid = _uid(phantom, "image", index)
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = index + 1
        position = volume.index_to_lps(index, 0, 0)
        ds.ImagePositionPatient = [f"{v:.3f}" for v in position]
        ds.SliceLocation = f"{position[2]:.3f}"
        stored = (hu_slice.astype(np.int32) - RESCALE_INTERCEPT).astype(np.int16)
        stored[outside] = PADDING_STORED
        ds.PixelData = stored.astype("<i2").tobytes()
        path = folder / f"IM{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _series_template(phantom: Phantom, study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    """The header every slice of the series shares."""
    volume = phantom.volume
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20260101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.Modality = "CT"
    ds.Manufacturer = "PE Viewer synthetic phantom"
    ds.StudyDescription = "SYNTHETIC CTPA - NOT A PATIENT"
    ds.SeriesDescription = volume.meta.description
    ds.PatientName = f"SYNTHETIC^PHANTOM^{phantom.seed}"
    ds.PatientID = f"SYNTH-{phantom.seed:06d}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    if phantom.study.contrast:
        ds.ContrastBolusAgent = "SYNTHETIC IODINE"
    ds.KVP = "120"
    ds.SliceThickness = f"{volume.spacing[0]:g}"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = [f"{volume.spacing[1]:g}", f"{volume.spacing[2]:g}"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = volume.shape[1:]
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelPaddingValue = PADDING_STORED
    ds.RescaleIntercept = str(RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = "100", "700"
    return ds


def coco_boxes(phantom: Phantom, file_names: list[str]) -> dict:
    """COCO detection JSON: one image per slice, one ``pe`` box per clot cross-section."""
    images, boxes, areas, info = _coco_parts(phantom, file_names)
    return coco_document(images, boxes, areas=areas, info=info)


def _coco_parts(
    phantom: Phantom, file_names: list[str]
) -> tuple[list[CocoImage], tuple[tuple[Box, ...], ...], list[list[int]], dict[str, str]]:
    """Images, boxes, areas (PE pixels inside each box) and info of the phantom's COCO file."""
    _, rows, columns = phantom.volume.shape
    images = [(name, rows, columns) for name in file_names]
    areas = [
        [int(phantom.pe_mask[z, y0:y1, x0:x1].sum()) for x0, y0, x1, y1 in boxes]
        for z, boxes in enumerate(phantom.boxes)
    ]
    info = {"description": f"PE boxes of synthetic phantom seed {phantom.seed}"}
    return images, phantom.boxes, areas, info


def labels_document(phantom: Phantom) -> dict:
    """Everything known about the phantom, JSON-ready."""
    volume = phantom.volume
    voxel_ml = volume.voxel_ml
    study = asdict(phantom.study)
    return {
        "version": 1,
        "seed": phantom.seed,
        "kind": phantom.kind,
        "size": phantom.size,
        "not_a_patient": "synthetic phantom generated by pe_models.synth",
        "geometry": {
            "shape_zyx": list(volume.shape),
            "spacing_zyx_mm": list(volume.spacing),
            "origin_xyz_mm": list(volume.origin),
        },
        "study": study,
        "pe_volume_ml": round(float(phantom.pe_mask.sum()) * voxel_ml, 4),
        "slice_label_names": list(SLICE_LABELS),
        "slices": [
            {"index": z, "label": label, "boxes": [list(b) for b in boxes]}
            for z, (label, boxes) in enumerate(
                zip(phantom.slice_labels, phantom.boxes, strict=True)
            )
        ],
        "files": {
            "dicom": "dicom/",
            "pe_mask": "pe_mask.nii.gz",
            "other_mask": "other_mask.nii.gz",
            "artery_mask": "artery_mask.nii.gz",
            "lung_mask": "lung_mask.nii.gz",
            "boxes": "boxes_coco.json",
            "preview": "preview.png",
        },
    }


def preview_sheet(phantom: Phantom, *, tiles: int = 4, tile_px: int = 256) -> Image.Image:
    """PE-window row (clots outlined red) over a lung-window row of representative slices."""
    hu = phantom.volume.hu
    pe_slices = np.flatnonzero(phantom.pe_mask.any(axis=(1, 2)))
    chosen = list(np.linspace(0.2, 0.8, tiles) * (hu.shape[0] - 1))
    if pe_slices.size:
        chosen[0] = pe_slices[pe_slices.size // 2]
    sheet = Image.new("RGB", (tile_px * tiles, tile_px * 2))
    for column, z in enumerate(round(z) for z in chosen):
        for row, window in enumerate(("vascular", "lung")):
            grey = (apply_window(hu[z], window) * 255).astype(np.uint8)
            rgb = np.repeat(grey[..., None], 3, axis=2)
            if window == "vascular":
                mask = phantom.pe_mask[z].astype(bool)
                edge = mask & ~np.pad(mask, 1)[2:, 1:-1] | mask & ~np.pad(mask, 1)[:-2, 1:-1]
                rgb[edge | mask & ~np.pad(mask, 1)[1:-1, 2:]] = (255, 40, 40)
            tile = Image.fromarray(rgb).resize((tile_px, tile_px), Image.Resampling.BILINEAR)
            sheet.paste(tile, (column * tile_px, row * tile_px))
    return sheet


def write_study(phantom: Phantom, folder: str | os.PathLike[str]) -> Path:
    """Write every output of one phantom into ``folder`` (created; must not exist yet).

    Returns
    -------
    Path
        The finished folder.
    """
    target = Path(folder)
    if target.exists():
        raise FileExistsError(f"{target}: already exists; phantoms are never written over")
    with atomic_folder(target) as staging:  # the files inside need no atomicity of their own
        files = write_dicom_series(phantom, staging / "dicom")
        for name in ("pe_mask", "other_mask", "artery_mask", "lung_mask"):
            write_image(getattr(phantom, name), phantom.volume, staging / f"{name}.nii.gz")
        images, boxes, areas, info = _coco_parts(phantom, [f"dicom/{p.name}" for p in files])
        write_coco(staging / "boxes_coco.json", images, boxes, areas=areas, info=info)
        labels = json.dumps(labels_document(phantom), indent=1)
        (staging / "labels.json").write_text(labels, encoding="utf-8")
        preview_sheet(phantom).save(staging / "preview.png", optimize=False)
    return target
