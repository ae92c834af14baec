"""Experiment files: one YAML per trained bundle, read into checked dataclasses.

A file names the network (registry arch + builder kwargs, optional warm start from another
bundle), its input recipe, its data (phantom seeds or a dataset folder split by patient) and
the training schedule::

    name: demo-classifier
    task: classification
    model: {arch: classifier, kwargs: {backbone: resnet10t, in_chans: 3}, init_from: null}
    input: {windows: [lung, vascular, mediastinal], normalisation: unit, size: 256}
    # 2.5D: context_mm: 2.5 adds the slices 2.5 mm either side along z (in_chans: 5)
    data:
      source: phantoms               # phantoms | folder | rsna | fumpe
      train: {seeds: [1000, 1040], kind: mix}   # seeds [start, stop)
      val: {seeds: [5000, 5004], kind: mix}
    train: {steps: 1500, batch_size: 16, lr: 1.0e-3}
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from pe_models.bundle import TASKS
from pe_models.data.slices import InputSpec
from pe_models.train.samples import PATCH_LABEL_TASKS

SOURCES = ("phantoms", "folder", "rsna", "fumpe")
MASK_TASKS = ("segmentation", "integrated")
"""Tasks whose loss includes a PE mask."""


class ExperimentError(ValueError):
    """An experiment file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class ModelSpec:
    """Network to build: ``pe_models.nets.build(arch, **kwargs)``.

    ``init_from`` names a bundle folder (or, inside a preset, an earlier experiment) whose
    weights start this one: the classifier's encoder for a U-Net (seed 1, steps 4-6), its
    backbone for Faster R-CNN, all matching tensors otherwise.
    """

    arch: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None


@dataclass(frozen=True)
class PhantomSet:
    """Phantom seeds ``[start, stop)`` of one kind (``pe``, ``other``, ``normal``, ``mix``)."""

    seeds: tuple[int, int]
    kind: str = "mix"
    size: str = "full"

    @property
    def seed_list(self) -> list[int]:
        """Every seed of the set."""
        return list(range(*self.seeds))

    def describe(self) -> str:
        """E.g. ``seeds 1000-1047 (mix, full)``."""
        return f"seeds {self.seeds[0]}-{self.seeds[1] - 1} ({self.kind}, {self.size})"


PhantomSets = tuple[PhantomSet, ...]
"""One part (train, val or test) of a phantom experiment: one or more seed ranges."""


def seeds_of(sets: PhantomSets) -> set[int]:
    """Every seed of the sets."""
    return {seed for s in sets for seed in s.seed_list}


@dataclass(frozen=True)
class DataSpec:
    """Where the slices come from.

    ``phantoms``: ``train`` / ``val`` (/ ``test``) phantom sets with disjoint seeds; each
    part is one ``{seeds, kind, size}`` mapping or a list of them.
    ``folder`` / ``rsna`` / ``fumpe``: a dataset ``root`` split by patient with ``split``
    fractions (``train``, ``val``, ``test``) and ``split_seed``; ``root`` may be left out of
    the file and given on the command line (``pe-train --root rsna=/data/rsna``); ``limit``
    keeps the first patients only (e.g. a subset of RSNA's 7,000 studies, as seed 1 does).
    """

    source: str = "phantoms"
    train: PhantomSets = ()
    val: PhantomSets = ()
    test: PhantomSets = ()
    root: str | None = None
    split: dict[str, float] = field(default_factory=lambda: {"train": 0.7, "val": 0.1, "test": 0.2})
    split_seed: int = 0
    normal_stride: int = 1
    limit: int | None = None


