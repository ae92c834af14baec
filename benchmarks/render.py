"""Slice-change cost in the viewer: image + PE mask + boxes + Grad-CAM + badge vs a bare image.

Both sides show the same slices of a full-size phantom (512², int16 HU) in views of the same
size, offscreen, in one run; each change is timed through a synchronous repaint of the view,
so conversion and painting both count. The reference is ``ImageItem.setImage`` of the same slice
with explicit levels. Ours is measured twice:

- "scene": the CT image plus every overlay layer (mask, boxes with scores, Grad-CAM heatmap,
  model crop, triage badge), i.e. what the issue's goal names;
- "whole slice change": everything the app does when the reader scrolls, also the slice bar, the
  slice / window text and the orientation letters.

Goals: median <= 8 ms, ratio <= 1.5.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/render.py [--slices 120] [--size 800]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pyqtgraph as pg  # noqa: E402
from PySide6 import QtWidgets  # noqa: E402
from scipy import ndimage  # noqa: E402

from pe_models.inference import SliceResult  # noqa: E402
from pe_models.preprocess.model_input import crop_box  # noqa: E402
from pe_models.synth.phantom import generate_phantom  # noqa: E402
from pe_viewer.slice_view import SliceViewWidget  # noqa: E402
from pe_viewer.state import HeatmapKey, ViewerState  # noqa: E402


def _results(phantom, indices: list[int]) -> tuple[list[SliceResult], dict[int, np.ndarray]]:
    """Slice results and heatmaps shaped like the models' (mask and boxes from the truth)."""
    volume = phantom.volume
    results, heatmaps = [], {}
    for z in indices:
        mask = phantom.pe_mask[z].astype(np.uint8)
        labels, _ = ndimage.label(mask)
        boxes = [
            (s[1].start, s[0].start, s[1].stop, s[0].stop, 0.9)
            for s in ndimage.find_objects(labels)
        ]
        crop = crop_box(volume.hu[z], volume.spacing[1:], "dynamic")
        heatmap = np.zeros(volume.shape[1:], np.float32)
        yy, xx = np.mgrid[crop.y0 : crop.y1, crop.x0 : crop.x1]
        cy, cx = (crop.y0 + crop.y1) / 2, (crop.x0 + crop.x1) / 2
        heatmap[crop.y0 : crop.y1, crop.x0 : crop.x1] = np.exp(
            -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 40.0**2)
        )
        triage = {"normal": 0.1, "other_disease": 0.2, "pe": 0.7}
        results.append(
            SliceResult(z, 0.7, triage, np.array(boxes, float).reshape(-1, 5), mask, crop)
        )
        heatmaps[z] = heatmap
    return results, heatmaps


def _time_changes(change, repaint, indices: list[int]) -> list[float]:
    times = []
    for z in indices:
        start = time.perf_counter()
        change(z)
        repaint()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=120, help="slice changes timed per side")
    parser.add_argument("--size", type=int, default=800, help="view side in screen pixels")
    args = parser.parse_args()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])

    phantom = generate_phantom(2, "pe", "full")
    volume = phantom.volume
    with_pe = np.flatnonzero(phantom.pe_mask.any(axis=(1, 2)))
    indices = [int(with_pe[i % len(with_pe)]) for i in range(args.slices)]
    indices = [z for pair in zip(indices[::2], indices[1::2], strict=False) for z in pair]
    results, heatmaps = _results(phantom, sorted(set(indices)))

    state = ViewerState()
    ours = SliceViewWidget(state)
    ours.resize(args.size, args.size)
    ours.show()
    state.set_volume(volume)
    for layer in state.styles:
        state.set_style(layer, visible=True)
    state.set_cam(target="classification", method="gradcam")
    state.add_results(results)
    for z, heatmap in heatmaps.items():
        state.add_heatmap(HeatmapKey(z, "classification", "gradcam"), heatmap)
    app.processEvents()

    bare_widget = pg.GraphicsLayoutWidget()
    bare_widget.resize(args.size, args.size)
    bare_view = bare_widget.addViewBox(lockAspect=True, invertY=True)
    bare_image = pg.ImageItem(axisOrder="row-major")
    bare_view.addItem(bare_image)
    bare_image.setImage(volume.hu[indices[0]], levels=state.levels, autoLevels=False)
    bare_view.autoRange(padding=0)
    bare_widget.show()
    app.processEvents()

    def bare_change(z: int) -> None:
        bare_image.setImage(volume.hu[z], levels=state.levels, autoLevels=False)

    def scene_change(z: int) -> None:
        state.z = z  # the image and overlays only: no slice bar, text or signals
        ours._image.setImage(volume.hu[z], levels=state.levels, autoLevels=False)
        ours.draw_overlays()

    sides = {
        "whole slice change": (state.set_slice, ours._graphics.viewport().repaint),
        "scene (image+overlays)": (scene_change, ours._graphics.viewport().repaint),
        "bare ImageItem.setImage": (bare_change, bare_widget.viewport().repaint),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for change, repaint in sides.values():
        _time_changes(change, repaint, indices[:10])  # warm up
    # Interleave the sides in blocks so drift (other load, clocks) hits them alike.
    for start in range(0, len(indices), 20):
        for name, (change, repaint) in sides.items():
            times[name] += _time_changes(change, repaint, indices[start : start + 20])

    print(
        f"{len(indices)} slice changes of {volume.shape[1]}x{volume.shape[2]} int16, "
        f"view {args.size}x{args.size} px, every overlay layer on"
    )
    bare = statistics.median(times["bare ImageItem.setImage"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:25s} median {median:6.2f} ms  p90 {np.percentile(values, 90):6.2f} ms  "
            f"ratio to bare {median / bare:.2f}"
        )
    print("goals: median <= 8 ms, ratio <= 1.5")


if __name__ == "__main__":
    main()
