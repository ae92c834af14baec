"""Networks of both seeds behind one registry: ``build(arch, **kwargs)``."""

from pe_models.nets.registry import available, build, register

__all__ = ["available", "build", "register"]
