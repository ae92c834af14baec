"""Hard negatives mined from a model's own false clot pieces, and the patches centred on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from pe_models.bundle import BundleConfig, load_bundle, save_bundle
from pe_models.data.slices import InputSpec, PreparedStudy
from pe_models.train.experiment import ExperimentError, load_experiment, parse_experiment
from pe_models.train.mining import false_piece_points, mine_false_pieces
from pe_models.train.run import build_network, train_experiment
from pe_models.train.samples import Patches

RGB = ("lung", "vascular", "mediastinal")
SIZE = 32


class BrightIsClot(nn.Module):
    """Calls clot wherever the first input channel is bright: a model whose errors we know."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(20.0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images[:, :1] - 0.5) * self.gain


def square(y: int, x: int, side: int = 3) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[y : y + side, x : x + side] = True
    return mask


def study(name: str, bright: list[np.ndarray], truth: list[np.ndarray]) -> PreparedStudy:
    images = np.stack([np.repeat(b[None], 3, axis=0) * np.uint8(255) for b in bright])
    return PreparedStudy(
        patient_id=name,
        study_id=name,
        z=np.arange(len(bright)),
        labels=tuple("pe" if t.any() else "normal" for t in truth),
        images=images.astype(np.uint8),
        masks=np.stack(truth).astype(np.uint8),
        boxes=None,
    )


def test_false_pieces_are_those_touching_no_clot_and_their_point_lies_on_them() -> None:
    truth = square(2, 2)
    elbow = np.zeros((SIZE, SIZE), dtype=bool)  # an L: its centroid falls off the piece
    elbow[10:20, 10] = True
    elbow[19, 10:20] = True
    predicted = square(1, 1) | elbow | square(25, 25, side=2)
    points = false_piece_points(predicted, truth)
    assert len(points) == 2  # the piece on the clot is not a false one
    assert all(predicted[y, x] and not truth[y, x] for y, x in points)
    assert any(elbow[y, x] for y, x in points)
    assert false_piece_points(np.zeros((SIZE, SIZE), dtype=bool), truth) == []


def test_mining_lists_the_false_pieces_of_every_strided_slice_and_restores_the_mode() -> None:
    clot, mimic, vein = square(4, 4), square(20, 20), square(4, 24)
    empty = np.zeros((SIZE, SIZE), dtype=bool)
    studies = [
        study("a", [clot | mimic, vein, mimic, clot], [clot, empty, empty, clot]),
        study("b", [empty, mimic], [empty, empty]),
    ]
    network = BrightIsClot().train()
    spec = InputSpec(RGB, size=SIZE)
    every = mine_false_pieces(network, studies, spec, stride=1, batch_size=3)
    assert network.training
    found = {(s, k): (y, x) for s, k, y, x in every}
    assert set(found) == {(0, 0), (0, 1), (0, 2), (1, 1)}  # the clots on slices 0 and 3 are true
    assert mimic[found[(0, 0)]]
    assert vein[found[(0, 1)]]
    strided = mine_false_pieces(network, studies, spec, stride=2)
    assert {(s, k) for s, k, _, _ in strided} == {(0, 0), (0, 2)}


def test_hard_patches_are_centred_on_the_mined_pieces() -> None:
    empty = np.zeros((SIZE, SIZE), dtype=bool)
    vein = square(26, 26, side=2)
    studies = [study("a", [vein, empty, empty], [square(2, 2), empty, empty])]
    spec = InputSpec(RGB, size=SIZE)
    mined = mine_false_pieces(BrightIsClot(), studies, spec, stride=1)
    assert [(s, k) for s, k, _, _ in mined] == [(0, 0)]
    options = {"length": 30, "patch": 8, "positive_fraction": 0.0}
    hard = Patches(studies, spec, "segmentation", hard_fraction=1.0, hard_points=mined, **options)
    assert all(float(hard[i][0].amax()) > 0 for i in range(len(hard)))  # the vein is in view
    anywhere = Patches(studies, spec, "segmentation", **options)
    assert sum(float(anywhere[i][0].amax()) > 0 for i in range(len(anywhere))) < len(anywhere)
    with pytest.raises(ValueError, match="hard_fraction needs mined false pieces"):
        Patches(studies, spec, "segmentation", hard_fraction=0.5, **options)


def unet_experiment(**train: object) -> dict:
    return {
        "name": "tuned",
        "task": "segmentation",
        "model": {
            "arch": "unet",
            "kwargs": {"encoder": "resnet10t", "channels": [16, 32, 64, 128]},
            "init_from": "base",
        },
        "input": {"windows": list(RGB), "size": 64},
        "data": {
            "source": "phantoms",
            "train": {"seeds": [20, 22], "kind": "mix", "size": "test"},
            "val": {"seeds": [40, 41], "kind": "pe", "size": "test"},
            "normal_stride": 2,
        },
        "train": {"steps": 2, "batch_size": 4, "val_every": 2, "patch": 32, **train},
    }


def test_hard_negatives_need_a_segmentation_model_to_start_from(tmp_path: Path) -> None:
    raw = unet_experiment(hard_negative_fraction=0.5)
    del raw["model"]["init_from"]
    with pytest.raises(ExperimentError, match="hard_negative_fraction mines the false clot"):
        parse_experiment(raw, tmp_path / "x.yaml")
    with pytest.raises(ExperimentError, match="mine_stride must be a whole number"):
        parse_experiment(unet_experiment(mine_stride=0), tmp_path / "x.yaml")


@pytest.mark.slow
def test_a_fine_tune_mines_its_starting_models_false_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PE_VIEWER_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(unet_experiment(hard_negative_fraction=0.5, mine_stride=3)))
    experiment = load_experiment(path)
    base = build_network(experiment, None)
    with torch.no_grad():  # a U-Net that calls every pixel clot: every clot-free slice is false
        base.segmentation_head[0].bias.fill_(10.0)
    config = BundleConfig("unet", experiment.model.kwargs, "segmentation", RGB, input_size=64)
    base_folder = save_bundle(base, config, "card", tmp_path / "base")
    tuned = train_experiment(experiment, tmp_path / "run", trained={"base": base_folder})
    training = load_bundle(tuned).config.extra["training"]
    assert training["hard_negatives_mined"] > 0
