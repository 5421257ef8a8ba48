"""One command-line invocation of an entrypoint: from argv to an exported, previewed or running task.

Kept apart from the decorators so that decorating a function (at import of the user's script) costs nothing: this
module imports Fiddle and the config layer, and is loaded only when ``main`` runs.
"""

from __future__ import annotations

import copy
import os
import pathlib
import sys
from typing import Any, Sequence

from nemorun_core.cli import grammar
from nemorun_core.cli.argv import Args, UsageError, parse_argv
from nemorun_core.cli.executor_options import (  # noqa: F401 - check_executor_tree: its home before the split
    check_executor_tree,
    missing_required,
    raise_if_missing,
    resolve_executor,
)
from nemorun_core.cli.factories import REGISTRY, FactoryRegistry, to_config
from nemorun_core.cli.grammar import Override
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


class TaskFailed(Exception):
    """The task itself raised (exit status 1); ``cause`` is its exception."""

    def __init__(self, cause: BaseException):
        self.cause = cause
        super().__init__(str(cause))


def default_config(fn: Any, registry: FactoryRegistry | None = None, *, skip: frozenset[str] = frozenset()) -> Partial:
    """``run.Partial(fn)`` with what the command line cannot leave open filled in.

    A parameter with no default gets the registered ``is_target_default`` factory for it, or ``run.Config(cls)`` when
    annotated with a dataclass whose fields all have defaults. Parameters with defaults stay unset: the function's
    own default applies, and exported configs show only what differs -- except a default that is itself a config
    (``model: Model = my_model()``, or a list of them), which is set (a copy), since only what is set gets built.
    Parameters in ``skip`` (an experiment entrypoint's run context) stay unset.
    """
    target = unwrap_target(fn)
    cfg = Partial(target)
    for name, (annotation, default) in parameters(target).items():
        if name in skip:
            continue
        if default is not MISSING:
            if _holds_config(default):
                setattr(cfg, name, copy.deepcopy(default))
            continue
        f = (registry or REGISTRY).default_for(target, name, annotation)
        if f is not None:
            setattr(cfg, name, to_config(f.fn()))
            continue
        cls = dataclass_of(annotation)
        if cls is not None and all_defaulted(cls):
            setattr(cfg, name, Config(cls))
    return cfg


