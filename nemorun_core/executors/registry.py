"""The backend registry: every executor backend nemorun knows, built in or brought by another package.

One table, :data:`BUILTINS`, lists the backends that ship with nemorun: for each its name, its class as
``"module:Class"``, aliases, the pip extra that installs its SDK, the pytest marker and the test services it needs,
and the credential kinds it takes. Everything that used to keep its own list of backends reads this table: the
CLI's ``--executor NAME`` / ``executor=NAME`` and its shell completion, the check of executor configs loaded from
files, and the tests that keep the public exports, the extras, the markers and the test services in agreement.

Other packages add backends through the ``nemorun.executors`` entry-point group::

    [project.entry-points."nemorun.executors"]
    echo = "nemorun_echo_backend.registration:backend"    # a function returning a BackendEntry
    # or: echo = "nemorun_echo_backend.executor:EchoExecutor"  # the Executor class itself

Such a backend is listed with the built-ins and is a first-class backend: ``--executor echo`` works, and the core
and both orchestrators drive it through the job contract (:mod:`nemorun_core.executors.base`) like any other.
The function form lets a package describe its backend (aliases, extra, credential kinds) from a light module,
so that listing backends does not import its SDK; the class form imports the class to list it.

Nothing here runs at ``import nemorun_core``: the table holds strings, entry points are read on the first
question asked of a :class:`Registry`, and a backend's class is imported only by :meth:`BackendEntry.load`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
import sys
from typing import TYPE_CHECKING, Any, Sequence

from nemorun_core.credentials import CredentialKind
from nemorun_core.errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from nemorun_core.executors.base import Executor

#: The entry-point group other packages register executors in.
GROUP = "nemorun.executors"
#: The distribution that provides the built-in backends (named in clash errors).
BUILTIN_DISTRIBUTION = "nemorun"

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class RegistryError(ConfigError):
    """A backend could not be found or loaded. ``reason`` says what, ``hint`` what to do (both also in the message)."""

    def __init__(self, reason: str, hint: str = ""):
        self.reason = reason
        self.hint = hint
        super().__init__(f"{reason}; {hint}" if hint else reason)


@dataclasses.dataclass(frozen=True)
class BackendEntry:
    """One backend: what is needed to name it, install it, test it and load its executor class.

    Attributes:
        name: the backend's name, as in ``--executor NAME`` and in every handle its executor returns (the class's
            ``backend``): lower case letters, digits, ``-`` and ``_``.
        target: the executor class, ``"module:Class"``; imported only by :meth:`load`.
        aliases: other names that select this backend.
        extra: the pip extra of the providing distribution that installs what the backend needs (``"docker"`` for
            ``pip install 'nemorun[docker]'``), or None when it needs nothing more.
        requires: top-level modules the extra provides and without which the class cannot work (``("docker",)``).
        marker: the pytest marker of the tests that need this backend's service, or None.
        services: the test services (``scripts/services/NAME.sh``) those tests need, in start order.
        credential_kinds: the kinds of the executor's credential slots, declared here so that listing backends
            imports nothing; :meth:`load` checks them against the class's ``credential_slots``.
        description: one line for listings and help.
        distribution: the distribution that provides the backend (``"nemorun"`` for the built-ins).
    """

    name: str
    target: str
    aliases: tuple[str, ...] = ()
    extra: str | None = None
    requires: tuple[str, ...] = ()
    marker: str | None = None
    services: tuple[str, ...] = ()
    credential_kinds: tuple[CredentialKind, ...] = ()
    description: str = ""
    distribution: str = BUILTIN_DISTRIBUTION

    def __post_init__(self) -> None:
        where = f"backend entry {self.name!r}"
        for name in (self.name, *self.aliases):
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ConfigError(f"{name!r} is not a backend name: use lower case letters, digits, '-' and '_', "
                                  "starting with a letter", path=f"{where}.name")
        if not isinstance(self.target, str) or not _TARGET.fullmatch(self.target):
            raise ConfigError(f"{self.target!r} is not 'module:Class' (e.g. 'my_pkg.executor:MyExecutor')",
                              path=f"{where}.target")
        for field in ("aliases", "requires", "services", "credential_kinds"):
            value = getattr(self, field)
            if isinstance(value, str) or not isinstance(value, (tuple, list)):
                raise ConfigError(f"must be a tuple of names, got {value!r}", path=f"{where}.{field}")
            object.__setattr__(self, field, tuple(value))
        try:
            object.__setattr__(self, "credential_kinds", tuple(CredentialKind(k) for k in self.credential_kinds))
        except ValueError:
            known = ", ".join(k.value for k in CredentialKind)
            raise ConfigError(f"{self.credential_kinds!r} holds an unknown credential kind; the kinds are: {known}",
                              path=f"{where}.credential_kinds") from None

    @property
    def names(self) -> tuple[str, ...]:
        """The name, then the aliases."""
        return (self.name, *self.aliases)

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def attribute(self) -> str:
        """The class's name in :attr:`module` (``"SlurmExecutor"``)."""
        return self.target.partition(":")[2]

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    def install_hint(self) -> str:
        """The pip command that installs what this backend needs (``pip install 'nemorun[docker]'``)."""
        return f"pip install '{self.distribution}[{self.extra}]'" if self.extra else f"pip install {self.distribution}"

    def missing(self) -> list[str]:
        """The modules of :attr:`requires` that cannot be imported here (found without importing them)."""
        import importlib.util

        out = []
        for name in self.requires:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                out.append(name)
        return out

    def load(self) -> "type[Executor]":
        """Import and return the executor class, checked against this entry.

        Blocking (an import). Idempotent: the same class every time.

        Raises:
            RegistryError: the module cannot be imported (for a missing extra: the ``pip install`` that fixes it),
                the name is not an Executor subclass, or the class disagrees with the entry (another ``backend``
                name, other credential kinds); each message names the providing distribution.
        """
        from nemorun_core.executors.base import Executor

        source = f"backend {self.name!r} ({self.target}, from distribution {self.distribution!r})"
        fix = self._fix()
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            missing = self.missing()
            if missing or (exc.name and not self.module.startswith(exc.name.split(".")[0])):
                raise RegistryError(f"{source} needs the module {(missing or [exc.name])[0]!r}, which is not "
                                    "installed", f"install it: {self.install_hint()}") from None
            raise RegistryError(f"{source} cannot be imported: {exc}", fix) from None
        except Exception as exc:
            raise RegistryError(f"{source} cannot be imported: {type(exc).__name__}: {exc}", fix) from None
        cls = getattr(module, self.attribute, None)
        if not (inspect.isclass(cls) and issubclass(cls, Executor)):
            got = "nothing" if cls is None else repr(cls)
            raise RegistryError(f"{source}: {self.target} is {got}, not an Executor subclass", fix)
        if cls.backend != self.name:
            raise RegistryError(f"{source}: {cls.__name__}.backend is {cls.backend!r}, not {self.name!r}; handles "
                                "would name another backend", fix)
        kinds = sorted({slot.kind.value for slot in cls.credential_slots})
        declared = sorted({kind.value for kind in self.credential_kinds})
        if kinds != declared:
            raise RegistryError(f"{source}: the entry declares the credential kinds {declared} but "
                                f"{cls.__name__}.credential_slots has {kinds}", fix)
        return cls

    def _fix(self) -> str:
        if self.builtin:
            return "reinstall nemorun (pip install --force-reinstall nemorun); this is a bug if it persists"
        return (f"fix or reinstall {self.distribution} (pip install --force-reinstall {self.distribution}), or "
                f"uninstall it (pip uninstall {self.distribution})")


