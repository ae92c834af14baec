"""``pe-train`` end to end: two tiny experiments, the held-out evaluation, ``--install``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pe_models.cli import train as train_cli

NARROW = [16, 32, 64, 128]


def _experiment(name: str, task: str, arch: dict, install: bool) -> dict:
    return {
        "name": name,
        "task": task,
        "model": {**arch, "kwargs": {**arch["kwargs"], "channels": NARROW}},
        "input": {"windows": ["lung", "vascular", "mediastinal"], "size": 64},
        "data": {
            "source": "phantoms",
            "train": {"seeds": [20, 22], "kind": "pe", "size": "test"},
            "val": {"seeds": [40, 41], "kind": "pe", "size": "test"},
            "test": {"seeds": [60, 61], "kind": "pe", "size": "test"},
            "normal_stride": 4,
        },
        "train": {"steps": 2, "batch_size": 4, "val_every": 2, "patch": 32},
        "install": install,
    }


@pytest.mark.slow
def test_pe_train_evaluates_shipped_bundles_apart_and_installs_only_those(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PE_VIEWER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train_cli, "resources_dir", lambda: tmp_path / "resources")
    (tmp_path / "resources").mkdir()
    files = []
    unet = {"arch": "unet", "kwargs": {"encoder": "resnet10t"}}
    classifier = {"arch": "classifier", "kwargs": {"backbone": "resnet10t"}}
    for name, task, arch, install in (
        ("seg", "segmentation", unet, True),
        ("cls", "classification", classifier, False),
    ):
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(yaml.safe_dump(_experiment(name, task, arch, install)))
    out = tmp_path / "run"
    assert train_cli.main([*map(str, files), "--out", str(out), "--workers", "0", "--install"]) == 0
    assert "not installed: cls" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "resources" / "bundles").iterdir()) == ["seg"]
    # The installed U-Net is evaluated alone, as it ships: its card's slice score is its own.
    assert len(list(out.glob("eval-*/summary.md"))) == 2
    shipped_card = (tmp_path / "resources" / "bundles" / "seg" / "card.md").read_text()
    assert "Held-out evaluation" in shipped_card
    assert "highest pixel probability, every slice" in shipped_card
