"""A folder of CT studies with optional PE masks, slice labels and COCO boxes.

Layout read by :func:`folder_records` (every part but the CT is optional)::

    root/<name>/                    one study per subfolder
        dicom/ ...                  the CT as DICOM (the ``pe-synth`` layout), or
        *.dcm ...                   DICOM files anywhere in the folder, or
        ct.nii.gz                   one NIfTI / NRRD / MHA file (any name not ending in "mask")
        pe_mask.nii.gz              uint8 0/1 PE mask on the CT's grid
        other_mask.nii.gz           uint8 0/1 mask of other lesions (PE mimics; pe-synth writes it)
        labels.json                 {"patient_id": ..., "slices": [{"index": z, "label": ...}],
                                     "study": {"pe_present": true, ...}}
        boxes_coco.json             COCO boxes, one image per slice (see pe_models.data.coco)
    root/<name>.nii.gz              one study per volume file beside the folders, with
    root/<name>_pe_mask.nii.gz          its masks (and <name>_other_mask.nii.gz),
    root/<name>_labels.json             labels and
    root/<name>_boxes_coco.json         boxes under the same name

A ``root`` that itself holds ``dicom/`` is read as one study (a single ``pe-synth`` folder).
Masks may use any volume suffix (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha``, ...). Hidden
entries and other files are ignored.

``labels.json`` slice ``index`` values follow the volume's z order (inferior → superior), as
``pe-synth`` writes them. COCO images are matched to slices by SOPInstanceUID, by DICOM file
path relative to the COCO file, by ``slice_NNNN`` name, or by the image's ``slice_index``.
Without labels.json, slice labels come from the mask (``pe`` where it is set, else
``no_pe``), else from the COCO boxes; without COCO boxes, boxes come from the mask.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pe_models.data.coco import boxes_from_mask, read_coco_images
from pe_models.data.errors import DatasetError, read_json
from pe_models.data.records import NO_PE, Box, LabelledStudy, StudyRecord
from pe_models.io import choose_series, load_series, scan
from pe_models.io.dicom_header import DicomHeader
from pe_models.io.image_file import load_image_file
from pe_models.io.series import IMAGE_FILE_SUFFIXES, is_image_file
from pe_models.volume import Volume

DICOM_FOLDER = "dicom"
MASK_NAME = "pe_mask"
OTHER_MASK_NAME = "other_mask"
LABELS_NAME = "labels.json"
COCO_NAME = "boxes_coco.json"
_SLICE_NAME = re.compile(r"slice_(\d+)$")


@dataclass(frozen=True)
class StudyFiles:
    """Where one study's parts lie; None for a part that is absent."""

    name: str
    ct: Path
    pe_mask: Path | None = None
    other_mask: Path | None = None
    labels: Path | None = None
    coco: Path | None = None


