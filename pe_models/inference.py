"""The Pipeline: the one API the viewer and the command line call to run the models on a study."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pe_models.bundle import BundleConfig, ModelBundle, load_bundle
from pe_models.clots import clot_components
from pe_models.explain import cam_heatmap
from pe_models.preprocess.lung_crop import CropBox
from pe_models.preprocess.model_input import channel_names, crop_box, model_input
from pe_models.preprocess.stack import WindowStack
from pe_models.resources import resources_dir
from pe_models.study_checks import Assessability, ContrastCheck, assess
from pe_models.triage import (
    TRIAGE_CLASSES,
    combine_stages,
    longest_run,
    patient_probability,
    triage_classes,
)
from pe_models.volume import Volume


class InferenceCancelled(Exception):  # noqa: N818 - a normal outcome, not an error
    """Raised when ``should_cancel`` stopped a run; callers treat it as normal."""


@dataclass(frozen=True)
class SliceResult:
    """What the models say about one slice; coordinates are original pixels (x = column).

    Attributes
    ----------
    index
        z index in the volume.
    pe_probability
        Slice PE probability (see :meth:`Pipeline.slice_score_source`), or None.
    triage
        Probabilities of ``normal``, ``other_disease`` and ``pe``, or None without triage.
    boxes
        (N, 5) float: x0, y0, x1, y1, score.
    mask
        (y, x) uint8 predicted PE mask, or None without a segmentation model.
    crop
        The crop the models saw.
    model_scores
        Every slice PE score the models gave, by source (see
        :meth:`Pipeline.slice_score_sources`); ``pe_probability`` is one of them.
    triage_class
        The triage class at the bundles' cuts (see :meth:`Pipeline.triage_cuts`), or None
        without triage.
    """

    index: int
    pe_probability: float | None
    triage: dict[str, float] | None
    boxes: np.ndarray
    mask: np.ndarray | None
    crop: CropBox
    model_scores: dict[str, float] = field(default_factory=dict)
    triage_class: str | None = None

    def boxes_scoring(self, cut: float) -> np.ndarray:
        """(N, 5) boxes scoring at least ``cut``: what the viewer draws at that box score cut."""
        boxes = np.asarray(self.boxes, dtype=float).reshape(-1, 5)
        return boxes[boxes[:, 4] >= cut]


@dataclass(frozen=True)
class StudyResult:
    """The study-level answer and every slice result, in z order."""

    pe_probability: float
    triage: str
    positive_slices: tuple[int, ...]
    clot_volume_ml: float | None
    contrast: ContrastCheck
    slices: tuple[SliceResult, ...]
    warnings: tuple[str, ...] = ()
    largest_clot_ml: float | None = None
    not_assessable: str | None = None
    """Why the study gets no decision (no arterial contrast, little lung, too few slices); None
    if it does (see :func:`pe_models.study_checks.assess`)."""


@dataclass(frozen=True)
class ModelView:
    """What a model is fed for one slice: its crop and its windowed input.

    Attributes
    ----------
    crop
        The crop in original pixels.
    channels
        float32 (C, S, S) in [0, 1], one channel per input window (before normalisation).
    windows
        The name of each channel: its window preset, and for context slices their offset.
    """

    crop: CropBox
    channels: np.ndarray
    windows: tuple[str, ...]


def model_view(volume: Volume, z: int, config: BundleConfig) -> ModelView:
    """The crop and windowed input a bundle with ``config`` sees on slice ``z``."""
    crop = crop_box(volume.hu[z], volume.spacing[1:], config.crop)
    windows = WindowStack(config.input_windows, normalisation="unit")
    images = config_input(volume, [z], [crop], config, windows)
    channels = images[0].clamp(0, 1).numpy()
    return ModelView(crop, channels, channel_names(windows, config.context_mm))


def config_input(
    volume: Volume,
    slices: Sequence[int],
    crops: Sequence[CropBox],
    config: BundleConfig,
    windows: WindowStack,
) -> torch.Tensor:
    """The (B, C, S, S) input of a bundle with ``config`` for ``slices`` of ``volume``."""
    return model_input(
        volume, slices, crops, windows, config.input_size, context_mm=config.context_mm
    )


TRIAGE_TASKS = frozenset({"triage_stage1", "triage_stage2"})
SCORE_SOURCE_TASKS: dict[str, frozenset[str]] = {
    "classification": frozenset({"classification"}),
    "triage": TRIAGE_TASKS,
    "integrated": frozenset({"integrated"}),
    "segmentation": frozenset({"segmentation"}),
}
"""The models that give each slice PE score, in the order the score source is preferred."""
SCORE_BUNDLE = {
    "classification": "classification",
    "triage": "triage_stage2",
    "integrated": "integrated",
    "segmentation": "segmentation",
}
"""The bundle that answers for each slice PE score: its card gets the score's metrics."""
CALIBRATED_SCORES = ("classification", "triage")
"""Slice PE scores whose bundle's ``threshold`` is the slice threshold (else 0.5)."""

