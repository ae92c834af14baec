"""``pe-train``: train bundles from experiment files or a preset (``--preset demo``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pe_models.train.experiment import ExperimentError, load_experiment
from pe_models.train.presets import available_presets, preset_experiments, train_preset


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
        "--out",
        type=Path,
        default=None,
        help="output folder (default: runs/<preset or first experiment>)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes preparing studies (default: CPU count)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.preset:
            experiments = preset_experiments(args.preset)
        else:
            experiments = [load_experiment(path) for path in args.experiments]
    except (KeyError, ExperimentError) as error:
        print(f"pe-train: {error}", file=sys.stderr)
        return 2
    if not experiments:
        print("pe-train: no experiment to train", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / (args.preset or experiments[0].name)
    started = time.perf_counter()
    trained = train_preset(experiments, out, workers=args.workers)
    for name, folder in trained.items():
        print(f"{name}: {folder}")
    print(f"pe-train: {len(trained)} bundle(s) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
