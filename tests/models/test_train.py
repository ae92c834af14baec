"""Training: experiment files, prepared slices, sampled datasets, and tiny real training runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from pe_models.bundle import WEIGHTS_FILE, load_bundle
from pe_models.cli import train as train_cli
from pe_models.data.phantoms import phantom_records
from pe_models.data.slices import (
    InputSpec,
    StoredSlices,
    boxes_to_input,
    load_prepared,
    prepare_studies,
    select_slices,
)
from pe_models.inference import Pipeline, model_view
from pe_models.nets import build
from pe_models.nets.cbam_drn import branches_from_encoder
from pe_models.preprocess.lung_crop import CropBox
from pe_models.resources import resources_dir
from pe_models.synth.phantom import generate_phantom
from pe_models.train import presets
from pe_models.train.experiment import (
    Experiment,
    ExperimentError,
    load_experiment,
    parse_experiment,
    seeds_of,
)
from pe_models.train.presets import (
    available_presets,
    installed_and_ancestors,
    preset_experiments,
    train_preset,
)
from pe_models.train.run import build_network, recorded_path, train_experiment, training_card
from pe_models.train.samples import BalancedSlices, Patches, binary_slices

RGB = ["lung", "vascular", "mediastinal"]
NARROW = [16, 32, 64, 128]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PE_VIEWER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def experiment_dict(task: str, **changes: object) -> dict:
    models = {
        "classification": {"arch": "classifier", "kwargs": {"backbone": "resnet10t"}},
        "segmentation": {"arch": "unet", "kwargs": {"encoder": "resnet10t"}},
        "detection": {
            "arch": "detector",
            "kwargs": {"backbone": "resnet10t", "fpn_channels": 32, "sampled_rois": 16},
        },
        "triage_stage1": {"arch": "mwl_cbam_drn", "kwargs": {"depth": "resnet10t"}},
        "triage_stage2": {"arch": "mwl_cbam_drn", "kwargs": {"depth": "resnet10t"}},
        "integrated": {"arch": "integrated", "kwargs": {"backbone": "resnet10t", "input_size": 64}},
    }
    model = models[task]
    model["kwargs"]["channels"] = NARROW
    windows = ["vascular", "lung"] if task.startswith("triage") else RGB
    raw = {
        "name": f"tiny-{task}",
        "task": task,
        "model": model,
        "input": {"windows": windows, "size": 64},
        "data": {
            "source": "phantoms",
            "train": {"seeds": [20, 23], "kind": "pe", "size": "test"},
            "val": {"seeds": [40, 41], "kind": "pe", "size": "test"},
            "normal_stride": 2,
        },
        "train": {"steps": 3, "batch_size": 4, "val_every": 3, "patch": 32},
    }
    if task.startswith("triage") or task == "integrated":  # whole slices (a classifier: patches)
        del raw["train"]["patch"]
    raw.update(changes)
    return raw


def test_experiment_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    raw = experiment_dict("classification")
    raw["train"]["step"] = 10
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ExperimentError, match=r"bad\.yaml.*unknown key.*step"):
        load_experiment(path)
    raw = experiment_dict("classification")
    raw["task"] = "nonsense"
    with pytest.raises(ExperimentError, match="unknown task 'nonsense'"):
        parse_experiment(raw, path)
    raw = experiment_dict("classification")
    raw["data"]["val"] = {"seeds": [22, 25], "size": "test"}
    with pytest.raises(ExperimentError, match="seeds overlap"):
        parse_experiment(raw, path)
    raw = experiment_dict("classification", min_clot_ml=0.1)
    with pytest.raises(ExperimentError, match=r"min_clot_ml.*segmentation only"):
        parse_experiment(raw, path)
    raw = experiment_dict("segmentation", min_clot_ml=-1)
    with pytest.raises(ExperimentError, match="positive number of mL"):
        parse_experiment(raw, path)
    for task, bad in (("triage_stage2", 10), ("triage_stage1", 0), ("triage_stage1", True)):
        raw = experiment_dict(task, min_disease_mm=bad)
        with pytest.raises(ExperimentError, match=r"min_disease_mm.*triage_stage1 only"):
            parse_experiment(raw, path)
    for bad in (0, 1.5, True, "0.9"):
        raw = experiment_dict("detection", threshold=bad)
        with pytest.raises(ExperimentError, match="threshold must be a number between 0 and 1"):
            parse_experiment(raw, path)
    raw = experiment_dict("segmentation", instal=False)  # a misspelt key is not ignored
    with pytest.raises(ExperimentError, match=r"unknown key\(s\) \['instal'\]"):
        parse_experiment(raw, path)
    raw = experiment_dict("segmentation", install="no")
    with pytest.raises(ExperimentError, match="install must be true or false"):
        parse_experiment(raw, path)
    raw = experiment_dict("classification", scores_slices="no")
    with pytest.raises(ExperimentError, match="scores_slices must be true or false"):
        parse_experiment(raw, path)
    raw = experiment_dict("classification")
    raw["train"] = {"steps": 3, "mimic_fraction": 0.5}  # whole slices: no patch to centre
    with pytest.raises(ExperimentError, match="mimic_fraction is for training on patches"):
        parse_experiment(raw, path)
    raw = experiment_dict("classification")
    raw["train"] = {"steps": 3, "piece_weight_px": 100}  # no mask to weigh
    with pytest.raises(ExperimentError, match="piece_weight_px is for tasks with PE masks"):
        parse_experiment(raw, path)
    raw = experiment_dict("segmentation")
    raw["train"] = {"steps": 3, "piece_weight_px": 0.5}
    with pytest.raises(ExperimentError, match="piece_weight_px must be a whole number"):
        parse_experiment(raw, path)
    raw = experiment_dict("classification")
    raw["train"] = {"steps": 3, "patch": 32, "lesion_map_weight": 1.0}
    with pytest.raises(ExperimentError, match="lesion_map_weight needs a logit map"):
        parse_experiment(raw, path)
    raw = experiment_dict("triage_stage2")  # whole slices: no lesion mask is sampled
    raw["model"]["kwargs"]["pool"] = "map"
    raw["train"] = {"steps": 3, "lesion_map_weight": 1.0}
    with pytest.raises(ExperimentError, match="lesion_map_weight is for a classifier or triage"):
        parse_experiment(raw, path)
    for bad in (0, True, "1"):
        raw["train"] = {"steps": 3, "patch": 32, "lesion_map_weight": bad}
        with pytest.raises(ExperimentError, match="lesion_map_weight must be a number > 0"):
            parse_experiment(raw, path)
    raw = experiment_dict("segmentation")
    raw["input"]["context_mm"] = 2.5  # two more channels, but the net still takes three
    raw["model"]["kwargs"]["in_chans"] = 3
    with pytest.raises(ExperimentError, match="in_chans is 3 but the input has 5 channels"):
        parse_experiment(raw, path)


def test_every_preset_parses_and_warm_starts_from_earlier_experiments() -> None:
    assert "demo" in available_presets()
    for preset in available_presets():
        experiments = preset_experiments(preset)
        names: list[str] = []
        for experiment in experiments:
            assert experiment.model.init_from in (None, *names), experiment.name
            data = experiment.data
            if data.source == "phantoms" and data.test:
                used = seeds_of(data.train) | seeds_of(data.val)
                assert not used & seeds_of(data.test), "test seeds must be held out"
            names.append(experiment.name)
    tasks = {e.task for e in preset_experiments("demo")}
    assert tasks == {
        "classification",
        "segmentation",
        "detection",
        "triage_stage1",
        "triage_stage2",
    }


def test_the_demo_preset_installs_exactly_the_bundles_that_ship() -> None:
    installed = {e.name for e in preset_experiments("demo") if e.install}
    shipped = {p.name for p in (resources_dir() / "bundles").iterdir() if p.is_dir()}
    assert installed == shipped


def test_installed_only_keeps_what_ships_and_what_it_starts_from(tmp_path: Path) -> None:
    demo = installed_and_ancestors(preset_experiments("demo"))
    assert [e.name for e in demo] == [
        "unet_base",
        "unet",
        "classifier_patch",
        "classifier",
        "detector",
        "triage_stage1_patch",
        "triage_stage1",
        "triage_stage2",
    ]

    def experiment(name: str, init_from: str | None, install: bool) -> Experiment:
        raw = {**experiment_dict("segmentation", install=install), "name": name}
        raw["model"] = {**raw["model"], "init_from": init_from}
        return parse_experiment(raw, tmp_path / "x.yaml")

    chain = [
        experiment("root", None, False),
        experiment("side", "root", False),
        experiment("middle", "root", False),
        experiment("shipped", "middle", True),
        experiment("from_a_folder", str(tmp_path), True),
    ]
    kept = installed_and_ancestors(chain)
    assert [e.name for e in kept] == ["root", "middle", "shipped", "from_a_folder"]


def test_install_copies_only_bundles_marked_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train_cli, "resources_dir", lambda: tmp_path / "resources")
    (tmp_path / "resources").mkdir()
    experiments, trained = [], {}
    for task, install in (("segmentation", True), ("classification", False)):
        experiment = parse_experiment(experiment_dict(task, install=install), tmp_path / "x.yaml")
        folder = tmp_path / "run" / experiment.name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        experiments.append(experiment)
        trained[experiment.name] = folder
    target = train_cli.install(experiments, trained)
    assert sorted(p.name for p in target.iterdir()) == ["tiny-segmentation"]
    assert (target / "tiny-segmentation" / "config.json").read_text() == "{}"


def test_a_reused_bundle_is_not_trained_again_and_later_experiments_start_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = parse_experiment({**experiment_dict("segmentation"), "name": "base"}, tmp_path)
    tuned_raw = {**experiment_dict("segmentation"), "name": "tuned"}
    tuned_raw["model"] = {**tuned_raw["model"], "init_from": "base"}
    tuned = parse_experiment(tuned_raw, tmp_path)
    earlier = tmp_path / "earlier" / "base"
    earlier.mkdir(parents=True)
    (earlier / "config.json").write_text("{}")
    prepared, calls = [], []
    monkeypatch.setattr(presets, "prepare_shared", lambda exps, workers: prepared.extend(exps))

    def fake_train(experiment, out, *, trained, workers):  # type: ignore[no-untyped-def]
        calls.append((experiment.name, dict(trained)))
        return Path(out) / experiment.name

    monkeypatch.setattr(presets, "train_experiment", fake_train)
    result = train_preset([base, tuned], tmp_path / "run", reuse={"base": earlier})
    assert [e.name for e in prepared] == ["tuned"]
    assert calls == [("tuned", {"base": earlier})]
    assert result == {"base": earlier, "tuned": tmp_path / "run" / "tuned"}
    with pytest.raises(ValueError, match="reuse names no experiment of this run: other"):
        train_preset([base, tuned], tmp_path / "run", reuse={"other": earlier})
    with pytest.raises(FileNotFoundError, match="no bundle there"):
        train_preset([base, tuned], tmp_path / "run", reuse={"base": tmp_path})


def test_pe_train_rejects_a_malformed_reuse_item(capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli.main(["--preset", "demo", "--reuse", "unet_base"]) == 2
    assert "--reuse takes NAME=BUNDLE, got 'unet_base'" in capsys.readouterr().err


def test_recut_ships_the_trained_weights_with_the_cuts_now_in_the_experiment_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "stage1.yaml"
    raw = experiment_dict("triage_stage1", threshold=0.9, min_disease_mm=10)
    path.write_text(yaml.safe_dump(raw))
    assert train_cli.main([str(path), "--out", str(tmp_path / "first"), "--no-eval"]) == 0
    trained = tmp_path / "first" / "tiny-triage_stage1"
    path.write_text(yaml.safe_dump({**raw, "threshold": 0.77, "min_disease_mm": 40}))
    reuse = ["--reuse", f"tiny-triage_stage1={trained}"]
    second = tmp_path / "second"
    assert train_cli.main([str(path), *reuse, "--recut", "--out", str(second), "--no-eval"]) == 0
    recut, original = load_bundle(second / "tiny-triage_stage1"), load_bundle(trained)
    assert (recut.config.threshold, recut.config.extra["min_disease_mm"]) == (0.77, 40)
    assert (original.config.threshold, original.config.extra["min_disease_mm"]) == (0.9, 10)
    assert recut.config.extra["training"] == original.config.extra["training"]
    assert (recut.path / WEIGHTS_FILE).read_bytes() == (trained / WEIGHTS_FILE).read_bytes()
    assert "Diseased-slice cut on this stage's probability: 0.77" in recut.card
    assert "at least 40 mm long along z" in recut.card
    assert f"- Cuts: set after training from `{path}` (`pe-train --recut`)" in recut.card

    path.write_text(yaml.safe_dump({**raw, "input": {**raw["input"], "size": 96}}))
    assert train_cli.main([str(path), *reuse, "--recut", "--out", str(second), "--no-eval"]) == 1
    assert f"was not built by {path} (input_size: 64 vs 96)" in capsys.readouterr().err
    assert train_cli.main([str(path), "--recut", "--out", str(second)]) == 2
    assert "--recut re-cuts reused bundles; name them with --reuse" in capsys.readouterr().err


def test_boxes_to_input_inverts_boxes_to_original() -> None:
    crop = CropBox(40, 200, 30, 330)
    boxes = np.array([[100.0, 60.0, 120.0, 90.0], [300.0, 150.0, 320.0, 170.0]])
    mapped = boxes_to_input(boxes, crop, 128)
    np.testing.assert_allclose(crop.boxes_to_original(mapped, (128, 128)), boxes, atol=1e-4)
    outside = boxes_to_input(np.array([[0.0, 0.0, 20.0, 20.0]]), crop, 128)
    assert outside.shape == (0, 4)


def test_select_slices_keeps_every_lesion_slice() -> None:
    labels = ["normal"] * 5 + ["pe", "pe"] + ["other_disease"] + ["normal"] * 4
    kept = select_slices(labels, normal_stride=4)
    assert {5, 6, 7} <= set(kept)
    assert set(kept) - {5, 6, 7} == {0, 4, 8}


def test_prepared_study_matches_the_phantom_and_is_cached() -> None:
    spec = InputSpec(tuple(RGB), size=64)
    records = phantom_records([21], "pe", size="test")
    (first,) = prepare_studies(records, [spec], normal_stride=3, workers=0)[0]
    phantom = generate_phantom(21, "pe", "test")
    pe_slices = {z for z, label in enumerate(phantom.slice_labels) if label == "pe"}
    assert pe_slices <= set(first.z.tolist())
    assert first.images.shape == (len(first.z), 3, 64, 64)
    assert first.images.dtype == np.uint8
    with_mask = [k for k, z in enumerate(first.z) if z in pe_slices]
    assert np.asarray(first.masks)[with_mask].sum() > 0
    assert all(len(first.boxes[k]) for k in with_mask if first.masks[k].any())
    (again,) = prepare_studies(records, [spec], normal_stride=3, workers=0)[0]
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.masks, first.masks)
    assert first.other_masks is not None
    assert not np.asarray(first.other_masks).any()  # a PE-only phantom


def test_prepared_pixels_are_read_a_slice_at_a_time_from_the_cache(tmp_path: Path) -> None:
    spec = InputSpec(tuple(RGB), size=64)
    records = phantom_records([21], "pe", size="test")
    (study,) = prepare_studies(records, [spec], normal_stride=3, workers=0)[0]
    assert isinstance(study.images, StoredSlices)
    in_memory = load_prepared(study.images.path)
    last = len(in_memory.z) - 1
    for stored, held in (
        (study.images, in_memory.images),
        (study.masks, in_memory.masks),
        (study.other_masks, in_memory.other_masks),
    ):
        assert isinstance(stored, StoredSlices)
        assert isinstance(held, np.ndarray)
        for k in (0, last // 2, last):
            np.testing.assert_array_equal(stored[k], held[k])
    assert np.asarray(study.masks).any()
    study.images[last][:] = 0  # each read is a copy: the cache is untouched
    np.testing.assert_array_equal(study.images[last], in_memory.images[last])
    with pytest.raises(IndexError, match="out of range"):
        study.images[last + 1]
    with pytest.raises(ValueError, match="without a copy"):
        np.asarray(study.images, copy=False)
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, images=in_memory.images)
    with pytest.raises(ValueError, match=r"compressed\.npz: array 'images' is compressed"):
        StoredSlices.open(compressed, "images")


def test_prepared_other_disease_masks_cover_the_lesion_slices() -> None:
    spec = InputSpec(tuple(RGB), size=64)
    records = phantom_records([31], "mix", size="test")
    (study,) = prepare_studies(records, [spec], workers=0)[0]
    assert study.study_id == "phantom-00031-other"
    assert study.other_masks is not None
    with_lesion = np.asarray(study.other_masks).any(axis=(1, 2))
    labelled = np.array(study.labels) == "other_disease"
    assert with_lesion.sum() > 0
    assert not (with_lesion & ~labelled).any()  # no lesion pixel on a slice labelled without one


@pytest.fixture(scope="module")
def prepared() -> list:
    spec = InputSpec(tuple(RGB), size=64)
    records = phantom_records(range(30, 33), "mix", size="test")
    records += phantom_records([33], "pe", size="test")
    return prepare_studies(records, [spec], workers=0)[0]


def test_balanced_slices_draw_the_requested_share_and_exclude_normal_in_stage2(
    prepared: list,
) -> None:
    spec = InputSpec(tuple(RGB), size=64)
    data = BalancedSlices(prepared, spec, "classification", length=400, positive_fraction=0.3)
    targets = np.array([float(data[i][1]) for i in range(len(data))])
    assert 0.22 < targets.mean() < 0.38
    positives, negatives = binary_slices(prepared, "triage_stage2")
    labels = {prepared[s].labels[k] for s, k in positives + negatives}
    assert "normal" not in labels
    image, _ = data[0]
    assert image.shape == (3, 64, 64)
    assert float(image.min()) >= 0.0
    assert float(image.max()) <= 1.0


def test_matched_negatives_sit_next_to_positives_of_the_same_study(prepared: list) -> None:
    spec = InputSpec(tuple(RGB), size=64)
    data = BalancedSlices(
        prepared, spec, "classification", length=200, positive_fraction=0.0, matched_fraction=1.0
    )
    for (s, k), near in zip(data.positives, data.matched, strict=True):
        assert near, "every PE study here has slices without PE"
        assert all(study == s for study, _ in near)
        z = prepared[s].z[k]
        nearest = min(abs(prepared[s].z[kn] - z) for ss, kn in data.negatives if ss == s)
        assert min(abs(prepared[s].z[kn] - z) for _, kn in near) == nearest
    matched = {ref for near in data.matched for ref in near}
    drawn = {data._draw(data._rng(i))[0] for i in range(len(data))}
    assert drawn <= matched
    assert all(float(data[i][1]) == 0.0 for i in range(20))


def test_lesion_patches_hold_the_lesion(prepared: list) -> None:
    spec = InputSpec(tuple(RGB), size=64)
    masks = Patches(prepared, spec, "segmentation", length=20, patch=32, positive_fraction=1.0)
    for i in range(len(masks)):
        image, mask = masks[i]
        assert image.shape == (3, 32, 32)
        assert mask.shape == (32, 32)
        assert mask.sum() > 0
    boxes = Patches(prepared, spec, "detection", length=20, patch=32, positive_fraction=1.0)
    found = [boxes[i][1]["boxes"] for i in range(len(boxes))]
    assert sum(len(b) for b in found) > 0
    for b in found:
        assert (b >= 0).all()
        assert (b <= 32).all()


def test_classifier_patches_are_labelled_by_the_clot_they_hold(prepared: list) -> None:
    spec = InputSpec(tuple(RGB), size=64)
    centred = Patches(prepared, spec, "classification", length=20, patch=32, positive_fraction=1)
    assert all(float(centred[i][1]) == 1.0 for i in range(len(centred)))
    anywhere = Patches(prepared, spec, "classification", length=40, patch=32, positive_fraction=0)
    pixels = Patches(prepared, spec, "segmentation", length=40, patch=32, positive_fraction=0)
    targets = [float(anywhere[i][1]) for i in range(len(anywhere))]
    holds_clot = [float(pixels[i][1].any()) for i in range(len(pixels))]
    assert targets == holds_clot  # same seeds, same patches
    assert 0 < sum(targets) < len(targets)
    unmasked = [replace(prepared[0], masks=None), *prepared[1:]]
    with pytest.raises(ValueError, match=f"needs PE masks; none for {prepared[0].study_id}"):
        Patches(unmasked, spec, "classification", length=1, patch=32)


def test_lesion_map_patches_carry_the_mask_the_label_came_from(prepared: list) -> None:
    spec = InputSpec(tuple(RGB), size=64)
    # Each study shows its lesion masks as its image, so a flip must turn the mask with it.
    shown = [
        replace(
            s,
            images=np.repeat(
                (np.asarray(s.masks) | np.asarray(s.other_masks))[:, None] * np.uint8(255),
                3,
                axis=1,
            ),
        )
        for s in prepared
    ]
    options = {"length": 40, "patch": 32, "positive_fraction": 0.5}
    labels = Patches(shown, spec, "triage_stage1", **options)
    maps = Patches(shown, spec, "triage_stage1", lesion_maps=True, **options)
    for i in range(len(maps)):
        image, mask = maps[i]
        assert mask.shape == (32, 32)
        assert torch.equal(image, labels[i][0])  # the same patches
        assert float(mask.any()) == float(labels[i][1])
        assert torch.equal(mask.bool(), image[0] > 0)
    assert 0 < sum(float(maps[i][1].any()) for i in range(len(maps))) < len(maps)


def test_mimic_patches_are_centred_on_other_disease(prepared: list) -> None:
    spec = InputSpec(tuple(RGB), size=64)
    # Each study shows its other-disease mask as its image, so a patch "sees" the lesion
    # exactly when its image is not blank.
    shown = [
        replace(s, images=np.repeat(np.asarray(s.other_masks)[:, None] * np.uint8(255), 3, axis=1))
        for s in prepared
    ]
    options = {"length": 40, "patch": 16, "positive_fraction": 0.0}
    mimics = Patches(shown, spec, "segmentation", mimic_fraction=1.0, **options)
    assert all(float(mimics[i][0].amax()) > 0 for i in range(len(mimics)))
    anywhere = Patches(shown, spec, "segmentation", **options)
    assert sum(float(anywhere[i][0].amax()) > 0 for i in range(len(anywhere))) < len(anywhere)
    unmasked = [replace(s, other_masks=None) for s in prepared]
    with pytest.raises(ValueError, match="needs studies with other-disease masks"):
        Patches(unmasked, spec, "segmentation", mimic_fraction=0.5, **options)


def test_triage_patches_count_other_disease_as_a_lesion_in_stage1_only(prepared: list) -> None:
    spec = InputSpec(tuple(RGB), size=64)
    options = {"length": 60, "patch": 32}
    stage1 = Patches(prepared, spec, "triage_stage1", positive_fraction=1.0, **options)
    assert all(float(stage1[i][1]) == 1.0 for i in range(len(stage1)))
    pe_only = [r for r in stage1.lesions if prepared[r[0]].masks[r[1]].any()]
    assert len(pe_only) < len(stage1.lesions)  # slices with only other disease are centres too
    # Far from a lesion, a patch is "diseased" exactly when it holds a PE or other pixel.
    anywhere = Patches(prepared, spec, "triage_stage1", positive_fraction=0.0, **options)
    stage2 = Patches(prepared, spec, "triage_stage2", positive_fraction=0.0, **options)
    pe_pixels = Patches(prepared, spec, "segmentation", positive_fraction=0.0, **options)
    diseased = [float(anywhere[i][1]) for i in range(len(anywhere))]
    pe = [float(stage2[i][1]) for i in range(len(stage2))]
    assert pe == [float(pe_pixels[i][1].any()) for i in range(len(pe_pixels))]
    assert all(d >= p for d, p in zip(diseased, pe, strict=True))
    assert sum(diseased) > sum(pe)


def test_triage_branches_start_from_a_seed1_encoder_window_by_window() -> None:
    kwargs = {"channels": [8, 8, 16, 16]}
    encoder = build("classifier", backbone="resnet10t", in_chans=3, **kwargs)
    triage = build("mwl_cbam_drn", depth="resnet10t", windows=2, **kwargs)
    names = branches_from_encoder(
        triage, encoder, ("lung", "vascular", "mediastinal"), ("vascular", "lung")
    )
    first = [b.stem[0][0].weight for b in triage.branches]
    assert torch.equal(first[0][:, 0], encoder.conv1[0].weight[:, 1])  # vascular channel
    assert torch.equal(first[1][:, 0], encoder.conv1[0].weight[:, 0])  # lung channel
    assert torch.equal(triage.branches[1].stages[3][0].conv2.weight, encoder.layer4[0].conv2.weight)
    assert not any("attention" in n or "head" in n for n in names)
    with pytest.raises(ValueError, match="window 'wide' is not an input of the encoder"):
        branches_from_encoder(
            triage, encoder, ("lung", "vascular", "mediastinal"), ("vascular", "wide")
        )


@pytest.mark.slow
def test_tiny_training_runs_end_in_working_bundles(tmp_path: Path) -> None:
    trained: dict[str, Path] = {}
    tasks = ("classification", "segmentation", "detection", "triage_stage1", "triage_stage2")
    for task in (*tasks, "integrated"):
        raw = experiment_dict(task)
        if task in ("segmentation", "detection", "integrated"):
            raw["model"]["init_from"] = "tiny-classification"
        if task == "segmentation":  # seed 1, step 3: trained jointly with a classification head
            raw["model"]["kwargs"]["aux_classes"] = 1
            raw["min_clot_ml"] = 0.12
        if task == "detection":
            raw["threshold"] = 0.85
        if task == "classification":
            raw["scores_slices"] = False
        if task == "triage_stage1":
            raw["min_disease_mm"] = 10
            raw["threshold"] = 0.9
        experiment = parse_experiment(raw, tmp_path / f"{task}.yaml")
        trained[experiment.name] = train_experiment(
            experiment, tmp_path / "run", trained=trained, workers=0, progress_bar=False
        )
    for folder in trained.values():
        bundle = load_bundle(folder)
        assert "synthetic CTPA phantoms only" in bundle.card
        assert "not for clinical use" in bundle.card
        assert bundle.config.extra["training"]["steps_run"] == 3
    assert load_bundle(trained["tiny-segmentation"]).config.extra["min_clot_ml"] == 0.12
    assert "clot of at least 0.12 mL" in load_bundle(trained["tiny-segmentation"]).card
    assert "min_clot_ml" not in load_bundle(trained["tiny-classification"]).config.extra
    assert load_bundle(trained["tiny-detection"]).config.threshold == 0.85
    classifier = load_bundle(trained["tiny-classification"])
    assert not classifier.config.scores_slices
    assert "`scores_slices: false`" in classifier.card
    assert load_bundle(trained["tiny-segmentation"]).config.scores_slices
    assert "Box score cut (boxes below it are not drawn by default): 0.85" in (
        load_bundle(trained["tiny-detection"]).card
    )
    stage1 = load_bundle(trained["tiny-triage_stage1"])
    assert (stage1.config.extra["min_disease_mm"], stage1.config.threshold) == (10, 0.9)
    assert "a run of consecutive slices at least 10 mm long along z" in stage1.card
    assert "Diseased-slice cut on this stage's probability: 0.9" in stage1.card
    assert (tmp_path / "run" / "logs").is_dir()
    pipeline = Pipeline.from_bundles(
        [trained["tiny-classification"], trained["tiny-segmentation"], trained["tiny-detection"]]
    )
    volume = generate_phantom(50, "pe", "test").volume
    study = pipeline.run(volume, slices=[20, 21])
    assert len(study.slices) == 2
    assert study.slices[0].mask is not None
    assert pipeline.box_score_cut() == 0.85
    assert Pipeline.from_bundles([trained["tiny-classification"]]).box_score_cut() is None
    integrated = Pipeline.from_bundles([trained["tiny-integrated"]]).run(volume, slices=[20])
    (result,) = integrated.slices
    assert 0.0 <= result.pe_probability <= 1.0
    assert result.mask.shape == volume.shape[1:]
    assert result.boxes.shape[1] == 5


def test_a_triage_stage_with_a_logit_map_learns_from_the_lesion_masks(tmp_path: Path) -> None:
    """The map's loss against the masks changes what is learnt; the bundle keeps its map."""
    weights = {}
    for map_weight in (None, 0.5):
        raw = experiment_dict("triage_stage2", name="tiny-map")
        raw["task"] = "triage_stage1"
        raw["model"]["kwargs"]["pool"] = "map"
        raw["train"] = {"steps": 3, "batch_size": 4, "val_every": 3, "patch": 32}
        if map_weight is not None:
            raw["train"]["lesion_map_weight"] = map_weight
        experiment = parse_experiment(raw, tmp_path / "map.yaml")
        out = tmp_path / str(map_weight)
        folder = train_experiment(experiment, out, workers=0, progress_bar=False)
        weights[map_weight] = load_file(folder / WEIGHTS_FILE)
    # Same patches and the same label loss (the map's maximum): only the map's loss differs.
    assert not torch.equal(weights[None]["head.weight"], weights[0.5]["head.weight"])
    bundle = load_bundle(folder)
    assert bundle.config.builder_kwargs["pool"] == "map"
    with torch.inference_mode():
        logits = bundle.build_model("cpu").eval()(torch.rand(2, 2, 64, 64))
    assert tuple(logits.shape) == (2, 1)


