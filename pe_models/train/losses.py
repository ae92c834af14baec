"""Losses beyond plain BCE: a mask's and a classifier's logit map's.

BCE + Dice for segmentation, optionally with every clot piece weighted alike; a balanced BCE
for the logit map of a slice classifier against lesion masks.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from scipy import ndimage

from pe_models.metrics.pieces import EIGHT_NEIGHBOURS


def piece_weights(truth: torch.Tensor, reference_px: int) -> torch.Tensor:
    """Per-pixel BCE weights that make each small clot piece count like a larger one.

    A pixel of a 2D connected piece (8-neighbour) of ``s`` pixels weighs
    ``max(1, reference_px / s)``; background pixels weigh 1. So every piece of the target
    weighs at least as much as one of ``reference_px`` pixels, as blob loss balances
    instances: with plain BCE a 20 px clot is lost among the 300 px ones.

    Parameters
    ----------
    truth
        (B, H, W) 0/1 target masks.
    reference_px
        Size (pixels, model input) below which a piece's pixels are weighted up.

    Returns
    -------
    torch.Tensor
        float32 (B, H, W) weights on ``truth``'s device.
    """
    masks = truth.detach().cpu().numpy() > 0
    weights = np.ones(masks.shape, dtype=np.float32)
    for weight, mask in zip(weights, masks, strict=True):
        labels, count = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
        if count:
            sizes = np.bincount(labels.ravel())[1:]
            per_piece = np.maximum(1.0, reference_px / sizes).astype(np.float32)
            weight[mask] = per_piece[labels[mask] - 1]
    return torch.from_numpy(weights).to(truth.device)


def mask_loss(
    logits: torch.Tensor,
    truth: torch.Tensor,
    dice: torch.nn.Module,
    *,
    piece_weight_px: int | None = None,
) -> torch.Tensor:
    """BCE + Dice of (B, 1, H, W) logits against (B, H, W) 0/1 truth.

    With ``piece_weight_px`` the BCE weighs pixels by :func:`piece_weights`; Dice, over the
    whole batch, is left as it is.
    """
    target = truth.float()[:, None]
    weight = None if piece_weight_px is None else piece_weights(truth, piece_weight_px)[:, None]
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight) + dice(logits, target)


def lesion_map_loss(logit_map: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Balanced BCE of a (B, 1, h, w) logit map against (B, H, W) 0/1 lesion masks.

    A cell's target is 1 when its block of the mask (H/h x W/w pixels) holds a lesion pixel.
    Positive and negative cells weigh half each (the mean over either alone when the batch
    has no cell of the other): a small lesion covers a few cells of hundreds.
    """
    cells = F.adaptive_max_pool2d(masks.float()[:, None], logit_map.shape[-2:])
    losses = F.binary_cross_entropy_with_logits(logit_map, cells, reduction="none")
    positive = cells > 0.5
    parts = [losses[part].mean() for part in (positive, ~positive) if part.any()]
    return torch.stack(parts).mean()
