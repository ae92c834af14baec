"""Seed 2's CBAM-DRN and its multi-window (DWL / TWL) variant.

DRN here is a dilated timm ResNet (``output_stride=8``: the last two stages keep 1/8 resolution
with dilation 2 and 4, as in Yu et al.'s DRN-C without the degridding layers), with a CBAM block
(channel then spatial attention, ``timm.layers`` ``cbam``) after every stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import timm
import torch
from timm.layers import create_attn
from torch import nn

from pe_models.nets.classifier import timm_kwargs
from pe_models.nets.registry import register


def start_uniform(cbam: nn.Module) -> None:
    """Start a timm CBAM block with gates that are the same everywhere (0.5 each).

    The last layer of each gate starts at zero (zero-γ, as for residual branches), so at first
    the block only scales its input by 0.25, which the next stage's batch norm takes out. With
    the default random start, every channel and pixel got its own random gate, which scrambles
    the features of an encoder the branch starts from (:func:`branches_from_encoder`).
    """
    nn.init.zeros_(cbam.get_parameter("channel.fc2.weight"))
    nn.init.zeros_(cbam.get_parameter("spatial.conv.bn.weight"))


POOLS = ("avg", "max", "map")
"""Global pooling: of the final feature map (``avg``, ``max``), or ``map``: the linear head at
every position of it (a logit map, see :func:`head_map`), then the map's maximum."""