def test_a_training_run_is_reproducible(tmp_path: Path) -> None:
    """The same experiment twice gives the same weights (how the demo bundles are rebuilt)."""
    experiment = parse_experiment(experiment_dict("segmentation"), tmp_path / "unet.yaml")
    weights = []
    for run in ("first", "second"):
        folder = train_experiment(experiment, tmp_path / run, workers=0, progress_bar=False)
        weights.append(load_file(folder / WEIGHTS_FILE))
    first, second = weights
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_a_2_5d_unet_trains_on_neighbour_slices_and_runs_in_the_pipeline(tmp_path: Path) -> None:
    raw = experiment_dict("segmentation")
    raw["input"]["context_mm"] = 2.5
    raw["model"]["kwargs"]["in_chans"] = 5
    experiment = parse_experiment(raw, tmp_path / "unet25d.yaml")
    folder = train_experiment(experiment, tmp_path / "run", workers=0, progress_bar=False)
    config = load_bundle(folder).config
    assert config.context_mm == 2.5
    volume = generate_phantom(50, "pe", "test").volume
    view = model_view(volume, 20, config)
    assert view.channels.shape == (5, 64, 64)
    assert view.windows[3:] == ("vascular -2.5 mm", "vascular +2.5 mm")
    (result,) = Pipeline.from_bundles([folder]).run(volume, slices=[20]).slices
    assert result.mask.shape == volume.shape[1:]


