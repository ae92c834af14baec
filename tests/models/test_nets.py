"""Model zoo: registry, shapes at realistic sizes, weight transfer, triage arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pe_models.nets import available, build
from pe_models.nets.detector import transfer_backbone_weights
from pe_models.nets.unet import copy_matching, transfer_encoder_weights
from pe_models.triage import (
    combine_stages,
    longest_run,
    patient_probability,
    triage_classes,
)

SWIN = "swin_tiny_patch4_window7_224"


def test_registry_lists_architectures_and_refuses_unknown_names() -> None:
    assert {"classifier", "unet", "detector", "integrated", "cbam_drn", "mwl_cbam_drn"} <= set(
        available()
    )
    with pytest.raises(KeyError, match="valid: cbam_drn, classifier, detector"):
        build("vit_giant")


@pytest.mark.parametrize(
    ("arch", "kwargs", "shape", "expected"),
    [
        ("classifier", {"backbone": "resnet50"}, (2, 3, 512, 512), (2, 1)),
        ("classifier", {"backbone": SWIN, "img_size": 512}, (1, 3, 512, 512), (1, 1)),
        ("unet", {"encoder": "resnet50"}, (1, 3, 512, 512), (1, 1, 512, 512)),
        ("unet", {"encoder": SWIN, "img_size": 512}, (1, 3, 512, 512), (1, 1, 512, 512)),
        ("cbam_drn", {"depth": "resnet50", "in_chans": 2}, (1, 2, 400, 400), (1, 1)),
        ("mwl_cbam_drn", {"depth": "resnet18", "windows": 3}, (2, 3, 400, 400), (2, 1)),
        ("mwl_cbam_drn", {"depth": "resnet18", "pool": "map"}, (2, 2, 400, 400), (2, 1)),
    ],
)
def test_output_shapes(arch: str, kwargs: dict, shape: tuple, expected: tuple) -> None:
    model = build(arch, **kwargs).eval()
    with torch.inference_mode():
        output = model(torch.rand(shape))
    assert tuple(output.shape) == expected
    assert torch.isfinite(output).all()


def test_cbam_drn_keeps_one_eighth_resolution() -> None:
    model = build("cbam_drn", depth="resnet18", in_chans=1).eval()
    with torch.inference_mode():
        features = model.forward_features(torch.rand(1, 1, 256, 256))
    assert tuple(features.shape) == (1, 512, 32, 32)  # dilated, not 8 × 8


def test_cbam_blocks_start_with_uniform_gates() -> None:
    """A fresh CBAM block scales its input evenly: an encoder's features pass unscrambled."""
    model = build("cbam_drn", depth="resnet18", in_chans=1)
    features = torch.randn(2, 64, 20, 20)
    for mode in (model.train, model.eval):
        mode()
        gated = model.attention[0](features.clone())
        torch.testing.assert_close(gated, features * 0.25)


@pytest.mark.parametrize("arch", ["cbam_drn", "mwl_cbam_drn"])
def test_a_map_model_scores_the_slice_by_its_most_suspicious_position(arch: str) -> None:
    model = build(arch, depth="resnet10t", channels=[8, 16, 32, 64], pool="map").eval()
    images = torch.rand(2, 1 if arch == "cbam_drn" else 2, 96, 96)
    with torch.inference_mode():
        logit_map, logits = model.logit_map(images), model(images)
    assert tuple(logit_map.shape) == (2, 1, 12, 12)  # one logit per 8 x 8 px
    torch.testing.assert_close(logits, logit_map.amax(dim=(2, 3)))
    # Each position's logit is the linear head on that position's features.
    features = (
        model.forward_features(images)
        if arch == "cbam_drn"
        else torch.cat(
            [b.forward_features(images[:, i : i + 1]) for i, b in enumerate(model.branches)], 1
        )
    )
    torch.testing.assert_close(logit_map[:, :, 5, 7], model.head(features[:, :, 5, 7]))
    with pytest.raises(ValueError, match="unknown pool 'min'; valid: avg, max, map"):
        build(arch, depth="resnet10t", pool="min")
    with pytest.raises(ValueError, match="it needs classes"):
        build("cbam_drn", depth="resnet10t", num_classes=0, pool="map")


@pytest.mark.parametrize("backbone", ["resnet50", SWIN])
def test_unet_encoder_starts_from_the_classifier(backbone: str) -> None:
    size = {"img_size": 512} if backbone == SWIN else {}
    classifier = build("classifier", backbone=backbone, **size)
    unet = build("unet", encoder=backbone, **size)
    copied = transfer_encoder_weights(classifier, unet)
    source = {name.replace(".", "_"): t for name, t in classifier.state_dict().items()}
    target = unet.encoder.model.state_dict()
    assert set(copied) == set(target)  # every encoder tensor comes from the classifier
    for name in copied:
        assert torch.equal(target[name], source[name.replace(".", "_")]), name


