"""``pe-infer`` end to end on written phantoms: the fixed findings.json schema and the mask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pe_models import io
from pe_models.cli.infer import main as pe_infer
from pe_models.synth.phantom import generate_phantom
from pe_models.synth.writers import write_study
from tests.model_bundles import make_bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundles")
    make_bundles(folder)
    return folder


def test_findings_json_follows_the_fixed_schema(bundles: Path, tmp_path: Path) -> None:
    study = write_study(generate_phantom(8, "pe", "test"), tmp_path / "study")
    assert (
        pe_infer([str(study / "dicom"), "--out", str(tmp_path / "out"), "--bundles", str(bundles)])
        == 0
    )
    findings = json.loads((tmp_path / "out" / "findings.json").read_text())
    volume = io.load(study / "dicom")
    assert findings["version"] == 1
    assert findings["mask"] == "pe_mask.nii.gz"
    assert set(findings["study"]) >= {"pe_probability", "triage", "positive_slices"}
    assert findings["study"]["triage"] in ("pe", "other_disease", "normal")
    assert isinstance(findings["study"]["pe_probability"], float)
    assert [s["index"] for s in findings["slices"]] == list(range(volume.shape[0]))
    first_file = pydicom.dcmread(study / "dicom" / "IM0000.dcm", stop_before_pixels=True)
    assert findings["slices"][0]["sop_instance_uid"] == first_file.SOPInstanceUID
    np.testing.assert_allclose(
        [s["z_mm"] for s in findings["slices"]], volume.slice_positions_mm(), atol=1e-3
    )
    for entry in findings["slices"]:
        assert set(entry) >= {
            "index",
            "sop_instance_uid",
            "z_mm",
            "pe_probability",
            "triage",
            "boxes",
        }
        assert set(entry["triage"]) == {"normal", "other_disease", "pe"}
        assert all(len(box) == 5 for box in entry["boxes"])
        # Every model's slice score; the one the decision uses is pe_probability.
        scores = entry["model_scores"]
        assert set(scores) == {"classification", "triage", "segmentation"}
        assert scores[findings["slice_score_source"]] == entry["pe_probability"]
    mask = io.load(tmp_path / "out" / "pe_mask.nii.gz")
    assert mask.shape == volume.shape
    np.testing.assert_allclose(mask.origin, volume.origin, atol=1e-3)
    assert set(np.unique(mask.hu)) <= {0, 1}


def test_a_folder_of_studies_gives_one_output_each(bundles: Path, tmp_path: Path) -> None:
    for seed in (1, 2):
        write_study(generate_phantom(seed, "normal", "test"), tmp_path / "in" / f"s{seed}")
    assert (
        pe_infer([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--bundles", str(bundles)])
        == 0
    )
    outputs = sorted((tmp_path / "out").iterdir())
    assert len(outputs) == 2
    assert all(
        (o / "findings.json").is_file() and (o / "pe_mask.nii.gz").is_file() for o in outputs
    )


def test_bad_input_is_reported_not_raised(
    bundles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert (
        pe_infer(
            [str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--bundles", str(bundles)]
        )
        == 1
    )
    assert "no DICOM image found" in capsys.readouterr().err
    no_bundles = [str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--bundles"]
    assert pe_infer([*no_bundles, str(tmp_path / "empty")]) == 1
    assert f"{tmp_path / 'empty'}: no bundle folders found" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    assert pe_infer([*no_bundles, str(tmp_path / "broken")]) == 1
    assert "broken: not a model bundle, model.safetensors is missing" in capsys.readouterr().err
