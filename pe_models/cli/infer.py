"""``pe-infer``: run the models on studies and write ``findings.json`` and ``pe_mask.nii.gz``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pe_models import io
from pe_models.bundle import BundleError
from pe_models.inference import Pipeline, StudyResult, bundle_folders
from pe_models.io.atomic import write_text_atomic
from pe_models.volume import Volume

FINDINGS_VERSION = 1


def findings_document(volume: Volume, study: StudyResult, pipeline: Pipeline) -> dict:
    """The fixed ``findings.json`` schema (../shared/DESIGN.md), plus extra keys."""
    z_mm = volume.slice_positions_mm()
    slices = []
    for result in study.slices:
        slices.append(
            {
                "index": result.index,
                "sop_instance_uid": volume.slice_uids[result.index] if volume.slice_uids else None,
                "z_mm": round(float(z_mm[result.index]), 3),
                "pe_probability": result.pe_probability,
                "model_scores": result.model_scores,
                "triage": result.triage,
                "triage_class": result.triage_class,
                "boxes": [[round(float(v), 2) for v in box] for box in result.boxes],
                "crop": [result.crop.x0, result.crop.y0, result.crop.x1, result.crop.y1],
            }
        )
    return {
        "version": FINDINGS_VERSION,
        "study": {
            "pe_probability": study.pe_probability,
            "triage": study.triage,
            "positive_slices": list(study.positive_slices),
            "clot_volume_ml": study.clot_volume_ml,
            "largest_clot_ml": study.largest_clot_ml,
            "contrast_adequate": study.contrast.adequate,
            "contrast_p90_hu": round(study.contrast.p90_hu, 1),
            "not_assessable": study.not_assessable,
            "warnings": list(study.warnings),
        },
        "slices": slices,
        "mask": "pe_mask.nii.gz",
        "models": {task: model.bundle.path.name for task, model in pipeline.models.items()},
        "slice_score_source": pipeline.slice_score_source(),
        "input": {"source": volume.meta.source, "series_uid": volume.meta.series_uid},
        "not_for_clinical_use": True,
    }


def infer_volume(volume: Volume, pipeline: Pipeline, out: Path, *, label: str) -> StudyResult:
    """Run the pipeline on one volume and write its two outputs into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=volume.shape[0], desc=label, unit="slice", file=sys.stderr) as bar:
        study = pipeline.run(volume, progress=lambda done, total, result: bar.update(1))
    mask = np.zeros(volume.shape, dtype=np.uint8)
    for result in study.slices:
        if result.mask is not None:
            mask[result.index] = result.mask
    io.write_image(mask, volume, out / "pe_mask.nii.gz")
    document = findings_document(volume, study, pipeline)
    write_text_atomic(out / "findings.json", json.dumps(document, indent=1))
    return study


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pe-infer", description="Find pulmonary embolism on CT / CTPA. Not for clinical use."
    )
    parser.add_argument(
        "input", type=Path, help="DICOM folder or file, NIfTI/NRRD/MHA, or a folder of studies"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--bundles", type=Path, nargs="+", help="bundle folders, or a folder of bundles"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    parser.add_argument("--batch-size", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (1: bad input or models, named in the message)."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        if args.bundles:
            pipeline = Pipeline.from_bundles(
                bundle_folders(args.bundles), device=args.device, batch_size=args.batch_size
            )
        else:
            pipeline = Pipeline.load_default(device=args.device, batch_size=args.batch_size)
        if args.input.is_file() and io.series.is_image_file(args.input):
            found = None
        else:
            found = [s for s in io.scan(args.input) if s.problem is None]
            if not found:
                raise io.StudyReadError(args.input, "holds no series that can be read as CT")
        if found is None or len(found) == 1:
            volume = io.load(args.input) if found is None else io.load_series(found[0])
            infer_volume(volume, pipeline, args.out, label=args.input.name)
        else:
            for number, series in enumerate(found, start=1):
                out = args.out / f"{number:03d}_{series.series_uid}"
                infer_volume(
                    io.load_series(series), pipeline, out, label=series.description or out.name
                )
    except (io.StudyReadError, BundleError, FileNotFoundError, ValueError) as error:
        print(f"pe-infer: {error}", file=sys.stderr)
        return 1
    print(f"pe-infer: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
