"""Seed 1's localiser: torchvision Faster R-CNN on the classifier's timm backbone + FPN."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import timm
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from pe_models.nets.classifier import SWIN_PREFIX, timm_kwargs
from pe_models.nets.registry import register
from pe_models.nets.unet import copy_matching

ANCHOR_SIZES_PX = ((8,), (16,), (32,), (64,), (128,))
"""One anchor size per pyramid level: emboli are 5-100 px across on a 512 px slice."""

BOX_HEAD_FEATURES = 512
"""Width of the box head's two layers (torchvision: 1024); a slice holds a few emboli at most."""

PROPOSALS_AT_TEST = 300
"""Region proposals kept per image at inference (torchvision: 1000); the box head's cost
scales with it."""


class TimmFpnBackbone(nn.Module):
    """A timm ``features_only`` encoder with an FPN on top, as torchvision detectors expect.

    Attributes
    ----------
    out_channels
        Channels of every pyramid level (torchvision reads this).
    """

    def __init__(
        self,
        backbone: str,
        *,
        in_chans: int,
        img_size: int | None,
        out_channels: int = 256,
        channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        body: Any = timm.create_model(
            backbone,
            pretrained=False,
            features_only=True,
            out_indices=(1, 2, 3, 4),
            in_chans=in_chans,
            **timm_kwargs(backbone, img_size, channels),
        )
        self.body = body
        self.channels_last = backbone.startswith(SWIN_PREFIX)  # timm Swin features are NHWC
        self.fpn = FeaturePyramidNetwork(
            body.feature_info.channels(), out_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Pyramid features of (B, C, H, W) images, finest first."""
        features = self.body(images)
        if self.channels_last:
            features = [f.permute(0, 3, 1, 2).contiguous() for f in features]
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))


@register("detector")
def build_detector(
    *,
    backbone: str = "resnet50",
    in_chans: int = 3,
    num_classes: int = 2,
    min_size: int = 512,
    max_size: int = 512,
    image_mean: tuple[float, ...] | None = None,
    image_std: tuple[float, ...] | None = None,
    fpn_channels: int = 256,
    sampled_rois: int = 512,
    channels: Sequence[int] | None = None,
) -> FasterRCNN:
    """Faster R-CNN for PE boxes; ``num_classes`` counts the background.

    ``fpn_channels`` sets the pyramid width (the box head's input is ``fpn_channels`` × 7 × 7);
    ``sampled_rois`` is how many proposals per image train the box head (torchvision: 512; a
    slice holds a few emboli, so fewer train as well, faster).

    Inputs are windowed CT channels in [0, 1], so the default normalisation is the identity
    (mean 0, std 1) rather than ImageNet's, and ``min_size = max_size`` keeps a 512 px slice at
    512 px instead of torchvision's 800.
    """
    img_size = max_size if backbone.startswith(SWIN_PREFIX) else None
    body = TimmFpnBackbone(
        backbone, in_chans=in_chans, img_size=img_size, out_channels=fpn_channels, channels=channels
    )
    return faster_rcnn(
        body,
        num_classes=num_classes,
        min_size=min_size,
        max_size=max_size,
        image_mean=image_mean or (0.0,) * in_chans,
        image_std=image_std or (1.0,) * in_chans,
        sampled_rois=sampled_rois,
    )


def faster_rcnn(
    backbone: nn.Module,
    *,
    num_classes: int,
    min_size: int,
    max_size: int,
    image_mean: tuple[float, ...],
    image_std: tuple[float, ...],
    sampled_rois: int = 512,
) -> FasterRCNN:
    """Faster R-CNN with PE-sized anchors and a lean box head on any FPN ``backbone``."""
    out_channels = int(backbone.out_channels)  # type: ignore[arg-type]
    return FasterRCNN(
        backbone,
        min_size=min_size,
        max_size=max_size,
        image_mean=list(image_mean),
        image_std=list(image_std),
        rpn_post_nms_top_n_test=PROPOSALS_AT_TEST,
        box_batch_size_per_image=sampled_rois,
        box_head=TwoMLPHead(out_channels * 7 * 7, BOX_HEAD_FEATURES),
        box_predictor=FastRCNNPredictor(BOX_HEAD_FEATURES, num_classes),
        rpn_anchor_generator=AnchorGenerator(
            ANCHOR_SIZES_PX, ((0.5, 1.0, 2.0),) * len(ANCHOR_SIZES_PX)
        ),
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2),
    )


def transfer_backbone_weights(classifier: nn.Module, detector: FasterRCNN) -> list[str]:
    """Initialise the detector's backbone from a trained classifier; returns copied names."""
    return copy_matching(classifier, detector.backbone.body)
