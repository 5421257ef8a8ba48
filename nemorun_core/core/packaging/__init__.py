"""``nemo_run.core.packaging.*`` paths: re-exports of :mod:`nemorun_core.packaging`."""

from nemorun_core.packaging.base import Package, Packager
from nemorun_core.packaging.git import GitArchivePackager
from nemorun_core.packaging.hybrid import HybridPackager
from nemorun_core.packaging.pattern import PatternPackager

__all__ = ["GitArchivePackager", "HybridPackager", "Package", "Packager", "PatternPackager"]