def head_map(head: nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """Logit map (B, num_classes, h, w): ``head`` applied at every position of ``features``.

    ``features`` is (B, C, h, w). The slice logit of a ``map`` model is the map's maximum, so
    the slice is as suspicious as its most suspicious position, and the map itself can be
    trained against a lesion mask (``TrainSpec.lesion_map_weight``).
    """
    return torch.einsum("bchw,kc->bkhw", features, head.weight) + head.bias[None, :, None, None]


def _pooled(features: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, C) global pooling of a (B, C, h, w) feature map: ``avg`` or ``max``."""
    return features.amax(dim=(2, 3)) if pool == "max" else features.mean(dim=(2, 3))


class CbamDrn(nn.Module):
    """Dilated ResNet with CBAM after each stage; logits (B, num_classes) or pooled features.

    Parameters
    ----------
    depth
        timm ResNet name: ``resnet18``, ``resnet34``, ``resnet50``, ...
    in_chans
        Input channels (one per window).
    num_classes
        Output logits; 0 returns the pooled features (B, num_features).
    channels
        Stage widths of a narrow ResNet (see :func:`~pe_models.nets.classifier.timm_kwargs`).
    pool
        One of :data:`POOLS`; ``"map"`` needs ``num_classes`` ≥ 1.
    """

    def __init__(
        self,
        *,
        depth: str = "resnet50",
        in_chans: int = 1,
        num_classes: int = 1,
        channels: Sequence[int] | None = None,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid: {', '.join(POOLS)}")
        if pool == "map" and not num_classes:
            raise ValueError("pool 'map' applies the head at every position; it needs classes")
        self.pool = pool
        base: Any = timm.create_model(
            depth,
            pretrained=False,
            in_chans=in_chans,
            output_stride=8,
            num_classes=0,
            **timm_kwargs(depth, None, channels),
        )
        self.stem = nn.Sequential(base.conv1, base.bn1, base.act1, base.maxpool)
        self.stages = nn.ModuleList([base.layer1, base.layer2, base.layer3, base.layer4])
        channels = [info["num_chs"] for info in base.feature_info[1:]]
        self.attention = nn.ModuleList([create_attn("cbam", c) for c in channels])
        for block in self.attention:
            start_uniform(block)
        self.num_features = channels[-1]
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Feature map (B, num_features, H/8, W/8) of images (B, in_chans, H, W)."""
        x = self.stem(images)
        for stage, attention in zip(self.stages, self.attention, strict=True):
            x = attention(stage(x))
        return x

    def logit_map(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H/8, W/8) at every position (see :func:`head_map`)."""
        if not isinstance(self.head, nn.Linear):
            raise ValueError("a CBAM-DRN built without classes has no logit map")
        return head_map(self.head, self.forward_features(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes), or pooled features when built with ``num_classes=0``."""
        if self.pool == "map":
            return self.logit_map(images).amax(dim=(2, 3))
        return self.head(_pooled(self.forward_features(images), self.pool))


class MultiWindowCbamDrn(nn.Module):
    """Seed 2's multi-window model: one CBAM-DRN branch per window, features concatenated.

    Input channel ``i`` (one HU window, e.g. vascular then lung for DWL) feeds branch ``i``.
    ``pool`` is one of :data:`POOLS`; with ``map`` the head sees the branches' feature maps
    concatenated at each position.
    """

    def __init__(
        self,
        *,
        depth: str = "resnet50",
        windows: int = 2,
        num_classes: int = 1,
        channels: Sequence[int] | None = None,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        self.pool = pool
        branch_pool = "max" if pool == "map" else pool  # a branch checks it; unused with "map"
        self.branches = nn.ModuleList(
            [
                CbamDrn(depth=depth, in_chans=1, num_classes=0, channels=channels, pool=branch_pool)
                for _ in range(windows)
            ]
        )
        features = sum(branch.num_features for branch in self.branches)  # type: ignore[misc]
        self.head = nn.Linear(features, num_classes)

    def logit_map(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H/8, W/8) of images (B, windows, H, W) at every position."""
        branches = cast("list[CbamDrn]", list(self.branches))
        features = [
            branch.forward_features(images[:, i : i + 1]) for i, branch in enumerate(branches)
        ]
        return head_map(self.head, torch.cat(features, dim=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of images (B, windows, H, W)."""
        if self.pool == "map":
            return self.logit_map(images).amax(dim=(2, 3))
        pooled = [branch(images[:, i : i + 1]) for i, branch in enumerate(self.branches)]
        return self.head(torch.cat(pooled, dim=1))


FIRST_CONV = "stem.0.0.weight"
"""The first convolution of a branch's deep (resnet-t/d) stem."""


def branches_from_encoder(
    model: MultiWindowCbamDrn,
    encoder: nn.Module,
    encoder_windows: Sequence[str],
    windows: Sequence[str],
) -> list[str]:
    """Start each window's branch from a timm ResNet encoder of the same depth and widths.

    The encoder (a seed-1 classifier's or U-Net's, e.g. the demo U-Net's resnet10t) saw the
    ``encoder_windows`` as input channels; branch ``i`` sees window ``windows[i]`` alone, so
    its first convolution takes the encoder's filters of that window's channel. Every other
    stem and stage tensor passes as it is (dilation changes no weight's shape); the CBAM
    blocks keep their uniform start (:func:`start_uniform`) and the head its fresh one.

    Returns
    -------
    list[str]
        The names of the tensors set, in ``model``.

    Raises
    ------
    ValueError
        A window the encoder never saw, or an encoder of other widths.
    """
    state = encoder.state_dict()
    update = {}
    for i, window in enumerate(windows):
        if window not in encoder_windows:
            raise ValueError(
                f"window {window!r} is not an input of the encoder ({', '.join(encoder_windows)})"
            )
        channel = encoder_windows.index(window)
        for name, tensor in model.branches[i].state_dict().items():
            source = _resnet_name(name)
            if source not in state:
                continue  # CBAM and head: not in a ResNet
            value = state[source]
            if name == FIRST_CONV:
                value = value[:, channel : channel + 1]
            if value.shape != tensor.shape:
                raise ValueError(
                    f"{source}: encoder {tuple(value.shape)}, branch {tuple(tensor.shape)}"
                )
            update[f"branches.{i}.{name}"] = value
    model.load_state_dict(update, strict=False)
    return list(update)


def _resnet_name(name: str) -> str:
    """A branch tensor's name in the timm ResNet it was built from."""
    parts = name.split(".")
    if parts[0] == "stem":  # Sequential(conv1, bn1, act1, maxpool)
        return ".".join([("conv1", "bn1")[int(parts[1])], *parts[2:]])
    if parts[0] == "stages":
        return ".".join([f"layer{int(parts[1]) + 1}", *parts[2:]])
    return name


@register("cbam_drn")
def build_cbam_drn(
    *,
    depth: str = "resnet50",
    in_chans: int = 1,
    num_classes: int = 1,
    channels: Sequence[int] | None = None,
    pool: str = "avg",
) -> nn.Module:
    """Single-input CBAM-DRN (all windows stacked as channels of one branch)."""
    return CbamDrn(
        depth=depth, in_chans=in_chans, num_classes=num_classes, channels=channels, pool=pool
    )


@register("mwl_cbam_drn")
def build_multi_window(
    *,
    depth: str = "resnet50",
    windows: int = 2,
    num_classes: int = 1,
    channels: Sequence[int] | None = None,
    pool: str = "avg",
) -> nn.Module:
    """DWL (``windows=2``: vascular + lung) or TWL (``windows=3``: + mediastinal) model."""
    return MultiWindowCbamDrn(
        depth=depth, windows=windows, num_classes=num_classes, channels=channels, pool=pool
    )
