"""Seed 1's slice classifier: a timm backbone (ResNet-50, Swin-T, or a small demo backbone)."""

from __future__ import annotations

from typing import Any

import timm
from torch import nn

from pe_models.nets.registry import register

SWIN_PREFIX = "swin"


def timm_kwargs(backbone: str, img_size: int | None) -> dict[str, Any]:
    """Extra timm arguments: Swin asserts its input size, so it is built for ``img_size``."""
    if backbone.startswith(SWIN_PREFIX) and img_size is not None:
        return {"img_size": img_size}
    return {}


@register("classifier")
def build_classifier(
    *,
    backbone: str = "resnet50",
    in_chans: int = 3,
    num_classes: int = 1,
    img_size: int | None = None,
) -> nn.Module:
    """A slice classifier returning logits (B, num_classes) for images (B, in_chans, H, W).

    Weights start random (``pretrained=False``: nothing is downloaded); trained or ImageNet
    weights come from local files through model bundles.
    """
    return timm.create_model(
        backbone,
        pretrained=False,
        num_classes=num_classes,
        in_chans=in_chans,
        **timm_kwargs(backbone, img_size),
    )