def _holds_config(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_holds_config(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_config(v) for v in value.values())
    return is_buildable(value)


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed or detached stdin: certainly nobody to ask
        return False


class Session:
    """Parses argv and carries out what it asks. ``exit_code`` is set when a path ends without an exception."""

    def __init__(self, fn: Any, info: Any, *, prog: str | None = None, registry: FactoryRegistry | None = None,
                 default_executor: Any = None, cmd_defaults: dict[str, Any] | None = None):
        from nemorun_core.cli.argv import defaults_from
        from nemorun_core.cli.context import context_parameter

        self.fn = fn
        self.target = unwrap_target(fn)
        self.info = info
        self.registry = registry or REGISTRY
        self.default_executor = default_executor if default_executor is not None else info.default_executor
        self.task_name = getattr(self.target, "__name__", "task")
        self.defaults = defaults_from(cmd_defaults)
        # An experiment entrypoint's ``ctx: run.cli.RunContext``: filled in by the CLI, never a config value.
        self.ctx_name = context_parameter(self.target) if getattr(info, "type", "task") == "experiment" else None
        self.skip = frozenset({self.ctx_name} if self.ctx_name else ())
        script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
        self.script = os.path.abspath(script) if script and os.path.exists(script) else ""
        if prog is None:
            base = os.path.basename(script) if script else self.task_name
            prog = f"python {base}" if base.endswith(".py") else base
        self.prog = prog
        self.exit_code: int | None = None

    @property
    def launches(self) -> bool:
        return self.info.kind == "entrypoint" and getattr(self.info, "enable_executor", True)

    # -- the flow --------------------------------------------------------------------------------------------------
    def run(self, words: Sequence[str]) -> Any:
        args = parse_argv(words, launch_flags=self.launches, defaults=self.defaults)
        if args.verbose:
            import logging

            logging.basicConfig()
            logging.getLogger("nemorun_core").setLevel(logging.DEBUG)
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
        from nemorun_core.cli import launch_settings

        parsed = [grammar.parse(t) for t in [*early, *args.overrides]]  # all syntax errors before any change
        routed = launch_settings.split(parsed, params=list(parameters(self.target)), launches=self.launches,
                                       ctx_name=self.ctx_name)
        applier = Applier(self.registry)
        cfg = applier.apply_all(cfg, routed.task)
        executor = self._executor(args, routed.executor, applier) if self.launches else None
        plugins: list[Any] = []
        if self.launches:
            slot = launch_settings.plugins_slot(getattr(self.info, "default_plugins", None))
            applier.apply_all(slot, routed.plugins)
            plugins = launch_settings.resolve_plugins(slot)
        self._check(cfg)
        if args.export is not None:
            self._export(cfg, *args.export)
            return cfg
        if self.ctx_name is not None:
            return self._experiment(cfg, executor, plugins, args, routed.context)
        if args.dryrun:
            self._dryrun(cfg, executor, args, plugins)
            return cfg
        if executor is None or args.direct:
            return self._call(cfg, plugins)
        return self._launch(cfg, executor, args, plugins)

    def completion_command(self) -> list[str]:
        return [sys.executable, self.script] if self.script else [self.prog]

    # -- building the config ---------------------------------------------------------------------------------------
    def _base(self, args: Args) -> tuple[Partial, list[str]]:
        cfg = default_config(self.target, self.registry, skip=self.skip)
        # ``--factory model=my_model`` is an override, applied before the positional ones.
        specs = [*args.factory, *(["@" + args.yaml] if args.yaml else [])]
        bases = [s for s in specs if s.startswith("@") or "=" not in s]
        early = [s for s in specs if s not in bases]
        if len(bases) > 1:
            raise UsageError(f"two base configs given: {bases[0]!r} and {bases[1]!r}",
                             "give one --factory NAME|@FILE (or --yaml FILE); set other values as overrides")
        if bases:
            cfg = self._load_base(bases[0], cfg)
        elif getattr(self.info, "default_factory", None) is not None:
            cfg = self._default_factory(self.info.default_factory, cfg)
        return cfg, early

    def _default_factory(self, spec: Any, defaults: Partial) -> Partial:
        """The decorator's or ``main``'s ``default_factory``: a registered task factory's name, or a function."""
        if isinstance(spec, str):
            return self._load_base(spec, defaults)
        if is_buildable(spec):
            return self._as_task(copy.deepcopy(spec), "default_factory")
        try:
            value = to_config(spec())
        except TypeError as exc:
            raise UsageError(f"default_factory {getattr(spec, '__name__', spec)!r} cannot be called without "
                             f"arguments: {exc}", "give a function of no arguments returning a run.Partial of "
                             f"{self.task_name}") from None
        return self._as_task(value, f"default_factory {getattr(spec, '__name__', '')}".strip())

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
        return resolve_executor(self.default_executor, args.executor, overrides, applier, self.registry)

    def _check(self, cfg: Partial) -> None:
        raise_if_missing(missing_required(cfg, skip=self.skip))
        try:
            from nemorun_core.config.validation import validate
        except ModuleNotFoundError as exc:  # the validation layer is optional to the CLI
            if exc.name != "nemorun_core.config.validation":
                raise
            return
        if self.ctx_name is not None:
            from nemorun_core.cli.context import RunContext

            # The run context is the CLI's to give, at the call: validate as if it were there.
            cfg = copy.copy(cfg)
            setattr(cfg, self.ctx_name, RunContext())
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

    def _dryrun(self, cfg: Partial, executor: Any, args: Args, plugins: list[Any]) -> None:
        from nemorun_core.config import serialize

        print(f"# dry run of {self.task_name}: nothing is run or submitted")
        try:
            print(serialize.to_yaml(cfg), end="")
        except SerializationError:
            print(cfg)  # values without an importable name still deserve a preview
        if executor is None or args.direct:
            print(f"# would call {self.task_name} in this process")
            return
        from nemorun_core.experiment.launch import run

        # prints the request itself
        run(cfg, executor=executor, name=args.name or self.task_name, dryrun=True, plugins=plugins)

    def _call(self, cfg: Partial, plugins: Sequence[Any] = ()) -> Any:
        from nemorun_core.config.building import build

        if plugins:
            from nemorun_core.experiment.plugin import apply_plugins

            apply_plugins(list(plugins), cfg, None, self.task_name)
        bound = build(cfg)  # a failing nested constructor is a config error (BuildError), not the task's
        try:
            return bound()
        except Exception as exc:
            raise TaskFailed(exc) from exc

    def _confirm(self, name: str, where: str, args: Args) -> bool:
        """Ask "Launch? [y/N]" when someone can answer; False (and exit status 1) when they decline."""
        if not self.info.require_confirmation or args.yes or not _stdin_is_tty():
            return True
        sys.stderr.write(f"About to launch {name} {where}.\nLaunch? [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer in ("y", "yes"):
            return True
        print("aborted: nothing was launched", file=sys.stderr)
        self.exit_code = 1
        return False

    def _launch(self, cfg: Partial, executor: Any, args: Args, plugins: list[Any]) -> Any:
        name = args.name or self.task_name
        if not self._confirm(name, f"on {type(executor).__name__}", args):
            return None
        from nemorun_core.experiment.launch import run

        extra = {} if args.tail_logs is None else {"tail_logs": args.tail_logs}
        try:
            return run(cfg, executor=executor, name=name, detach=args.detach, plugins=plugins, **extra)
        except NemorunError:
            raise
        except Exception as exc:
            raise TaskFailed(exc) from exc

    def _experiment(self, cfg: Partial, executor: Any, plugins: list[Any], args: Args, context: list[Override]) -> Any:
        """Call an experiment entrypoint with its run context; the function launches what it builds."""
        from nemorun_core.cli.context import RunContext
        from nemorun_core.cli.launch_settings import context_settings
        from nemorun_core.config.building import build

        assert self.ctx_name is not None
        settings = {"name": args.name or self.task_name, "executor": executor, "plugins": plugins,
                    "dryrun": args.dryrun, "detach": args.detach, "direct": args.direct,
                    "tail_logs": bool(args.tail_logs), "skip_confirmation": args.yes,
                    **context_settings(context, self.ctx_name)}
        ctx = RunContext(**settings)
        if ctx.dryrun:
            from nemorun_core.config import serialize

            print(f"# dry run of {self.task_name}: nothing is run or submitted")
            print(serialize.to_yaml(cfg), end="")
        elif not self._confirm(ctx.name, "(an experiment)", args):
            return None
        bound = build(cfg)
        try:
            return bound(**{self.ctx_name: ctx})
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
            cfg = default_config(self.target, self.registry, skip=self.skip)
        if self.ctx_name is not None:
            from nemorun_core.cli.context import RunContext

            setattr(cfg, self.ctx_name, RunContext())  # shown with its settable fields (ctx.executor=...)
        factories = sorted({
            f"{name}={f.name}" for name, (annotation, _) in parameters(self.target).items()
            for f in self.registry.for_parameter(self.target, name, annotation)
            if dataclass_of(annotation) is not None or f.target is not None
        })
        options = [o for o in OPTIONS if self.launches or not set(o[0]) & LAUNCH_FLAGS]
        print_help(self.prog, self.target, cfg, tty=sys.stdout.isatty(), factories=factories,
                   task_factories=sorted(f.name for f in self.registry.for_task(self.target)),
                   help_text=self.info.help, options=options)
