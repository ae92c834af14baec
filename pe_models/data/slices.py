"""Studies prepared as model inputs, and the torch datasets that training draws from.

Preparation runs the same preprocessing as :class:`pe_models.inference.Pipeline` (lung crop,
window stack, resize: :mod:`pe_models.preprocess.model_input`), so a model trains on exactly
what it will see at inference. Masks and boxes are carried into the model-input frame.
Prepared studies are cached on disk, keyed by the study and the input recipe.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import operator
import os
import struct
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling

from pe_models.data.records import NO_PE, LabelledStudy, StudyRecord
from pe_models.demo import cache_dir
from pe_models.io.atomic import atomic_target
from pe_models.preprocess.lung_crop import CropBox
from pe_models.preprocess.model_input import crop_box, model_input
from pe_models.preprocess.stack import WindowStack

PREPARED_VERSION = 2
"""Bump when preparation changes, so cached studies are made again."""

LESION_LABELS = ("other_disease", "pe")


@dataclass(frozen=True)
class InputSpec:
    """How slices become model input (a bundle config's input fields).

    Attributes
    ----------
    windows
        HU window preset per channel.
    normalisation
        ``unit`` or ``zero_center`` (see :class:`~pe_models.preprocess.stack.WindowStack`).
    size
        Side of the square model input in pixels.
    crop
        ``dynamic``, ``thorax``, ``fixed`` or ``none``.
    context_mm
        0 for 2D input; else neighbour slices this many mm away as two more channels (2.5D).
    """

    windows: tuple[str, ...]
    normalisation: str = "unit"
    size: int = 256
    crop: str = "dynamic"
    context_mm: float = 0.0

    @property
    def channels(self) -> int:
        """Number of input channels."""
        return len(self.windows) + (2 if self.context_mm else 0)

    def key(self) -> str:
        """A short digest naming this recipe in cache file names."""
        recipe = asdict(self)
        if not self.context_mm:  # 2D recipes keep the names they had before 2.5D existed
            del recipe["context_mm"]
        text = json.dumps({**recipe, "version": PREPARED_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def normalise(self, unit_uint8: torch.Tensor) -> torch.Tensor:
        """float32 model input from cached uint8 (0-255 = window [0, 1])."""
        unit = unit_uint8.float() / 255.0
        return unit * 2.0 - 1.0 if self.normalisation == "zero_center" else unit


@dataclass(frozen=True)
class StoredSlices:
    """One (n, ...) array inside an uncompressed .npz, read one slice at a time.

    Training draws a few slices per step from every study; reading each from the cache file
    when it is drawn keeps memory flat however many studies train (the OS page cache keeps the
    files in use), where holding every study's images and masks took ~15 GB for 144 phantoms.

    Attributes
    ----------
    path
        The .npz file.
    offset
        Byte offset of the array's data in the file.
    shape
        The whole array's shape, slices first.
    dtype
        Its element type.
    """

    path: Path
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @classmethod
    def open(cls, path: Path, name: str) -> StoredSlices:
        """Find array ``name`` in ``path``, written by ``np.savez`` (stored, not compressed)."""
        with zipfile.ZipFile(path) as archive:
            member = archive.getinfo(f"{name}.npy")
        if member.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{path}: array {name!r} is compressed; slices cannot be read alone")
        with open(path, "rb") as handle:
            # The local header's name and extra lengths can differ from the central directory's.
            handle.seek(member.header_offset + 26)
            name_length, extra_length = struct.unpack("<HH", handle.read(4))
            handle.seek(member.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(handle)
            offset = handle.tell()
        if fortran_order or not shape:
            raise ValueError(f"{path}: array {name!r} is not stored as C-ordered slices")
        return cls(path, offset, tuple(shape), np.dtype(dtype))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        """Slice ``index`` (a writable copy, read from the file)."""
        k = operator.index(index)
        if not 0 <= k < len(self):
            raise IndexError(f"slice {k} out of range for {len(self)} slices in {self.path}")
        return self._read(k, 1)[0]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """Every slice, read at once: always a new array, so ``copy=False`` is refused."""
        if copy is False:
            raise ValueError(f"{self.path}: slices stored on disk cannot be viewed without a copy")
        whole = self._read(0, len(self))
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def _read(self, start: int, count: int) -> np.ndarray:
        out = np.empty((count, *self.shape[1:]), self.dtype)
        slice_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        with open(self.path, "rb") as handle:
            handle.seek(self.offset + start * slice_bytes)
            if handle.readinto(out.data.cast("B")) != out.nbytes:
                raise ValueError(f"{self.path}: file ends before slice {start + count - 1}")
        return out


@dataclass(frozen=True, eq=False)
class PreparedStudy:
    """The kept slices of one study in the model-input frame.

    Attributes
    ----------
    patient_id, study_id
        From the record.
    z
        (n,) int indices of the kept slices in the volume.
    labels
        Per kept slice: a slice label (``normal``, ``other_disease``, ``pe``, ``no_pe``).
    images
        uint8 (n, C, S, S): windows in [0, 1] scaled to 0-255; in memory, or read from the
        cache file a slice at a time.
    masks
        uint8 (n, S, S) 0/1 PE masks (in memory or read a slice at a time), or None when the
        study has none.
    boxes
        Per kept slice, float32 (k, 4) PE boxes x0, y0, x1, y1 in input pixels; None if unknown.
    other_masks
        uint8 (n, S, S) 0/1 masks of other lesions (PE mimics), like ``masks``.
    """

    patient_id: str
    study_id: str
    z: np.ndarray
    labels: tuple[str, ...]
    images: np.ndarray | StoredSlices
    masks: np.ndarray | StoredSlices | None
    boxes: tuple[np.ndarray, ...] | None
    other_masks: np.ndarray | StoredSlices | None = None


def boxes_to_input(boxes: np.ndarray, crop: CropBox, size: int) -> np.ndarray:
    """Map (k, 4) original-pixel boxes into the (size × size) model input of ``crop``.

    The inverse of :meth:`CropBox.boxes_to_original`; boxes are clipped to the crop and
    dropped when nothing of them is left.
    """
    mapped = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    mapped[:, [0, 2]] = (mapped[:, [0, 2]] - crop.x0) * size / crop.shape[1]
    mapped[:, [1, 3]] = (mapped[:, [1, 3]] - crop.y0) * size / crop.shape[0]
    mapped = np.clip(mapped, 0, size)
    keep = (mapped[:, 2] > mapped[:, 0]) & (mapped[:, 3] > mapped[:, 1])
    return mapped[keep]


def select_slices(labels: Sequence[str], normal_stride: int) -> np.ndarray:
    """Indices to keep: every lesion slice and every ``normal_stride``-th other slice."""
    z = np.arange(len(labels))
    lesion = np.isin(np.asarray(labels), LESION_LABELS)
    return z[lesion | (z % max(1, normal_stride) == 0)]


def prepare_study(
    record: StudyRecord, study: LabelledStudy, spec: InputSpec, normal_stride: int = 1
) -> PreparedStudy:
    """Turn the kept slices of a loaded study into model inputs with their targets."""
    volume = study.volume
    labels = study.slice_labels or (NO_PE,) * volume.shape[0]
    keep = select_slices(labels, normal_stride)
    windows = WindowStack(spec.windows, normalisation="unit")
    crops = [crop_box(volume.hu[z], volume.spacing[1:], spec.crop) for z in keep]
    images = np.concatenate(
        [
            _to_uint8(
                model_input(volume, [z], [crop], windows, spec.size, context_mm=spec.context_mm)
            )
            for z, crop in zip(keep, crops, strict=True)
        ]
    )

    def to_input(mask: np.ndarray | None) -> np.ndarray | None:
        if mask is None:
            return None
        return np.stack(
            [
                _resize_mask(crop.apply(mask[z]), spec.size)
                for z, crop in zip(keep, crops, strict=True)
            ]
        )

    boxes = None
    if study.boxes is not None:
        boxes = tuple(
            boxes_to_input(np.asarray(study.boxes[z], dtype=float), crop, spec.size)
            for z, crop in zip(keep, crops, strict=True)
        )
    return PreparedStudy(
        record.patient_id,
        record.study_id,
        keep,
        tuple(labels[z] for z in keep),
        images,
        to_input(study.pe_mask),
        boxes,
        to_input(study.other_mask),
    )


def _to_uint8(unit: torch.Tensor) -> np.ndarray:
    return (unit.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a (h, w) 0/1 mask like the image (antialiased bilinear), then threshold at 0.5."""
    resized = F.interpolate(
        torch.from_numpy(mask.astype(np.float32))[None, None],
        size=(size, size),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return (resized[0, 0] >= 0.5).to(torch.uint8).numpy()


def prepared_cache_dir() -> Path:
    """Where prepared studies are cached (under the pe-viewer cache folder)."""
    return cache_dir() / f"prepared-v{PREPARED_VERSION}"


def _cache_path(record: StudyRecord, spec: InputSpec, normal_stride: int) -> Path:
    name = f"{record.file_stem}-{spec.key()}-s{normal_stride}.npz"
    return prepared_cache_dir() / record.dataset / name


def save_prepared(study: PreparedStudy, path: Path) -> None:
    """Write a prepared study to ``path`` (.npz) atomically."""
    arrays: dict[str, np.ndarray] = {
        "z": study.z,
        "labels": np.array(study.labels),
        "images": np.asarray(study.images),
        "ids": np.array([study.patient_id, study.study_id]),
    }
    if study.masks is not None:
        arrays["masks"] = np.asarray(study.masks)
    if study.other_masks is not None:
        arrays["other_masks"] = np.asarray(study.other_masks)
    if study.boxes is not None:
        arrays["box_counts"] = np.array([len(b) for b in study.boxes])
        arrays["boxes"] = np.concatenate([np.zeros((0, 4), np.float32), *study.boxes])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path, suffix=".npz") as staging, open(staging, "wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)


def load_prepared(path: Path, *, in_memory: bool = True) -> PreparedStudy:
    """Read a study written by :func:`save_prepared`.

    With ``in_memory=False`` images and masks stay in the file and are read a slice at a time
    (:class:`StoredSlices`); slice indices, labels and boxes are always read.
    """

    def pixels(data: Any, name: str) -> np.ndarray | StoredSlices:
        return data[name] if in_memory else StoredSlices.open(path, name)

    with np.load(path) as data:
        boxes = None
        if "boxes" in data:
            ends = np.cumsum(data["box_counts"])
            boxes = tuple(np.split(data["boxes"], ends[:-1]))
        patient_id, study_id = (str(v) for v in data["ids"])
        return PreparedStudy(
            patient_id,
            study_id,
            data["z"],
            tuple(str(v) for v in data["labels"]),
            pixels(data, "images"),
            pixels(data, "masks") if "masks" in data else None,
            boxes,
            pixels(data, "other_masks") if "other_masks" in data else None,
        )


def _ensure_cached(record: StudyRecord, specs: Sequence[InputSpec], normal_stride: int) -> None:
    """Prepare and cache the study for every spec not cached yet (loading it at most once)."""
    missing = [spec for spec in specs if not _cache_path(record, spec, normal_stride).is_file()]
    if not missing:
        return
    torch.set_num_threads(1)
    study = record.load()
    for spec in missing:
        prepared = prepare_study(record, study, spec, normal_stride)
        save_prepared(prepared, _cache_path(record, spec, normal_stride))


def cache_studies(
    records: Sequence[StudyRecord],
    specs: Sequence[InputSpec],
    *,
    normal_stride: int = 1,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> None:
    """Prepare every study not yet cached for every spec, in parallel processes.

    Each study is loaded (for phantoms: generated) once for all ``specs``; arguments as for
    :func:`prepare_studies`.
    """
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    if workers == 0:
        for i, record in enumerate(records):
            _ensure_cached(record, specs, normal_stride)
            if progress:
                progress(i + 1, len(records), record.study_id)
    else:
        # spawn, not fork: a forked child inherits the parent's OpenMP state and can hang.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(_ensure_cached, r, specs, normal_stride) for r in records]
            for i, (record, future) in enumerate(zip(records, futures, strict=True)):
                future.result()
                if progress:
                    progress(i + 1, len(records), record.study_id)


def prepare_studies(
    records: Sequence[StudyRecord],
    specs: Sequence[InputSpec],
    *,
    normal_stride: int = 1,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[list[PreparedStudy]]:
    """Prepare (or read from the cache) every study for every spec, in parallel processes.

    Each study is loaded (for phantoms: generated) once for all ``specs``.

    Parameters
    ----------
    normal_stride
        Keep every lesion slice and every ``normal_stride``-th other slice.
    workers
        Processes (default: the CPU count, at most 8); 0 prepares in this process.
    progress
        Called with (done, total, study_id) after each study.

    Returns
    -------
    list
        Per spec, the prepared studies in record order; their images and masks are read from
        the cache a slice at a time (:class:`StoredSlices`).
    """
    cache_studies(records, specs, normal_stride=normal_stride, workers=workers, progress=progress)
    return [
        [
            load_prepared(_cache_path(record, spec, normal_stride), in_memory=False)
            for record in records
        ]
        for spec in specs
    ]
