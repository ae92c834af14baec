"""Seed 1's integrated model: one shared encoder, classification, U-Net and Faster R-CNN heads.

The encoder runs once per batch: the detector's backbone computes the encoder features (the
detector keeps images at their size and normalises by identity, so it sees the same tensors),
and the classification and segmentation heads reuse them. All three losses train the encoder.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import segmentation_models_pytorch as smp
import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from pe_models.nets.classifier import timm_kwargs
from pe_models.nets.detector import faster_rcnn
from pe_models.nets.registry import register


class SharedEncoderFpn(nn.Module):
    """FPN over a shared smp encoder's stride 4-32 features; keeps them for the other heads."""

    def __init__(self, encoder: nn.Module, out_channels: int = 256) -> None:
        super().__init__()
        self.encoder = encoder
        channels = list(encoder.out_channels)[2:]  # type: ignore[arg-type]
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels
        self.features: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Pyramid features; the encoder's full feature list stays in ``self.features``."""
        self.features = self.encoder(images)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(self.features[2:])))


class IntegratedModel(nn.Module):
    """Classification, segmentation and localisation from one encoder (seed 1, step 7).

    ``forward(images, targets=None)`` returns a dict: ``logits`` (B, 1), ``mask_logits``
    (B, 1, H, W) and ``detections`` (torchvision's boxes per image in eval mode, its losses in
    train mode when ``targets`` are given).
    """

    def __init__(
        self,
        *,
        backbone: str = "resnet50",
        in_chans: int = 3,
        input_size: int = 512,
        channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.unet = smp.Unet(
            encoder_name=f"tu-{backbone}",
            encoder_weights=None,
            in_channels=in_chans,
            classes=1,
            aux_params={"classes": 1, "pooling": "avg"},
            **timm_kwargs(backbone, input_size, channels),
        )
        self.detector = faster_rcnn(
            SharedEncoderFpn(self.unet.encoder),
            num_classes=2,
            min_size=input_size,
            max_size=input_size,
            image_mean=(0.0,) * in_chans,
            image_std=(1.0,) * in_chans,
        )

    def forward(
        self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None
    ) -> dict[str, object]:
        """Run the three heads on (B, C, S, S) images (S = ``input_size``)."""
        detections = self.detector(list(images), targets)
        features = self.detector.backbone.features
        unet = self.unet
        mask_logits = unet.segmentation_head(unet.decoder(features))
        logits = unet.classification_head(features[-1])
        return {"logits": logits, "mask_logits": mask_logits, "detections": detections}


@register("integrated")
def build_integrated(
    *,
    backbone: str = "resnet50",
    in_chans: int = 3,
    input_size: int = 512,
    channels: Sequence[int] | None = None,
) -> nn.Module:
    """The integrated multi-task model on a timm backbone (``channels``: narrow ResNet)."""
    return IntegratedModel(
        backbone=backbone, in_chans=in_chans, input_size=input_size, channels=channels
    )
