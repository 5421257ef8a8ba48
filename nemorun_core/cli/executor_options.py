"""Where a command line runs its task: ``--executor``, ``executor=...`` and the checks on an executor config.

The executor settings of one invocation (see :func:`resolve_executor`) and what must hold before an executor config
is built: every required field set, and every node one of nemorun's component kinds (:func:`check_executor_tree`),
since a config read from a file names its classes itself.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Optional, Sequence

from nemorun_core.cli.argv import UsageError
from nemorun_core.cli.factories import FactoryRegistry, to_config
from nemorun_core.cli.grammar import BareString, FileRef, LiteralValue, Override
from nemorun_core.cli.overrides import MISSING, Applier, from_plain, parameters
from nemorun_core.config.buildable import Config, Partial, is_buildable, target_name
from nemorun_core.errors import ConfigError, SerializationError

# ``--executor NAME`` / ``executor=NAME`` name a backend of the registry (nemorun_core.executors.registry: the
# built-ins and the ``nemorun.executors`` entry points), whose class is imported only when named; these run the
# task in this process instead.
_IN_PROCESS = frozenset({"none", "null", "inline"})
# What a backend name or alias may look like (``echo-subprocess``): such a bare word names a backend.
_BACKEND_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# What each executor field that holds a component must configure (their annotations say only ``Any``).
_ROLES = {"tunnel": "tunnel", "packager": "packager", "launcher": "launcher"}
_EXAMPLES = {"executor": "nemorun_core.executors.slurm:SlurmExecutor", "tunnel": "nemorun_core.tunnel.ssh:SSHTunnel",
             "packager": "nemorun_core.packaging.git:GitArchivePackager",
             "launcher": "nemorun_core.launchers.torchrun:Torchrun"}


def raise_if_missing(missing: list[tuple[str, str]]) -> None:
    if missing:
        listed = ", ".join(f"{p} ({t})" for p, t in missing)
        example = " ".join(f"{p}=VALUE" for p, _ in missing[:3])
        raise UsageError(f"missing required argument{'s' if len(missing) > 1 else ''}: {listed}",
                         f"set {'them' if len(missing) > 1 else 'it'} on the command line: {example}")


def missing_required(cfg: Any, prefix: str = "", *, root: bool = True,
                     skip: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """``(path, type)`` of every required argument left unset: on the root Partial and on every nested Config."""
    from nemorun_core.config import typecheck

    out: list[tuple[str, str]] = []
    if not is_buildable(cfg) or (isinstance(cfg, Partial) and not root):
        return out
    for name, (annotation, default) in parameters(cfg.__fn_or_cls__).items():
        value = cfg.__arguments__.get(name, default)
        path = f"{prefix}{name}"
        if name in skip:
            continue
        if value is MISSING:
            out.append((path, typecheck.type_name(annotation) if annotation is not None else "any"))
        elif is_buildable(value):
            out.extend(missing_required(value, f"{path}.", root=False))
    return out


def _executor_slot(executor=None):  # type: ignore[no-untyped-def]
    """A one-parameter holder so that ``executor.*`` overrides go through the same machinery as the task's."""
    return executor


def _slot() -> Partial:
    if "executor" not in _executor_slot.__annotations__:
        from nemorun_core.executors.base import Executor

        _executor_slot.__annotations__["executor"] = Optional[Executor]
    return Partial(_executor_slot)


def check_executor_tree(value: Any, root: str = "executor") -> None:
    """Refuse an executor config that names anything but nemorun's components, before anything is built.

    The executor is built even for ``--dryrun`` (its ``dryrun`` renders the request), and its config may come from
    files (``executor=@x.yaml``, ``executor.tunnel=@t.yaml``, ``--factory executor=@x.yaml``), which are read
    into unbuilt configs; building calls every node's target. So every node must be a class of the kind its place
    calls for -- the root an Executor, ``tunnel`` a Tunnel, ``packager`` a Packager, ``launcher`` a launcher (a
    class with ``wrap``) -- and any other node one of those or a settings dataclass of nemorun or of the executor's
    own package (``SlurmResources``). The executor's packages are the root class's and, when the root is (a
    subclass of) a registered backend's class -- built in, or from another distribution's ``nemorun.executors``
    entry point -- that class's: a third-party backend's settings dataclasses build like nemorun's own. A
    function, or any other class, is refused with its path.

    Raises:
        UsageError: a node names something else; the message says what and where.
    """
    from nemorun_core.config.tree import buildables

    if not is_buildable(value):
        return
    homes = _executor_packages(value.__fn_or_cls__)
    for path, node in buildables(value):
        where = f"{root}.{path}" if path else root
        role = "executor" if not path else _ROLES.get(path.rsplit(".", 1)[-1])
        target = node.__fn_or_cls__
        if not _fits_role(target, role, homes):
            wanted = f"a {role} class" if role else "an executor, tunnel, packager or launcher class or settings " \
                                                    "dataclass"
            raise UsageError(f"{where} configures {_qualified(target)}, which is not {wanted}; nemorun builds an "
                             "executor only from its own kinds of component",
                             f"give {where} a config whose _target_ is {wanted}, e.g. "
                             f"{_EXAMPLES.get(role or '', _EXAMPLES['executor'])}")


