"""PE boxes as COCO detection JSON: one image per CT slice, one category ``pe`` (id 1).

Written files look like::

    {"info": {...},
     "images": [{"id": 0, "file_name": "dicom/IM0000.dcm", "width": 512, "height": 512,
                 "slice_index": 0}, ...],
     "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [x, y, w, h],
                      "area": 42, "iscrowd": 0}, ...],
     "categories": [{"id": 1, "name": "pe", "supercategory": "lesion"}]}

``bbox`` is COCO's [x, y, width, height] in pixels (x = column, y = row); in memory boxes are
:data:`~pe_models.data.records.Box` (x0, y0, x1, y1) with x1, y1 exclusive, so
``x1 = x + width``. ``slice_index`` is the image's position in the list, which for the files we
write is the slice's z index in the volume's order (inferior → superior).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pe_models.data.errors import DatasetError, read_json
from pe_models.data.records import Box, LabelledStudy
from pe_models.io.atomic import write_text_atomic
from pe_models.synth.phantom import slice_boxes

PE_CATEGORY = {"id": 1, "name": "pe", "supercategory": "lesion"}
"""The one COCO category."""

CocoImage = tuple[str, int, int]
"""file_name, height (rows), width (columns) of one image."""


def boxes_from_mask(pe_mask: np.ndarray) -> tuple[tuple[Box, ...], ...]:
    """One box per 8-connected PE region on each slice of a mask.

    The same boxes the phantom writer stores (it calls the same function).

    Parameters
    ----------
    pe_mask
        (z, y, x) mask, nonzero = PE.

    Returns
    -------
    tuple
        Per z, the boxes (x0, y0, x1, y1) in pixels, x = column, x1 and y1 exclusive; integer
        valued.
    """
    if np.ndim(pe_mask) != 3:
        raise ValueError(f"a PE mask is (z, y, x), got shape {np.shape(pe_mask)}")
    return slice_boxes(np.asarray(pe_mask) != 0)


def _number(value: float) -> int | float:
    """An int where the value is whole, so integer boxes stay integers in the JSON."""
    number = float(value)
    return int(number) if number.is_integer() else number


def coco_document(
    images: Sequence[CocoImage],
    boxes: Sequence[Sequence[Box]],
    *,
    areas: Sequence[Sequence[float]] | None = None,
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the COCO dictionary of :func:`write_coco` (see there for the parameters)."""
    if len(boxes) != len(images):
        raise ValueError(f"boxes for {len(boxes)} images, {len(images)} images given")
    if areas is not None and [len(a) for a in areas] != [len(b) for b in boxes]:
        raise ValueError("areas must give one value per box")
    coco_images = [
        {"id": i, "file_name": name, "width": int(width), "height": int(height), "slice_index": i}
        for i, (name, height, width) in enumerate(images)
    ]
    annotations: list[dict[str, Any]] = []
    for i, image_boxes in enumerate(boxes):
        for j, (x0, y0, x1, y1) in enumerate(image_boxes):
            if x1 < x0 or y1 < y0:
                raise ValueError(f"box {(x0, y0, x1, y1)} of image {i} has negative size")
            area = areas[i][j] if areas is not None else (x1 - x0) * (y1 - y0)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": PE_CATEGORY["id"],
                    "bbox": [_number(x0), _number(y0), _number(x1 - x0), _number(y1 - y0)],
                    "area": _number(area),
                    "iscrowd": 0,
                }
            )
    return {
        "info": dict(info) if info is not None else {"description": "PE boxes"},
        "images": coco_images,
        "annotations": annotations,
        "categories": [dict(PE_CATEGORY)],
    }


