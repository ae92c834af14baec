"""Torch datasets over prepared studies: balanced slice sampling and lesion-centred patches.

Training sets are sampled, not exhausted: item ``i`` is drawn by a generator seeded with
``(seed, i)``, so a run is reproducible and each DDP rank (which gets its own indices) sees
different samples. Validation sets are fixed lists of whole inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from pe_models.data.records import NO_PE
from pe_models.data.slices import InputSpec, PreparedStudy, StoredSlices

if TYPE_CHECKING:
    from pe_models.train.mining import MinedPoint

BINARY_TARGETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # task: (positive slice labels, negative slice labels)
    "classification": (("pe",), ("normal", "other_disease", NO_PE)),
    "triage_stage1": (("other_disease", "pe"), ("normal",)),
    "triage_stage2": (("pe",), ("other_disease",)),
    "integrated": (("pe",), ("normal", "other_disease", NO_PE)),
}
"""Which slices each binary task learns from: stage 1 is WNL vs diseased, stage 2 is PE vs
other disease on diseased slices only (seed 2)."""

SliceRef = tuple[int, int]
"""(study index, kept-slice index) into a list of prepared studies."""


def binary_slices(
    studies: Sequence[PreparedStudy], task: str
) -> tuple[list[SliceRef], list[SliceRef]]:
    """Positive and negative slices of ``studies`` for a binary ``task``."""
    positive_labels, negative_labels = BINARY_TARGETS[task]
    positives: list[SliceRef] = []
    negatives: list[SliceRef] = []
    for s, study in enumerate(studies):
        for k, label in enumerate(study.labels):
            if label in positive_labels:
                positives.append((s, k))
            elif label in negative_labels:
                negatives.append((s, k))
    return positives, negatives


class _Sampled(Dataset):
    """Base of the sampled training sets: ``length`` items, item i from rng((seed, i))."""

    def __init__(self, studies: Sequence[PreparedStudy], spec: InputSpec, length: int, seed: int):
        self.studies = list(studies)
        self.spec = spec
        self.length = length
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, index])

    def _image(self, ref: SliceRef) -> torch.Tensor:
        study, k = ref
        return self.spec.normalise(torch.from_numpy(self.studies[study].images[k]))


MATCHED_NEIGHBOURS = 4
"""A matched negative is one of the this many negatives nearest in z to a positive slice."""


def matched_negatives(
    studies: Sequence[PreparedStudy], positives: Sequence[SliceRef], negatives: Sequence[SliceRef]
) -> list[list[SliceRef]]:
    """Per positive slice, the negatives of the same study nearest to it in z.

    Such a negative shows the same anatomy without the finding, so a model cannot tell them
    apart by the level of the slice (the shortcut a slice classifier takes first: PE slices
    cluster at the hilum).
    """
    by_study: dict[int, list[SliceRef]] = {}
    for ref in negatives:
        by_study.setdefault(ref[0], []).append(ref)
    matched = []
    for s, k in positives:
        pool = by_study.get(s, [])
        z = studies[s].z[k]
        matched.append(
            sorted(pool, key=lambda ref: abs(studies[s].z[ref[1]] - z))[:MATCHED_NEIGHBOURS]
        )
    return matched


class BalancedSlices(_Sampled):
    """Whole slices with a binary target, positives drawn with ``positive_fraction``.

    Of the negatives, ``matched_fraction`` are matched ones (:func:`matched_negatives`: the
    same study, next to a positive slice), the rest are drawn from all negatives. Items:
    (image float32 (C, S, S), target float32 scalar). Horizontal flips (p = 0.5) augment the
    images.
    """

    def __init__(
        self,
        studies: Sequence[PreparedStudy],
        spec: InputSpec,
        task: str,
        *,
        length: int,
        positive_fraction: float = 0.5,
        matched_fraction: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(studies, spec, length, seed)
        self.positives, self.negatives = binary_slices(self.studies, task)
        if not self.positives or not self.negatives:
            raise ValueError(
                f"{task} needs positive and negative slices; found {len(self.positives)} "
                f"positive and {len(self.negatives)} negative"
            )
        self.positive_fraction = positive_fraction
        self.matched_fraction = matched_fraction
        self.matched = matched_negatives(self.studies, self.positives, self.negatives)

    def _draw(self, rng: np.random.Generator) -> tuple[SliceRef, bool]:
        if rng.random() < self.positive_fraction:
            return self.positives[int(rng.integers(len(self.positives)))], True
        if rng.random() < self.matched_fraction:
            near = self.matched[int(rng.integers(len(self.matched)))]
            if near:
                return near[int(rng.integers(len(near)))], False
        return self.negatives[int(rng.integers(len(self.negatives)))], False

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self._rng(index)
        ref, positive = self._draw(rng)
        image = self._image(ref)
        if rng.random() < 0.5:
            image = image.flip(-1)
        return image, torch.tensor(float(positive))


class SliceList(Dataset):
    """Fixed validation slices: (image, binary target) for every labelled slice, in order."""

    def __init__(self, studies: Sequence[PreparedStudy], spec: InputSpec, task: str) -> None:
        self.studies = list(studies)
        self.spec = spec
        positives, negatives = binary_slices(self.studies, task)
        self.items = sorted([(ref, 1.0) for ref in positives] + [(ref, 0.0) for ref in negatives])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        (study, k), target = self.items[index]
        image = self.spec.normalise(torch.from_numpy(self.studies[study].images[k]))
        return image, torch.tensor(target)


def multitask_target(study: PreparedStudy, k: int, label: float) -> dict[str, torch.Tensor]:
    """Target of seed 1's integrated model: slice label, PE mask and PE boxes of one slice."""
    if study.masks is None:
        raise ValueError(f"{study.study_id}: the integrated model needs PE masks")
    boxes = study.boxes[k] if study.boxes is not None else np.zeros((0, 4))
    target = detection_target(boxes, 0, 0, study.masks.shape[-1])
    target["label"] = torch.tensor(label)
    target["mask"] = torch.from_numpy(study.masks[k].copy())
    return target