def test_unet_and_detector_start_from_the_classifier(tmp_path: Path) -> None:
    from pe_models.bundle import BundleConfig, save_bundle
    from pe_models.nets import build

    torch.manual_seed(0)
    kwargs = {"backbone": "resnet10t", "in_chans": 3, "channels": NARROW}
    classifier = build("classifier", **kwargs)
    config = BundleConfig("classifier", kwargs, "classification", tuple(RGB), input_size=64)
    folder = save_bundle(classifier, config, "card", tmp_path / "classifier")
    reference = classifier.state_dict()["layer1.0.conv1.weight"]
    unet = build_network(parse_experiment(experiment_dict("segmentation"), tmp_path), folder)
    encoder_weight = unet.encoder.model.state_dict()["layer1.0.conv1.weight"]
    torch.testing.assert_close(encoder_weight, reference)
    detector = build_network(parse_experiment(experiment_dict("detection"), tmp_path), folder)
    body_weight = detector.backbone.body.state_dict()["layer1.0.conv1.weight"]
    torch.testing.assert_close(body_weight, reference)


def test_a_unet_fine_tuned_from_a_unet_starts_with_all_its_weights(tmp_path: Path) -> None:
    from pe_models.bundle import BundleConfig, save_bundle

    raw = experiment_dict("segmentation")
    experiment = parse_experiment(raw, tmp_path)
    torch.manual_seed(1)
    trained = build_network(experiment, None)
    config = BundleConfig("unet", raw["model"]["kwargs"], "segmentation", tuple(RGB), input_size=64)
    folder = save_bundle(trained, config, "card", tmp_path / "unet")
    torch.manual_seed(2)
    tuned = build_network(experiment, folder)
    for name, tensor in trained.state_dict().items():  # decoder and head too, not the encoder only
        torch.testing.assert_close(tuned.state_dict()[name], tensor, msg=name)


def test_the_card_of_a_fine_tuned_bundle_names_the_bundle_it_started_from(tmp_path: Path) -> None:
    raw = experiment_dict("segmentation")
    summary = {"steps_run": 3, "best_validation": {"val_iou": 0.5}, "init_from": None}
    assert "starting from" not in training_card(parse_experiment(raw, tmp_path / "x.yaml"), summary)
    raw["model"] = {**raw["model"], "init_from": "unet_base"}
    tuned = parse_experiment(raw, tmp_path / "x.yaml")
    card = training_card(tuned, {**summary, "init_from": "runs/demo/unet_base"})
    assert (
        "- Training: 3 steps, starting from the weights of `unet_base` "
        "(bundle `runs/demo/unet_base`); best validation" in card
    )


def test_bundles_record_demo_experiment_files_relative_to_the_project(tmp_path: Path) -> None:
    demo = resources_dir() / "experiments" / "demo" / "1b_unet.yaml"
    assert recorded_path(demo) == str(Path("resources/experiments/demo/1b_unet.yaml"))
    elsewhere = tmp_path / "mine.yaml"
    assert recorded_path(elsewhere) == str(elsewhere)
    assert recorded_path(None) is None
