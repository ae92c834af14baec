"""``pe-synth``: write synthetic CTPA studies with exact labels."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pe_models.synth.phantom import KINDS, SIZES, generate_phantom
from pe_models.synth.writers import write_study


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pe-synth",
        description="Write synthetic CTPA phantoms (DICOM + NIfTI masks + COCO boxes + labels). "
        "Deterministic: the same seed always writes the same bytes.",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write studies into")
    parser.add_argument("--n", type=int, default=1, help="number of studies (seeds S, S+1, ...)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--kind", choices=(*KINDS, "mix"), default="pe")
    parser.add_argument("--size", choices=tuple(SIZES), default="test")
    parser.add_argument(
        "--non-contrast", action="store_true", help="blood at ~40 HU, as in a plain chest CT"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.n < 1 or args.seed < 0:
        print("pe-synth: --n must be at least 1 and --seed not negative", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in range(args.seed, args.seed + args.n):
        kind = (
            KINDS[int(np.random.default_rng(seed).integers(3))] if args.kind == "mix" else args.kind
        )
        target = args.out / f"phantom_{seed:05d}_{kind}"
        if target.exists():
            print(f"pe-synth: {target} exists; not overwritten", file=sys.stderr)
            return 1
        start = time.perf_counter()
        phantom = generate_phantom(seed, kind, args.size, contrast=not args.non_contrast)
        write_study(phantom, target)
        z, y, x = phantom.volume.shape
        print(
            f"{target.name}: {z}×{y}×{x}, {len(phantom.study.clots)} clot(s), "
            f"{len(phantom.study.lesions)} other lesion(s), {time.perf_counter() - start:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
