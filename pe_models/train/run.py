"""Train one experiment with PyTorch Lightning and save the result as a model bundle."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L  # noqa: N812 - the library's own spelling
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pe_models.bundle import BundleConfig, load_bundle, save_bundle
from pe_models.data.phantoms import phantom_records
from pe_models.data.records import StudyRecord, split_by_patient
from pe_models.data.slices import PreparedStudy, prepare_studies
from pe_models.nets import build
from pe_models.nets.cbam_drn import MultiWindowCbamDrn, branches_from_encoder
from pe_models.nets.unet import copy_matching, timm_encoder
from pe_models.resources import resources_dir
from pe_models.synth.phantom import PHANTOM_VERSION
from pe_models.train.experiment import Experiment
from pe_models.train.mining import MinedPoint, mine_false_pieces
from pe_models.train.module import VALIDATION_SCORE, TaskModule
from pe_models.train.samples import (
    BalancedSlices,
    LesionList,
    MultiTaskSliceList,
    MultiTaskSlices,
    Patches,
    SliceList,
    collate_detection,
)

log = logging.getLogger(__name__)

SEED1_TASKS = ("classification", "segmentation", "detection", "integrated")
"""Tasks of seed 1's networks, which share one timm encoder design."""

NOT_FOR_CLINICAL_USE = "**Research use only. Not a medical device; not for clinical use.**"


def dataset_records(experiment: Experiment) -> dict[str, list[StudyRecord]]:
    """Training / validation (/ test) studies of an experiment, split by patient."""
    data = experiment.data
    if data.source == "phantoms":
        parts = {"train": data.train, "val": data.val, "test": data.test}
        return {
            name: [r for s in sets for r in phantom_records(s.seed_list, s.kind, size=s.size)]
            for name, sets in parts.items()
            if sets
        }
    if not data.root:
        raise ValueError(
            f"{experiment.path or experiment.name}: data.root is not set for source "
            f"{data.source!r}; set it in the file or pass --root {data.source}=PATH"
        )
    root = Path(data.root)
    if data.source == "rsna":
        from pe_models.data.rsna import rsna_records

        records = rsna_records(root)
    elif data.source == "fumpe":
        from pe_models.data.fumpe import fumpe_records

        records = fumpe_records(root)
    else:
        from pe_models.data.folder import folder_records

        records = folder_records(root)
    if data.limit is not None:
        keep = sorted({r.patient_id for r in records})[: data.limit]
        records = [r for r in records if r.patient_id in set(keep)]
    return split_by_patient(records, data.split, seed=data.split_seed)


def _datasets(
    experiment: Experiment,
    train: list[PreparedStudy],
    val: list[PreparedStudy],
    hard_points: Sequence[MinedPoint] = (),
) -> tuple[Dataset, Dataset, Callable[..., Any] | None]:
    """Training set, validation set and collate function for the task."""
    spec, settings, task = experiment.input, experiment.train, experiment.task
    sampling: dict[str, Any] = {
        "length": settings.steps * settings.batch_size,
        "positive_fraction": settings.positive_fraction,
        "seed": settings.seed,
    }
    train_set: Dataset
    val_set: Dataset
    if experiment.trains_on_patches:
        train_set = Patches(
            train,
            spec,
            task,
            patch=settings.patch,
            mimic_fraction=settings.mimic_fraction,
            hard_fraction=settings.hard_negative_fraction,
            hard_points=hard_points,
            lesion_maps=settings.lesion_map_weight is not None,
            **sampling,
        )
    elif task == "integrated":
        train_set = MultiTaskSlices(
            train, spec, task, matched_fraction=settings.matched_fraction, **sampling
        )
    else:
        train_set = BalancedSlices(
            train, spec, task, matched_fraction=settings.matched_fraction, **sampling
        )
    if task in ("segmentation", "detection"):
        val_set = LesionList(val, spec, task)
    elif task == "integrated":
        val_set = MultiTaskSliceList(val, spec, task)
    else:  # a classifier trained on patches still scores whole slices
        val_set = SliceList(val, spec, task)
    collate = collate_detection if task in ("detection", "integrated") else None
    return train_set, val_set, collate


