"""Decode one DICOM image to Hounsfield units."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.pixels import apply_modality_lut

from pe_models.io.dicom_header import DicomHeader
from pe_models.io.errors import (
    CorruptFileError,
    NoPixelDataError,
    StudyReadError,
    UnsupportedTransferSyntaxError,
)
from pe_models.io.transfer_syntax import decoder_problem

_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian


def _read_native(header: DicomHeader) -> np.ndarray | None:
    """Read uncompressed little-endian 16-bit pixels straight from the end of the file.

    Returns None, leaving the file to the general decoders, unless the file ends with a
    PixelData element of exactly the expected length (the usual layout): explicit VR
    (tag, "OW"/"OB", 2 reserved bytes, 4-byte length) or implicit VR (tag, 4-byte length).
    Compressed pixel data ends with a sequence delimiter and never matches. Reading the bytes
    directly is ~10x faster than a full decode.
    """
    if (
        header.bits_allocated != 16
        or header.samples_per_pixel != 1
        or header.n_frames != 1
        or header.has_modality_lut
    ):
        return None
    n_bytes = header.rows * header.columns * 2
    with open(header.path, "rb") as file:
        file.seek(0, 2)
        if file.tell() < n_bytes + 12:
            return None
        file.seek(-(n_bytes + 12), 2)
        tail = file.read(n_bytes + 12)
    length = n_bytes.to_bytes(4, "little")
    explicit = tail[:4] == _PIXEL_DATA_TAG and tail[4:6] in (b"OW", b"OB") and tail[8:12] == length
    implicit = tail[4:8] == _PIXEL_DATA_TAG and tail[8:12] == length
    if not (explicit or implicit):
        return None
    stored = np.frombuffer(tail, dtype="<i2" if header.signed else "<u2", offset=12)
    stored = stored.reshape(header.rows, header.columns)
    unused_bits = 16 - header.bits_stored
    if unused_bits > 0:  # bits above BitsStored may hold overlays: drop them
        if header.signed:
            stored = (stored << unused_bits) >> unused_bits
        else:
            stored = stored & np.uint16((1 << header.bits_stored) - 1)
    slope, intercept = header.rescale_slope, header.rescale_intercept
    if slope == 1.0 and intercept.is_integer():
        return stored.astype(np.int32) + int(intercept)
    return stored * np.float64(slope) + intercept


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
    problem = decoder_problem(str(dataset.file_meta.get("TransferSyntaxUID", "")))
    if problem is not None:
        raise UnsupportedTransferSyntaxError(header.path, problem)
    return np.asarray(apply_modality_lut(dataset.pixel_array, dataset))


def decode_hu(header: DicomHeader) -> np.ndarray:
    """Decode the pixels of one single-frame DICOM image and rescale them to HU.

    Uncompressed images in the usual layout are read directly; compressed ones go to GDCM
    first because it decodes off the GIL; when GDCM refuses a file, pydicom with its pylibjpeg
    plugins decodes it instead and names the problem if it cannot either.

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
    hu = _read_native(header)
    if hu is None and not header.has_modality_lut:  # GDCM ignores a Modality LUT Sequence
        try:
            hu = _decode_with_gdcm(header)
        except (RuntimeError, ValueError):
            hu = None
    if hu is None:
        try:
            hu = _decode_with_pydicom(header)
        except StudyReadError:
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