#: The built-in backends. A new backend adds one line here (and its package under nemorun_core/executors/).
BUILTINS: tuple[BackendEntry, ...] = (
    BackendEntry("local", "nemorun_core.executors.local:LocalExecutor", marker="local",
                 description="processes on this machine"),
    BackendEntry("docker", "nemorun_core.executors.docker:DockerExecutor", extra="docker", requires=("docker",),
                 marker="docker", services=("docker",),
                 description="containers on a Docker engine"),
    BackendEntry("slurm", "nemorun_core.executors.slurm:SlurmExecutor", extra="ssh", marker="slurm",
                 services=("sshd", "slurm"), credential_kinds=(CredentialKind.SSH,),
                 description="sbatch jobs on a Slurm cluster, here or over SSH (the 'ssh' extra)"),
    BackendEntry("ray", "nemorun_core.executors.ray:RayExecutor", extra="ray", requires=("ray",), marker="ray",
                 services=("ray",), description="Ray jobs on a Ray cluster (local, or any dashboard address)"),
)


@dataclasses.dataclass(frozen=True)
class _Found:
    """One entry point of the group: its distribution, and the entry point (loaded only when resolved)."""

    distribution: str
    name: str
    value: str
    entry_point: Any

    @property
    def where(self) -> str:
        return f"the entry point {self.name} = {self.value!r} of distribution {self.distribution!r} (group {GROUP!r})"


