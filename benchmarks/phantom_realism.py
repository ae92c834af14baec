"""How close are the synthetic CTPA phantoms to real CT? Prints distances measured in one run.

Real references (../shared/data, never copied into the repository):
- the 24-slice MIDRC-RICORD-1A chest series (hilum level, non-contrast, GE): HU of lung, soft
  tissue and body, lung fraction of the body, noise in the air above the patient;
- the 35 FUMPE radiologist PE masks: clot count, clot volume and per-slice clot area (2D
  8-connected pieces, as ``pe-eval`` counts them), also as shares of pe-eval's size classes.

Both sides go through the same region extraction (``pe_models.preprocess.lung_air_mask`` for
lung, the largest tissue component for body), and phantom slices are taken at the hilum level
(20-50 mm below the carina) to match the real series. Distances are 1-D Wasserstein distances in
HU (0 = identical distributions) and Kolmogorov-Smirnov statistics for the clot sizes.

    .venv/bin/python benchmarks/phantom_realism.py [--phantoms 6] [--image docs/phantom_vs_real.png]
    .venv/bin/python benchmarks/phantom_realism.py --fumpe-stats
"""

from __future__ import annotations

import argparse
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw
from scipy import ndimage, stats

from pe_models import io
from pe_models.metrics.pieces import EIGHT_NEIGHBOURS, PIECE_SIZE_BINS_MM2
from pe_models.preprocess import apply_window, lung_air_mask
from pe_models.preprocess.lung_crop import largest_component
from pe_models.synth.phantom import Phantom, generate_phantom

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
REAL_CHEST = DATA / "real" / "midrc_ricord_1a_chest_24slices"
FUMPE = DATA / "fumpe"
CLASS_NAMES = " / ".join(
    [f"≤ {PIECE_SIZE_BINS_MM2[0]:g}"]
    + [f"{lo:g}-{hi:g}" for lo, hi in pairwise(PIECE_SIZE_BINS_MM2)]
    + [f"> {PIECE_SIZE_BINS_MM2[-1]:g} mm²"]
)


def _regions(hu: np.ndarray, spacing_yx: tuple[float, float]) -> dict[str, np.ndarray]:
    """Lung, body, soft-tissue and air-above-patient voxels of (z, y, x) HU, by one method."""
    lung = np.stack([lung_air_mask(s, spacing_yx) for s in hu])
    body = np.zeros_like(lung)
    air = np.zeros_like(lung)
    for k, plane in enumerate(hu):
        body[k] = ndimage.binary_fill_holes(largest_component(plane > -500))
        rows = np.flatnonzero(body[k].any(axis=1))
        air[
            k, max(rows[0] - 40, 0) : max(rows[0] - 10, 0), hu.shape[2] // 3 : 2 * hu.shape[2] // 3
        ] = True
    soft = body & ~lung & (hu > -200) & (hu < 200)
    return {"lung": lung, "body": body, "soft": soft, "air": air & (hu > -1024)}


def _hu_facts(hu: np.ndarray, spacing_yx: tuple[float, float]) -> dict[str, object]:
    regions = _regions(hu, spacing_yx)
    return {
        "lung": hu[regions["lung"]],
        "soft": hu[regions["soft"]],
        "body": hu[regions["body"]],
        "lung_fraction": float(regions["lung"].sum() / regions["body"].sum()),
        "air_noise": float(np.std(hu[regions["air"]])) if regions["air"].any() else float("nan"),
    }


def fumpe_clots() -> tuple[list[float], list[int], list[float]]:
    """Clot volumes (mL), clots per patient and clot cross-section areas (mm²) of FUMPE."""
    volumes, counts, areas = [], [], []
    for path in sorted(FUMPE.glob("*.nii.gz")):
        image = sitk.ReadImage(str(path))
        mask = sitk.GetArrayFromImage(image) > 0
        sx, sy, sz = image.GetSpacing()
        labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(labels.ravel())[1:] * sx * sy * sz
        kept = sizes[sizes >= 1.0]
        volumes += list(kept / 1000)
        counts.append(len(kept))
        areas += piece_areas_mm2(mask, sx * sy)
    return volumes, counts, areas


def piece_areas_mm2(mask: np.ndarray, pixel_mm2: float) -> list[float]:
    """In-plane areas (mm²) of the 2D 8-connected pieces of a (z, y, x) mask, slice by slice."""
    areas: list[float] = []
    for plane in mask[mask.any(axis=(1, 2))]:
        labels, _ = ndimage.label(plane, structure=EIGHT_NEIGHBOURS)
        areas += list(np.bincount(labels.ravel())[1:] * pixel_mm2)
    return areas


def _class_shares(areas: list[float]) -> str:
    """Share of pieces in each of pe-eval's size classes (``PIECE_SIZE_BINS_MM2``)."""
    classes = np.searchsorted(PIECE_SIZE_BINS_MM2, areas)
    shares = np.bincount(classes, minlength=len(PIECE_SIZE_BINS_MM2) + 1) / len(areas)
    return " / ".join(f"{v:.2f}" for v in shares)


