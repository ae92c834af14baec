"""Model bundles: bit-exact round trip, clear errors, checkpoints imported without pickle."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import torch

from pe_models.bundle import BundleConfig, BundleError, import_checkpoint, load_bundle, save_bundle
from pe_models.nets import build

CONFIG = BundleConfig(
    arch="classifier",
    builder_kwargs={"backbone": "resnet18", "in_chans": 3, "num_classes": 1},
    task="classification",
    input_windows=("lung", "vascular", "mediastinal"),
    input_size=256,
)
CARD = "# Test classifier\n\nRandom weights. Not for clinical use.\n"


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build(CONFIG.arch, **CONFIG.builder_kwargs).eval()


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    model = _model()
    folder = save_bundle(model, CONFIG, CARD, tmp_path / "bundle")
    assert sorted(p.name for p in folder.iterdir()) == [
        "card.md",
        "config.json",
        "model.safetensors",
    ]
    bundle = load_bundle(folder)
    assert bundle.config == CONFIG
    assert bundle.card == CARD
    rebuilt = bundle.build_model()
    for name, tensor in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor), name
    images = torch.rand(2, 3, 256, 256)
    with torch.inference_mode():
        assert torch.equal(rebuilt(images), model(images))


def test_bundle_files_are_as_readable_as_plain_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    folder = save_bundle(_model(), CONFIG, CARD, tmp_path / "bundle")
    for file in folder.iterdir():  # safetensors writes its file for the owner only
        assert stat.S_IMODE(file.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode), file


def test_half_precision_bundle_is_smaller_and_close(tmp_path: Path) -> None:
    model = _model()
    full = save_bundle(model, CONFIG, CARD, tmp_path / "full")
    half = save_bundle(model, CONFIG, CARD, tmp_path / "half", half=True)
    assert (half / "model.safetensors").stat().st_size < 0.6 * (
        full / "model.safetensors"
    ).stat().st_size
    rebuilt = load_bundle(half).build_model()
    weight = model.state_dict()["conv1.weight"]
    assert torch.equal(rebuilt.state_dict()["conv1.weight"], weight.half().float())


def test_missing_file_and_bad_config_are_named(tmp_path: Path) -> None:
    folder = save_bundle(_model(), CONFIG, CARD, tmp_path / "bundle")
    config = json.loads((folder / "config.json").read_text())
    config["arch"] = "transformer_xxl"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        BundleError, match=r"config\.json: unknown architecture 'transformer_xxl'; valid: "
    ):
        load_bundle(folder)
    (folder / "card.md").unlink()
    with pytest.raises(BundleError, match=r"card\.md is missing"):
        load_bundle(folder)


def test_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    folder = save_bundle(_model(), CONFIG, CARD, tmp_path / "bundle")
    config = json.loads((folder / "config.json").read_text())
    config["builder_kwargs"]["backbone"] = "resnet34"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="do not fit classifier"):
        load_bundle(folder).build_model()


def test_lightning_checkpoint_is_imported(tmp_path: Path) -> None:
    model = _model()
    checkpoint = tmp_path / "run.ckpt"
    torch.save(
        {"epoch": 3, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
        checkpoint,
    )
    folder = import_checkpoint(checkpoint, CONFIG, CARD, tmp_path / "imported")
    rebuilt = load_bundle(folder).build_model()
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in model.state_dict().items())


class Payload:
    """Stands for any pickled object; unpickling one could run arbitrary code."""


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    checkpoint = tmp_path / "whole_model.pth"
    torch.save({"model": Payload(), "weights": torch.zeros(2)}, checkpoint)
    with pytest.raises(
        BundleError, match=r"whole_model\.pth: refused, it holds pickled Python objects"
    ):
        import_checkpoint(checkpoint, CONFIG, CARD, tmp_path / "never")
    assert not (tmp_path / "never").exists()
