"""``nemo_run.core.packaging.hybrid``: :mod:`nemorun_core.packaging.hybrid`."""

from nemorun_core.packaging.hybrid import HybridPackager

__all__ = ["HybridPackager"]