DEFAULT_BOX_SCORE_CUT = 0.5
"""Box score cut when the detector's bundle sets none (its ``threshold``): torchvision keeps
every box above 0.05, dozens on a slice, which hide the image rather than point into it."""


def select_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given, else CUDA, else Apple MPS, else CPU."""
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class _Model:
    bundle: ModelBundle
    network: nn.Module
    windows: WindowStack = field(init=False)

    def __post_init__(self) -> None:
        config = self.bundle.config
        self.windows = WindowStack(config.input_windows, normalisation=config.normalisation)


class Pipeline:
    """Runs model bundles on a volume: lung crop, windows, batched inference, results in place.

    Parameters
    ----------
    bundles
        Loaded bundles, at most one per task (classification, segmentation, detection,
        triage_stage1, triage_stage2).
    device
        Where to run; default :func:`select_device`.
    batch_size
        Slices per forward pass.
    """

    def __init__(
        self, bundles: Iterable[ModelBundle], *, device: str | None = None, batch_size: int = 8
    ) -> None:
        self.device = select_device(device)
        self.batch_size = batch_size
        self.models: dict[str, _Model] = {}
        for bundle in bundles:
            task = bundle.config.task
            if task in self.models:
                raise ValueError(
                    f"two bundles for task {task!r}: {self.models[task].bundle.path}, {bundle.path}"
                )
            # Channels-last runs the convolutions about a third faster on CPU (oneDNN) and
            # suits tensor cores on a GPU; the outputs differ only by rounding.
            network = bundle.build_model(self.device).to(memory_format=torch.channels_last)
            self.models[task] = _Model(bundle, network)

    @classmethod
    def from_bundles(cls, paths: Iterable[str | os.PathLike[str]], **kwargs: object) -> Pipeline:
        """Load bundle folders and make a pipeline of them."""
        return cls([load_bundle(p) for p in paths], **kwargs)  # type: ignore[arg-type]

    @classmethod
    def load_default(cls, **kwargs: object) -> Pipeline:
        """The bundles shipped in ``resources/bundles``.

        Raises
        ------
        FileNotFoundError
            No bundle is installed (they are made by ``pe-train --preset demo``).
        """
        folder = resources_dir() / "bundles"
        found = default_bundle_paths(folder) if folder.is_dir() else []
        if not found:
            raise FileNotFoundError(
                f"{folder}: no model bundles installed; make them with pe-train --preset demo"
            )
        return cls.from_bundles(found, **kwargs)

    @property
    def device_name(self) -> str:
        """Where the models run, for people: ``CPU``, ``GPU: <name>`` or the device type."""
        if self.device.type == "cuda":
            return f"GPU: {torch.cuda.get_device_name(self.device)}"
        return "CPU" if self.device.type == "cpu" else self.device.type.upper()

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks this pipeline runs."""
        return tuple(self.models)

    def run(
        self,
        volume: Volume,
        *,
        slices: Sequence[int] | None = None,
        priority: int | None = None,
        progress: Callable[[int, int, SliceResult], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        tasks: Iterable[str] | None = None,
    ) -> StudyResult:
        """Run the models on the chosen slices, nearest to ``priority`` first, and summarise.

        Parameters
        ----------
        slices
            z indices to run (default: all).
        priority
            Start at this slice and work outward (the slice the reader is looking at).
        progress
            Called with (done, total, result) after each slice.
        should_cancel
            Polled between batches; True raises :class:`InferenceCancelled`.
        tasks
            Run only these tasks (default: every model of the pipeline).
        """
        results = self.run_slices(
            volume,
            slices=slices,
            priority=priority,
            progress=progress,
            should_cancel=should_cancel,
            tasks=tasks,
        )
        return self.summarise(volume, results, tasks)

    def run_slices(
        self,
        volume: Volume,
        *,
        slices: Sequence[int] | None = None,
        priority: int | None = None,
        progress: Callable[[int, int, SliceResult], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        tasks: Iterable[str] | None = None,
    ) -> list[SliceResult]:
        """Like :meth:`run` without the study summary; the results come back in z order."""
        active = set(self.models) if tasks is None else set(tasks)
        if unknown := active - set(self.models):
            raise KeyError(
                f"no model for {sorted(unknown)}; this pipeline has {', '.join(self.models)}"
            )
        indices = list(range(volume.shape[0]) if slices is None else slices)
        if priority is not None:
            indices.sort(key=lambda z: (abs(z - priority), z))
        results: dict[int, SliceResult] = {}
        with torch.inference_mode():
            for start in range(0, len(indices), self.batch_size):
                if should_cancel is not None and should_cancel():
                    raise InferenceCancelled("inference was cancelled")
                batch = indices[start : start + self.batch_size]
                for result in self._run_batch(volume, batch, active):
                    results[result.index] = result
                    if progress is not None:
                        progress(len(results), len(indices), result)
        return [results[z] for z in sorted(results)]

    def explain(
        self, volume: Volume, z: int, target: str = "classification", method: str = "gradcam"
    ) -> np.ndarray:
        """Grad-CAM heatmap of one model on slice ``z``, in original pixels.

        Parameters
        ----------
        target
            The task whose model to explain (``classification``, ``triage_stage1``,
            ``triage_stage2``, ``segmentation`` or ``detection``).
        method
            ``gradcam``, ``gradcam++`` or ``eigencam``.

        Returns
        -------
        np.ndarray
            float32 (y, x) in [0, 1]; zero outside the crop the model saw.
        """
        if target not in self.models:
            raise KeyError(f"no {target!r} model in this pipeline; it has {', '.join(self.models)}")
        model = self.models[target]
        config = model.bundle.config
        crop = crop_box(volume.hu[z], volume.spacing[1:], config.crop)
        images = config_input(volume, [z], [crop], config, model.windows)
        heatmap = cam_heatmap(model.network, target, images.to(self.device), method)
        return crop.mask_to_original(heatmap, volume.shape[1:], order=1)

    def _forward(
        self,
        task: str,
        volume: Volume,
        batch: Sequence[int],
        crops_by_mode: dict[str, list[CropBox]],
    ) -> tuple[Any, list[CropBox]]:
        model = self.models[task]
        config = model.bundle.config
        if config.crop not in crops_by_mode:  # bundles sharing a crop mode share the crops
            crops_by_mode[config.crop] = [
                crop_box(volume.hu[z], volume.spacing[1:], config.crop) for z in batch
            ]
        crops = crops_by_mode[config.crop]
        images = config_input(volume, batch, crops, config, model.windows).to(
            self.device, memory_format=torch.channels_last
        )
        with torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
            if task == "detection":
                return model.network(list(images)), crops
            output = model.network(images)
            if task == "integrated":
                return output, crops
            if isinstance(output, tuple):  # a joint U-Net also returns its class logits
                output = output[0]
            return output.float(), crops

    def _run_batch(
        self, volume: Volume, batch: Sequence[int], active: set[str]
    ) -> list[SliceResult]:
        height, width = volume.shape[1:]
        n = len(batch)
        scores: dict[str, list[float]] = {}
        triage: list[dict[str, float] | None] = [None] * n
        triage_names: Sequence[str | None] = [None] * n
        boxes = [np.zeros((0, 5))] * n
        masks: list[np.ndarray | None] = [None] * n
        crops_by_mode: dict[str, list[CropBox]] = {}
        if "classification" in active:
            logits, _ = self._forward("classification", volume, batch, crops_by_mode)
            scores["classification"] = torch.sigmoid(logits[:, 0]).cpu().tolist()
        if active >= TRIAGE_TASKS:
            stage1, _ = self._forward("triage_stage1", volume, batch, crops_by_mode)
            stage2, _ = self._forward("triage_stage2", volume, batch, crops_by_mode)
            p_disease = torch.sigmoid(stage1[:, 0]).cpu().numpy()
            combined = combine_stages(p_disease, torch.sigmoid(stage2[:, 0]).cpu().numpy())
            triage = [dict(zip(TRIAGE_CLASSES, map(float, row), strict=True)) for row in combined]
            p_pe = combined[:, TRIAGE_CLASSES.index("pe")]
            scores["triage"] = p_pe.tolist()
            disease_cut, pe_cut = self.triage_cuts()
            triage_names = triage_classes(p_disease, p_pe, disease_cut=disease_cut, pe_cut=pe_cut)
        if "segmentation" in active:
            logits, seg_crops = self._forward("segmentation", volume, batch, crops_by_mode)
            masks = _masks_to_original(logits, seg_crops, (height, width))
            highest = torch.sigmoid(logits[:, 0].float()).amax(dim=(1, 2))
            scores["segmentation"] = highest.cpu().tolist()
        if "detection" in active:
            found, det_crops = self._forward("detection", volume, batch, crops_by_mode)
            boxes = _boxes_to_original(found, det_crops, self._input_size("detection"))
        if "integrated" in active:  # seed 1's one-encoder model fills what no single model did
            heads, int_crops = self._forward("integrated", volume, batch, crops_by_mode)
            scores["integrated"] = torch.sigmoid(heads["logits"][:, 0].float()).cpu().tolist()
            if "segmentation" not in active:
                masks = _masks_to_original(heads["mask_logits"], int_crops, (height, width))
            if "detection" not in active:
                size = self._input_size("integrated")
                boxes = _boxes_to_original(heads["detections"], int_crops, size)
        source = self.slice_score_source(active)
        # The crop reported is the first model's (bundles normally share one crop mode).
        crops = next(iter(crops_by_mode.values()), [CropBox(0, height, 0, width, "none")] * n)
        results = []
        for i, z in enumerate(batch):
            by_source = {name: float(values[i]) for name, values in scores.items()}
            pe = None if source is None else by_source[source]
            results.append(
                SliceResult(
                    z, pe, triage[i], boxes[i], masks[i], crops[i], by_source, triage_names[i]
                )
            )
        return results

    def slice_score_sources(self, tasks: Iterable[str] | None = None) -> list[str]:
        """Every model that gives a slice PE score when ``tasks`` (default: all) run.

        In the order :meth:`slice_score_source` prefers them: ``classification``, ``triage``
        (both stages), ``integrated``, ``segmentation`` (the U-Net's highest pixel probability).
        """
        active = set(self.models) if tasks is None else set(tasks)
        return [source for source, needs in SCORE_SOURCE_TASKS.items() if needs <= active]

    def slice_score_source(self, tasks: Iterable[str] | None = None) -> str | None:
        """Which model gives the slice PE probability when ``tasks`` (default: all) run.

        The first of :meth:`slice_score_sources` whose bundles do not say ``scores_slices:
        false`` (set where another model scored the validation slices better), else the first
        of them; None without any.
        """
        sources = self.slice_score_sources(tasks)
        for source in sources:
            if all(self.models[t].bundle.config.scores_slices for t in SCORE_SOURCE_TASKS[source]):
                return source
        return sources[0] if sources else None

    def other_slice_scores(self, tasks: Iterable[str] | None = None) -> list[str]:
        """The slice PE scores given beside :meth:`slice_score_source`'s: second opinions."""
        chosen = self.slice_score_source(tasks)
        return [source for source in self.slice_score_sources(tasks) if source != chosen]

    def _input_size(self, task: str) -> int:
        return self.models[task].bundle.config.input_size

    def threshold(self, tasks: Iterable[str] | None = None) -> float:
        """The slice PE threshold of :meth:`slice_score_source` (see :meth:`source_threshold`)."""
        return self.source_threshold(self.slice_score_source(tasks))

    def source_threshold(self, source: str | None) -> float:
        """The calibrated threshold of ``source``'s slice PE score, else 0.5.

        A classifier's bundle threshold; for triage, stage 2's (see :data:`SCORE_BUNDLE`).
        """
        if source not in CALIBRATED_SCORES or SCORE_BUNDLE[source] not in self.models:
            return 0.5
        value = self.models[SCORE_BUNDLE[source]].bundle.config.threshold
        return 0.5 if value is None else float(value)

    def has_triage(self) -> bool:
        """Whether both triage stages are loaded (they run together)."""
        return set(self.models) >= TRIAGE_TASKS

    def triage_cuts(self) -> tuple[float, float]:
        """Stage 1's cut and the cut on triage P(PE): the triage bundles' thresholds, else 0.5.

        See :func:`pe_models.triage.triage_classes`.
        """
        stage1 = self.models.get("triage_stage1")
        disease_cut = None if stage1 is None else stage1.bundle.config.threshold
        return (0.5 if disease_cut is None else float(disease_cut)), self.source_threshold("triage")

    def box_score_cut(self) -> float | None:
        """The detector bundle's box score cut (chosen on validation), None without one.

        Without one, boxes are shown from :data:`DEFAULT_BOX_SCORE_CUT`.
        """
        if "detection" not in self.models:
            return None
        cut = self.models["detection"].bundle.config.threshold
        return None if cut is None else float(cut)

    def min_clot_ml(self, tasks: Iterable[str] | None = None) -> float | None:
        """The smallest 3D clot that makes a study PE when ``tasks`` (default: all) run.

        Set (by its bundle, chosen on validation) only when the U-Net gives the slice scores;
        None otherwise.
        """
        if self.slice_score_source(tasks) != "segmentation":
            return None
        return self._study_rule("segmentation", "min_clot_ml")

    def min_disease_mm(self) -> float | None:
        """Triage stage 1's study rule: the shortest diseased run of slices along z, in mm.

        None (any one slice makes the study diseased, seed 2's rule) when stage 1's bundle
        sets no ``min_disease_mm`` (chosen on validation) or triage is not loaded.
        """
        if not self.has_triage():
            return None
        return self._study_rule("triage_stage1", "min_disease_mm")

    def _study_rule(self, task: str, name: str) -> float | None:
        """The study rule ``name`` that ``task``'s bundle sets in its extra, else None."""
        value = self.models[task].bundle.config.extra.get(name)
        return None if value is None else float(value)

    def summarise(
        self,
        volume: Volume,
        results: Sequence[SliceResult],
        tasks: Iterable[str] | None = None,
        checks: Assessability | None = None,
    ) -> StudyResult:
        """The study-level answer from slice results (those of :meth:`run_slices`, z order).

        ``checks``: :func:`~pe_models.study_checks.assess` of ``volume`` when already made (the
        viewer's worker runs it first, to warn before the slices are done).

        When the U-Net gives the slice scores (:meth:`slice_score_source` of ``tasks``) and its
        bundle sets ``min_clot_ml``, a slice counts towards the study only if it holds part of
        a 3D-connected predicted clot at least that large: the U-Net leaves specks of a few
        voxels on normal scans, a real clot runs through several slices. Slice scores stay as
        the U-Net gave them.

        Without PE, the study is ``other_disease`` when triage calls a slice diseased (its
        class is other disease or PE: the slice score, not triage, decides PE), or, if stage
        1's bundle sets ``min_disease_mm``, a run of consecutive slices at least that long
        along z: a lesion spans several slices, stage 1's false calls on a normal scan come
        alone or in short runs. The run counts consecutive z indices among ``results``, so
        the rule needs every slice of the stretch run (as the viewer and ``pe-infer`` do).
        """
        threshold = self.threshold(tasks)
        masked = [(r.index, r.mask) for r in results if r.mask is not None]
        clot_ml = largest_ml = None
        counted = list(results)
        if masked:
            volumes_ml, on_slice = clot_components(
                volume, [z for z, _ in masked], [mask for _, mask in masked]
            )
            clot_ml = float(volumes_ml.sum())
            largest_ml = float(volumes_ml.max()) if volumes_ml.size else 0.0
            min_ml = self.min_clot_ml(tasks)
            if min_ml is not None:
                kept = set((np.flatnonzero(volumes_ml >= min_ml) + 1).tolist())
                counted = [r for r in results if kept & on_slice.get(r.index, set())]
        probabilities = np.array(
            [r.pe_probability for r in counted if r.pe_probability is not None]
        )
        positive = tuple(
            r.index
            for r in counted
            if r.pe_probability is not None and r.pe_probability >= threshold
        )
        checks = assess(volume) if checks is None else checks
        diseased = [r.index for r in results if r.triage_class not in (None, "normal")]
        min_mm = self.min_disease_mm()
        if min_mm is None:
            has_other = bool(diseased)
        else:
            # The tolerance keeps e.g. 3 slices of 3.3333 mm from missing a 10 mm rule.
            has_other = longest_run(diseased) * volume.spacing[0] >= min_mm - 1e-6
        if positive and not checks.reasons:
            decision = "pe"
        elif has_other:
            decision = "other_disease"
        else:
            decision = "normal"
        return StudyResult(
            pe_probability=patient_probability(probabilities),
            triage=decision,
            positive_slices=positive,
            clot_volume_ml=clot_ml,
            contrast=checks.contrast,
            slices=tuple(results),
            warnings=checks.warnings,
            largest_clot_ml=largest_ml,
            not_assessable="; ".join(checks.reasons) or None,
        )


def _masks_to_original(
    logits: torch.Tensor, crops: Sequence[CropBox], original_hw: tuple[int, int]
) -> list[np.ndarray | None]:
    """Binary (y, x) masks in original pixels from (B, 1, S, S) mask logits.

    The probabilities are resized (bilinear) before the 0.5 threshold, as nnU-Net resamples
    softmax maps rather than labels: the outline falls between model pixels instead of
    following their blocks (a 512 px wide crop in a 384 px input: 1.33 original pixels each).
    """
    probabilities = torch.sigmoid(logits[:, 0].float()).cpu().numpy()
    return [
        (crop.mask_to_original(p, original_hw, order=1) >= 0.5).astype(np.uint8)
        for crop, p in zip(crops, probabilities, strict=True)
    ]


def _boxes_to_original(
    found: Sequence[dict[str, torch.Tensor]], crops: Sequence[CropBox], size: int
) -> list[np.ndarray]:
    """(N, 5) boxes with scores in original pixels from torchvision detections."""
    return [
        crop.boxes_to_original(
            np.column_stack([f["boxes"].float().cpu().numpy(), f["scores"].float().cpu().numpy()]),
            (size, size),
        )
        for crop, f in zip(crops, found, strict=True)
    ]


def default_bundle_paths(folder: Path) -> list[Path]:
    """Bundle folders directly inside ``folder``."""
    return sorted(p for p in folder.iterdir() if (p / "config.json").is_file())


def bundle_folders(given: Iterable[Path]) -> list[Path]:
    """Each path itself when it is a bundle, else the bundle folders directly inside it.

    Raises
    ------
    FileNotFoundError
        A path is neither a bundle nor a folder holding one; the message names it.
    """
    found: list[Path] = []
    for path in given:
        if (path / "config.json").is_file():
            found.append(path)
            continue
        inside = default_bundle_paths(path) if path.is_dir() else []
        if not inside:
            raise FileNotFoundError(f"{path}: no bundle folders found")
        found += inside
    return found
