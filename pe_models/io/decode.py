"""Decode one DICOM image to Hounsfield units."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.pixels import apply_modality_lut

from pe_models.io.dicom_header import DicomHeader
from pe_models.io.errors import CorruptFileError, NoPixelDataError


def _decode_with_gdcm(header: DicomHeader) -> np.ndarray:
    """GDCM (through SimpleITK) decodes outside the GIL, so threads scale across cores."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(header.path))
    image = reader.Execute()
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("not a greyscale image")
    array = sitk.GetArrayFromImage(image)  # a copy: a view dies with the image
    return array.reshape(array.shape[-2:])


def _decode_with_pydicom(header: DicomHeader) -> np.ndarray:
    """Decode with pydicom's pylibjpeg / pillow plugins: slower, but it says what is wrong."""
    with warnings.catch_warnings():
        # A truncated file warns "End of file reached"; the error below says it plainly.
        warnings.simplefilter("ignore", UserWarning)
        dataset = pydicom.dcmread(header.path)
    if "PixelData" not in dataset:
        raise NoPixelDataError(
            header.path, "has an image header but no pixel data (the file may be truncated)"
        )
    return np.asarray(apply_modality_lut(dataset.pixel_array, dataset))


def decode_hu(header: DicomHeader) -> np.ndarray:
    """Decode the pixels of one single-frame DICOM image and rescale them to HU.

    GDCM is tried first because it decodes off the GIL; when it refuses a file, pydicom with
    its pylibjpeg plugins decodes it instead and names the problem if it cannot either.

    Parameters
    ----------
    header
        Header of the file, from :func:`pe_models.io.dicom_header.read_header`.

    Returns
    -------
    np.ndarray
        (y, x) HU as stored after RescaleSlope/Intercept, integer or float dtype; padding is
        not yet mapped to air.

    Raises
    ------
    NoPixelDataError
        The file has no pixel data.
    CorruptFileError
        The pixel data is truncated or cannot be decoded.
    """
    try:
        hu = _decode_with_gdcm(header)
    except (RuntimeError, ValueError):
        hu = None
    if hu is None:
        try:
            hu = _decode_with_pydicom(header)
        except (NoPixelDataError, CorruptFileError):
            raise
        except Exception as error:  # decoders raise many types for damaged data
            problem = f"pixel data cannot be decoded ({error})"
            raise CorruptFileError(header.path, problem) from error
    if hu.shape != (header.rows, header.columns):
        raise CorruptFileError(
            header.path,
            f"decoded image is {hu.shape}, header says {header.rows}×{header.columns}",
        )
    return hu