class Registry:
    """The backends: :data:`BUILTINS` plus the ``nemorun.executors`` entry points of the installed distributions.

    Entry points are read on the first question and kept for the registry's life (installing a package
    mid-process is not seen; make a new Registry). Answers are strict: a name claimed twice and an entry point
    that cannot be loaded are errors naming the distributions and the fix, never a silent pick.

    Args:
        builtins: the built-in table (tests give their own).
        path: directories to read distributions from instead of ``sys.path`` (tests).
        group: the entry-point group.
    """

    def __init__(self, builtins: Sequence[BackendEntry] = BUILTINS, *, path: Sequence[str] | None = None,
                 group: str = GROUP):
        self._builtins = tuple(builtins)
        self._path = None if path is None else list(path)
        self._group = group
        self._found: list[_Found] | None = None
        self._resolved: dict[tuple[str, str], BackendEntry] = {}

    # -- questions ----------------------------------------------------------------------------------------------
    def entries(self) -> list[BackendEntry]:
        """Every backend: the built-ins in table order, then the other distributions' by name.

        Imports each entry point's target (a describing function, or the class itself), never a built-in class.

        Raises:
            RegistryError: two backends claim one name or alias, or an entry point cannot be loaded.
        """
        out = list(self._builtins)
        owners = self._owners(out)
        found_all = sorted(self._entry_points(), key=lambda f: (f.name, f.distribution))
        for found in found_all:  # a name claimed twice is an error before anything is imported
            if found.name in owners:
                raise _clash(found.name, owners[found.name], found)
        for first, second in zip(found_all, found_all[1:]):
            if first.name == second.name:
                raise _clash(first.name, first, second)
        for found in found_all:
            entry = self._resolve(found)
            for name in entry.names:
                if name in owners:
                    raise _clash(name, owners[name], entry)
                owners[name] = entry
            out.append(entry)
        return out

    def names(self) -> list[str]:
        """The backends' names (not aliases), as :meth:`entries` orders them."""
        return [e.name for e in self.entries()]

    def get(self, name: str) -> BackendEntry:
        """The backend called ``name`` or one of its aliases (case-insensitive).

        A built-in name is answered without importing any other package (only their entry points' names are read,
        to refuse a clash); another name resolves the entry points it needs.

        Raises:
            RegistryError: no such backend (the message lists the known ones and how to install those whose extra
                is missing), a clash, or a broken entry point.
        """
        key = name.strip().lower() if isinstance(name, str) else name
        owners = self._owners(self._builtins)
        if key in owners:
            for found in self._entry_points():
                if found.name == key:
                    raise _clash(key, owners[key], found)
            return owners[key]
        direct = [f for f in self._entry_points() if f.name == key]
        if len(direct) == 1:
            entry = self._resolve(direct[0])
            for alias in entry.aliases:
                if alias in owners:
                    raise _clash(alias, owners[alias], entry)
            return entry
        for entry in self.entries():  # aliases, and two distributions with one name: a clash error
            if key in entry.names:
                return entry
        raise self._unknown(name)

    def for_class(self, cls: type) -> BackendEntry | None:
        """The entry of executor class ``cls`` or of its nearest registered base class; None if none is registered.

        Looks at the built-ins first, so a broken third-party entry point never hides a built-in class.
        """
        mro = [k for k in getattr(cls, "__mro__", ()) if inspect.isclass(k)]
        for candidates in (lambda: self._builtins, self.entries):
            entries = candidates()
            for klass in mro:
                qualified = f"{klass.__module__}:{klass.__qualname__}"
                for entry in entries:
                    if entry.target == qualified:
                        return entry
                    # a class re-exported by its package (nemorun_core.executors.docker:DockerExecutor)
                    if entry.name == getattr(klass, "backend", None) and entry.module in sys.modules:
                        try:
                            if entry.load() is klass:
                                return entry
                        except RegistryError:
                            continue
        return None

    # -- internals ----------------------------------------------------------------------------------------------
    @staticmethod
    def _owners(entries: Sequence[BackendEntry]) -> dict[str, BackendEntry]:
        owners: dict[str, BackendEntry] = {}
        for entry in entries:
            for name in entry.names:
                if name in owners:
                    raise _clash(name, owners[name], entry)
                owners[name] = entry
        return owners

    def _entry_points(self) -> list[_Found]:
        if self._found is None:
            from importlib import metadata

            dists = metadata.distributions() if self._path is None else metadata.distributions(path=self._path)
            seen: dict[tuple[str, str], _Found] = {}
            for dist in dists:
                dist_name = dist.metadata["Name"] or "?"
                for ep in dist.entry_points:
                    if ep.group != self._group:
                        continue
                    # one distribution may be found twice on the path (an editable install and a copy)
                    seen.setdefault((_canonical(dist_name), ep.name), _Found(dist_name, ep.name, ep.value, ep))
            self._found = list(seen.values())
        return self._found

    def _resolve(self, found: _Found) -> BackendEntry:
        key = (found.distribution, found.name)
        if key not in self._resolved:
            self._resolved[key] = _describe(found)
        return self._resolved[key]

    def _unknown(self, name: str) -> RegistryError:
        entries = self.entries()
        shown = []
        for entry in entries:
            text = entry.name
            if entry.aliases:
                text += f" (alias {', '.join(entry.aliases)})"
            if not entry.builtin:
                text += f" [from {entry.distribution}]"
            if entry.missing():
                text += f" [not installed: {entry.install_hint()}]"
            shown.append(text)
        every = [n for e in entries for n in e.names]
        close = did_you_mean(str(name).lower(), every).lstrip("; ")
        hint = (close + "; " if close else "") + f"known executors: {', '.join(shown)}"
        return RegistryError(f"unknown executor {name!r}", hint + "; a package that provides another backend "
                             f"registers it in the entry-point group {GROUP!r}")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _clash(name: str, first: "BackendEntry | _Found", second: "BackendEntry | _Found") -> RegistryError:
    def shown(claim: "BackendEntry | _Found") -> str:
        target = claim.target if isinstance(claim, BackendEntry) else claim.value
        return f"distribution {claim.distribution!r} ({target})"

    return RegistryError(
        f"the executor name {name!r} is claimed twice: by {shown(first)} and by {shown(second)}",
        f"uninstall one of them, or rename the entry point (or alias) in {second.distribution}'s "
        f"[project.entry-points.\"{GROUP}\"]")


