"""The packager contract: turn the user's code into one deterministic ``.tar.gz`` and its content hash.

Executors upload the archive once per content hash (``<tunnel.job_dir>/code/<digest>.tar.gz``, extracted into
``code/<digest>/``), so a second submission of unchanged code uploads nothing; the naming and "install once" rules
are ``nemorun_core/executors/install.py``, shared by every executor.
"""

from __future__ import annotations

import abc
import dataclasses

from nemorun_core.errors import NemorunError


class PackagingError(NemorunError):
    """The code could not be packaged (dirty work tree, missing path, bad pattern...); the message says the fix."""


@dataclasses.dataclass(frozen=True)
class Package:
    """A built archive.

    Attributes:
        path: local path of the ``.tar.gz``.
        digest: sha256 hex digest of the archive's bytes (deterministic: same files -> same bytes -> same digest).
        files: number of regular files in it.
        size: archive size in bytes.
    """

    path: str
    digest: str
    files: int
    size: int


class Packager(abc.ABC):
    """Base class of packagers (dataclasses whose fields are the user's settings)."""

    @abc.abstractmethod
    def package(self, base_dir: str, output_dir: str) -> Package:
        """Build the archive of the code under ``base_dir`` (a directory in the user's project) into ``output_dir``.

        Deterministic: file order, timestamps, owners and modes are normalized. Raises PackagingError with a fix.
        """