class MultiTaskSlices(BalancedSlices):
    """Balanced whole slices with the integrated model's target (no flips: boxes stay put)."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # type: ignore[override]
        (study, k), positive = self._draw(self._rng(index))
        target = multitask_target(self.studies[study], k, float(positive))
        return self._image((study, k)), target


class MultiTaskSliceList(SliceList):
    """Fixed validation slices with the integrated model's target."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # type: ignore[override]
        (study, k), label = self.items[index]
        image = self.spec.normalise(torch.from_numpy(self.studies[study].images[k]))
        return image, multitask_target(self.studies[study], k, label)


def lesion_slices(studies: Sequence[PreparedStudy]) -> list[SliceRef]:
    """Slices whose PE mask (or box list) is not empty."""
    found = []
    for s, study in enumerate(studies):
        with_mask = _slices_with_pixels(study.masks, len(study.z))
        for k in range(len(study.z)):
            if with_mask[k] or (study.boxes is not None and len(study.boxes[k])):
                found.append((s, k))
    return found


def mimic_slices(studies: Sequence[PreparedStudy]) -> list[SliceRef]:
    """Slices whose other-disease mask (lesions a model may take for a clot) is not empty."""
    return [
        (s, k)
        for s, study in enumerate(studies)
        for k in np.flatnonzero(_slices_with_pixels(study.other_masks, len(study.z))).tolist()
    ]


def _slices_with_pixels(masks: np.ndarray | StoredSlices | None, count: int) -> np.ndarray:
    """(count,) bool: which slices of ``masks`` have a pixel set (none when there are no masks)."""
    if masks is None:
        return np.zeros(count, dtype=bool)
    return np.asarray(np.asarray(masks).any(axis=(1, 2)))


PATCH_LABEL_TASKS = ("classification", "triage_stage1", "triage_stage2")
"""Binary tasks that can train on patches, target "the patch holds a lesion pixel": a PE
pixel, or for triage stage 1 a PE or other-disease pixel (seed 2's "diseased")."""

PATCH_TASKS = ("segmentation", "detection", *PATCH_LABEL_TASKS)
"""Tasks that can train on patches."""


