"""``pe-train``: train bundles from experiment files or a preset (``--preset demo``).

After training, experiments that name held-out phantom seeds (``data.test``) are evaluated on
them through the Pipeline (``<out>/eval``: report, plots) and each card gets those metrics;
``--install`` then copies the bundles to ``resources/bundles`` where the app finds them.
``--reuse`` takes bundles trained before instead of training them; with ``--recut`` they are
first copied with the cuts their experiment files now hold.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from pe_models.bundle import BundleError
from pe_models.data.phantoms import phantom_records
from pe_models.evaluate import run_evaluation
from pe_models.io import StudyReadError
from pe_models.io.atomic import atomic_folder
from pe_models.resources import resources_dir
from pe_models.synth.phantom import PHANTOM_VERSION
from pe_models.train.experiment import Experiment, PhantomSets, load_experiment
from pe_models.train.presets import (
    available_presets,
    installed_and_ancestors,
    preset_experiments,
    train_preset,
)
from pe_models.train.recut import recut_bundle


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pe-train",
        description="Train model bundles with PyTorch Lightning from YAML experiment files. "
        "Each experiment ends in a bundle (config.json + model.safetensors + card.md).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "experiments",
        nargs="*",
        default=[],
        type=Path,
        help="experiment YAML files, trained in the order given",
    )
    source.add_argument("--preset", help=f"a preset ({', '.join(available_presets())})")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: runs/<preset or name>)"
    )
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="SOURCE=PATH",
        help="dataset folder of a data source (rsna, fumpe, folder); repeatable",
    )
    parser.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="NAME=BUNDLE",
        help="take experiment NAME's bundle from this folder instead of training it "
        "(go on with a preset from an earlier run); repeatable",
    )
    parser.add_argument(
        "--recut",
        action="store_true",
        help="copy each reused bundle into the output folder with the cuts and study rules "
        "of its experiment file (threshold, scores_slices, min_clot_ml, min_disease_mm), "
        "keeping its weights: for cuts chosen on validation after training",
    )
    parser.add_argument(
        "--installed-only",
        action="store_true",
        help="train only the experiments marked install: true and those they start from "
        "(init_from): what ships, without the rest of the preset",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes preparing studies (default: CPUs)"
    )
    parser.add_argument(
        "--no-eval", action="store_true", help="skip the evaluation on held-out phantoms"
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="copy the trained bundles to resources/bundles (replacing those there)",
    )
    return parser.parse_args(argv)


def _pairs(option: str, form: str, items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` command-line items as a dict; the error names ``option`` and its ``form``."""
    pairs = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not key or not separator or not value:
            raise ValueError(f"{option} takes {form}, got {item!r}")
        pairs[key] = value
    return pairs


def _with_roots(experiments: Sequence[Experiment], roots: Sequence[str]) -> list[Experiment]:
    """Experiments with ``data.root`` set from ``SOURCE=PATH`` items."""
    by_source = _pairs("--root", "SOURCE=PATH", roots)
    return [
        replace(e, data=replace(e.data, root=by_source[e.data.source]))
        if e.data.source in by_source
        else e
        for e in experiments
    ]


def evaluate_held_out(
    experiments: Sequence[Experiment], trained: Mapping[str, Path], out: Path, command: str
) -> None:
    """Evaluate the bundles on the experiments' held-out phantom seeds; fill in their cards.

    Bundles that share a test set are evaluated together, as the app would run them, with the
    installed ones apart from the rest: an installed bundle's card describes what ships.
    """
    groups: dict[tuple[PhantomSets, bool], list[Path]] = {}
    for e in experiments:
        if e.data.source == "phantoms" and e.data.test:
            groups.setdefault((e.data.test, e.install), []).append(trained[e.name])
    for i, ((test, _installed), bundles) in enumerate(groups.items()):
        records = [r for s in test for r in phantom_records(s.seed_list, s.kind, size=s.size)]
        described = [
            f"held-out synthetic phantoms (generator version {PHANTOM_VERSION}), "
            f"{', '.join(s.describe() for s in test)}, "
            "never used in training or model selection"
        ]
        folder = out / ("eval" if len(groups) == 1 else f"eval-{i}")
        run_evaluation(bundles, records, described, folder, update_cards=True, command=command)
        print(f"pe-train: held-out evaluation in {folder / 'summary.md'}")


def recut(
    experiments: Sequence[Experiment],
    trained: Mapping[str, Path],
    reuse: Mapping[str, Path],
    out: Path,
) -> dict[str, Path]:
    """Re-cut each reused bundle into ``out/<output>`` (:func:`recut_bundle`); name → copy."""
    copies = {}
    for experiment in experiments:
        if experiment.name in reuse:
            folder = recut_bundle(experiment, trained[experiment.name], out / experiment.output)
            print(f"pe-train: {experiment.name} re-cut from {experiment.path} into {folder}")
            copies[experiment.name] = folder
    return copies


def install(experiments: Sequence[Experiment], trained: Mapping[str, Path]) -> Path:
    """Copy the bundles of experiments with ``install: true`` into ``resources/bundles/<name>``.

    Each folder is replaced atomically; bundles marked ``install: false`` stay in the run folder.
    """
    target = resources_dir() / "bundles"
    target.mkdir(exist_ok=True)
    for experiment in experiments:
        name, folder = experiment.name, trained[experiment.name]
        if not experiment.install:
            print(f"pe-train: not installed: {name} (install: false in its experiment file)")
            continue
        with atomic_folder(target / name, replace_existing=True) as staging:
            for file in folder.iterdir():
                shutil.copy2(file, staging / file.name)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.preset:
            experiments = preset_experiments(args.preset)
        else:
            experiments = [load_experiment(path) for path in args.experiments]
        experiments = _with_roots(experiments, args.root)
        if args.installed_only:
            experiments = installed_and_ancestors(experiments)
        reuse = {
            name: Path(folder)
            for name, folder in _pairs("--reuse", "NAME=BUNDLE", args.reuse).items()
        }
    except (KeyError, ValueError) as error:  # ExperimentError is a ValueError
        print(f"pe-train: {error}", file=sys.stderr)
        return 2
    if not experiments:
        print("pe-train: no experiment to train", file=sys.stderr)
        return 2
    if args.recut and not reuse:
        print("pe-train: --recut re-cuts reused bundles; name them with --reuse", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / (args.preset or experiments[0].name)
    started = time.perf_counter()
    try:
        trained = train_preset(experiments, out, workers=args.workers, reuse=reuse)
        if args.recut:
            trained |= recut(experiments, trained, reuse, out)
    except (ValueError, FileNotFoundError, StudyReadError, BundleError) as error:
        print(f"pe-train: {error}", file=sys.stderr)
        return 1
    for name, folder in trained.items():
        print(f"{name}: {folder}")
    print(f"pe-train: {len(trained)} bundle(s) in {time.perf_counter() - started:.0f} s")
    if not args.no_eval:
        command = "pe-train " + " ".join(sys.argv[1:] if argv is None else argv)
        evaluate_held_out(experiments, trained, out, command)
    if args.install:
        print(f"pe-train: installed in {install(experiments, trained)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