def _describe(found: _Found) -> BackendEntry:
    """The entry of one entry point: the class itself, or what the function it names returns."""
    from nemorun_core.executors.base import Executor

    fix = (f"fix {found.distribution}'s [project.entry-points.\"{GROUP}\"] entry (it must name an Executor "
           f"subclass or a function returning a nemorun_core.executors.registry.BackendEntry), reinstall it "
           f"(pip install --force-reinstall {found.distribution}), or uninstall it "
           f"(pip uninstall {found.distribution})")
    try:
        obj = found.entry_point.load()
    except Exception as exc:
        raise RegistryError(f"{found.where} cannot be loaded: {type(exc).__name__}: {exc}", fix) from None
    if inspect.isclass(obj) and issubclass(obj, Executor):
        try:
            entry = BackendEntry(found.name, f"{obj.__module__}:{obj.__qualname__}",
                                 credential_kinds=tuple(dict.fromkeys(s.kind for s in obj.credential_slots)),
                                 description=(inspect.getdoc(obj) or "").partition("\n")[0],
                                 distribution=found.distribution)
        except ConfigError as exc:
            raise RegistryError(f"{found.where} is not a valid backend: {exc}", fix) from None
        if obj.backend != found.name:
            raise RegistryError(f"{found.where}: {obj.__name__}.backend is {obj.backend!r}, not {found.name!r}", fix)
        return entry
    if inspect.isclass(obj) or not callable(obj):
        raise RegistryError(f"{found.where} names {obj!r}, which is neither an Executor subclass nor a function",
                            fix)
    try:
        entry = obj()
    except Exception as exc:
        raise RegistryError(f"{found.where}: calling it raised {type(exc).__name__}: {exc}", fix) from None
    if not isinstance(entry, BackendEntry):
        raise RegistryError(f"{found.where} returned {type(entry).__name__}, not a BackendEntry", fix)
    if entry.name != found.name:
        raise RegistryError(f"{found.where} describes a backend named {entry.name!r}; the entry point's name and "
                            "the backend's must be the same", fix)
    return dataclasses.replace(entry, distribution=found.distribution)


@functools.lru_cache(maxsize=1)
def default() -> Registry:
    """The registry of this process (built on first use, so importing this module reads no metadata)."""
    return Registry()


def entries() -> list[BackendEntry]:
    """Every backend known to this process: :meth:`Registry.entries` of :func:`default`."""
    return default().entries()


def names() -> list[str]:
    """The names of every backend known to this process (built-ins first)."""
    return default().names()


def get(name: str) -> BackendEntry:
    """The backend called ``name`` (or an alias): :meth:`Registry.get` of :func:`default`."""
    return default().get(name)


def for_class(cls: type) -> BackendEntry | None:
    """The entry of an executor class: :meth:`Registry.for_class` of :func:`default`."""
    return default().for_class(cls)


__all__ = ["BUILTINS", "GROUP", "BackendEntry", "Registry", "RegistryError", "default", "entries", "for_class",
           "get", "names"]