def resolve_init(init_from: str | None, trained: Mapping[str, Path]) -> Path | None:
    """The bundle folder named by ``init_from``: an experiment trained earlier, or a path."""
    if init_from is None:
        return None
    if init_from in trained:
        return trained[init_from]
    path = Path(init_from)
    if not path.is_dir():
        raise FileNotFoundError(
            f"init_from {init_from!r} is neither an earlier experiment of this run "
            f"({', '.join(trained) or 'none'}) nor a bundle folder"
        )
    return path


def recorded_path(path: Path | None) -> str | None:
    """``path`` as a bundle records it, relative to the project when inside it.

    The demo experiments lie in ``resources/``: a bundle trained from them then names no
    folder of the machine it was trained on.
    """
    if path is None:
        return None
    project = resources_dir().resolve().parent
    resolved = path.resolve()
    return str(resolved.relative_to(project)) if resolved.is_relative_to(project) else str(path)


def build_network(experiment: Experiment, init_bundle: Path | None) -> nn.Module:
    """The experiment's network, warm-started from ``init_bundle`` when given.

    A bundle of the same architecture passes on every tensor (fine-tuning). Across seed-1
    networks (classifier, U-Net, detector, integrated model) the timm encoder passes: a U-Net
    starts from the classifier's encoder (seed 1, steps 4-6), the detector from its backbone
    (seed 1's localiser), and the other way round a classifier from a U-Net's encoder. A
    multi-window CBAM-DRN (triage) starts each window's branch from a seed-1 encoder
    (:func:`~pe_models.nets.cbam_drn.branches_from_encoder`). Other models take every tensor
    whose name and shape match (triage stage 2 from stage 1).
    """
    model = build(experiment.model.arch, **builder_kwargs(experiment))
    if init_bundle is None:
        return model
    bundle = load_bundle(init_bundle)
    source = bundle.build_model()
    if experiment.task in SEED1_TASKS and bundle.config.arch != experiment.model.arch:
        copied = copy_matching(timm_encoder(source), timm_encoder(model))
    elif isinstance(model, MultiWindowCbamDrn) and bundle.config.task in SEED1_TASKS:
        copied = branches_from_encoder(
            model, timm_encoder(source), bundle.config.input_windows, experiment.input.windows
        )
    else:
        copied = copy_matching(source, model)
    log.info("%s: %d tensors copied from %s", experiment.name, len(copied), init_bundle)
    return model


def bundle_recipe(experiment: Experiment) -> dict[str, Any]:
    """The :class:`BundleConfig` fields the experiment's network and input fix.

    The weights mean something only under these; the cuts and study rules may change after
    training (``pe-train --recut``).
    """
    return {
        "arch": experiment.model.arch,
        "builder_kwargs": builder_kwargs(experiment),
        "task": experiment.task,
        "input_windows": tuple(experiment.input.windows),
        "normalisation": experiment.input.normalisation,
        "input_size": experiment.input.size,
        "crop": experiment.input.crop,
        "context_mm": experiment.input.context_mm,
        "class_names": tuple(experiment.class_names),
    }


def builder_kwargs(experiment: Experiment) -> dict[str, object]:
    """Builder arguments; a detector keeps inputs at the input size (no resize)."""
    kwargs = dict(experiment.model.kwargs)
    if experiment.task == "detection":
        kwargs.setdefault("min_size", experiment.input.size)
        kwargs.setdefault("max_size", experiment.input.size)
    return kwargs


def _loggers(folder: Path, name: str) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(folder / "logs", name=name)]
    try:
        import tensorboard  # noqa: F401 - optional

        loggers.append(TensorBoardLogger(folder / "logs", name=name))
    except ImportError:
        pass
    return loggers


def _precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "16-mixed" if torch.cuda.is_available() else "32-true"


