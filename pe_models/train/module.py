"""The Lightning module: one network, its task's loss, and the validation score it keeps."""

from __future__ import annotations

from typing import Any

import lightning as L  # noqa: N812 - the library's own spelling
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F  # noqa: N812 - the universal spelling
from torch import nn
from torchmetrics.classification import BinaryAUROC, BinaryJaccardIndex
from torchmetrics.detection import MeanAveragePrecision

from pe_models.train.losses import lesion_map_loss, mask_loss

VALIDATION_SCORE = {
    "classification": "val_auc",
    "triage_stage1": "val_auc",
    "triage_stage2": "val_auc",
    "segmentation": "val_iou",
    "detection": "val_ap50",
    "integrated": "val_auc",
}
"""The score each task is selected on (higher is better)."""


bce = F.binary_cross_entropy_with_logits


def set_detector_size(model: nn.Module, size: int) -> None:
    """Make a torchvision detector keep ``size``-pixel square images at their size.

    Its transform resizes every image to ``min_size``; patches (training) and whole inputs
    (validation, inference) differ in size, so the size is set before each phase.
    """
    transform: Any = model.transform
    transform.min_size = (size,)
    transform.max_size = size


class TaskModule(L.LightningModule):
    """Trains ``model`` for ``task`` with AdamW and a one-cycle schedule over ``steps``.

    Parameters
    ----------
    model
        A network from :func:`pe_models.nets.build`.
    task
        One of :data:`VALIDATION_SCORE`'s keys.
    steps, lr, weight_decay
        Schedule.
    train_size, val_size
        Detection only: input side of training patches and of validation images.
    piece_weight_px
        Segmentation only: weigh each small clot piece in the BCE like one of this many
        pixels (:func:`pe_models.train.losses.piece_weights`); None: plain BCE.
    lesion_map_weight
        Binary slice tasks whose batches hold lesion masks (``Patches(lesion_maps=True)``):
        the weight of the model's ``logit_map`` loss against them beside the label's BCE.
    """

    def __init__(
        self,
        model: nn.Module,
        task: str,
        *,
        steps: int,
        lr: float,
        weight_decay: float,
        train_size: int | None = None,
        val_size: int | None = None,
        piece_weight_px: int | None = None,
        lesion_map_weight: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.steps = steps
        self.lr = lr
        self.weight_decay = weight_decay
        self.train_size = train_size
        self.val_size = val_size
        self.piece_weight_px = piece_weight_px
        self.lesion_map_weight = lesion_map_weight
        self.dice = smp.losses.DiceLoss("binary", from_logits=True)
        self.auroc = BinaryAUROC()
        self.ap = MeanAveragePrecision(iou_thresholds=[0.5], box_format="xyxy")
        self.iou = BinaryJaccardIndex()

    def training_step(self, batch: Any, batch_index: int) -> torch.Tensor:
        """Loss of one batch."""
        images, targets = batch
        if self.task == "detection":
            if self.train_size:
                set_detector_size(self.model, self.train_size)
            losses = self.model(list(images), targets)
            loss = sum(losses.values())
            self.log_dict({f"train_{k}": v for k, v in losses.items()}, on_step=True)
        elif self.task == "segmentation":
            output = self.model(images)
            if isinstance(output, tuple):  # joint U-Net: is there PE in view?
                output, class_logits = output
                in_view = (targets.flatten(1).amax(1) > 0).float()
                class_loss = bce(class_logits[:, 0], in_view)
                self.log("train_class_loss", class_loss, on_step=True)
                loss = class_loss + self._mask_loss(output, targets)
            else:
                loss = self._mask_loss(output, targets)
        elif self.task == "integrated":
            detector_targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
            heads = self.model(images, detector_targets)
            losses = dict(heads["detections"])
            losses["class"] = bce(heads["logits"][:, 0], torch.stack([t["label"] for t in targets]))
            losses["mask"] = self._mask_loss(
                heads["mask_logits"], torch.stack([t["mask"] for t in targets])
            )
            loss = sum(losses.values())
            self.log_dict({f"train_{k}": v for k, v in losses.items()}, on_step=True)
        elif self.lesion_map_weight is not None:
            loss = self._label_and_map_loss(images, targets, self.lesion_map_weight)
        else:
            loss = bce(self.model(images)[:, 0], targets)
        self.log("train_loss", loss, on_step=True, prog_bar=True)
        return loss

    def _label_and_map_loss(
        self, images: torch.Tensor, masks: torch.Tensor, weight: float
    ) -> torch.Tensor:
        """The label's BCE (a lesion pixel in view) plus the weighted lesion-map loss."""
        model: Any = self.model  # a CBAM-DRN built with pool "map" (checked by the experiment)
        logit_map = model.logit_map(images)
        label = (masks.flatten(1).amax(1) > 0).float()
        label_loss = bce(logit_map[:, 0].flatten(1).amax(1), label)
        map_loss = lesion_map_loss(logit_map[:, :1], masks)
        self.log_dict({"train_label_loss": label_loss, "train_map_loss": map_loss}, on_step=True)
        return label_loss + weight * map_loss

    def _mask_loss(self, logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        return mask_loss(logits, truth, self.dice, piece_weight_px=self.piece_weight_px)

    def on_validation_epoch_start(self) -> None:
        """Reset the accumulators of the validation score."""
        self.auroc.reset()
        self.ap.reset()
        self.iou.reset()
        if self.task == "detection" and self.val_size:
            set_detector_size(self.model, self.val_size)

    def validation_step(self, batch: Any, batch_index: int) -> None:
        """Accumulate the task's validation score."""
        images, targets = batch
        if self.task == "detection":
            found = self.model(list(images))
            self.ap.update(
                [{k: f[k] for k in ("boxes", "scores", "labels")} for f in found], targets
            )
        elif self.task == "integrated":
            logits = self.model(images)["logits"]
            labels = torch.stack([t["label"] for t in targets]).int()
            self.auroc.update(torch.sigmoid(logits[:, 0]), labels)
        elif self.task == "segmentation":
            output = self.model(images)
            output = output[0] if isinstance(output, tuple) else output
            predicted = output[:, 0] >= 0
            self.iou.update(predicted.int(), targets.int())
        else:
            self.auroc.update(torch.sigmoid(self.model(images)[:, 0]), targets.int())

    def on_validation_epoch_end(self) -> None:
        """Log the validation score named in :data:`VALIDATION_SCORE`."""
        if self.task == "detection":
            score = self.ap.compute()["map_50"]
        elif self.task == "segmentation":
            score = self.iou.compute()
        else:
            score = self.auroc.compute()
        self.log(VALIDATION_SCORE[self.task], score.float(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        """AdamW with a one-cycle schedule stepped every batch."""
        optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.lr, total_steps=self.steps, pct_start=0.15
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