def stem(path: Path) -> str:
    """File name without its volume suffix (``a.nii.gz`` → ``a``)."""
    lower = path.name.lower()
    for suffix in sorted(IMAGE_FILE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def _is_mask(path: Path) -> bool:
    return stem(path).lower().endswith("mask")


def _first_existing(folder: Path, name: str) -> Path | None:
    candidates = (folder / f"{name}{suffix}" for suffix in IMAGE_FILE_SUFFIXES)
    return next((path for path in candidates if path.is_file()), None)


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def study_folder_files(folder: Path) -> StudyFiles:
    """The parts of a study folder (see the module docstring)."""
    if (folder / DICOM_FOLDER).is_dir():
        ct = folder / DICOM_FOLDER
    else:
        volumes = sorted(p for p in folder.iterdir() if is_image_file(p) and not _is_mask(p))
        if len(volumes) > 1:
            listed = ", ".join(p.name for p in volumes)
            raise DatasetError(folder, f"holds several volume files ({listed}); keep one per study")
        ct = volumes[0] if volumes else folder
    return StudyFiles(
        name=folder.name,
        ct=ct,
        pe_mask=_first_existing(folder, MASK_NAME),
        other_mask=_first_existing(folder, OTHER_MASK_NAME),
        labels=_existing(folder / LABELS_NAME),
        coco=_existing(folder / COCO_NAME),
    )


def list_studies(root: str | os.PathLike[str]) -> list[StudyFiles]:
    """The studies under ``root``, sorted by name, without reading any image."""
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(base, "is not a folder")
    if (base / DICOM_FOLDER).is_dir():
        return [study_folder_files(base)]
    studies = []
    for entry in sorted(base.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            studies.append(study_folder_files(entry))
        elif is_image_file(entry) and not _is_mask(entry):
            name = stem(entry)
            studies.append(
                StudyFiles(
                    name=name,
                    ct=entry,
                    pe_mask=_first_existing(base, f"{name}_{MASK_NAME}"),
                    other_mask=_first_existing(base, f"{name}_{OTHER_MASK_NAME}"),
                    labels=_existing(base / f"{name}_{LABELS_NAME}"),
                    coco=_existing(base / f"{name}_{COCO_NAME}"),
                )
            )
    return studies


def folder_records(root: str | os.PathLike[str]) -> list[StudyRecord]:
    """One record per study under ``root`` (layout in the module docstring).

    Only ``labels.json`` files are read here (for ``patient_id``); images, masks and boxes
    are read by ``record.load()``.

    Returns
    -------
    list of StudyRecord
        ``dataset="folder"``, ``study_id`` = folder or file name, ``patient_id`` =
        labels.json's ``patient_id`` if given, else the study name.

    Raises
    ------
    DatasetError
        ``root`` is not a folder, a study folder holds several volumes, or a labels.json
        cannot be read.
    """
    records = []
    for files in list_studies(root):
        patient = files.name
        if files.labels is not None:
            patient = str(read_json(files.labels).get("patient_id", patient))
        loader = partial(load_folder_study, files)
        records.append(StudyRecord(patient, files.name, "folder", loader))
    return records


def load_ct(path: Path, series_uid: str | None = None) -> tuple[Volume, dict[str, DicomHeader]]:
    """Load a CT and the DICOM headers of its slices by SOPInstanceUID (empty for files).

    Parameters
    ----------
    path
        DICOM folder or file, or NIfTI / NRRD / MHA file.
    series_uid
        The series to load where the folder holds several.
    """
    if path.is_file() and is_image_file(path):
        return load_image_file(path), {}
    series = choose_series(path, scan(path), series_uid)
    volume = load_series(series)
    return volume, {h.sop_uid: h for h in series.headers}


def load_mask(mask_path: Path, volume: Volume, ct_path: Path, what: str = "PE") -> np.ndarray:
    """A ``what`` (PE, other-disease) mask file as uint8 0/1 (z, y, x) on ``volume``'s grid.

    The mask's slices are put in the same inferior → superior order as the CT's, so a mask
    written by :func:`pe_models.io.write_image` lines up whatever its slice direction.

    Raises
    ------
    DatasetError
        Naming both files when the mask's shape, spacing, origin or direction differ from
        the CT's (origin tolerance: half the smallest voxel side).
    """
    mask = load_image_file(mask_path)
    problem = None
    if mask.shape != volume.shape:
        problem = f"shape (z, y, x) {mask.shape} differs from the CT's {volume.shape}"
    elif not np.allclose(mask.spacing, volume.spacing, rtol=1e-3, atol=1e-3):
        problem = f"spacing {mask.spacing} mm differs from the CT's {volume.spacing} mm"
    elif not np.allclose(mask.direction, volume.direction, atol=1e-3):
        problem = "direction differs from the CT's (flipped or rotated axes)"
    elif not np.allclose(mask.origin, volume.origin, atol=min(volume.spacing) / 2):
        problem = f"origin {mask.origin} mm differs from the CT's {volume.origin} mm"
    if problem is not None:
        raise DatasetError(mask_path, f"{what} mask does not match CT {ct_path}: {problem}")
    return (mask.hu != 0).astype(np.uint8)


def labels_from_mask(pe_mask: np.ndarray) -> tuple[str, ...]:
    """``pe`` on slices where the (z, y, x) mask is set, else ``no_pe``."""
    return tuple("pe" if plane.any() else NO_PE for plane in np.asarray(pe_mask))


def _slice_z(
    image: dict[str, Any],
    by_uid: dict[str, int],
    by_path: dict[Path, int],
    folder: Path,
) -> int | None:
    name = str(image.get("file_name", ""))
    if name in by_uid:
        return by_uid[name]
    if name and (folder / name).resolve() in by_path:
        return by_path[(folder / name).resolve()]
    match = _SLICE_NAME.fullmatch(Path(name).stem if name else "")
    if match:
        return int(match.group(1))
    if isinstance(image.get("slice_index"), int):
        return int(image["slice_index"])
    return None


def boxes_by_slice(
    coco_path: Path, volume: Volume, headers: dict[str, DicomHeader]
) -> tuple[tuple[Box, ...], ...]:
    """The boxes of a COCO file per z of ``volume`` (matching rules in the module docstring).

    Raises
    ------
    DatasetError
        An image matches no slice of the volume.
    """
    uids = volume.slice_uids or ()
    by_uid = {uid: z for z, uid in enumerate(uids)}
    by_path = {headers[uid].path.resolve(): z for uid, z in by_uid.items() if uid in headers}
    boxes: list[list[Box]] = [[] for _ in range(volume.shape[0])]
    for image, image_boxes in read_coco_images(coco_path):
        z = _slice_z(image, by_uid, by_path, coco_path.parent)
        if z is None or not 0 <= z < volume.shape[0]:
            raise DatasetError(
                coco_path,
                f"image {image.get('file_name')!r} (id {image.get('id')}) matches no slice "
                f"of the {volume.shape[0]}-slice CT",
            )
        boxes[z].extend(image_boxes)
    return tuple(tuple(b) for b in boxes)


def labels_from_json(path: Path, n_slices: int) -> tuple[tuple[str, ...] | None, dict[str, float]]:
    """Slice labels (z order) and exam labels from a ``labels.json``.

    Exam labels are its ``exam_labels`` object, else those of its ``study`` object named as
    the phantom adapter names them (``negative_exam_for_pe``, ``central_pe``, ...).
    """
    document = read_json(path)
    slice_labels = None
    if "slices" in document:
        try:
            by_index = {int(s["index"]): str(s["label"]) for s in document["slices"]}
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(
                path, f"'slices' entries need 'index' and 'label' ({error!r})"
            ) from error
        if sorted(by_index) != list(range(n_slices)):
            raise DatasetError(
                path,
                f"has labels for slice indices {min(by_index, default=None)}.."
                f"{max(by_index, default=None)} ({len(by_index)} slices); the CT has "
                f"{n_slices} slices, indices 0..{n_slices - 1}",
            )
        slice_labels = tuple(by_index[z] for z in range(n_slices))
    if "exam_labels" in document:
        exam = document["exam_labels"]
    else:
        study = document.get("study", {})
        exam = {k: study[k] for k in ("central_pe", "leftsided_pe", "rightsided_pe") if k in study}
        if "pe_present" in study:
            exam["negative_exam_for_pe"] = not study["pe_present"]
    try:
        exam_labels = {str(k): float(v) for k, v in exam.items()}
    except (AttributeError, TypeError, ValueError) as error:
        raise DatasetError(path, f"exam labels must be numbers ({error})") from error
    return slice_labels, exam_labels


def load_folder_study(files: StudyFiles) -> LabelledStudy:
    """Read one study listed by :func:`folder_records`.

    Raises
    ------
    DatasetError
        Mask, labels or boxes do not fit the CT (each error names the file).
    StudyReadError
        The CT cannot be read.
    """
    volume, headers = load_ct(files.ct)
    pe_mask = load_mask(files.pe_mask, volume, files.ct) if files.pe_mask else None
    other_mask = None
    if files.other_mask:
        other_mask = load_mask(files.other_mask, volume, files.ct, "other-disease")
    boxes = boxes_by_slice(files.coco, volume, headers) if files.coco else None
    slice_labels: tuple[str, ...] | None = None
    exam_labels: dict[str, float] = {}
    if files.labels is not None:
        slice_labels, exam_labels = labels_from_json(files.labels, volume.shape[0])
    if slice_labels is None and pe_mask is not None:
        slice_labels = labels_from_mask(pe_mask)
    elif slice_labels is None and boxes is not None:
        slice_labels = tuple("pe" if b else NO_PE for b in boxes)
    if boxes is None and pe_mask is not None:
        boxes = boxes_from_mask(pe_mask)
    try:
        return LabelledStudy(volume, slice_labels, pe_mask, boxes, exam_labels, other_mask)
    except ValueError as error:
        raise DatasetError(files.labels or files.ct, str(error)) from error
