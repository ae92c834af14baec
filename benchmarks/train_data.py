"""Training from prepared slices read off the cache vs held in memory, one run.

Both sides train the demo U-Net (``resources/experiments/demo/1b_unet.yaml``: 192² patches,
batch 12, CPU) on the same prepared full-size phantom studies with the same draws. "Stored" is
what ``pe-train`` does: images and masks are read from the prepared-study cache a slice at a
time (:class:`pe_models.data.slices.StoredSlices`); "memory" holds every study in RAM first.
Goal: step-time ratio <= 1.05, for memory that no longer grows with the number of studies.

    .venv/bin/python benchmarks/train_data.py [--studies 3] [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pe_models.data.phantoms import phantom_records  # noqa: E402
from pe_models.data.slices import (  # noqa: E402
    PreparedStudy,
    StoredSlices,
    load_prepared,
    prepare_studies,
)
from pe_models.train.experiment import Experiment, load_experiment  # noqa: E402
from pe_models.train.run import build_network  # noqa: E402
from pe_models.train.samples import Patches  # noqa: E402

EXPERIMENT = ROOT / "resources" / "experiments" / "demo" / "1b_unet.yaml"


def _held_bytes(studies: list[PreparedStudy]) -> int:
    arrays = [a for s in studies for a in (s.images, s.masks, s.other_masks) if a is not None]
    return sum(a.nbytes for a in arrays if not isinstance(a, StoredSlices))


def _patches(experiment: Experiment, studies: list[PreparedStudy], steps: int) -> Patches:
    settings = experiment.train
    return Patches(
        studies,
        experiment.input,
        "segmentation",
        length=steps * settings.batch_size,
        patch=settings.patch,
        positive_fraction=settings.positive_fraction,
        mimic_fraction=settings.mimic_fraction,
    )


def seconds_per_step(
    experiment: Experiment, sides: dict[str, list[PreparedStudy]], steps: int
) -> dict[str, tuple[float, float]]:
    """Per side, (draw, whole step) seconds per training step, over ``steps`` timed steps.

    The sides take turns step by step on one network, so drift in the machine's speed falls on
    both alike; a first warm-up step is not counted.
    """
    settings = experiment.train
    patches = {name: _patches(experiment, studies, steps + 1) for name, studies in sides.items()}
    torch.manual_seed(0)
    network = build_network(experiment, None)
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.lr)
    sums = {name: [0.0, 0.0] for name in patches}
    for step in range(steps + 1):
        batch = range(step * settings.batch_size, (step + 1) * settings.batch_size)
        for name, data in patches.items():
            start = time.perf_counter()
            images, masks = (torch.stack(t) for t in zip(*(data[i] for i in batch), strict=True))
            drawn = time.perf_counter()
            loss = F.binary_cross_entropy_with_logits(network(images)[:, 0], masks.float())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step:
                sums[name][0] += drawn - start
                sums[name][1] += time.perf_counter() - start
    return {name: (draw / steps, total / steps) for name, (draw, total) in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=3, help="full-size phantom studies")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per side")
    args = parser.parse_args()
    experiment = load_experiment(EXPERIMENT)
    records = phantom_records(range(1000, 1000 + args.studies), "mix")
    stored = prepare_studies(
        records, [experiment.input], normal_stride=experiment.data.normal_stride, workers=0
    )[0]
    held = [load_prepared(s.images.path) for s in stored if isinstance(s.images, StoredSlices)]
    print(f"{len(stored)} studies, {sum(len(s.z) for s in stored)} prepared slices")
    sides = {"memory": held, "stored": stored}
    results = seconds_per_step(experiment, sides, args.steps)
    for name, (draw, step) in results.items():
        print(
            f"{name:>6}: {_held_bytes(sides[name]) / 1e6:8.1f} MB held, "
            f"draw {draw * 1e3:6.1f} ms, step {step * 1e3:7.1f} ms"
        )
    print(f"step-time ratio stored / memory: {results['stored'][1] / results['memory'][1]:.3f}")


if __name__ == "__main__":
    main()
