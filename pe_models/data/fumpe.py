"""FUMPE (Masoudi et al., Scientific Data 2018): 35 CTPA studies with radiologist PE masks.

Layout::

    root/CT_scans/PAT001/...        one DICOM series per patient
    root/GroundTruth/PAT001.mat     MATLAB mask: the one 3-D array in the file, (y, x, z)
    root/GroundTruth/PAT001.nii.gz  or a NIfTI mask (with geometry) in GroundTruth/ ...
    root/PAT001.nii.gz              ... or beside CT_scans/ (the NIfTI conversion's layout)

**Mask z order.** A ``.mat`` mask has no geometry; its ``[:, :, k]`` slices are mapped onto
the CT by rank of InstanceNumber: with ``mask_z_order="instance"`` (default) mask slice k is
the image with the k-th smallest InstanceNumber (file name breaks ties and stands in where
InstanceNumber is missing), with ``"reversed"`` the k-th largest. The mask must have as many
slices as the loaded volume (localizers excluded), and rows × columns of the CT. Whatever the
file order, the returned mask follows the volume's z order (inferior → superior). A NIfTI
mask carries its own geometry and is oriented like any volume file
(:func:`pe_models.io.image_file.load_image_file`); only its shape is checked against the CT,
since converted masks need not repeat the DICOM origin to the micrometre.

MATLAB v7.3 files are HDF5, which ``scipy.io.loadmat`` cannot read: convert them
(``save(name, '-v7')`` in MATLAB, or to NIfTI) first.
"""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from pe_models.data.coco import boxes_from_mask
from pe_models.data.errors import DatasetError
from pe_models.data.folder import labels_from_mask, load_ct
from pe_models.data.records import LabelledStudy, StudyRecord
from pe_models.io.dicom_header import DicomHeader
from pe_models.io.image_file import load_image_file
from pe_models.volume import Volume

__all__ = ["MASK_Z_ORDERS", "boxes_from_mask", "fumpe_records", "load_fumpe_study", "read_mat_mask"]

MASK_Z_ORDERS = ("instance", "reversed")
CT_FOLDER = "CT_scans"
MASK_FOLDER = "GroundTruth"
_MASK_SUFFIXES = (".mat", ".nii.gz", ".nii")


