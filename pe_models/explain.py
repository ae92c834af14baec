"""Grad-CAM explanations (pytorch-grad-cam) for every model kind, in original pixel coordinates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import (
    ClassifierOutputTarget,
    FasterRCNNBoxScoreTarget,
    SemanticSegmentationTarget,
)
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the universal spelling

from pe_models.nets.cbam_drn import CbamDrn, MultiWindowCbamDrn

CAM_METHODS: dict[str, Any] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "eigencam": EigenCAM,
}


def _nhwc_to_nchw(tensor: torch.Tensor) -> torch.Tensor:
    """Timm's Swin blocks work channels-last."""
    return tensor.permute(0, 3, 1, 2)


def _fpn_to_map(features: dict[str, torch.Tensor]) -> torch.Tensor:
    """Every FPN level at the coarsest level's size, stacked (pytorch-grad-cam's recipe)."""
    size = features["pool"].shape[-2:]
    return torch.cat(
        [F.interpolate(f.abs(), size, mode="bilinear") for f in features.values()], dim=1
    )


def target_layers(model: nn.Module, task: str) -> tuple[list[nn.Module], Callable | None]:
    """The layers whose activations the CAM weighs, and the reshape they need."""
    network: Any = model
    if task == "detection":
        return [network.backbone], _fpn_to_map
    if task == "segmentation":
        return [network.decoder.blocks[-1]], None
    if isinstance(model, MultiWindowCbamDrn):
        return [branch.attention[-1] for branch in network.branches], None
    if isinstance(model, CbamDrn):
        return [network.attention[-1]], None
    if hasattr(network, "layers"):  # Swin
        return [network.layers[-1].blocks[-1]], _nhwc_to_nchw
    return [network.layer4[-1]], None  # ResNet


def cam_heatmap(
    model: nn.Module, task: str, images: torch.Tensor, method: str = "gradcam"
) -> np.ndarray:
    """CAM of one model input (1, C, S, S) for its positive (PE / disease) output.

    Parameters
    ----------
    task
        Bundle task: classification, triage stages, segmentation or detection.
    method
        ``gradcam``, ``gradcam++`` or ``eigencam``; detection always uses EigenCAM (gradients
        through box post-processing are not meaningful).

    Returns
    -------
    np.ndarray
        float32 (S, S) heatmap in [0, 1] on the model input.
    """
    if method not in CAM_METHODS:
        raise KeyError(f"unknown CAM method {method!r}; valid: {', '.join(CAM_METHODS)}")
    layers, reshape = target_layers(model, task)
    if task == "detection":
        with torch.no_grad():
            (found,) = model(images)
        boxes, labels = found["boxes"], found["labels"]
        targets: list[Any] = [FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=boxes)]
        cam_class = EigenCAM
    elif task == "segmentation":
        with torch.no_grad():
            predicted = (model(images)[0, 0] > 0).float()
        mask = predicted if predicted.any() else torch.ones_like(predicted)
        targets = [SemanticSegmentationTarget(0, mask.cpu().numpy())]
        cam_class = CAM_METHODS[method]
    else:
        targets = [ClassifierOutputTarget(0)]
        cam_class = CAM_METHODS[method]
    with cam_class(model=model, target_layers=layers, reshape_transform=reshape) as cam:
        heatmap = cam(input_tensor=images, targets=targets)[0]
    return np.nan_to_num(np.asarray(heatmap, dtype=np.float32)).clip(0, 1)
