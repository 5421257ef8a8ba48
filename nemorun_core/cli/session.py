"""One command-line invocation of an entrypoint: from argv to an exported, previewed or running task.

Kept apart from the decorators so that decorating a function (at import of the user's script) costs nothing: this
module imports Fiddle and the config layer, and is loaded only when ``main`` runs.
"""

from __future__ import annotations

import copy
import os
import pathlib
import re
import sys
from typing import Any, Optional, Sequence

from nemorun_core.cli import grammar
from nemorun_core.cli.argv import Args, UsageError, parse_argv
from nemorun_core.cli.factories import REGISTRY, FactoryRegistry, to_config
from nemorun_core.cli.grammar import BareString, LiteralValue, Override
from nemorun_core.cli.overrides import (
    MISSING,
    Applier,
    all_defaulted,
    dataclass_of,
    from_plain,
    loaded_target_problem,
    parameters,
)
from nemorun_core.config.buildable import Config, Partial, is_buildable, target_name, unwrap_target
from nemorun_core.errors import ConfigError, NemorunError, SerializationError, did_you_mean

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


class TaskFailed(Exception):
    """The task itself raised (exit status 1); ``cause`` is its exception."""

    def __init__(self, cause: BaseException):
        self.cause = cause
        super().__init__(str(cause))


def _executor_slot(executor=None):  # type: ignore[no-untyped-def]
    """A one-parameter holder so that ``executor.*`` overrides go through the same machinery as the task's."""
    return executor


def _slot() -> Partial:
    if "executor" not in _executor_slot.__annotations__:
        from nemorun_core.executors.base import Executor

        _executor_slot.__annotations__["executor"] = Optional[Executor]
    return Partial(_executor_slot)


def default_config(fn: Any, registry: FactoryRegistry | None = None) -> Partial:
    """``run.Partial(fn)`` with what the command line cannot leave open filled in.

    A parameter with no default gets the registered ``is_target_default`` factory for it, or ``run.Config(cls)`` when
    annotated with a dataclass whose fields all have defaults. Parameters with defaults stay unset: the function's
    own default applies, and exported configs show only what differs.
    """
    target = unwrap_target(fn)
    cfg = Partial(target)
    for name, (annotation, default) in parameters(target).items():
        if default is not MISSING:
            continue
        f = (registry or REGISTRY).default_for(target, name, annotation)
        if f is not None:
            setattr(cfg, name, to_config(f.fn()))
            continue
        cls = dataclass_of(annotation)
        if cls is not None and all_defaulted(cls):
            setattr(cfg, name, Config(cls))
    return cfg


def _raise_if_missing(missing: list[tuple[str, str]]) -> None:
    if missing:
        listed = ", ".join(f"{p} ({t})" for p, t in missing)
        example = " ".join(f"{p}=VALUE" for p, _ in missing[:3])
        raise UsageError(f"missing required argument{'s' if len(missing) > 1 else ''}: {listed}",
                         f"set {'them' if len(missing) > 1 else 'it'} on the command line: {example}")


def missing_required(cfg: Any, prefix: str = "", *, root: bool = True) -> list[tuple[str, str]]:
    """``(path, type)`` of every required argument left unset: on the root Partial and on every nested Config."""
    from nemorun_core.config import typecheck

    out: list[tuple[str, str]] = []
    if not is_buildable(cfg) or (isinstance(cfg, Partial) and not root):
        return out
    for name, (annotation, default) in parameters(cfg.__fn_or_cls__).items():
        value = cfg.__arguments__.get(name, default)
        path = f"{prefix}{name}"
        if value is MISSING:
            out.append((path, typecheck.type_name(annotation) if annotation is not None else "any"))
        elif is_buildable(value):
            out.extend(missing_required(value, f"{path}.", root=False))
    return out


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


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed or detached stdin: certainly nobody to ask
        return False


