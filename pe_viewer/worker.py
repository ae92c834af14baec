"""Background inference: runs the Pipeline on the open study off the GUI thread.

One worker thread owns the models. A study job runs batches of slices nearest to the slice the
reader is looking at (re-aimed as they scroll) and serves Grad-CAM requests between batches, so
a heatmap never waits for the whole study. Opening another study cancels the job.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass

from PySide6 import QtCore

from pe_models.bundle import BundleConfig
from pe_models.inference import InferenceCancelled, Pipeline, SliceResult
from pe_models.study_checks import assess
from pe_models.volume import Volume
from pe_viewer.state import HeatmapKey

PipelineFactory = Callable[[], Pipeline]


@dataclass(frozen=True)
class ModelsInfo:
    """What the GUI needs to know of the loaded models (never the networks themselves).

    Attributes
    ----------
    device
        Where the models run, e.g. ``"CPU"`` or ``"GPU: NVIDIA H100"``.
    configs, cards
        Each task's bundle config and model card (markdown).
    threshold
        Slice PE probability threshold.
    score_source
        Which model gives the slice PE probability (see ``Pipeline.slice_score_source``).
    other_scores
        The models whose slice PE scores are shown beside it as second opinions.
    min_clot_ml
        With the U-Net alone, the smallest 3D clot that makes a study PE (else None).
    box_score_cut
        The detector bundle's box score cut, chosen on validation (else None).
    triage_cuts
        With both triage stages, stage 1's cut and the cut on triage P(PE) (else None).
    min_disease_mm
        With triage, the shortest diseased run along z that makes a study "other disease"
        (else None: any one slice does).
    """

    device: str
    configs: dict[str, BundleConfig]
    cards: dict[str, str]
    threshold: float
    score_source: str | None
    other_scores: tuple[str, ...] = ()
    min_clot_ml: float | None = None
    box_score_cut: float | None = None
    triage_cuts: tuple[float, float] | None = None
    min_disease_mm: float | None = None

    @classmethod
    def of(cls, pipeline: Pipeline) -> ModelsInfo:
        """Describe ``pipeline``."""
        return cls(
            device=pipeline.device_name,
            configs={t: m.bundle.config for t, m in pipeline.models.items()},
            cards={t: m.bundle.card for t, m in pipeline.models.items()},
            threshold=pipeline.threshold(),
            score_source=pipeline.slice_score_source(),
            other_scores=tuple(pipeline.other_slice_scores()),
            min_clot_ml=pipeline.min_clot_ml(),
            box_score_cut=pipeline.box_score_cut(),
            triage_cuts=pipeline.triage_cuts() if pipeline.has_triage() else None,
            min_disease_mm=pipeline.min_disease_mm(),
        )


class _Signals(QtCore.QObject):
    ready = QtCore.Signal(int, object)  # job, ModelsInfo
    assessed = QtCore.Signal(int, object)  # job, Assessability
    results = QtCore.Signal(int, object, int, int)  # job, list[SliceResult], done, total
    study = QtCore.Signal(int, object)  # job, StudyResult
    heatmap = QtCore.Signal(int, object, object)  # job, HeatmapKey, (y, x) float32
    heatmap_failed = QtCore.Signal(int, object, str)  # job, HeatmapKey, message
    failed = QtCore.Signal(int, str)  # job, message
    ended = QtCore.Signal(int)  # job: finished, failed or cancelled


class _Job(QtCore.QRunnable):
    """One study's inference plus the Grad-CAM requests made while it runs.

    With ``run_study`` False the job only serves its heatmap requests.
    """

    def __init__(
        self, job: int, volume: Volume, focus: int, worker: InferenceWorker, *, run_study: bool
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.job = job
        self.volume = volume
        self.focus = focus  # read by the worker thread between batches; an int swap is atomic
        self.worker = worker
        self.run_study = run_study
        self.cancel_event = threading.Event()
        self.lock = threading.Lock()
        self.heatmap_requests: list[HeatmapKey] = []
        self.accepting = True  # False once the job will serve no more heatmap requests

    def offer(self, key: HeatmapKey) -> bool:
        """Queue a heatmap request; False when the job is past serving requests."""
        with self.lock:
            if self.accepting:
                self.heatmap_requests.append(key)
            return self.accepting

    def run(self) -> None:
        signals = self.worker.signals
        try:
            pipeline = self.worker.pipeline()
            if self.run_study:
                signals.ready.emit(self.job, ModelsInfo.of(pipeline))
                self._run_study(pipeline)
            self._serve_heatmaps(pipeline, final=True)
        except InferenceCancelled:
            pass
        except Exception as error:  # shown in the window; the viewer keeps working
            signals.failed.emit(self.job, _describe(error))
        finally:
            with self.lock:
                self.accepting = False
            signals.ended.emit(self.job)

    def _run_study(self, pipeline: Pipeline) -> None:
        checks = assess(self.volume)  # before the slices: the reader is warned from the start
        self.worker.signals.assessed.emit(self.job, checks)
        n = self.volume.shape[0]
        remaining = set(range(n))
        results: list[SliceResult] = []
        while remaining:
            self._serve_heatmaps(pipeline)
            if self.cancel_event.is_set():
                raise InferenceCancelled
            focus = self.focus
            batch = sorted(remaining, key=lambda z: (abs(z - focus), z))[: pipeline.batch_size]
            done = pipeline.run_slices(self.volume, slices=batch)
            remaining.difference_update(batch)
            results.extend(done)
            self.worker.signals.results.emit(self.job, done, n - len(remaining), n)
        results.sort(key=lambda r: r.index)
        study = pipeline.summarise(self.volume, results, checks=checks)
        self.worker.signals.study.emit(self.job, study)

    def _serve_heatmaps(self, pipeline: Pipeline, *, final: bool = False) -> None:
        while True:
            with self.lock:
                if not self.heatmap_requests:
                    if final:
                        self.accepting = False
                    return
                key = self.heatmap_requests.pop(0)
            if self.cancel_event.is_set():
                raise InferenceCancelled
            try:
                heatmap = pipeline.explain(self.volume, key.z, key.target, key.method)
            except Exception as error:  # this model cannot be explained; inference goes on
                message = f"Grad-CAM of {key.target} ({key.method}) failed: {error!r}"
                self.worker.signals.heatmap_failed.emit(self.job, key, message)
            else:
                self.worker.signals.heatmap.emit(self.job, key, heatmap)


def _describe(error: Exception) -> str:
    if isinstance(error, FileNotFoundError | KeyError | ValueError | RuntimeError | OSError):
        text = error.args[0] if len(error.args) == 1 else str(error)
        return f"Models unavailable or failed: {text}"
    return f"Inference failed with an unexpected error: {error!r}"


class InferenceWorker(QtCore.QObject):
    """Runs the models on the open study in the background; results arrive as signals.

    Parameters
    ----------
    pipeline_factory
        Makes the :class:`Pipeline` (default: the bundles in ``resources/bundles``). Called
        once, on the worker thread, when the first study opens.

    Signals
    -------
    ready(object)
        :class:`ModelsInfo` once the models are loaded.
    assessed(object)
        The study's :class:`~pe_models.study_checks.Assessability`, before any slice result.
    results(object, int, int)
        A list of :class:`SliceResult`, slices done, slices in the study.
    study(object)
        The :class:`StudyResult` once every slice is done.
    heatmap(object, object)
        :class:`HeatmapKey` and its (y, x) float32 Grad-CAM in [0, 1].
    heatmap_failed(object, str)
        :class:`HeatmapKey` and why that Grad-CAM could not be made.
    failed(str)
        A message for the user; the viewer stays usable without models.
    """

    ready = QtCore.Signal(object)
    assessed = QtCore.Signal(object)
    results = QtCore.Signal(object, int, int)
    study = QtCore.Signal(object)
    heatmap = QtCore.Signal(object, object)
    heatmap_failed = QtCore.Signal(object, str)
    failed = QtCore.Signal(str)

    def __init__(
        self,
        pipeline_factory: PipelineFactory = Pipeline.load_default,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._factory = pipeline_factory
        self._pipeline: Pipeline | None = None
        self._pipeline_lock = threading.Lock()
        self._pool = QtCore.QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # one thread owns the models
        self._jobs = itertools.count(1)
        self._study_job: _Job | None = None
        self._live: dict[int, _Job] = {}  # keep jobs alive until they report their end
        self.signals = _Signals()
        for inner, outer in (
            (self.signals.ready, self.ready),
            (self.signals.assessed, self.assessed),
            (self.signals.results, self.results),
            (self.signals.study, self.study),
            (self.signals.heatmap, self.heatmap),
            (self.signals.heatmap_failed, self.heatmap_failed),
            (self.signals.failed, self.failed),
        ):
            inner.connect(self._relay(outer))
        self.signals.ended.connect(self._on_ended)

    def pipeline(self) -> Pipeline:
        """The pipeline, made on first use (worker thread); raises what the factory raises."""
        with self._pipeline_lock:
            if self._pipeline is None:
                self._pipeline = self._factory()
            return self._pipeline

    def start(self, volume: Volume, focus: int) -> None:
        """Run the models on ``volume`` from slice ``focus`` outward; cancels every other job."""
        self.cancel()
        self._submit(_Job(next(self._jobs), volume, focus, self, run_study=True))

    def set_focus(self, z: int) -> None:
        """Aim the running study job at the slice the reader now looks at."""
        if self._study_job is not None:
            self._study_job.focus = z

    def request_heatmap(self, volume: Volume, key: HeatmapKey) -> None:
        """Compute a Grad-CAM for ``key`` on ``volume`` as soon as the worker can."""
        study_job = self._study_job
        if study_job is not None and study_job.volume is volume and study_job.offer(key):
            return
        job = _Job(next(self._jobs), volume, key.z, self, run_study=False)
        job.heatmap_requests.append(key)
        self._submit(job)

    def cancel(self) -> None:
        """Stop every job (between batches); their results are dropped."""
        for job in self._live.values():
            job.cancel_event.set()
        self._study_job = None

    def wait(self, timeout_ms: int = 60_000) -> bool:
        """Block until the worker is idle (shutdown and tests)."""
        return self._pool.waitForDone(timeout_ms)

    def _submit(self, job: _Job) -> None:
        if job.run_study:
            self._study_job = job
        self._live[job.job] = job
        self._pool.start(job)

    def _wanted(self, job: int) -> bool:
        return job in self._live and not self._live[job].cancel_event.is_set()

    def _relay(self, signal: QtCore.SignalInstance) -> Callable[..., None]:
        """A slot passing a job's values on, without the job id, while the job is wanted."""

        def relay(job: int, *values: object) -> None:
            if self._wanted(job):
                signal.emit(*values)

        return relay

    def _on_ended(self, job: int) -> None:
        if self._live.pop(job, None) is self._study_job:
            self._study_job = None
