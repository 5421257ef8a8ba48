"""``nemo_run.core.packaging.base``: :mod:`nemorun_core.packaging.base`."""

from nemorun_core.packaging.base import Package, Packager, PackagingError

__all__ = ["Package", "Packager", "PackagingError"]
