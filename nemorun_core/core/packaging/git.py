"""``nemo_run.core.packaging.git``: :mod:`nemorun_core.packaging.git`."""

from nemorun_core.packaging.git import GitArchivePackager, GitPackage

__all__ = ["GitArchivePackager", "GitPackage"]
