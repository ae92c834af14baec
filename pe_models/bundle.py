"""Model bundles: a folder with ``config.json``, ``model.safetensors`` and ``card.md``.

The config says how to rebuild the network (registry name and builder arguments) and how to
prepare its input (windows, normalisation, size, crop); the weights are safetensors, never
pickle; the card says what the model is for and how well it did on data it never saw.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pe_models.io.atomic import atomic_folder, give_plain_permissions
from pe_models.nets import available, build

BUNDLE_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "card.md"
TASKS = (
    "classification",
    "segmentation",
    "detection",
    "triage_stage1",
    "triage_stage2",
    "integrated",
)
"""``integrated``: seed 1's one-encoder model giving classification, mask and boxes at once."""


class BundleError(Exception):
    """A bundle or checkpoint cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class BundleConfig:
    """How to rebuild a network and feed it.

    Attributes
    ----------
    arch, builder_kwargs
        Registry name and keyword arguments of :func:`pe_models.nets.build`.
    task
        One of ``TASKS``.
    input_windows
        HU window preset per input channel, in order.
    normalisation
        ``"unit"`` ([0, 1] per window) or ``"zero_center"`` ([-1, 1]).
    input_size
        Side of the square model input in pixels.
    crop
        ``"dynamic"`` (seed 2's lung crop), ``"thorax"`` (the lung crop grown to the inside of
        the chest wall), ``"fixed"`` (seed 2's central crop) or ``"none"``.
    context_mm
        0 for a 2D input; else the input also holds the slices this many mm either side
        (2.5D, see :func:`pe_models.preprocess.model_input.model_input`).
    class_names
        Names of the outputs (for detection: without the background).
    threshold
        Decision threshold on the output probability, when one was calibrated.
    scores_slices
        False: beside a model that does (see ``Pipeline.slice_score_source``), this one does
        not give the slice PE probability and the study decision; it still gives its own
        outputs (its score as a second opinion, triage labels, Grad-CAM). Set where another
        model scored the validation slices better.
    """

    arch: str
    builder_kwargs: dict[str, Any]
    task: str
    input_windows: tuple[str, ...]
    normalisation: str = "unit"
    input_size: int = 512
    crop: str = "dynamic"
    context_mm: float = 0.0
    class_names: tuple[str, ...] = ("pe",)
    threshold: float | None = None
    scores_slices: bool = True
    version: int = BUNDLE_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The config as indented JSON."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str, source: Path) -> BundleConfig:
        """Parse and check a config; errors name ``source``."""
        try:
            raw = json.loads(text)
            raw["input_windows"] = tuple(raw["input_windows"])
            raw["class_names"] = tuple(raw.get("class_names", ("pe",)))
            config = cls(**raw)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise BundleError(f"{source}: not a valid bundle config ({error})") from error
        if config.version > BUNDLE_VERSION:
            raise BundleError(f"{source}: bundle version {config.version} is newer than this app")
        if config.arch not in available():
            raise BundleError(
                f"{source}: unknown architecture {config.arch!r}; valid: {', '.join(available())}"
            )
        if config.task not in TASKS:
            raise BundleError(f"{source}: unknown task {config.task!r}; valid: {', '.join(TASKS)}")
        return config


@dataclass(frozen=True)
class ModelBundle:
    """A loaded bundle: its folder, config and card; :meth:`build_model` makes the network."""

    path: Path
    config: BundleConfig
    card: str

    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The network with the bundle's weights, in eval mode, on ``device``.

        Raises
        ------
        BundleError
            The weights do not fit the architecture.
        """
        model = build(self.config.arch, **self.config.builder_kwargs)
        weights_path = self.path / WEIGHTS_FILE
        state = load_file(str(weights_path))
        expected = model.state_dict()
        state = {
            name: tensor.to(expected[name].dtype)
            for name, tensor in state.items()
            if name in expected
        }
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise BundleError(
                f"{weights_path}: weights do not fit {self.config.arch} ({error})"
            ) from error
        return model.to(device).eval()


def save_bundle(
    model: nn.Module,
    config: BundleConfig,
    card: str,
    folder: str | os.PathLike[str],
    *,
    half: bool = False,
) -> Path:
    """Write a bundle atomically (a temporary folder renamed when complete).

    Parameters
    ----------
    half
        Store floating-point weights as float16 (half the size; loaded back as float32).

    Returns
    -------
    Path
        The bundle folder.
    """
    target = Path(folder)
    state = {
        name: (tensor.half() if half and tensor.is_floating_point() else tensor)
        .detach()
        .cpu()
        .contiguous()
        .clone()
        for name, tensor in model.state_dict().items()
    }
    with atomic_folder(target, replace_existing=True) as staging:
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"arch": config.arch})
        give_plain_permissions(staging / WEIGHTS_FILE)
        (staging / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
        (staging / CARD_FILE).write_text(card, encoding="utf-8")
    return target


def load_bundle(folder: str | os.PathLike[str]) -> ModelBundle:
    """Read a bundle's config and card (the weights are read by :meth:`ModelBundle.build_model`).

    Raises
    ------
    BundleError
        A file is missing or the config is invalid.
    """
    path = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE):
        if not (path / name).is_file():
            raise BundleError(f"{path}: not a model bundle, {name} is missing")
    config = BundleConfig.from_json(
        (path / CONFIG_FILE).read_text(encoding="utf-8"), path / CONFIG_FILE
    )
    return ModelBundle(path, config, (path / CARD_FILE).read_text(encoding="utf-8"))


def import_checkpoint(
    checkpoint: str | os.PathLike[str],
    config: BundleConfig,
    card: str,
    folder: str | os.PathLike[str],
) -> Path:
    """Turn a user's ``.pth`` / ``.ckpt`` into a bundle, without ever unpickling code.

    ``torch.load(weights_only=True)`` reads tensors and plain containers only; a checkpoint
    holding pickled objects is refused. Lightning checkpoints (``{"state_dict": ...}`` with a
    ``model.`` prefix) are unwrapped.

    Raises
    ------
    BundleError
        Pickled objects, no state dict, or weights that do not fit ``config.arch``.
    """
    source = Path(checkpoint)
    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as error:
        raise BundleError(
            f"{source}: refused, it holds pickled Python objects and could run code when "
            "loaded; save only the model's state_dict (tensors) and import that"
        ) from error
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(f"{source}: no state dict of tensors found")
    model = build(config.arch, **config.builder_kwargs)
    expected = set(model.state_dict())
    for prefix in ("", "model.", "module.", "net."):
        renamed = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(renamed) == expected:
            break
    else:
        missing = sorted(expected - set(state))[:3]
        raise BundleError(f"{source}: weights do not fit {config.arch} (missing e.g. {missing})")
    try:
        model.load_state_dict(renamed, strict=True)
    except RuntimeError as error:
        raise BundleError(f"{source}: weights do not fit {config.arch} ({error})") from error
    return save_bundle(model, config, card, folder)
