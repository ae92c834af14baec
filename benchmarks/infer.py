"""Inference speed: the whole Pipeline vs the bare forward passes of the same models, one run.

Both sides process the same slices of a full-size phantom (512², ~0.7 mm) with the same bundles
(small demo-sized backbones, random weights: speed does not depend on the weights; or the
bundles of ``--bundles``). "Bare" is only the networks' forward passes on tensors prepared
beforehand; the Pipeline adds the lung crop, windowing, resizing, and mapping masks and boxes
back. Goal: ratio <= 1.2. The bare passes run twice, in the channels-last memory format the
Pipeline uses and in PyTorch's default (NCHW), for the gain of the former. Goal: ratio < 1.

    .venv/bin/python benchmarks/infer.py [--slices 32] [--size 256] [--device cuda]
    .venv/bin/python benchmarks/infer.py --bundles resources/bundles
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pe_models.inference import Pipeline, config_input, default_bundle_paths  # noqa: E402
from pe_models.preprocess.model_input import crop_box  # noqa: E402
from pe_models.synth.phantom import generate_phantom  # noqa: E402
from tests.model_bundles import make_bundles  # noqa: E402


def _bare(
    pipeline: Pipeline, volume, indices: list[int], memory_format: torch.memory_format
) -> float:
    """Seconds of the networks' forward passes alone; leaves them in ``memory_format``."""
    for model in pipeline.models.values():
        model.network.to(memory_format=memory_format)
    prepared = {}
    for task, model in pipeline.models.items():
        config = model.bundle.config
        crops = [crop_box(volume.hu[z], volume.spacing[1:], config.crop) for z in indices]
        prepared[task] = config_input(volume, indices, crops, config, model.windows)
    if pipeline.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        for task, images in prepared.items():
            network = pipeline.models[task].network
            for first in range(0, len(indices), pipeline.batch_size):
                batch = images[first : first + pipeline.batch_size].to(
                    pipeline.device, memory_format=memory_format
                )
                with torch.autocast(pipeline.device.type, enabled=pipeline.device.type == "cuda"):
                    network(list(batch)) if task == "detection" else network(batch)
    if pipeline.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--size", type=int, default=256, help="model input size in pixels")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device")
    parser.add_argument("--bundles", type=Path, help="a folder of bundles (default: random ones)")
    args = parser.parse_args()
    volume = generate_phantom(3, "pe", "full").volume
    middle = volume.shape[0] // 2
    indices = list(range(middle - args.slices // 2, middle + args.slices // 2))
    with tempfile.TemporaryDirectory() as folder:
        paths = (
            default_bundle_paths(args.bundles)
            if args.bundles
            else make_bundles(Path(folder), size=args.size)
        )
        pipeline = Pipeline.from_bundles(paths, device=args.device, batch_size=args.batch_size)
    pipeline.run(volume, slices=indices[: args.batch_size])  # warm up
    nchw = _bare(pipeline, volume, indices, torch.contiguous_format)
    bare = _bare(pipeline, volume, indices, torch.channels_last)  # the Pipeline's own, last
    start = time.perf_counter()
    pipeline.run(volume, slices=indices)
    whole = time.perf_counter() - start
    print(
        f"device {pipeline.device}, {torch.get_num_threads()} threads, "
        f"{len(indices)} slices of 512², tasks {', '.join(pipeline.tasks)}"
    )
    print(f"bare forward, NCHW   {nchw:7.2f} s  {len(indices) / nchw:6.1f} slices/s")
    print(f"bare forward passes  {bare:7.2f} s  {len(indices) / bare:6.1f} slices/s")
    print(f"whole pipeline       {whole:7.2f} s  {len(indices) / whole:6.1f} slices/s")
    print(f"ratio pipeline / bare  {whole / bare:.2f}  (goal <= 1.2)")
    print(f"ratio channels-last / NCHW  {bare / nchw:.2f}  (goal < 1)")


if __name__ == "__main__":
    main()
