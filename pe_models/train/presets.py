"""Presets: folders of experiment files in ``resources/experiments`` trained in order."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from pe_models.bundle import CONFIG_FILE
from pe_models.data.slices import InputSpec, cache_studies
from pe_models.resources import resources_dir
from pe_models.train.experiment import Experiment, load_experiment
from pe_models.train.run import dataset_records, train_experiment

log = logging.getLogger(__name__)


def presets_dir() -> Path:
    """The folder holding one sub-folder of experiment files per preset."""
    return resources_dir() / "experiments"


def available_presets() -> list[str]:
    """Names of the presets (sub-folders of :func:`presets_dir`)."""
    folder = presets_dir()
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def preset_experiments(name: str) -> list[Experiment]:
    """The experiments of preset ``name``, in file-name order.

    Later experiments may start from earlier ones through ``init_from``.

    Raises
    ------
    KeyError
        Unknown preset; the message lists the valid ones.
    """
    folder = presets_dir() / name
    if not folder.is_dir():
        raise KeyError(f"unknown preset {name!r}; valid: {', '.join(available_presets())}")
    return [load_experiment(path) for path in sorted(folder.glob("*.yaml"))]


def installed_and_ancestors(experiments: Sequence[Experiment]) -> list[Experiment]:
    """The experiments marked ``install: true`` and those they start from, in order.

    Following ``init_from`` back through the run: the shortest way to reproduce the bundles a
    preset ships, without the experiments it trains only to show the pipeline.
    """
    by_name = {e.name: e for e in experiments}
    needed: set[str] = set()
    pending = [e.name for e in experiments if e.install]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        parent = by_name[name].model.init_from
        if parent in by_name:
            pending.append(parent)
    return [e for e in experiments if e.name in needed]


def prepare_shared(experiments: Sequence[Experiment], workers: int | None) -> None:
    """Generate each study once and cache it for every input recipe the experiments use."""
    groups: dict[tuple[object, ...], tuple[Experiment, list[InputSpec]]] = {}
    for experiment in experiments:
        key = (
            repr(experiment.data.train),
            repr(experiment.data.val),
            experiment.data.source,
            experiment.data.root,
            experiment.data.normal_stride,
        )
        _, specs = groups.setdefault(key, (experiment, []))
        if experiment.input not in specs:
            specs.append(experiment.input)
    for experiment, specs in groups.values():
        records = dataset_records(experiment)
        for part in ("train", "val"):
            log.info(
                "preparing %d %s studies for %d input recipes", len(records[part]), part, len(specs)
            )
            cache_studies(
                records[part],
                specs,
                normal_stride=experiment.data.normal_stride,
                workers=workers,
                progress=lambda done, total, study: log.info("  %d/%d %s", done, total, study),
            )


def train_preset(
    experiments: Sequence[Experiment],
    out: str | Path,
    *,
    workers: int | None = None,
    reuse: Mapping[str, Path] | None = None,
) -> dict[str, Path]:
    """Train every experiment in order; returns experiment name → bundle folder.

    ``reuse`` maps experiment names to bundle folders trained before: those experiments are
    not trained again, and later ones that start from them (``init_from``) start from these
    folders. A preset of several hours can so go on from where an earlier run stopped.

    Raises
    ------
    ValueError
        ``reuse`` names an experiment that is not in ``experiments``.
    FileNotFoundError
        A ``reuse`` folder holds no bundle (no ``config.json``).
    """
    reuse = dict(reuse or {})
    unknown = sorted(set(reuse) - {e.name for e in experiments})
    if unknown:
        raise ValueError(
            f"reuse names no experiment of this run: {', '.join(unknown)} "
            f"(experiments: {', '.join(e.name for e in experiments)})"
        )
    for name, folder in reuse.items():
        if not (Path(folder) / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"reuse {name}={folder}: no bundle there (no {CONFIG_FILE})")
    to_train = [e for e in experiments if e.name not in reuse]
    prepare_shared(to_train, workers)
    trained: dict[str, Path] = {}
    for experiment in experiments:
        if experiment.name in reuse:
            log.info("reusing %s from %s", experiment.name, reuse[experiment.name])
            trained[experiment.name] = Path(reuse[experiment.name])
            continue
        log.info("training %s", experiment.name)
        trained[experiment.name] = train_experiment(
            experiment, out, trained=trained, workers=workers
        )
    return trained
