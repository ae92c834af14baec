"""``pe-viewer``: open a study, the built-in demo, or render a screenshot headless."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from pe_models.demo import demo_study_path
from pe_models.inference import Pipeline, StudyResult, default_bundle_paths
from pe_viewer.main_window import MainWindow
from pe_viewer.state import LAYERS
from pe_viewer.theme import apply_dark_theme

SETTLE_MS = 250  # lets debounced panels (model input, Grad-CAM requests) catch up
SCREENSHOT_TIMEOUT_MS = 300_000  # loading plus the models on every slice, on CPU


def bundles_in(folder: Path) -> Pipeline:
    """A pipeline of the bundle folders inside ``folder``."""
    found = default_bundle_paths(folder) if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(f"{folder}: no model bundles (folders with config.json) here")
    return Pipeline.from_bundles(found)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pe-viewer", description="View chest CT / CTPA studies. Research use only."
    )
    parser.add_argument("path", nargs="?", help="DICOM folder, DICOMDIR, DICOM file or NIfTI")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo study")
    parser.add_argument(
        "--screenshot",
        metavar="FILE",
        help="render headless once the models are done, save a PNG and exit",
    )
    parser.add_argument(
        "--bundles",
        metavar="DIR",
        type=Path,
        help="run the model bundles in DIR instead of the installed ones",
    )
    parser.add_argument(
        "--show",
        action="append",
        default=[],
        choices=list(LAYERS),
        help=(
            "turn an overlay layer on for this run (repeatable), e.g. --show heatmap; on a "
            "series without lung or contrast, mask, boxes and badge still start hidden"
        ),
    )
    parser.add_argument(
        "--hide",
        action="append",
        default=[],
        choices=list(LAYERS),
        help="turn an overlay layer off for this run (repeatable)",
    )
    return parser.parse_args(argv)


def _save_screenshot_when_done(
    window: MainWindow, target: Path, app: QtWidgets.QApplication
) -> None:
    """Save the window once the models are done (on the best slice) or cannot run."""

    def save(ok: bool) -> None:
        app.processEvents()
        saved = window.grab().save(str(target))
        print(f"screenshot {'saved to' if saved else 'could not be written to'} {target}")
        app.exit(0 if ok and saved else 1)

    def on_study(study: StudyResult) -> None:
        # The highest-scoring slice; among equal scores, the one with the most clot.
        ranks = {
            r.index: (round(r.pe_probability or 0.0, 3), 0 if r.mask is None else int(r.mask.sum()))
            for r in study.slices
        }
        if study.positive_slices:
            window.state.set_slice(max(study.positive_slices, key=ranks.__getitem__))
        key = window.state.heatmap_key()
        if window.state.styles["heatmap"].visible and key is not None:
            window.state.heatmap_added.connect(lambda added: save(True) if added == key else None)
            window.request_heatmap()
        else:
            QtCore.QTimer.singleShot(SETTLE_MS, lambda: save(True))

    def report_failure(message: str) -> None:
        print(message, file=sys.stderr)
        save(False)

    window.study_ready.connect(on_study)

    def without_models(message: str) -> None:
        print(message, file=sys.stderr)
        save(True)  # the image is still worth saving; the message says why it has no overlays

    window.inference_failed.connect(without_models)
    window.load_failed.connect(report_failure)
    QtCore.QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, lambda: save(False))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the viewer; returns the process exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    existing = QtWidgets.QApplication.instance()
    app = existing if isinstance(existing, QtWidgets.QApplication) else None
    app = app or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("PE Viewer")
    apply_dark_theme(app)
    factory = Pipeline.load_default
    if args.bundles is not None:
        factory = partial(bundles_in, args.bundles)
    window = MainWindow(interactive=not args.screenshot, pipeline_factory=factory)
    for layer in args.show:
        window.state.set_style(layer, visible=True)
    for layer in args.hide:
        window.state.set_style(layer, visible=False)
    window.show()
    path = demo_study_path() if args.demo else args.path
    if args.screenshot:
        if path is None:
            print("--screenshot needs a PATH or --demo", file=sys.stderr)
            return 2
        _save_screenshot_when_done(window, Path(args.screenshot), app)
    if path is not None:
        window.open_path(path)
    code = app.exec()
    window.close()  # stops the background work before Python tears the objects down
    return code


if __name__ == "__main__":
    sys.exit(main())
