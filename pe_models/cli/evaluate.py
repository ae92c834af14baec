"""``pe-eval``: run bundles on labelled studies and write a report with plots.

Examples::

    pe-eval --bundles resources/bundles --phantoms 9000:9012 --out eval/   # held-out phantoms
    pe-eval --bundles resources/bundles --phantoms 5100,5109,5120:5122 --kind pe --out eval/s
    pe-eval --bundles runs/rsna --rsna /data/rsna-pe --out eval/rsna      # a dataset folder
    pe-eval --bundles resources/bundles --real ../shared/data/real --out eval/real
    pe-eval --bundles runs/a/triage_stage1 --bundles runs/b/triage_stage2 --phantoms 5000:5012 \
        --out val/                                                     # several folders
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pe_models import io
from pe_models.bundle import BundleError
from pe_models.data.phantoms import phantom_records
from pe_models.data.records import StudyRecord
from pe_models.evaluate import run_evaluation
from pe_models.inference import Pipeline, bundle_folders
from pe_models.synth.phantom import PHANTOM_VERSION


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pe-eval",
        description="Evaluate model bundles through the inference Pipeline: report.json, "
        "ROC/PR curves, confusion matrices and summary.md.",
    )
    parser.add_argument(
        "--bundles",
        type=Path,
        action="append",
        required=True,
        help="a bundle folder, or a folder of bundle folders; repeat to add more (all are "
        "evaluated together, at most one per task)",
    )
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    data = parser.add_argument_group("labelled data (any combination)")
    data.add_argument(
        "--phantoms",
        type=phantom_seeds,
        help="phantom seeds (generated, full size): START:STOP, or seeds and ranges separated "
        "by commas (5100,5109,5120:5122)",
    )
    data.add_argument("--kind", default="mix", help="phantom kind (pe, other, normal, mix)")
    data.add_argument("--size", default="full", help="phantom size (full or test)")
    data.add_argument("--folder", type=Path, help="DICOM/NIfTI + mask study folders")
    data.add_argument("--rsna", type=Path, help="RSNA-STR PE root (train.csv + train/)")
    data.add_argument("--fumpe", type=Path, help="FUMPE root (CT_scans/ + GroundTruth/)")
    data.add_argument(
        "--small-clots",
        type=float,
        metavar="ML",
        help="evaluate only studies with PE whose true clot totals under ML mL (the hard "
        "cases for a study rule)",
    )
    parser.add_argument(
        "--real", type=Path, help="unlabelled real CT: report what the models say per series"
    )
    parser.add_argument(
        "--negative-stride",
        type=int,
        default=10,
        help="segmentation/detection also run on every n-th slice without PE (default 10)",
    )
    parser.add_argument(
        "--save-masks",
        action="store_true",
        help="write each study's U-Net and true PE masks to OUT/masks/STUDY.nii.gz "
        "(1 predicted only, 2 missed, 3 found)",
    )
    parser.add_argument(
        "--update-cards", action="store_true", help="write the metrics into each bundle's card"
    )
    return parser.parse_args(argv)


def phantom_seeds(text: str) -> list[int]:
    """Seeds from ``START:STOP`` ranges (STOP excluded) and single seeds, comma separated.

    Raises
    ------
    argparse.ArgumentTypeError
        A part is not a seed or a range, a range is empty, or a seed repeats.
    """
    seeds: list[int] = []
    for part in text.split(","):
        bounds = part.strip().split(":")
        if len(bounds) > 2 or not all(b.strip().isdigit() for b in bounds):
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r} in {text!r} is neither a seed nor a range START:STOP"
            )
        start = int(bounds[0])
        stop = int(bounds[-1]) if len(bounds) == 2 else start + 1
        if stop <= start:
            raise argparse.ArgumentTypeError(f"range {part.strip()!r} in {text!r} is empty")
        seeds += range(start, stop)
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(
            f"{text!r} names seed {', '.join(map(str, repeated))} more than once"
        )
    return seeds


def seeds_text(seeds: Sequence[int]) -> str:
    """``5000-5047, 5100, 5109``: runs of consecutive seeds folded into ranges."""
    runs: list[list[int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def labelled_records(args: argparse.Namespace) -> tuple[list[StudyRecord], list[str]]:
    """Studies named on the command line, and a description of each source."""
    records: list[StudyRecord] = []
    described: list[str] = []
    if args.phantoms:
        records += phantom_records(args.phantoms, args.kind, size=args.size)
        described.append(
            f"synthetic phantoms (generator version {PHANTOM_VERSION}) seeds "
            f"{seeds_text(args.phantoms)} ({args.kind}, {args.size})"
        )
    if args.folder:
        from pe_models.data.folder import folder_records

        records += folder_records(args.folder)
        described.append(f"study folders in {args.folder}")
    if args.rsna:
        from pe_models.data.rsna import rsna_records

        records += rsna_records(args.rsna)
        described.append(f"RSNA-STR PE series in {args.rsna}")
    if args.fumpe:
        from pe_models.data.fumpe import fumpe_records

        records += fumpe_records(args.fumpe)
        described.append(f"FUMPE patients in {args.fumpe}")
    return records, described


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        paths = bundle_folders(args.bundles)
        Pipeline.from_bundles(paths)  # fail early on a broken bundle or two for one task
        records, described = labelled_records(args)
    except (BundleError, io.StudyReadError, FileNotFoundError, ValueError) as error:
        print(f"pe-eval: {error}", file=sys.stderr)
        return 2
    if not records and not args.real:
        print(
            "pe-eval: give labelled data (--phantoms/--folder/--rsna/--fumpe) or --real",
            file=sys.stderr,
        )
        return 2
    command = "pe-eval " + " ".join(sys.argv[1:] if argv is None else argv)
    report = run_evaluation(
        paths,
        records,
        described,
        args.out,
        real=args.real,
        negative_stride=args.negative_stride,
        small_clots_ml=args.small_clots,
        save_masks=args.save_masks,
        update_cards=args.update_cards,
        command=command,
    )
    print(f"pe-eval: report in {args.out / 'summary.md'} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
