"""NIfTI / NRRD / MHA volumes through SimpleITK, and writing arrays back in a volume's geometry."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pe_models.io.atomic import atomic_target
from pe_models.io.errors import CorruptFileError, UnsupportedFileError
from pe_models.io.geometry import orientation_name
from pe_models.io.load_dicom import HU_MAX, HU_MIN, PADDING_MAX_HU
from pe_models.io.series import contrast_hint
from pe_models.volume import AIR_HU, Volume, VolumeMeta


def load_image_file(path: Path) -> Volume:
    """Read a 3-D scalar image in HU into a :class:`Volume`.

    The slice axis is flipped where needed so that slices run along the positive dominant
    patient axis (inferior → superior for axial volumes), as for DICOM.

    Raises
    ------
    CorruptFileError
        SimpleITK cannot read the file.
    UnsupportedFileError
        The image is not a 2-D or 3-D single-channel image.
    """
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise CorruptFileError(path, f"cannot be read as an image ({error})") from error
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UnsupportedFileError(
            path, f"has {image.GetNumberOfComponentsPerPixel()} channels; a CT volume has one"
        )
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise UnsupportedFileError(path, f"is {image.GetDimension()}-D; a CT volume is 3-D")

    array = sitk.GetArrayViewFromImage(image)
    direction = np.reshape(image.GetDirection(), (3, 3)).copy()
    origin = np.array(image.GetOrigin(), dtype=float)
    spacing_xyz = np.array(image.GetSpacing(), dtype=float)
    slice_axis = direction[:, 2]
    if slice_axis[int(np.argmax(np.abs(slice_axis)))] < 0:
        origin = origin + slice_axis * spacing_xyz[2] * (array.shape[0] - 1)
        direction[:, 2] = -slice_axis
        array = array[::-1]

    values = np.rint(array) if np.issubdtype(array.dtype, np.floating) else array
    padding = values <= PADDING_MAX_HU
    hu = np.clip(values, HU_MIN, HU_MAX).astype(np.int16)
    padded_voxels = int(np.count_nonzero(padding))
    padding_values: tuple[int, ...] = ()
    if padded_voxels:
        padding_values = tuple(sorted({int(hu[padding].min()), int(hu[padding].max())}))
        hu[padding] = AIR_HU
    meta = VolumeMeta(
        description=path.name,
        contrast_hint=contrast_hint(None, path.name),
        orientation=orientation_name(direction[:, 2]),
        source=str(path),
        padding_values_hu=padding_values,
        padded_voxels=padded_voxels,
        warnings=("values assumed to be HU: image files do not say",),
    )
    return Volume(
        hu=np.ascontiguousarray(hu),
        spacing=(float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0])),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=direction,
        slice_uids=None,
        meta=meta,
    )


def to_sitk(array: np.ndarray, reference: Volume) -> sitk.Image:
    """Wrap a (z, y, x) array in the geometry of ``reference`` as a SimpleITK image."""
    if array.shape != reference.shape:
        raise ValueError(f"array shape {array.shape} differs from volume {reference.shape}")
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(reference.spacing[::-1])
    image.SetOrigin(reference.origin)
    image.SetDirection(tuple(np.asarray(reference.direction, dtype=float).ravel()))
    return image


def write_image(array: np.ndarray, reference: Volume, path: str | os.PathLike[str]) -> Path:
    """Write a (z, y, x) array (a mask, a probability map) in the geometry of ``reference``.

    The file appears atomically: it is written beside the target and then renamed, so a crash
    never leaves a half-written file under the final name.

    Parameters
    ----------
    array
        (z, y, x) values, same shape as ``reference.hu``.
    reference
        The volume whose spacing, origin and direction the file takes.
    path
        Target file; the format follows the suffix (.nii.gz, .nrrd, .mha).

    Returns
    -------
    Path
        The written file.
    """
    target = Path(path)
    suffix = "".join(target.suffixes[-2:]) if target.name.endswith(".gz") else target.suffix
    image = to_sitk(array, reference)
    with atomic_target(target, suffix=suffix) as temporary:
        sitk.WriteImage(image, str(temporary), useCompression=True)
    return target
