"""Seed 1's slice classifier: a timm backbone (ResNet-50, Swin-T, or a small demo backbone)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
from torch import nn

from pe_models.nets.registry import register

SWIN_PREFIX = "swin"


def timm_kwargs(
    backbone: str, img_size: int | None, channels: Sequence[int] | None = None
) -> dict[str, Any]:
    """Extra timm arguments.

    Swin asserts its input size, so it is built for ``img_size``; ``channels`` sets the width
    of each stage of a timm ResNet (e.g. ``(32, 64, 128, 256)``: half of resnet10t's, a
    quarter of its weights; the demo bundles use it to stay small).
    """
    extra: dict[str, Any] = {}
    if backbone.startswith(SWIN_PREFIX) and img_size is not None:
        extra["img_size"] = img_size
    if channels is not None:
        extra["channels"] = tuple(channels)
    return extra


@register("classifier")
def build_classifier(
    *,
    backbone: str = "resnet50",
    in_chans: int = 3,
    num_classes: int = 1,
    img_size: int | None = None,
    weights_file: str | None = None,
    channels: Sequence[int] | None = None,
    global_pool: str = "avg",
) -> nn.Module:
    """A slice classifier returning logits (B, num_classes) for images (B, in_chans, H, W).

    Weights start random and nothing is ever downloaded. ``weights_file`` names a local
    ImageNet checkpoint (timm's ``.safetensors`` / ``.pth`` for this backbone); timm adapts
    its first convolution to ``in_chans`` and drops its 1000-class head. ``global_pool`` is
    timm's pooling before the head: ``"max"`` suits a small finding anywhere in the slice
    (any-evidence pooling), ``"avg"`` is the ImageNet default.
    """
    if weights_file is not None and not Path(weights_file).is_file():
        raise FileNotFoundError(f"{weights_file}: pretrained weights file not found")
    return timm.create_model(
        backbone,
        pretrained=weights_file is not None,
        pretrained_cfg_overlay={"file": weights_file} if weights_file else None,
        num_classes=num_classes,
        in_chans=in_chans,
        global_pool=global_pool,
        **timm_kwargs(backbone, img_size, channels),
    )
