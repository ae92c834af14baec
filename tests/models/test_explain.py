"""Grad-CAM for every model kind: a finite heatmap in original pixels, zero outside the crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pe_models.bundle import BundleConfig, save_bundle
from pe_models.inference import Pipeline
from pe_models.nets import build
from pe_models.synth.phantom import Phantom, generate_phantom
from tests.model_bundles import make_bundles


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline.from_bundles(make_bundles(tmp_path_factory.mktemp("bundles")))


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return generate_phantom(4, "pe", "test")


def _check(heatmap: np.ndarray, phantom: Phantom, pipeline: Pipeline, z: int) -> None:
    assert heatmap.shape == phantom.volume.shape[1:]
    assert heatmap.dtype == np.float32
    assert np.isfinite(heatmap).all()
    assert heatmap.min() >= 0.0
    assert heatmap.max() <= 1.0
    crop = pipeline.run(phantom.volume, slices=[z]).slices[0].crop
    outside = np.ones(heatmap.shape, dtype=bool)
    outside[crop.y0 : crop.y1, crop.x0 : crop.x1] = False
    assert (heatmap[outside] == 0).all()


@pytest.mark.parametrize(
    ("target", "method"),
    [
        ("classification", "gradcam"),
        ("classification", "gradcam++"),
        ("classification", "eigencam"),
        ("triage_stage1", "gradcam"),
        ("triage_stage2", "gradcam"),
        ("segmentation", "gradcam"),
        ("detection", "eigencam"),
    ],
)
def test_heatmaps_for_every_model(
    pipeline: Pipeline, phantom: Phantom, target: str, method: str
) -> None:
    _check(pipeline.explain(phantom.volume, 24, target, method), phantom, pipeline, 24)


def test_swin_classifier_needs_and_gets_its_reshape(tmp_path: Path, phantom: Phantom) -> None:
    config = BundleConfig(
        "classifier",
        {"backbone": "swin_tiny_patch4_window7_224", "img_size": 224},
        "classification",
        ("lung", "vascular", "mediastinal"),
        input_size=224,
    )
    bundle = save_bundle(
        build(config.arch, **config.builder_kwargs), config, "random", tmp_path / "swin"
    )
    pipeline = Pipeline.from_bundles([bundle])
    heatmap = pipeline.explain(phantom.volume, 24)
    assert heatmap.shape == phantom.volume.shape[1:]
    assert np.isfinite(heatmap).all()
    assert heatmap.max() > 0


def test_unknown_target_and_method_are_refused(pipeline: Pipeline, phantom: Phantom) -> None:
    with pytest.raises(KeyError, match="no 'lungmask' model in this pipeline"):
        pipeline.explain(phantom.volume, 24, "lungmask")
    with pytest.raises(KeyError, match="valid: gradcam, gradcam\\+\\+, eigencam"):
        pipeline.explain(phantom.volume, 24, "classification", "scorecam")
