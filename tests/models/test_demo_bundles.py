"""The demo bundles in resources/bundles: complete, small, honest cards, sane outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from pe_models.bundle import TASKS, WEIGHTS_FILE, load_bundle
from pe_models.inference import Pipeline, default_bundle_paths
from pe_models.io import load
from pe_models.resources import resources_dir

BUNDLES = resources_dir() / "bundles"
SIZE_LIMIT_MB = 40


def bundle_paths() -> list[Path]:
    return default_bundle_paths(BUNDLES) if BUNDLES.is_dir() else []


pytestmark = pytest.mark.skipif(
    not bundle_paths(),
    reason="no demo bundles installed yet (pe-train --preset demo --install; issue 5 is open)",
)


def test_every_demo_task_ships_within_the_size_budget() -> None:
    bundles = [load_bundle(path) for path in bundle_paths()]
    assert {b.config.task for b in bundles} == set(TASKS) - {"integrated"}
    total = sum(f.stat().st_size for path in bundle_paths() for f in path.iterdir())
    assert total < SIZE_LIMIT_MB * 1e6
    for bundle in bundles:
        with safe_open(bundle.path / WEIGHTS_FILE, "pt") as weights:
            dtypes = {weights.get_slice(name).get_dtype() for name in weights.keys()}  # noqa: SIM118
        assert "F16" in dtypes
        assert "F32" not in dtypes


def test_cards_say_synthetic_not_clinical_and_give_held_out_metrics() -> None:
    for path in bundle_paths():
        card = load_bundle(path).card
        assert "synthetic CTPA phantoms only" in card
        assert "not for clinical use" in card
        assert "## Held-out evaluation" in card
        assert "never used in training" in card


@pytest.mark.real_data
def test_demo_models_do_not_call_the_non_contrast_series_pe(real_data: Path) -> None:
    pipeline = Pipeline.load_default()
    volume = load(real_data / "midrc_ricord_1a_chest_24slices")
    study = pipeline.run(volume)
    assert not study.contrast.adequate
    assert study.triage != "pe"
    assert any("no pulmonary arterial contrast" in warning for warning in study.warnings)
    assert len(study.slices) == volume.shape[0]
    assert all(np.isfinite(r.pe_probability) for r in study.slices)