def train_experiment(
    experiment: Experiment,
    out: str | Path,
    *,
    trained: Mapping[str, Path] | None = None,
    workers: int | None = None,
    progress_bar: bool = True,
) -> Path:
    """Train ``experiment`` and write its bundle to ``out / experiment.output``.

    Parameters
    ----------
    out
        Output folder: bundles, ``logs/`` (CSV, TensorBoard when installed) and
        ``checkpoints/`` go there.
    trained
        Experiments of the same run already trained (name → bundle), for ``init_from``.
    workers
        Processes preparing studies (default: CPU count).

    Returns
    -------
    Path
        The bundle folder.
    """
    out = Path(out)
    settings = experiment.train
    L.seed_everything(settings.seed, workers=True)
    started = time.perf_counter()
    records = dataset_records(experiment)
    prepared = {
        part: prepare_studies(
            parts, [experiment.input], normal_stride=experiment.data.normal_stride, workers=workers
        )[0]
        for part, parts in records.items()
        if part in ("train", "val")
    }
    prepare_s = time.perf_counter() - started
    init_bundle = resolve_init(experiment.model.init_from, trained or {})
    network = build_network(experiment, init_bundle)
    hard_points: list[MinedPoint] = []
    if settings.hard_negative_fraction:
        hard_points = mine_false_pieces(
            network, prepared["train"], experiment.input, stride=settings.mine_stride
        )
    train_set, val_set, collate = _datasets(
        experiment, prepared["train"], prepared["val"], hard_points
    )
    train_loader, val_loader = (
        DataLoader(
            dataset,
            batch_size=settings.batch_size,
            num_workers=settings.workers,
            shuffle=False,
            collate_fn=collate,
        )
        for dataset in (train_set, val_set)
    )

    module = TaskModule(
        network,
        experiment.task,
        steps=settings.steps,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        train_size=settings.patch,
        val_size=experiment.input.size,
        piece_weight_px=settings.piece_weight_px,
        lesion_map_weight=settings.lesion_map_weight,
    )
    score_name = VALIDATION_SCORE[experiment.task]
    checkpoint = ModelCheckpoint(
        dirpath=out / "checkpoints" / experiment.name,
        filename="best",
        monitor=score_name,
        mode="max",
        save_top_k=1,
    )
    callbacks: list[L.Callback] = [checkpoint]
    if settings.patience:
        callbacks.append(EarlyStopping(score_name, mode="max", patience=settings.patience))
    multi_device = settings.devices not in (1, "1") or settings.num_nodes > 1
    trainer = L.Trainer(
        max_steps=settings.steps,
        val_check_interval=min(settings.val_every, settings.steps),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        logger=_loggers(out, experiment.name),
        precision=_precision(settings.precision),  # type: ignore[arg-type]
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy="ddp" if multi_device else "auto",
        log_every_n_steps=10,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
    )
    trainer.fit(module, train_loader, val_loader)
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(best["state_dict"])
    summary = {
        "experiment": experiment.name,
        "experiment_file": recorded_path(experiment.path),
        "steps_run": int(trainer.global_step),
        "best_validation": {score_name: float(checkpoint.best_model_score or 0.0)},
        "train_studies": [s.study_id for s in prepared["train"]],
        "val_studies": [s.study_id for s in prepared["val"]],
        "train_slices": int(sum(len(s.z) for s in prepared["train"])),
        "prepare_seconds": round(prepare_s, 1),
        "train_seconds": round(time.perf_counter() - started - prepare_s, 1),
        "init_from": str(init_bundle) if init_bundle else None,
        "device": str(trainer.strategy.root_device),
    }
    if settings.hard_negative_fraction:
        summary["hard_negatives_mined"] = len(hard_points)
    if experiment.data.source == "phantoms":
        summary["phantom_version"] = PHANTOM_VERSION
    config = BundleConfig(
        **bundle_recipe(experiment),
        threshold=experiment.threshold,
        scores_slices=experiment.scores_slices,
        extra={"training": summary} | study_rules(experiment),
    )
    folder = out / experiment.output
    save_bundle(
        module.model, config, training_card(experiment, summary), folder, half=settings.half
    )
    return folder


