"""The packager contract: turn the user's code into one deterministic ``.tar.gz`` and its content hash.

Executors upload the archive once per content hash (``<tunnel.job_dir>/code/<digest>.tar.gz``, extracted into
``code/<digest>/``), so a second submission of unchanged code uploads nothing; the naming and "install once" rules
are ``nemorun_core/executors/install.py``, shared by every executor.

The base class itself is the pass-through packager, as in NeMo Run (``packager=run.Packager()``): it packages
nothing, and the job runs on the code already where it runs (the working directory of a local job, a mounted
volume of a container, the shared filesystem of a cluster), exactly as with ``packager=None``.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, ClassVar, Mapping

from nemorun_core.errors import ConfigError, NemorunError
from nemorun_core.packaging._args import PackagerMeta


class PackagingError(NemorunError):
    """The code could not be packaged (dirty work tree, missing path, bad pattern...); the message says the fix."""


class PackagerSettingError(PackagingError, ConfigError):
    """A packager setting is wrong (a type, two spellings of one setting, two settings that exclude each other),
    found when the packager is made; ``path`` names the field (``"PatternPackager.include"``)."""


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


@dataclasses.dataclass
class Packager(metaclass=PackagerMeta):
    """Base class of packagers (dataclasses whose fields are the user's settings), and the pass-through packager.

    ``run.Packager()`` packages no code: executors treat it as ``packager=None``, so the job runs in the working
    directory the executor gives it, on the code that is already there. Subclasses override :meth:`package`.

    Subclasses may accept NeMo Run's argument names beside their own: ``nemo_run_names`` maps such a name to the
    field it sets (see ``packaging/_args.py``), so an instance has one canonical set of fields, which is what
    serializes.
    """

    #: NeMo Run's argument name -> the field it sets (none for the base class).
    nemo_run_names: ClassVar[Mapping[str, str]] = types.MappingProxyType({})

    def package(self, base_dir: str, output_dir: str) -> Package | None:
        """Build the archive of the code under ``base_dir`` (a directory in the user's project) into ``output_dir``.

        Deterministic: file order, timestamps, owners and modes are normalized. Raises PackagingError with a fix.
        The pass-through base class builds nothing and returns None.
        """
        return None

    @classmethod
    def nemo_run_value(cls, name: str, value: Any) -> tuple[str, Any]:
        """The (field, value) that NeMo Run's argument ``name`` given ``value`` sets; by default the mapped field
        and the value unchanged. Subclasses convert values whose spelling differs (``basepath=""``: the default)."""
        return cls.nemo_run_names[name], value

    @classmethod
    def apply_nemo_run_setting(cls, name: str, value: Any, kwargs: dict[str, Any]) -> None:
        """Apply NeMo Run's argument ``name`` to the canonical ``kwargs``, for one that :meth:`nemo_run_value`
        maps to no field (it changes other settings instead). A class whose ``nemo_run_value`` returns no field
        for a name must override this; the base class maps every name to a field, so reaching here is a bug of
        that subclass, reported as such."""
        raise TypeError(f"{cls.__name__}.nemo_run_value maps NeMo Run's argument {name!r} to no field, and "
                        f"{cls.__name__} does not override apply_nemo_run_setting to apply it")


def packages_code(packager: Any) -> bool:
    """Whether ``packager`` ships code: False for None and for the pass-through ``run.Packager()`` (or a subclass
    that does not override :meth:`Packager.package`), True for every other packager."""
    if packager is None:
        return False
    return getattr(type(packager), "package", None) is not Packager.package


def check_packager(value: Any, path: str, *, allow_none: bool = True) -> None:
    """Refuse a setting that must be a packager and is not, naming ``path`` and the packagers to choose from.

    Raises:
        ConfigError: ``must be a packager (run.GitArchivePackager(), ...), got 'git'``.
    """
    if value is None and allow_none:
        return
    if not isinstance(value, Packager):
        hint = "; write run.GitArchivePackager()" if isinstance(value, str) and value.lower().startswith("git") \
            else ""
        raise ConfigError(f"must be a packager (run.Packager() for none, run.GitArchivePackager(), "
                          f"run.PatternPackager(...), run.HybridPackager(...)), got {value!r}{hint}", path=path)