def _executor_packages(cls: Any) -> frozenset[str]:
    """The top-level packages whose settings dataclasses an executor config rooted at ``cls`` may hold."""
    import inspect

    from nemorun_core.executors import registry
    from nemorun_core.executors.base import Executor

    homes = {(getattr(cls, "__module__", "") or "").split(".")[0]}
    if inspect.isclass(cls) and issubclass(cls, Executor):
        try:
            entry = registry.for_class(cls)
        except registry.RegistryError:
            entry = None  # a broken third-party entry point: the root's own package still counts
        if entry is not None:
            homes.add(entry.module.split(".")[0])
    return frozenset(homes)


def _fits_role(target: Any, role: str | None, homes: frozenset[str]) -> bool:
    import dataclasses
    import inspect

    from nemorun_core.executors.base import Executor
    from nemorun_core.packaging.base import Packager
    from nemorun_core.tunnel.base import Tunnel

    if not inspect.isclass(target):
        return False
    ours = (getattr(target, "__module__", "") or "").split(".")[0] in {"nemorun_core", *homes}
    # Launchers share no base class, only ``wrap`` (see launchers.resolve_launcher): so they must be ours too.
    kinds = {"executor": issubclass(target, Executor), "tunnel": issubclass(target, Tunnel),
             "packager": issubclass(target, Packager), "launcher": ours and callable(getattr(target, "wrap", None))}
    if role is not None:
        return kinds[role]
    return any(kinds.values()) or ours and dataclasses.is_dataclass(target)


def _qualified(target: Any) -> str:
    return f"{getattr(target, '__module__', '?')}:{target_name(target)}"


def resolve_executor(default: Any, named: str | None, overrides: Sequence[Override], applier: Applier,
                     registry: FactoryRegistry) -> Any:
    """The executor a command line asks for, built; None to run in this process.

    Starts from ``default`` (the entrypoint's ``default_executor``) or the backend ``named`` by ``--executor``, then
    applies the ``executor...`` overrides in order: ``executor=NAME`` (a backend or an alias), ``executor=none``,
    ``executor=@file`` (a config, or plain settings for the executor already chosen), ``executor=factory(...)``,
    ``executor.field=value``. The result is checked (:func:`check_executor_tree`) before it is built.

    Raises:
        UsageError: an unknown backend, plain settings with no executor chosen, a missing required field, or a
            config naming something that is not an executor component.
    """
    slot = _slot()
    spec = default
    if named is not None:
        spec = named_executor(named, "--executor")
    if spec is not None:
        slot.executor = copy.deepcopy(spec) if is_buildable(spec) else to_config(spec)
    factories = {f.name for f in registry.for_parameter(_executor_slot, "executor",
                                                             _executor_slot.__annotations__["executor"])}
    for ov in overrides:
        value = ov.value
        whole = ov.path == ("executor",) and ov.op == "="
        if whole and isinstance(value, LiteralValue) and value.value is None:
            slot.executor = None
        elif whole and isinstance(value, BareString) and value.text not in factories and (
                value.is_identifier or _BACKEND_WORD.fullmatch(value.text)):
            slot.executor = named_executor(value.text, ov.text)  # ``executor=local``, an alias
        elif whole and isinstance(value, FileRef) and plain_mapping(value.path) is not None:
            slot.executor = executor_from_mapping(slot.__arguments__.get("executor"), value.path, ov.text)
        else:
            applier.apply(slot, ov)  # ``executor=@file.yaml``, ``executor=my_factory()``, ``executor.x=...``
    value = slot.__arguments__.get("executor")
    if value is None:
        return None
    from nemorun_core.config.building import build

    if is_buildable(value):
        raise_if_missing(missing_required(value, "executor."))
        check_executor_tree(value)
        return build(value, path="executor")
    return value


def plain_mapping(path: str) -> dict[str, Any] | None:
    """The file's content when it is a plain mapping (no ``_target_``); None otherwise (or unreadable)."""
    from nemorun_core.config import serialize

    try:
        value = serialize.load_file(path)
    except SerializationError:
        return None  # the override machinery reports it, with the path
    return value if isinstance(value, dict) else None


def executor_from_mapping(current: Any, path: str, where: str) -> Any:
    """``executor=@slurm.yaml`` holding plain settings: applied to the executor already chosen.

    ``--executor slurm`` (or the entrypoint's default executor) says which executor the settings are for; with
    neither, the file must name it with ``_target_``.
    """
    data = plain_mapping(path) or {}
    if not is_buildable(current):
        raise UsageError(f"{where}: {path} holds plain settings but nothing says which executor they are for",
                         f"add --executor NAME before it (e.g. --executor slurm), or put _target_: "
                         f"{_EXAMPLES['executor']} in {path}")
    try:
        return from_plain(copy.deepcopy(current), data, prefix="executor")
    except ConfigError as exc:
        raise UsageError(f"{where}: {exc}", f"fix the keys in {path}") from None


def named_executor(name: str, where: str) -> Any:
    from nemorun_core.executors import registry

    if name.lower() in _IN_PROCESS:
        return None
    try:
        return Config(registry.get(name).load())
    except registry.RegistryError as exc:
        more = "; or executor=@executor.yaml, or none" if exc.reason.startswith("unknown executor") else ""
        raise UsageError(f"{exc.reason} in {where}", exc.hint + more) from None