def _started_from(experiment: Experiment, summary: Mapping[str, object]) -> str:
    """The card's words for a warm-started bundle: the experiment it started from, and where."""
    named, folder = experiment.model.init_from, summary.get("init_from")
    if not named or not folder:
        return ""
    where = "" if str(folder) == named else f" (bundle `{folder}`)"
    return f", starting from the weights of `{named}`{where}"


STUDY_RULES = ("min_clot_ml", "min_disease_mm")
"""Study rules an experiment may set; a bundle keeps them in its config's ``extra``."""


def study_rules(experiment: Experiment) -> dict[str, float]:
    """The study rules (``STUDY_RULES``) the experiment sets, by name."""
    rules = {name: getattr(experiment, name) for name in STUDY_RULES}
    return {name: value for name, value in rules.items() if value is not None}


def training_card(experiment: Experiment, summary: Mapping[str, object]) -> str:
    """The model card written at training time (``pe-eval --update-cards`` adds test metrics)."""
    data = experiment.data
    if data.source == "phantoms":
        trained_on = (
            "**synthetic CTPA phantoms only** "
            f"(`pe_models.synth`, generator version {PHANTOM_VERSION}): "
            f"{', '.join(s.describe() for s in data.train)} for training and "
            f"{', '.join(s.describe() for s in data.val)} for model selection"
        )
    else:
        trained_on = f"{data.source} data from `{data.root}`, split by patient ({data.split})"
    lines = [
        f"# {experiment.card.get('title', experiment.name)}",
        "",
        NOT_FOR_CLINICAL_USE,
        "",
        f"- Task: {experiment.task}; architecture `{experiment.model.arch}` "
        f"{json.dumps(experiment.model.kwargs)}",
        f"- Input: windows {', '.join(experiment.input.windows)}, {experiment.input.crop} crop, "
        f"{experiment.input.size}² px, normalisation {experiment.input.normalisation}"
        + (
            f", neighbour slices ±{experiment.input.context_mm:g} mm"
            if experiment.input.context_mm
            else ""
        ),
        f"- Trained on {trained_on}.",
        f"- Intended use: {experiment.card.get('intended_use', 'research and software testing')}.",
        f"- Training: {summary['steps_run']} steps{_started_from(experiment, summary)}; "
        "best validation "
        f"{json.dumps(summary['best_validation'])} (validation studies, used to pick the "
        "checkpoint: not a test result).",
        f"- Experiment: {asdict(experiment.train)}",
    ]
    if experiment.min_clot_ml is not None:
        lines.append(
            "- Study rule: while the U-Net gives the slice PE score, a study is PE only when a "
            f"3D-connected clot of at least {experiment.min_clot_ml:g} mL is found "
            "(`min_clot_ml`, chosen on validation studies; the experiment file says which)."
        )
    if experiment.min_disease_mm is not None:
        lines.append(
            "- Study rule: triage calls a study diseased only when it calls a run of "
            f"consecutive slices at least {experiment.min_disease_mm:g} mm long along z "
            "diseased (`min_disease_mm`, chosen on validation studies; the experiment file "
            "says which)."
        )
    if experiment.threshold is not None:
        what = {
            "detection": "Box score cut (boxes below it are not drawn by default)",
            "triage_stage1": "Diseased-slice cut on this stage's probability",
            "triage_stage2": "PE-slice cut on triage P(PE) = stage 1 x stage 2",
        }.get(experiment.task, "Decision threshold")
        lines.append(
            f"- {what}: {experiment.threshold:g} (`threshold`, chosen on validation studies; "
            "the experiment file says which)."
        )
    if not experiment.scores_slices:
        lines.append(
            "- Slice score: beside a model that gives the slice PE probability, this one does "
            "not (`scores_slices: false`, chosen on validation studies; the experiment file "
            "says why): its score is shown as a second opinion."
        )
    if note := experiment.card.get("notes"):
        lines += ["", note]
    return "\n".join(lines) + "\n"
