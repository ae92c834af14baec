"""Seed 1's segmentation U-Net (segmentation-models-pytorch) on the classifier's timm encoder."""

from __future__ import annotations

from collections.abc import Sequence

import segmentation_models_pytorch as smp
from torch import nn

from pe_models.nets.classifier import timm_kwargs
from pe_models.nets.registry import register


@register("unet")
def build_unet(
    *,
    encoder: str = "resnet50",
    in_chans: int = 3,
    classes: int = 1,
    img_size: int | None = None,
    channels: Sequence[int] | None = None,
    decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
    aux_classes: int = 0,
) -> nn.Module:
    """U-Net returning mask logits (B, classes, H, W); the encoder is ``tu-<encoder>`` of timm.

    ``encoder_weights=None``: smp would otherwise download ImageNet weights. ``channels``
    narrows a ResNet encoder (see :func:`~pe_models.nets.classifier.timm_kwargs`);
    ``decoder_channels`` are the decoder widths, finest last (smp's default).
    ``aux_classes > 0`` adds smp's classification head on the deepest features (seed 1, step
    3: classification trained jointly with the U-Net); the model then returns
    ``(mask_logits, class_logits)``.
    """
    return smp.Unet(
        encoder_name=f"tu-{encoder}",
        encoder_weights=None,
        in_channels=in_chans,
        classes=classes,
        decoder_channels=tuple(decoder_channels),
        aux_params={"classes": aux_classes, "pooling": "avg"} if aux_classes else None,
        **timm_kwargs(encoder, img_size, channels),
    )


def transfer_encoder_weights(classifier: nn.Module, unet: nn.Module) -> list[str]:
    """Initialise the U-Net encoder from a trained classifier (seed 1, steps 4-6).

    Parameters
    ----------
    classifier
        A timm classifier with the same backbone as the U-Net's encoder.
    unet
        The U-Net from :func:`build_unet`; modified in place.

    Returns
    -------
    list of str
        Names of the encoder tensors that were copied (everything but the classifier head).

    Raises
    ------
    ValueError
        The classifier and encoder share no tensors (different backbones).
    """
    encoder: nn.Module = unet.encoder.model  # type: ignore[union-attr,assignment]
    return copy_matching(classifier, encoder)


def timm_encoder(model: nn.Module) -> nn.Module:
    """The timm feature extractor inside any seed-1 network.

    A classifier is its own encoder; a U-Net keeps it in ``encoder.model``, a detector in
    ``backbone.body``, the integrated model in ``unet.encoder.model``.
    """
    if isinstance(getattr(model, "unet", None), nn.Module):
        model = model.unet  # type: ignore[assignment]
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, nn.Module):
        return encoder.model  # type: ignore[return-value]
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        return backbone.body  # type: ignore[return-value]
    return model


def copy_matching(source: nn.Module, target: nn.Module) -> list[str]:
    """Copy every tensor of ``source`` whose name and shape exist in ``target``; return names.

    Names are compared with dots and underscores alike, because timm's ``features_only``
    wrappers flatten module paths (``layers.0`` becomes ``layers_0``).
    """
    source_state = {_flat(name): tensor for name, tensor in source.state_dict().items()}
    update = {
        name: source_state[_flat(name)]
        for name, tensor in target.state_dict().items()
        if _flat(name) in source_state and source_state[_flat(name)].shape == tensor.shape
    }
    if not update:
        raise ValueError("no tensor of the source matches the target: different backbones?")
    target.load_state_dict(update, strict=False)
    return list(update)


def _flat(name: str) -> str:
    return name.replace(".", "_")
