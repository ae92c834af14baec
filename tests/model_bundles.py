"""Small random-weight bundles for pipeline tests (random weights: their outputs mean nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from pe_models.bundle import BundleConfig, save_bundle
from pe_models.nets import build, register

CARD = "# Test bundle\n\nRandom weights, for software tests only. Not for clinical use.\n"
SIZE = 128


def make_bundles(folder: Path, *, size: int = SIZE) -> list[Path]:
    """One bundle per task with small backbones; returns their folders."""
    torch.manual_seed(0)
    rgb = ("lung", "vascular", "mediastinal")
    specs = {
        "classification": ("classifier", {"backbone": "resnet10t", "in_chans": 3}, rgb),
        "segmentation": ("unet", {"encoder": "resnet10t", "in_chans": 3}, rgb),
        "detection": (
            "detector",
            {"backbone": "resnet10t", "in_chans": 3, "min_size": size, "max_size": size},
            rgb,
        ),
        "triage_stage1": (
            "mwl_cbam_drn",
            {"depth": "resnet10t", "windows": 2},
            ("vascular", "lung"),
        ),
        "triage_stage2": (
            "mwl_cbam_drn",
            {"depth": "resnet10t", "windows": 2},
            ("vascular", "lung"),
        ),
    }
    paths = []
    for task, (arch, kwargs, windows) in specs.items():
        config = BundleConfig(
            arch=arch, builder_kwargs=kwargs, task=task, input_windows=windows, input_size=size
        )
        paths.append(save_bundle(build(arch, **kwargs), config, CARD, folder / task))
    return paths


class BrightSegmenter(nn.Module):
    """Oracle: segments pixels whose first channel is above 0.5 (a known answer)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images[:, :1] - 0.5) * 100


class BrightDetector(nn.Module):
    """Oracle: one box around the pixels whose first channel is above 0.5, score 0.9."""

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        found = []
        for image in images:
            rows, columns = torch.nonzero(image[0] > 0.5, as_tuple=True)
            if rows.numel() == 0:
                found.append(
                    {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)}
                )
                continue
            box = torch.stack(
                [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
            ).float()
            found.append(
                {"boxes": box[None], "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}
            )
        return found


register("test_bright_segmenter")(lambda: BrightSegmenter())
register("test_bright_detector")(lambda: BrightDetector())


def reconfigure_bundles(folder: Path, changes: dict[str, dict]) -> None:
    """Merge ``changes`` (top-level config keys by task) into the config.json of ``folder``'s
    bundles; a key given replaces its value whole (``extra`` included)."""
    for task, change in changes.items():
        config_file = folder / task / "config.json"
        config_file.write_text(json.dumps(json.loads(config_file.read_text()) | change))


def make_oracle_bundles(folder: Path, *, size: int = 96) -> list[Path]:
    """Oracle segmenter and detector bundles (bright vascular-window pixels): known answers."""
    windows = ("vascular",)
    return [
        save_bundle(
            build(arch),
            BundleConfig(arch, {}, task, windows, input_size=size),
            f"# Oracle {task}\n\nFinds bright pixels; for software tests only.\n",
            folder / task,
        )
        for arch, task in (
            ("test_bright_segmenter", "segmentation"),
            ("test_bright_detector", "detection"),
        )
    ]