class Patches(_Sampled):
    """Square patches, lesion-centred with ``positive_fraction``, the others anywhere.

    With ``hard_fraction``, that share of the patches not centred on PE is centred on one of
    ``hard_points``, the false clot pieces of the model training starts from
    (:func:`pe_models.train.mining.mine_false_pieces`). With ``mimic_fraction``, that share of
    the rest is centred on an other-disease lesion (:func:`mimic_slices`): hard negatives for
    the nodules and consolidation next to vessels that a U-Net trained on random negatives
    calls clots.

    Items: (image float32 (C, P, P), target), where the target is a uint8 (P, P) mask for
    ``segmentation``, torchvision's ``{"boxes": (k, 4), "labels": (k,)}`` for ``detection``
    (boxes clipped to the patch, see :func:`detection_target`) and a float32 scalar, 1 when
    the patch holds a PE mask pixel, for ``classification`` and ``triage_stage2``. For
    ``triage_stage1`` (WNL vs diseased) other-disease lesions count as lesions too: patches
    are centred on either, and the target is 1 when the patch holds a pixel of either.
    ``patch=None`` uses the whole input. With ``lesion_maps`` the label tasks get the uint8
    (P, P) lesion mask instead of the scalar (flipped with the image), for a classifier
    whose logit map learns where the lesion is (``TrainSpec.lesion_map_weight``).

    A classifier with global max pooling trained on patches learns a local finding, a clot,
    rather than whatever else tells its slices apart (their level, the study); it then scores
    whole slices unchanged.
    """

    def __init__(
        self,
        studies: Sequence[PreparedStudy],
        spec: InputSpec,
        task: str,
        *,
        length: int,
        patch: int | None,
        positive_fraction: float = 0.5,
        mimic_fraction: float = 0.0,
        hard_fraction: float = 0.0,
        hard_points: Sequence[MinedPoint] = (),
        lesion_maps: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(studies, spec, length, seed)
        if task not in PATCH_TASKS:
            raise ValueError(f"patches are for {', '.join(PATCH_TASKS)}, not {task!r}")
        unmasked = [s.study_id for s in self.studies if s.masks is None]
        if task != "detection" and unmasked:
            raise ValueError(f"{task} on patches needs PE masks; none for {', '.join(unmasked)}")
        self.task = task
        self.patch = patch or spec.size
        self.counts_other = task == "triage_stage1"
        self.lesions = lesion_slices(self.studies)
        if self.counts_other:
            self.lesions = sorted(set(self.lesions) | set(mimic_slices(self.studies)))
        self.all = [(s, k) for s, study in enumerate(self.studies) for k in range(len(study.z))]
        if not self.lesions:
            raise ValueError(f"{task} needs slices with PE masks or boxes; found none")
        self.positive_fraction = positive_fraction
        self.mimic_fraction = mimic_fraction
        self.mimics = mimic_slices(self.studies) if mimic_fraction else []
        if mimic_fraction and not self.mimics:
            raise ValueError("mimic_fraction needs studies with other-disease masks; found none")
        self.hard_fraction = hard_fraction
        self.hard_points = list(hard_points)
        self.lesion_maps = lesion_maps and task in PATCH_LABEL_TASKS
        if hard_fraction and not self.hard_points:
            raise ValueError("hard_fraction needs mined false pieces; the starting model has none")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, object]:
        rng = self._rng(index)
        size, patch = self.spec.size, self.patch
        if rng.random() < self.positive_fraction:
            study, k = self.lesions[int(rng.integers(len(self.lesions)))]
            y0, x0 = self._window_around(self._lesion_point(study, k, rng), rng)
        elif self.hard_fraction and rng.random() < self.hard_fraction:
            study, k, y, x = self.hard_points[int(rng.integers(len(self.hard_points)))]
            y0, x0 = self._window_around((y, x), rng)
        elif self.mimic_fraction and rng.random() < self.mimic_fraction:
            study, k = self.mimics[int(rng.integers(len(self.mimics)))]
            other_masks = self.studies[study].other_masks
            assert other_masks is not None  # mimic_slices lists only such studies
            y0, x0 = self._window_around(_random_pixel(other_masks[k], rng), rng)
        else:
            study, k = self.all[int(rng.integers(len(self.all)))]
            y0, x0 = (int(v) for v in rng.integers(0, size - patch + 1, size=2))
        image = self._image((study, k))[:, y0 : y0 + patch, x0 : x0 + patch]
        if self.task == "detection":
            return image, self._boxes(study, k, y0, x0)
        mask = torch.from_numpy(
            self._lesion_mask(study, k)[y0 : y0 + patch, x0 : x0 + patch].copy()
        )
        if self.task in PATCH_LABEL_TASKS:
            if rng.random() < 0.5:
                image, mask = image.flip(-1), mask.flip(-1)
            return image, mask if self.lesion_maps else torch.tensor(float(mask.any()))
        return image, mask

    def _lesion_mask(self, study: int, k: int) -> np.ndarray:
        """(S, S) uint8: the PE mask of slice ``k``, with other lesions where they count."""
        prepared = self.studies[study]
        assert prepared.masks is not None  # checked in __init__
        mask = np.asarray(prepared.masks[k])  # one read from the cache
        if self.counts_other and prepared.other_masks is not None:
            mask = mask | np.asarray(prepared.other_masks[k])
        return mask

    def _window_around(self, point: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
        """Top-left corner of a patch holding ``point`` (y, x), not within 1/8 of its edge."""
        size, patch = self.spec.size, self.patch
        cy, cx = point
        y0 = int(np.clip(cy - rng.integers(patch // 8, patch - patch // 8), 0, size - patch))
        x0 = int(np.clip(cx - rng.integers(patch // 8, patch - patch // 8), 0, size - patch))
        return y0, x0

    def _lesion_point(self, study: int, k: int, rng: np.random.Generator) -> tuple[int, int]:
        prepared = self.studies[study]
        mask = None if prepared.masks is None else self._lesion_mask(study, k)
        if mask is not None and mask.any():
            return _random_pixel(mask, rng)
        assert prepared.boxes is not None
        box = prepared.boxes[k][int(rng.integers(len(prepared.boxes[k])))]
        return int((box[1] + box[3]) / 2), int((box[0] + box[2]) / 2)

    def _boxes(self, study: int, k: int, y0: int, x0: int) -> dict[str, torch.Tensor]:
        prepared = self.studies[study]
        boxes = prepared.boxes[k] if prepared.boxes is not None else np.zeros((0, 4))
        return detection_target(boxes, y0, x0, self.patch)


def _random_pixel(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """(y, x) of a pixel of the (S, S) ``mask`` drawn uniformly; the mask must not be empty."""
    rows, columns = np.nonzero(mask)
    i = int(rng.integers(len(rows)))
    return int(rows[i]), int(columns[i])


def detection_target(boxes: np.ndarray, y0: int, x0: int, size: int) -> dict[str, torch.Tensor]:
    """Torchvision target of ``boxes`` (k, 4) seen through a window at (y0, x0) of ``size``.

    Boxes are clipped to the window; a box less than half inside it is dropped.
    """
    shifted = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) - [x0, y0, x0, y0]
    clipped = np.clip(shifted, 0, size)
    keep = _area(clipped) >= 0.5 * _area(shifted)
    keep &= (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    kept = torch.from_numpy(clipped[keep])
    return {"boxes": kept.reshape(-1, 4), "labels": torch.ones(len(kept), dtype=torch.int64)}


class LesionList(Dataset):
    """Fixed validation inputs for segmentation / detection.

    Every lesion slice and, after them, every ``negative_stride``-th slice without lesion (for
    false positives).
    """

    def __init__(
        self,
        studies: Sequence[PreparedStudy],
        spec: InputSpec,
        task: str,
        *,
        negative_stride: int = 8,
    ) -> None:
        self.studies = list(studies)
        self.spec = spec
        self.task = task
        lesions = lesion_slices(self.studies)
        lesion_set = set(lesions)
        others = [
            (s, k)
            for s, study in enumerate(self.studies)
            for k in range(len(study.z))
            if (s, k) not in lesion_set
        ]
        self.items = lesions + others[::negative_stride]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, object]:
        study, k = self.items[index]
        prepared = self.studies[study]
        image = self.spec.normalise(torch.from_numpy(prepared.images[k]))
        if self.task == "segmentation":
            assert prepared.masks is not None
            return image, torch.from_numpy(prepared.masks[k].copy())
        boxes = prepared.boxes[k] if prepared.boxes is not None else np.zeros((0, 4))
        return image, detection_target(boxes, 0, 0, self.spec.size)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def collate_detection(
    batch: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]],
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Stack images (all the same size) and keep targets as a list, as torchvision expects."""
    return torch.stack([image for image, _ in batch]), [target for _, target in batch]