def _quartiles(values: list[float] | np.ndarray) -> str:
    q = np.percentile(values, [5, 25, 50, 75, 95])
    return " / ".join(f"{v:.3g}" for v in q)


def _tile(hu: np.ndarray, window: str, size: int = 320) -> Image.Image:
    grey = (apply_window(hu, window) * 255).astype(np.uint8)
    return Image.fromarray(grey).resize((size, size), Image.Resampling.BILINEAR)


def comparison_image(real_slice: np.ndarray, phantoms: list[Phantom], target: Path) -> None:
    """Real slice and phantom slices side by side, PE window above, lung window below."""
    columns = [("real CT (MIDRC-RICORD-1A, CC BY-NC 4.0)", real_slice)]
    for phantom in phantoms[:3]:
        z = _hilum_slices(phantom)
        pe_slices = np.flatnonzero(phantom.pe_mask.any(axis=(1, 2)))
        index = int(pe_slices[len(pe_slices) // 2]) if pe_slices.size else int(z[len(z) // 2])
        columns.append((f"phantom seed {phantom.seed} ({phantom.kind})", phantom.volume.hu[index]))
    size = 320
    sheet = Image.new("RGB", (size * len(columns), size * 2 + 18), "black")
    draw = ImageDraw.Draw(sheet)
    for i, (title, plane) in enumerate(columns):
        sheet.paste(_tile(plane, "vascular", size), (i * size, 18))
        sheet.paste(_tile(plane, "lung", size), (i * size, 18 + size))
        draw.text((i * size + 4, 3), title, fill="white")
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target)


def _hilum_slices(phantom: Phantom) -> np.ndarray:
    z_mm = phantom.volume.slice_positions_mm()
    return np.flatnonzero((z_mm > -50) & (z_mm < -20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phantoms", type=int, default=6, help="full-size PE phantoms to make")
    parser.add_argument(
        "--image", type=Path, default=ROOT / "benchmarks" / "_out" / "phantom_vs_real.png"
    )
    parser.add_argument(
        "--fumpe-stats", action="store_true", help="print FUMPE clot statistics only"
    )
    args = parser.parse_args()
    volumes, counts, areas = fumpe_clots()
    print(f"FUMPE ({len(counts)} patients): percentiles 5 / 25 / 50 / 75 / 95")
    print(f"  clots per patient   {_quartiles(counts)}")
    print(f"  clot volume mL      {_quartiles(volumes)}")
    print(f"  clot area mm²       {_quartiles(areas)}")
    print(f"  area classes        {_class_shares(areas)}   (share of pieces: {CLASS_NAMES})")
    if args.fumpe_stats:
        return

    real = io.load(REAL_CHEST)
    real_facts = _hu_facts(real.hu, real.spacing[1:])
    start = time.perf_counter()
    phantoms = [generate_phantom(seed, "pe", "full") for seed in range(1000, 1000 + args.phantoms)]
    print(f"\n{len(phantoms)} full-size phantoms in {time.perf_counter() - start:.1f} s")
    slabs = [p.volume.hu[_hilum_slices(p)] for p in phantoms]
    phantom_facts = [_hu_facts(s, phantoms[0].volume.spacing[1:]) for s in slabs]

    def pooled(key: str) -> np.ndarray:
        return np.concatenate([f[key] for f in phantom_facts])

    print("\nHU at the hilum level: phantom vs real (median; Wasserstein distance in HU)")
    for key, label in (("lung", "lung"), ("soft", "soft tissue"), ("body", "whole body")):
        ours, theirs = pooled(key), real_facts[key]
        distance = stats.wasserstein_distance(ours, theirs)
        print(
            f"  {label:12} {np.median(ours):8.0f} vs {np.median(theirs):8.0f}   W = {distance:6.1f}"
        )
    fraction = np.mean([f["lung_fraction"] for f in phantom_facts])
    print(f"  lung / body  {fraction:8.2f} vs {real_facts['lung_fraction']:8.2f}")
    noise = np.nanmean([f["air_noise"] for f in phantom_facts])
    print(f"  air noise σ  {noise:8.1f} vs {real_facts['air_noise']:8.1f}")

    clot_volumes = [c.volume_ml for p in phantoms for c in p.study.clots]
    clot_counts = [len(p.study.clots) for p in phantoms]
    clot_areas = []
    for p in phantoms:
        clot_areas += piece_areas_mm2(p.pe_mask != 0, float(np.prod(p.volume.spacing[1:])))
    print("\nClots: phantom vs FUMPE (percentiles 5 / 25 / 50 / 75 / 95; KS statistic)")
    for label, ours, theirs in (
        ("per patient", clot_counts, counts),
        ("volume mL", clot_volumes, volumes),
        ("area mm²", clot_areas, areas),
    ):
        ks = stats.ks_2samp(ours, theirs).statistic
        print(f"  {label:12} {_quartiles(ours)}   KS = {ks:.2f}")
    print(f"  area classes {_class_shares(clot_areas)} vs {_class_shares(areas)} ({CLASS_NAMES})")

    comparison_image(real.hu[real.shape[0] // 2], phantoms, args.image)
    print(f"\ncomparison image: {args.image}")


if __name__ == "__main__":
    main()