class Session:
    """Parses argv and carries out what it asks. ``exit_code`` is set when a path ends without an exception."""

    def __init__(self, fn: Any, info: Any, *, prog: str | None = None, registry: FactoryRegistry | None = None,
                 default_executor: Any = None):
        self.fn = fn
        self.target = unwrap_target(fn)
        self.info = info
        self.registry = registry or REGISTRY
        self.default_executor = default_executor if default_executor is not None else info.default_executor
        self.task_name = getattr(self.target, "__name__", "task")
        script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
        self.script = os.path.abspath(script) if script and os.path.exists(script) else ""
        if prog is None:
            base = os.path.basename(script) if script else self.task_name
            prog = f"python {base}" if base.endswith(".py") else base
        self.prog = prog
        self.exit_code: int | None = None

    @property
    def launches(self) -> bool:
        return self.info.kind == "entrypoint"

    # -- the flow --------------------------------------------------------------------------------------------------
    def run(self, words: Sequence[str]) -> Any:
        args = parse_argv(words, launch_flags=self.launches)
        if args.completion is not None:
            from nemorun_core.cli.completion import script

            print(script(args.completion, self.completion_command(), self.prog.split()[-1]), end="")
            return None
        if args.complete is not None:
            from nemorun_core.cli.completion import candidates

            for c in candidates(self, *args.complete):
                print(c)
            return None
        if args.help:
            self._help(args)
            return None
        cfg, early = self._base(args)
        parsed = [grammar.parse(t) for t in [*early, *args.overrides]]  # all syntax errors before any change
        takes_executor = "executor" in parameters(self.target)
        routed = self.launches and not takes_executor  # ``executor...`` then configures where the task runs
        exec_ovs = [o for o in parsed if routed and o.path[0] == "executor"]
        applier = Applier(self.registry)
        cfg = applier.apply_all(cfg, [o for o in parsed if not (routed and o.path[0] == "executor")])
        executor = self._executor(args, exec_ovs, applier) if self.launches else None
        self._check(cfg)
        if args.export is not None:
            self._export(cfg, *args.export)
            return cfg
        if args.dryrun:
            self._dryrun(cfg, executor, args)
            return cfg
        if executor is None:
            return self._call(cfg)
        return self._launch(cfg, executor, args)

    def completion_command(self) -> list[str]:
        return [sys.executable, self.script] if self.script else [self.prog]

    # -- building the config ---------------------------------------------------------------------------------------
    def _base(self, args: Args) -> tuple[Partial, list[str]]:
        cfg = default_config(self.target, self.registry)
        # ``--factory model=my_model`` is an override, applied before the positional ones.
        specs = [*args.factory, *(["@" + args.yaml] if args.yaml else [])]
        bases = [s for s in specs if s.startswith("@") or "=" not in s]
        early = [s for s in specs if s not in bases]
        if len(bases) > 1:
            raise UsageError(f"two base configs given: {bases[0]!r} and {bases[1]!r}",
                             "give one --factory NAME|@FILE (or --yaml FILE); set other values as overrides")
        if bases:
            cfg = self._load_base(bases[0], cfg)
        return cfg, early

    def _load_base(self, spec: str, defaults: Partial) -> Partial:
        if spec.startswith("@"):
            from nemorun_core.config import serialize

            try:
                value = serialize.load_file(spec[1:])
            except SerializationError as exc:
                raise UsageError(f"cannot load the base config {spec!r}: {exc}",
                                 "give an existing .yaml, .yml, .toml or .json file") from None
            if isinstance(value, dict):
                return from_plain(defaults, value)
            task = self._as_task(value, spec)
            problem = loaded_target_problem(task, None)
            if problem is not None:
                raise UsageError(f"cannot use the base config {spec!r}: {problem[0]}: {problem[1]}",
                                 f"make the _target_ at {problem[0]} a class that builds what {problem[0]} takes "
                                 "(or a function annotated to return it)")
            return task
        value = grammar.parse_value(spec, f"--factory {spec}", "--factory")
        name = value.name if isinstance(value, grammar.FactoryCall) else spec
        kwargs = value.kwargs if isinstance(value, grammar.FactoryCall) else {}
        found = [f for f in self.registry.for_task(self.target) if f.name == name]
        if not found:
            names = sorted(f.name for f in self.registry.for_task(self.target))
            hint = did_you_mean(name, names).lstrip("; ") or (
                f"factories for {self.task_name}: {', '.join(names)}" if names else
                f"register one with @run.cli.factory(target={self.task_name}), or give a file: --factory @config.yaml")
            raise UsageError(f"unknown factory {name!r} for {self.task_name}", hint)
        try:
            value = to_config(found[-1].fn(**kwargs))
        except TypeError as exc:
            raise UsageError(f"factory {name} cannot be called with {kwargs}: {exc}", "check its parameters") from None
        return self._as_task(value, f"factory {name}")

    def _as_task(self, value: Any, source: str) -> Partial:
        if not is_buildable(value):
            raise UsageError(f"{source} holds {type(value).__name__}, not a config of {self.task_name}",
                             f"it must configure {self.task_name} (a run.Partial or a _target_ mapping)")
        got = unwrap_target(value.__fn_or_cls__)
        same = got is self.target or (
            getattr(got, "__qualname__", None) == getattr(self.target, "__qualname__", 0)
        )
        if not same:
            raise UsageError(f"{source} configures {target_name(got)}, not {self.task_name}",
                             f"use a config whose _target_ is {self.task_name}")
        if not isinstance(value, Partial):
            value = Partial(self.target, **{k: v for k, v in value.__arguments__.items() if isinstance(k, str)})
        return value

    def _executor(self, args: Args, overrides: list[Override], applier: Applier) -> Any:
        slot = _slot()
        spec = self.default_executor
        if args.executor is not None:
            spec = self._named_executor(args.executor, "--executor")
        if spec is not None:
            slot.executor = copy.deepcopy(spec) if is_buildable(spec) else to_config(spec)
        factories = {f.name for f in self.registry.for_parameter(_executor_slot, "executor",
                                                                 _executor_slot.__annotations__["executor"])}
        for ov in overrides:
            value = ov.value
            whole = ov.path == ("executor",) and ov.op == "="
            if whole and isinstance(value, LiteralValue) and value.value is None:
                slot.executor = None
            elif whole and isinstance(value, BareString) and value.text not in factories and (
                    value.is_identifier or _BACKEND_WORD.fullmatch(value.text)):
                slot.executor = self._named_executor(value.text, ov.text)  # ``executor=local``, an alias
            else:
                applier.apply(slot, ov)  # ``executor=@file.yaml``, ``executor=my_factory()``, ``executor.x=...``
        value = slot.__arguments__.get("executor")
        if value is None:
            return None
        from nemorun_core.config.building import build

        if is_buildable(value):
            _raise_if_missing(missing_required(value, "executor."))
            check_executor_tree(value)
            return build(value, path="executor")
        return value

    def _named_executor(self, name: str, where: str) -> Any:
        from nemorun_core.executors import registry

        if name.lower() in _IN_PROCESS:
            return None
        try:
            return Config(registry.get(name).load())
        except registry.RegistryError as exc:
            more = "; or executor=@executor.yaml, or none" if exc.reason.startswith("unknown executor") else ""
            raise UsageError(f"{exc.reason} in {where}", exc.hint + more) from None

    def _check(self, cfg: Partial) -> None:
        _raise_if_missing(missing_required(cfg))
        try:
            from nemorun_core.config.validation import validate
        except ModuleNotFoundError as exc:  # the validation layer is optional to the CLI
            if exc.name != "nemorun_core.config.validation":
                raise
            return
        validate(cfg)

    # -- what to do with it ----------------------------------------------------------------------------------------
    def _export(self, cfg: Partial, fmt: str, dest: str) -> None:
        from nemorun_core.config import serialize

        text = {"yaml": serialize.to_yaml, "toml": serialize.to_toml, "json": serialize.to_json}[fmt](cfg)
        if dest == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            pathlib.Path(dest).write_text(text)
        except OSError as exc:
            raise UsageError(f"cannot write {dest!r}: {exc.strerror}", "choose a writable path, or - for stdout")
        print(f"wrote the {fmt.upper()} config of {self.task_name} to {dest}", file=sys.stderr)

    def _dryrun(self, cfg: Partial, executor: Any, args: Args) -> None:
        from nemorun_core.config import serialize

        print(f"# dry run of {self.task_name}: nothing is run or submitted")
        try:
            print(serialize.to_yaml(cfg), end="")
        except SerializationError:
            print(cfg)  # values without an importable name still deserve a preview
        if executor is None:
            print(f"# would call {self.task_name} in this process")
            return
        from nemorun_core.experiment.launch import run

        run(cfg, executor=executor, name=args.name or self.task_name, dryrun=True)  # prints the request itself

    def _call(self, cfg: Partial) -> Any:
        from nemorun_core.config.building import build

        bound = build(cfg)  # a failing nested constructor is a config error (BuildError), not the task's
        try:
            return bound()
        except Exception as exc:
            raise TaskFailed(exc) from exc

    def _launch(self, cfg: Partial, executor: Any, args: Args) -> Any:
        name = args.name or self.task_name
        if self.info.require_confirmation and not args.yes and _stdin_is_tty():
            sys.stderr.write(f"About to launch {name} on {type(executor).__name__}.\nLaunch? [y/N] ")
            sys.stderr.flush()
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                print("aborted: nothing was launched", file=sys.stderr)
                self.exit_code = 1
                return None
        from nemorun_core.experiment.launch import run

        try:
            return run(cfg, executor=executor, name=name, detach=args.detach)
        except NemorunError:
            raise
        except Exception as exc:
            raise TaskFailed(exc) from exc

    def _help(self, args: Args) -> None:
        from nemorun_core.cli.argv import LAUNCH_FLAGS
        from nemorun_core.cli.help import OPTIONS, print_help

        try:
            cfg, _ = self._base(args)
        except (UsageError, ConfigError):
            cfg = default_config(self.target, self.registry)
        factories = sorted({
            f"{name}={f.name}" for name, (annotation, _) in parameters(self.target).items()
            for f in self.registry.for_parameter(self.target, name, annotation)
            if dataclass_of(annotation) is not None or f.target is not None
        })
        options = [o for o in OPTIONS if self.launches or not set(o[0]) & LAUNCH_FLAGS]
        print_help(self.prog, self.target, cfg, tty=sys.stdout.isatty(), factories=factories,
                   task_factories=sorted(f.name for f in self.registry.for_task(self.target)),
                   help_text=self.info.help, options=options)