def read_mat_mask(path: Path) -> np.ndarray:
    """The one 3-D array of a MATLAB (v4-v7) file, as stored: (y, x, z) in MATLAB order.

    Raises
    ------
    DatasetError
        The file is v7.3 (HDF5), unreadable, or holds no or several 3-D arrays.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(128)
    except FileNotFoundError as error:
        raise DatasetError(path, "mask file not found") from error
    if b"MATLAB 7.3" in head or head.startswith(b"\x89HDF"):
        raise DatasetError(
            path,
            "is a MATLAB v7.3 (HDF5) file, which scipy cannot read; convert it first "
            "(in MATLAB: m = load(f); save(f, '-struct', 'm', '-v7'), or to NIfTI)",
        )
    try:
        variables = scipy.io.loadmat(str(path))
    except (MatReadError, NotImplementedError, ValueError, TypeError, OSError) as error:
        raise DatasetError(path, f"cannot be read as a MATLAB file ({error})") from error
    arrays = {
        name: value
        for name, value in variables.items()
        if not name.startswith("__") and isinstance(value, np.ndarray) and value.ndim == 3
    }
    if len(arrays) != 1:
        found = ", ".join(
            f"{k} {np.shape(v)}" for k, v in variables.items() if not k.startswith("__")
        )
        raise DatasetError(
            path, f"needs exactly one 3-D array, found {len(arrays)} (variables: {found or '-'})"
        )
    return next(iter(arrays.values()))


def _instance_rank(volume: Volume, headers: dict[str, DicomHeader]) -> list[int]:
    """Volume z indices sorted by InstanceNumber (file name breaking ties / standing in)."""
    uids = volume.slice_uids or ()
    missing_number = sys.maxsize

    def key(z: int) -> tuple[int, str]:
        header = headers[uids[z]]
        number = header.instance_number
        return (missing_number if number is None else number, header.path.name)

    return sorted(range(len(uids)), key=key)


def mat_mask_on_volume(
    mask_yxz: np.ndarray,
    volume: Volume,
    headers: dict[str, DicomHeader],
    *,
    mask_z_order: str = "instance",
    mask_path: Path,
    ct_path: Path,
) -> np.ndarray:
    """Put a (y, x, z) ``.mat`` mask on the volume's (z, y, x) grid (see module docstring).

    Returns
    -------
    np.ndarray
        uint8 0/1 (z, y, x), z in the volume's order.
    """
    if mask_z_order not in MASK_Z_ORDERS:
        raise ValueError(f"mask_z_order {mask_z_order!r}; valid: {', '.join(MASK_Z_ORDERS)}")
    if volume.slice_uids is None or not headers:
        raise DatasetError(
            ct_path, "a .mat mask needs a DICOM CT (its slices are matched by InstanceNumber)"
        )
    mask = np.transpose(np.asarray(mask_yxz) != 0, (2, 0, 1)).astype(np.uint8)
    if mask.shape != volume.shape:
        raise DatasetError(
            mask_path,
            f"mask (z, y, x) {mask.shape} (stored (y, x, z) {np.shape(mask_yxz)}) does not "
            f"match CT {ct_path} {volume.shape}",
        )
    ranked = _instance_rank(volume, headers)
    if mask_z_order == "reversed":
        ranked = ranked[::-1]
    on_volume = np.empty_like(mask)
    on_volume[ranked] = mask
    return on_volume


def load_fumpe_study(ct_path: Path, mask_path: Path, mask_z_order: str) -> LabelledStudy:
    """Read one FUMPE patient: CT, mask on the CT's grid, slice labels and boxes from it.

    Raises
    ------
    DatasetError
        The mask cannot be read or does not match the CT (both files named).
    """
    volume, headers = load_ct(ct_path)
    if mask_path.suffix == ".mat":
        mask = mat_mask_on_volume(
            read_mat_mask(mask_path),
            volume,
            headers,
            mask_z_order=mask_z_order,
            mask_path=mask_path,
            ct_path=ct_path,
        )
    else:
        image = load_image_file(mask_path)
        if image.shape != volume.shape:
            raise DatasetError(
                mask_path,
                f"mask (z, y, x) {image.shape} does not match CT {ct_path} {volume.shape}",
            )
        mask = (image.hu != 0).astype(np.uint8)
    return LabelledStudy(
        volume,
        slice_labels=labels_from_mask(mask),
        pe_mask=mask,
        boxes=boxes_from_mask(mask),
        exam_labels={"negative_exam_for_pe": float(not mask.any())},
    )


def _find_mask(base: Path, patient: str) -> Path | None:
    folders = (base / MASK_FOLDER, base)
    candidates = (f / f"{patient}{suffix}" for f in folders for suffix in _MASK_SUFFIXES)
    return next((path for path in candidates if path.is_file()), None)


def fumpe_records(
    root: str | os.PathLike[str], *, mask_z_order: str = "instance"
) -> list[StudyRecord]:
    """One record per patient folder in ``root/CT_scans``; nothing is read until loaded.

    Parameters
    ----------
    root
        The FUMPE folder (layout in the module docstring).
    mask_z_order
        ``"instance"`` or ``"reversed"``: how ``.mat`` mask slices map to images.

    Returns
    -------
    list of StudyRecord
        ``dataset="fumpe"``, ``patient_id`` = ``study_id`` = the folder name (``PAT001``).

    Raises
    ------
    DatasetError
        No ``CT_scans`` folder (e.g. a masks-only copy) or a patient without a mask.
    """
    if mask_z_order not in MASK_Z_ORDERS:
        raise ValueError(f"mask_z_order {mask_z_order!r}; valid: {', '.join(MASK_Z_ORDERS)}")
    base = Path(root)
    ct_root = base / CT_FOLDER
    if not ct_root.is_dir():
        raise DatasetError(
            base,
            f"has no {CT_FOLDER}/ folder of CT series; FUMPE masks without their CT "
            "make no studies",
        )
    records = []
    for ct_path in sorted(p for p in ct_root.iterdir() if p.is_dir() and p.name[0] != "."):
        mask_path = _find_mask(base, ct_path.name)
        if mask_path is None:
            raise DatasetError(
                ct_path,
                f"has no PE mask: looked for {MASK_FOLDER}/{ct_path.name}.mat, .nii.gz, .nii "
                f"and {ct_path.name}.nii.gz in {base}",
            )
        loader = partial(load_fumpe_study, ct_path, mask_path, mask_z_order)
        records.append(StudyRecord(ct_path.name, ct_path.name, "fumpe", loader))
    return records
