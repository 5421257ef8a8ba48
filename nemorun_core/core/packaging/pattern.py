"""``nemo_run.core.packaging.pattern``: :mod:`nemorun_core.packaging.pattern`."""

from nemorun_core.packaging.pattern import PatternPackage, PatternPackager

__all__ = ["PatternPackage", "PatternPackager"]
