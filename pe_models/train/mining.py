"""Hard negatives mined from a segmentation model's own false clot pieces.

Hand-picked hard negatives (other-disease lesions, ``mimic_fraction``) cover only what a dataset
labels. The pieces a trained U-Net paints where there is no clot — pulmonary veins, muscle at
the lung bases, consolidation — are found by running it over the training slices once before
fine-tuning; patches centred on them teach it what it gets wrong, on any data with PE masks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from pe_models.data.slices import InputSpec, PreparedStudy
from pe_models.inference import select_device
from pe_models.metrics.pieces import EIGHT_NEIGHBOURS

log = logging.getLogger(__name__)

MinedPoint = tuple[int, int, int, int]
"""(study, kept slice, y, x): a pixel of a false piece, in model-input pixels."""


def false_piece_points(predicted: np.ndarray, truth: np.ndarray) -> list[tuple[int, int]]:
    """One pixel of each predicted 2D piece that touches no true clot pixel.

    Parameters
    ----------
    predicted, truth
        (S, S) bool masks: the model's clot pixels and the true ones.

    Returns
    -------
    list
        (y, x) per false piece (8-connected): its pixel nearest the piece's centroid, which
        lies on the piece even where the piece is curved.
    """
    labels, count = ndimage.label(predicted, structure=EIGHT_NEIGHBOURS)
    if count == 0:
        return []
    touches_truth = np.bincount(labels[truth], minlength=count + 1) > 0
    points = []
    for piece, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or touches_truth[piece]:
            continue
        rows, columns = np.nonzero(labels[box] == piece)
        nearest = np.argmin((rows - rows.mean()) ** 2 + (columns - columns.mean()) ** 2)
        points.append((int(rows[nearest]) + box[0].start, int(columns[nearest]) + box[1].start))
    return points


def mine_false_pieces(
    network: nn.Module,
    studies: Sequence[PreparedStudy],
    spec: InputSpec,
    *,
    stride: int,
    batch_size: int = 8,
) -> list[MinedPoint]:
    """Run a U-Net over every ``stride``-th slice of the studies and list its false pieces.

    Parameters
    ----------
    network
        Segmentation network giving (B, 1, S, S) mask logits (or a tuple whose first item they
        are); run in eval mode on the accelerator :func:`select_device` picks, then restored
        to its mode and device.
    studies
        Prepared training studies; slices of studies without PE masks count as clot-free.
    spec
        Their input recipe (normalisation).
    stride
        Mine every ``stride``-th kept slice of each study.

    Returns
    -------
    list
        :data:`MinedPoint` per false piece (predicted probability ≥ 0.5, no true pixel).
    """
    was_training = network.training
    home = next(network.parameters()).device
    device = select_device()
    network.eval().to(device)
    points: list[MinedPoint] = []
    slices_run = 0
    with torch.inference_mode():
        for s, study in enumerate(studies):
            kept = list(range(0, len(study.z), stride))
            for start in range(0, len(kept), batch_size):
                chunk = kept[start : start + batch_size]
                images = torch.stack(
                    [spec.normalise(torch.from_numpy(np.asarray(study.images[k]))) for k in chunk]
                )
                output = network(images.to(device))
                logits = output[0] if isinstance(output, tuple) else output
                predicted = (logits[:, 0] >= 0).cpu().numpy()
                for k, plane in zip(chunk, predicted, strict=True):
                    truth = (
                        np.asarray(study.masks[k]).astype(bool)
                        if study.masks is not None
                        else np.zeros_like(plane)
                    )
                    points += [(s, k, y, x) for y, x in false_piece_points(plane, truth)]
                slices_run += len(chunk)
    network.train(was_training).to(home)
    log.info("mined %d false clot pieces on %d training slices", len(points), slices_run)
    return points