def write_coco(
    path: str | os.PathLike[str],
    images: Sequence[CocoImage],
    boxes: Sequence[Sequence[Box]],
    *,
    areas: Sequence[Sequence[float]] | None = None,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write PE boxes as COCO JSON, atomically (complete under its name, or not at all).

    Parameters
    ----------
    path
        Target ``.json`` file.
    images
        (file_name, height, width) per image, usually one per slice in z order; image ids and
        ``slice_index`` are the positions in this list.
    boxes
        Per image, its boxes (x0, y0, x1, y1) in pixels, x1 and y1 exclusive.
    areas
        Per image and box, the annotation ``area`` (e.g. mask pixels inside the box);
        defaults to the box area.
    info
        The ``info`` entry; defaults to ``{"description": "PE boxes"}``.

    Returns
    -------
    Path
        The written file.
    """
    document = coco_document(images, boxes, areas=areas, info=info)
    return write_text_atomic(path, json.dumps(document, indent=1))


def read_coco_images(path: str | os.PathLike[str]) -> list[tuple[dict[str, Any], list[Box]]]:
    """Every image entry of a COCO file with its PE boxes, in file order.

    Annotations of categories other than ``pe`` are ignored (all are taken when the file
    has no category named ``pe``).

    Raises
    ------
    DatasetError
        The file is missing, not JSON, or lacks the COCO keys or fields used here.
    """
    source = Path(path)
    document = read_json(source)
    if "images" not in document:
        raise DatasetError(source, "is not COCO detection JSON: no 'images' list")
    pe_ids = {c.get("id") for c in document.get("categories", []) if c.get("name") == "pe"}
    try:
        by_id: dict[Any, tuple[dict[str, Any], list[Box]]] = {
            image["id"]: (image, []) for image in document["images"]
        }
        for index, annotation in enumerate(document.get("annotations", [])):
            if pe_ids and annotation.get("category_id") not in pe_ids:
                continue
            if annotation["image_id"] not in by_id:
                raise DatasetError(
                    source,
                    f"annotation {index} names image id {annotation['image_id']}, "
                    "which is not among the images",
                )
            x, y, width, height = (float(v) for v in annotation["bbox"])
            by_id[annotation["image_id"]][1].append((x, y, x + width, y + height))
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(source, f"has a malformed image or annotation ({error!r})") from error
    return list(by_id.values())


def read_coco(path: str | os.PathLike[str]) -> dict[str, list[Box]]:
    """PE boxes of a COCO file by image ``file_name``.

    Returns
    -------
    dict
        file_name → boxes (x0, y0, x1, y1) in pixels, x1 and y1 exclusive; images without
        annotations map to an empty list.

    Raises
    ------
    DatasetError
        As :func:`read_coco_images`, or two images share a file name.
    """
    boxes: dict[str, list[Box]] = {}
    for image, image_boxes in read_coco_images(path):
        name = str(image.get("file_name", image["id"]))
        if name in boxes:
            raise DatasetError(Path(path), f"two images are named {name!r}")
        boxes[name] = image_boxes
    return boxes


def slice_image_name(study: LabelledStudy, z: int) -> str:
    """COCO file name of slice ``z``: its SOPInstanceUID, or ``slice_0042`` without UIDs."""
    uids = study.volume.slice_uids
    return uids[z] if uids is not None else f"slice_{z:04d}"


def coco_from_study(study: LabelledStudy) -> tuple[list[CocoImage], list[tuple[Box, ...]]]:
    """The COCO images and boxes of a study, one image per slice in z order.

    Images are named by :func:`slice_image_name`. Boxes come from ``study.boxes``, else
    from the PE mask (one box per 8-connected region of each slice), else every slice is
    empty. Write them with ``write_coco(path, *coco_from_study(study))``.

    Returns
    -------
    images, boxes
        Arguments for :func:`write_coco`.
    """
    z, rows, columns = study.volume.shape
    images = [(slice_image_name(study, i), rows, columns) for i in range(z)]
    if study.boxes is not None:
        boxes = [tuple(b) for b in study.boxes]
    elif study.pe_mask is not None:
        boxes = [tuple(b) for b in boxes_from_mask(study.pe_mask)]
    else:
        boxes = [() for _ in range(z)]
    return images, boxes
