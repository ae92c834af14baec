"""One factory for every network: ``build(arch, **kwargs)``; the config travels with weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register(arch: str) -> Callable[[Builder], Builder]:
    """Register a builder under ``arch``; builders take keyword-only arguments."""

    def decorate(builder: Builder) -> Builder:
        if arch in _BUILDERS:
            raise ValueError(f"architecture {arch!r} is registered twice")
        _BUILDERS[arch] = builder
        return builder

    return decorate


def available() -> list[str]:
    """Registered architecture names, sorted."""
    _load_builders()
    return sorted(_BUILDERS)


def build(arch: str, **kwargs: object) -> nn.Module:
    """Build the network registered as ``arch`` with its keyword arguments.

    Raises
    ------
    KeyError
        Unknown ``arch``; the message lists the valid names.
    """
    _load_builders()
    if arch not in _BUILDERS:
        raise KeyError(f"unknown architecture {arch!r}; valid: {', '.join(available())}")
    return _BUILDERS[arch](**kwargs)


def _load_builders() -> None:
    """Import the modules whose decorators fill the registry."""
    from pe_models.nets import (  # noqa: F401 - imported for their registrations
        cbam_drn,
        classifier,
        detector,
        integrated,
        unet,
    )