def test_detector_backbone_starts_from_the_classifier_and_trains() -> None:
    classifier = build("classifier", backbone="resnet50")
    detector = build("detector", backbone="resnet50")
    copied = transfer_backbone_weights(classifier, detector)
    body = detector.backbone.body.state_dict()
    assert len(copied) == len(classifier.state_dict()) - 2  # all but fc.weight, fc.bias
    assert all(torch.equal(body[n], classifier.state_dict()[n]) for n in copied)
    assert detector.transform.min_size == (512,)
    assert detector.transform.max_size == 512
    assert detector.transform.image_mean == [0.0, 0.0, 0.0]
    assert detector.backbone.out_channels == 256

    detector.train()
    target = {"boxes": torch.tensor([[200.0, 220.0, 230.0, 250.0]]), "labels": torch.tensor([1])}
    losses = detector([torch.rand(3, 512, 512)], [target])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    detector.eval()
    with torch.inference_mode():
        (found,) = detector([torch.rand(3, 512, 512)])
    assert found["boxes"].shape[1] == 4
    assert len(found["scores"]) == len(found["labels"]) == len(found["boxes"])


def test_two_stage_probabilities_sum_to_one() -> None:
    probabilities = combine_stages(np.array([0.1, 0.9, 1.0]), np.array([0.5, 0.8, 0.0]))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(probabilities[1], [0.1, 0.18, 0.72])
    np.testing.assert_allclose(probabilities[2], [0.0, 1.0, 0.0])


def test_triage_classes_follow_the_cuts_not_the_likeliest_class() -> None:
    p_disease = np.array([0.90, 0.95, 0.95, 0.99, 0.30, 0.90])
    p_pe = np.array([0.10, 0.50, 0.85, 0.80, 0.01, 0.88])
    classes = triage_classes(p_disease, p_pe, disease_cut=0.92, pe_cut=0.8)
    # 0.90 < 0.92 is normal though "other disease" is its likeliest class (0.80); the PE cut
    # comes first, so the last slice is PE below stage 1's cut.
    assert classes == ["normal", "other_disease", "pe", "pe", "normal", "pe"]
    assert triage_classes(p_disease, p_pe, disease_cut=0.5, pe_cut=0.9) == [
        "other_disease",
        "other_disease",
        "other_disease",
        "other_disease",
        "normal",
        "other_disease",
    ]


def test_longest_run_counts_consecutive_slices() -> None:
    assert longest_run([]) == 0
    assert longest_run([7]) == 1
    assert longest_run([9, 3, 4, 5, 10, 4]) == 3  # any order; a repeat is one slice


def test_patient_probability_is_the_highest_slice_probability() -> None:
    assert patient_probability(np.array([0.1, 0.7, 0.3])) == 0.7
    assert patient_probability(np.array([])) == 0.0


def test_integrated_model_shares_one_encoder_across_three_heads() -> None:
    model = build("integrated", backbone="resnet18", input_size=256)
    calls: list[int] = []
    model.unet.encoder.register_forward_hook(lambda *_: calls.append(1))
    images = torch.rand(2, 3, 256, 256)
    targets = [{"boxes": torch.tensor([[50.0, 60.0, 80.0, 90.0]]), "labels": torch.tensor([1])}] * 2
    model.train()
    output = model(images, targets)
    assert calls == [1]  # the encoder ran once for all three heads
    assert tuple(output["logits"].shape) == (2, 1)
    assert tuple(output["mask_logits"].shape) == (2, 1, 256, 256)
    losses = {
        "classification": output["logits"].sum(),
        "segmentation": output["mask_logits"].mean(),
        "detection": sum(output["detections"].values()),
    }
    encoder_weight = model.unet.encoder.model.conv1.weight
    for name, loss in losses.items():  # each head trains the shared encoder
        model.zero_grad()
        loss.backward(retain_graph=True)
        assert encoder_weight.grad is not None
        assert encoder_weight.grad.abs().sum() > 0, name
    model.eval()
    with torch.inference_mode():
        (found,) = model(images[:1])["detections"]
    assert set(found) == {"boxes", "labels", "scores"}


def test_integrated_encoder_starts_from_the_classifier() -> None:
    classifier = build("classifier", backbone="resnet18")
    model = build("integrated", backbone="resnet18", input_size=256)
    copied = copy_matching(classifier, model.unet.encoder.model)
    assert set(copied) == set(model.unet.encoder.model.state_dict())


def test_imagenet_weights_come_from_a_local_file_only(tmp_path) -> None:
    from safetensors.torch import save_file

    imagenet_like = build("classifier", backbone="resnet18", num_classes=1000)
    weights = tmp_path / "resnet18_imagenet.safetensors"
    save_file({k: v.contiguous() for k, v in imagenet_like.state_dict().items()}, str(weights))
    model = build("classifier", backbone="resnet18", num_classes=1, weights_file=str(weights))
    assert torch.equal(
        model.state_dict()["layer4.1.conv2.weight"],
        imagenet_like.state_dict()["layer4.1.conv2.weight"],
    )
    assert model.state_dict()["fc.weight"].shape == (1, 512)  # a new head for PE
    with pytest.raises(FileNotFoundError, match="pretrained weights file not found"):
        build("classifier", backbone="resnet18", weights_file=str(tmp_path / "missing.pth"))