@dataclass(frozen=True)
class TrainSpec:
    """Schedule and engine settings.

    Attributes
    ----------
    steps
        Optimiser steps (the schedule is step-based: datasets are sampled, not exhausted).
    batch_size, lr, weight_decay
        AdamW with a one-cycle learning-rate schedule.
    positive_fraction
        Share of samples drawn from the positive class (class imbalance: seed 2's slices are
        10:1 normal to PE), or, for patch training, centred on a lesion.
    mimic_fraction
        Patch training: share of the patches not centred on PE that are centred on an
        other-disease lesion instead (hard negatives; needs other-disease masks).
    hard_negative_fraction
        Segmentation on patches: share of the patches not centred on PE that are centred on a
        false clot piece of the model it starts from (``init_from``), mined once before
        training on every ``mine_stride``-th training slice (before ``mimic_fraction``).
    mine_stride
        Slice stride of that mining run.
    piece_weight_px
        Segmentation: in the BCE, every 2D clot piece of the target weighs at least as much
        as one of this many pixels (model input); None: plain BCE. For clot masks with many
        small pieces; on the demo U-Net it found no more of them (docs/training_notes.md).
    matched_fraction
        Slice tasks: share of negatives taken from the same study next to a positive slice,
        so that the level of the slice gives nothing away.
    lesion_map_weight
        A classifier or triage stage with a logit map (``pool: map``) on patches: add this
        weight times the map's loss against the lesion masks
        (:func:`~pe_models.train.losses.lesion_map_loss`) to the slice label's BCE, so the
        network learns where a small lesion is, not only that the patch holds one. None: the
        label alone.
    patch
        Train on square patches of this size (None: whole input). Segmentation and detection;
        also a classifier or a triage stage when the studies have PE masks (target: a lesion
        in the patch).
    val_every
        Validate every this many steps; the best validation score is kept.
    patience
        Early stopping after this many validations without improvement (0: never).
    precision
        ``auto`` (16-bit mixed on CUDA, 32-bit on CPU) or a Lightning precision string.
    devices, num_nodes
        Lightning devices / nodes; more than one device trains with DDP.
    half
        Store the bundle's weights as float16.
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    positive_fraction: float = 0.5
    mimic_fraction: float = 0.0
    hard_negative_fraction: float = 0.0
    mine_stride: int = 2
    piece_weight_px: int | None = None
    lesion_map_weight: float | None = None
    matched_fraction: float = 0.0
    patch: int | None = None
    val_every: int = 250
    patience: int = 0
    precision: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    workers: int = 0
    seed: int = 0
    half: bool = True


@dataclass(frozen=True)
class Experiment:
    """One training run that ends in one bundle."""

    name: str
    task: str
    model: ModelSpec
    input: InputSpec
    data: DataSpec
    train: TrainSpec
    output: str
    class_names: tuple[str, ...] = ("pe",)
    card: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    min_clot_ml: float | None = None
    """Segmentation: the smallest 3D clot that may make a study PE when the U-Net alone gives
    the slice scores (see ``Pipeline.summarise``); choose it on the validation studies."""
    min_disease_mm: float | None = None
    """Triage stage 1: a study is diseased only when triage calls a run of consecutive slices
    at least this long along z diseased (see ``Pipeline.summarise``); choose it on the
    validation studies."""
    threshold: float | None = None
    """The bundle's decision threshold, chosen on the validation studies: a classifier's (or
    triage stage 2's) slice PE probability, triage stage 1's diseased-slice probability (see
    ``pe_models.triage.triage_classes``), or a detector's box score cut (the viewer's default
    "Box score ≥")."""
    scores_slices: bool = True
    """False: the bundle does not give the slice PE probability and the study decision when
    another installed model can (``BundleConfig.scores_slices``); choose it on validation."""
    install: bool = True
    """Whether ``pe-train --install`` copies the bundle into the app's ``resources/bundles``;
    false for a bundle that trains (others start from it) but is not good enough to ship."""

    @property
    def trains_on_patches(self) -> bool:
        """Whether training draws lesion-centred patches (``Patches``).

        Segmentation and detection always (the whole input when ``train.patch`` is None), a
        classifier or a triage stage when ``train.patch`` is set (target: a lesion in the
        patch, see :data:`~pe_models.train.samples.PATCH_LABEL_TASKS`).
        """
        return self.task in ("segmentation", "detection") or (
            self.task in PATCH_LABEL_TASKS and bool(self.train.patch)
        )


TOP_LEVEL_KEYS = frozenset(f.name for f in fields(Experiment)) - {"path"}
"""Keys an experiment file may hold at its top level (``path`` is where it was read from)."""


def _build(cls: type, raw: Any, source: Path, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ExperimentError(f"{source}: {where} must be a mapping, got {raw!r}")
    names = {f.name for f in fields(cls)}
    if unknown := set(raw) - names:
        raise ExperimentError(
            f"{source}: unknown key(s) {sorted(unknown)} in {where}; valid: {sorted(names)}"
        )
    try:
        return cls(**raw)
    except TypeError as error:
        raise ExperimentError(f"{source}: {where}: {error}") from error


def _phantom_sets(raw: Any, source: Path, where: str) -> PhantomSets:
    if raw is None:
        return ()
    sets = []
    for item in raw if isinstance(raw, list) else [raw]:
        built = _build(PhantomSet, item, source, where)
        seeds = tuple(built.seeds)
        if len(seeds) != 2 or not 0 <= seeds[0] < seeds[1]:
            raise ExperimentError(f"{source}: {where}.seeds must be [start, stop), got {seeds}")
        sets.append(PhantomSet((int(seeds[0]), int(seeds[1])), built.kind, built.size))
    return tuple(sets)


def _study_rule(raw: Any, key: str, unit: str, task: str, source: Path) -> float | None:
    """The positive number of ``unit`` under ``key``, a study rule of ``task`` only; or None."""
    value = raw.get(key)
    if value is None:
        return None
    if (
        raw["task"] != task
        or isinstance(value, bool)
        or not isinstance(value, int | float)
        or value <= 0
    ):
        raise ExperimentError(
            f"{source}: {key} must be a positive number of {unit}, for {task} only"
        )
    return float(value)


def parse_experiment(raw: Any, source: Path) -> Experiment:
    """Check a parsed YAML mapping and build the experiment; errors name ``source``."""
    if not isinstance(raw, dict):
        raise ExperimentError(f"{source}: an experiment file must hold a mapping")
    for key in ("name", "task", "model", "input", "data"):
        if key not in raw:
            raise ExperimentError(f"{source}: missing key {key!r}")
    if unknown := set(raw) - TOP_LEVEL_KEYS:
        raise ExperimentError(
            f"{source}: unknown key(s) {sorted(unknown)}; valid: {sorted(TOP_LEVEL_KEYS)}"
        )
    if raw["task"] not in TASKS:
        raise ExperimentError(f"{source}: unknown task {raw['task']!r}; valid: {', '.join(TASKS)}")
    data_raw = dict(raw["data"])
    sets = {
        part: _phantom_sets(data_raw.pop(part, None), source, f"data.{part}")
        for part in ("train", "val", "test")
    }
    data = _build(DataSpec, data_raw, source, "data")
    data = DataSpec(**{**data.__dict__, **sets})
    if data.source not in SOURCES:
        raise ExperimentError(
            f"{source}: unknown data source {data.source!r}; valid: {', '.join(SOURCES)}"
        )
    if data.source == "phantoms" and not (data.train and data.val):
        raise ExperimentError(f"{source}: phantom data needs data.train and data.val seeds")
    train, val, test = seeds_of(data.train), seeds_of(data.val), seeds_of(data.test)
    if train & val or (train | val) & test:
        raise ExperimentError(f"{source}: training, validation and test seeds overlap")
    min_clot_ml = _study_rule(raw, "min_clot_ml", "mL", "segmentation", source)
    min_disease_mm = _study_rule(raw, "min_disease_mm", "mm", "triage_stage1", source)
    threshold = raw.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 < threshold < 1
    ):
        raise ExperimentError(
            f"{source}: threshold must be a number between 0 and 1, got {threshold!r}"
        )
    install, scores_slices = raw.get("install", True), raw.get("scores_slices", True)
    for key, value in (("install", install), ("scores_slices", scores_slices)):
        if not isinstance(value, bool):
            raise ExperimentError(f"{source}: {key} must be true or false, got {value!r}")
    input_raw = dict(raw["input"])
    input_raw["windows"] = tuple(input_raw.get("windows", ()))
    model = _build(ModelSpec, raw["model"], source, "model")
    spec = _build(InputSpec, input_raw, source, "input")
    in_chans = model.kwargs.get("in_chans")
    if in_chans is not None and in_chans != spec.channels:
        raise ExperimentError(
            f"{source}: model.kwargs.in_chans is {in_chans} but the input has {spec.channels} "
            "channels (one per window, and two more with context_mm)"
        )
    experiment = Experiment(
        name=str(raw["name"]),
        task=raw["task"],
        model=model,
        input=spec,
        data=data,
        train=_build(TrainSpec, raw.get("train", {}), source, "train"),
        output=str(raw.get("output", raw["name"])),
        class_names=tuple(raw.get("class_names", ("pe",))),
        card={str(k): str(v) for k, v in raw.get("card", {}).items()},
        path=source,
        min_clot_ml=min_clot_ml,
        min_disease_mm=min_disease_mm,
        threshold=None if threshold is None else float(threshold),
        scores_slices=scores_slices,
        install=install,
    )
    if experiment.train.mimic_fraction and not experiment.trains_on_patches:
        raise ExperimentError(f"{source}: train.mimic_fraction is for training on patches only")
    if experiment.train.hard_negative_fraction and (
        experiment.task != "segmentation" or experiment.model.init_from is None
    ):
        raise ExperimentError(
            f"{source}: train.hard_negative_fraction mines the false clot pieces of the "
            "segmentation model named by model.init_from; this experiment has none"
        )
    if experiment.train.mine_stride < 1:
        raise ExperimentError(f"{source}: train.mine_stride must be a whole number ≥ 1")
    if (weight_px := experiment.train.piece_weight_px) is not None:
        if experiment.task not in MASK_TASKS:
            raise ExperimentError(f"{source}: train.piece_weight_px is for tasks with PE masks")
        if not isinstance(weight_px, int) or weight_px < 1:
            raise ExperimentError(f"{source}: train.piece_weight_px must be a whole number ≥ 1")
    if (map_weight := experiment.train.lesion_map_weight) is not None:
        if experiment.task not in PATCH_LABEL_TASKS or not experiment.trains_on_patches:
            raise ExperimentError(
                f"{source}: train.lesion_map_weight is for a classifier or triage stage "
                "trained on patches (train.patch)"
            )
        if experiment.model.kwargs.get("pool") != "map":
            raise ExperimentError(
                f"{source}: train.lesion_map_weight needs a logit map: model.kwargs.pool: map"
            )
        if (
            isinstance(map_weight, bool)
            or not isinstance(map_weight, int | float)
            or map_weight <= 0
        ):
            raise ExperimentError(f"{source}: train.lesion_map_weight must be a number > 0")
    return experiment


def load_experiment(path: str | Path) -> Experiment:
    """Read one experiment YAML file."""
    source = Path(path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ExperimentError(f"{source}: cannot read experiment ({error})") from error
    return parse_experiment(raw, source)
