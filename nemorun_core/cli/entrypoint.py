"""``@run.cli.entrypoint``, ``@run.cli_command`` and ``run.cli.main``: a function becomes a command line.

    @run.cli.entrypoint
    def train_model(model: ModelConfig, training: TrainingConfig, data_path: str, seed: int = 42): ...

    if __name__ == "__main__":
        run.cli.main(train_model)      # or train_model.main()

    $ python train.py model.hidden_size=1024 data_path=/data --executor local -y

``main`` turns the function into a ``run.Partial`` (see :func:`default_config`), lays the ``--factory``/``--yaml``
base over it, applies the overrides left to right, checks that nothing required is missing, then exports
(``--to-yaml``), previews (``--dryrun``), or runs: in this process by default (build and call, the usual research
loop), or through ``run.run`` when an executor is in play (``--executor local``, ``executor=...`` or the
decorator's ``default_executor``).

Exit status: 0 success; 2 a usage or configuration error (one message and a hint on stderr; the traceback only with
``NEMORUN_DEBUG=1``); 1 the task itself failed, or the user declined the launch.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from typing import Any, Callable, Sequence

from nemorun_core.errors import ConfigError, NemorunError


_TYPES = ("task", "experiment")


@dataclasses.dataclass(frozen=True)
class EntrypointInfo:
    """What a decorator recorded about a CLI function.

    Attributes:
        kind: ``"entrypoint"`` (the CLI builds and launches the task) or ``"command"`` (the function launches on its
            own; no executor options).
        namespace: the group the ``nemorun`` console script lists the entrypoint under.
        default_executor: the executor used when the command line names none; None runs in-process.
        help: a summary that replaces the docstring's in ``--help``.
        require_confirmation: ask "Launch? [y/N]" on a terminal before launching on an executor.
        name: the command's name (``nemorun NAMESPACE NAME``); defaults to the function's name.
        type: ``"task"`` (the function is the task) or ``"experiment"`` (the function takes ``ctx:
            run.cli.RunContext`` and launches what it builds with ``ctx.launch``).
        enable_executor: offer the executor options (``--executor``, ``executor=...``); False always calls the
            function in this process.
        default_factory: the base config when the command line gives no ``--factory``/``--yaml``: a function
            returning a ``run.Partial`` of the task (or the name of a registered task factory).
        default_plugins: ``run.Plugin`` objects (or configs of them, or a list) applied when the task launches.
    """

    kind: str = "entrypoint"
    namespace: str | None = None
    default_executor: Any = None
    help: str | None = None
    require_confirmation: bool = True
    name: str | None = None
    type: str = "task"
    enable_executor: bool = True
    default_factory: Any = None
    default_plugins: Any = None


def _wrap(fn: Callable[..., Any], info: EntrypointInfo) -> Callable[..., Any]:
    target = getattr(fn, "__nemorun_wrapped__", fn)
    if not callable(target):
        raise TypeError(f"@run.cli.{info.kind} decorates a function, got {fn!r}")
    if info.type == "experiment":
        from nemorun_core.cli.context import context_parameter

        if context_parameter(target) is None:
            raise TypeError(f"@run.cli.entrypoint(type='experiment') on {target.__name__}: an experiment entrypoint "
                            "takes the run context as a parameter; add `ctx: run.cli.RunContext` as its first "
                            "parameter and launch with ctx.launch(exp)")

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return target(*args, **kwargs)

    # ``run.Partial(wrapper)`` and serialized configs then name the plain function, not this wrapper.
    wrapper.__nemorun_wrapped__ = target  # type: ignore[attr-defined]
    wrapper.__nemorun_cli__ = info  # type: ignore[attr-defined]

    def run_main(argv: Sequence[str] | None = None, **kwargs: Any) -> Any:
        return main(wrapper, argv, **kwargs)

    run_main.__doc__ = f"Run {target.__name__} from the command line (see nemorun_core.cli.main)."
    wrapper.main = run_main  # type: ignore[attr-defined]
    if info.namespace is not None:
        from nemorun_core.cli.catalog import register_entrypoint

        register_entrypoint(info.namespace, info.name or target.__name__, wrapper)
    return wrapper


def entrypoint(
    fn: Callable[..., Any] | None = None,
    *,
    namespace: str | None = None,
    name: str | None = None,
    help: str | None = None,  # noqa: A002 - the spec's name for it
    skip_confirmation: bool = False,
    enable_executor: bool = True,
    default_factory: Any = None,
    default_executor: Any = None,
    default_plugins: Any = None,
    type: str = "task",  # noqa: A002 - NeMo Run's name for it
    require_confirmation: bool = True,
) -> Any:
    """Make ``fn`` a command line: ``python train.py model.hidden_size=1024``. Usable bare or with options.

    Args:
        fn: the task function. Its parameters become overridable paths; its docstring becomes ``--help``.
        namespace: the group the ``nemorun`` console script lists it under (and :func:`list_entrypoints`).
        name: the command's name within its namespace; defaults to the function's name.
        help: the summary shown by ``--help`` instead of the docstring's first paragraph.
        skip_confirmation: never ask before launching (NeMo Run's spelling of ``require_confirmation=False``).
        enable_executor: offer the executor options; False always calls the function in this process.
        default_factory: the base config when the command line gives none: a function returning a
            ``run.Partial`` of ``fn`` (or the name of a task factory registered for ``fn``).
        default_executor: run through this executor (a ``run.Config`` of one, or an instance) unless the command
            line says otherwise (``--executor``/``executor=...``).
        default_plugins: a ``run.Plugin`` (or a config of one, or a list) applied when the task launches.
        type: ``"task"``, or ``"experiment"`` for a function taking ``ctx: run.cli.RunContext`` that builds and
            launches an experiment itself (``ctx.launch(exp)``).
        require_confirmation: ask before launching on an executor when stdin is a terminal (``--yes`` skips it).

    Returns:
        A wrapper that calls ``fn`` when called directly and has ``.main(argv=None)``.

    Raises:
        TypeError: ``type`` is neither ``"task"`` nor ``"experiment"``, or an experiment entrypoint takes no
            ``RunContext``.
    """
    if type not in _TYPES:
        raise TypeError(f"@run.cli.entrypoint(type={type!r}): type must be 'task' or 'experiment'")
    info = EntrypointInfo("entrypoint", namespace, default_executor, help,
                          require_confirmation and not skip_confirmation, name, type, enable_executor,
                          default_factory, default_plugins)
    return _wrap(fn, info) if fn is not None else functools.partial(_wrap, info=info)


def cli_command(fn: Any = None, *args: Any, name: str | None = None, help: str | None = None,  # noqa: A002
                **kwargs: Any) -> Any:
    """Make a function with plain (primitive) parameters a command line; it does its own launching.

    ``python train.py model_size=13b learning_rate=3e-4`` calls ``train(model_size="13b", learning_rate=3e-4)`` in
    this process. The executor options (``--executor``, ``--name``, ``--detach``) are not offered.

    NeMo Run's form ``cli_command(app, "train", fn)`` -- adding ``fn`` as the subcommand ``train`` of a Typer app
    -- works too (see :func:`nemorun_core.cli.typer_command.add_command`).

    Args:
        fn: the function (or, NeMo Run's form, a Typer app followed by the name and the function).
        name: the command's name where it is listed; defaults to the function's name.
        help: the summary shown by ``--help`` instead of the docstring's first paragraph.
    """
    if fn is not None and hasattr(fn, "registered_commands") and hasattr(fn, "command"):
        from nemorun_core.cli.typer_command import add_command

        if name is not None:
            kwargs["name"] = name
        return add_command(fn, *args, help=help, **kwargs)
    if args or kwargs:
        raise TypeError(f"cli_command() got unexpected arguments {list(args) + sorted(kwargs)}; it takes the "
                        "function and name=/help= (or NeMo Run's form: cli_command(typer_app, 'name', fn))")
    info = EntrypointInfo("command", help=help, require_confirmation=False, name=name)
    return _wrap(fn, info) if fn is not None else functools.partial(_wrap, info=info)


def info_of(fn: Any) -> EntrypointInfo:
    return getattr(fn, "__nemorun_cli__", None) or EntrypointInfo()


def main(
    fn: Callable[..., Any],
    argv: Sequence[str] | None = None,
    *,
    exit: bool | None = None,  # noqa: A002 - reads naturally at call sites: main(fn, argv, exit=False)
    prog: str | None = None,
    default_factory: Any = None,
    default_executor: Any = None,
    default_plugins: Any = None,
    cmd_defaults: dict[str, Any] | None = None,
    registry: Any = None,
) -> Any:
    """Run ``fn`` from a command line.

    Args:
        fn: a function, optionally decorated with ``@run.cli.entrypoint``/``@run.cli_command``/``@run.partial``.
        argv: the arguments without the program name; ``sys.argv[1:]`` when None. (NeMo Run's
            ``main(fn, default_factory)`` also works: a callable here is taken as ``default_factory``.)
        exit: end the process with the exit status (0/1/2) instead of returning. Defaults to True when ``argv`` is
            None (a script's ``__main__``) and False when ``argv`` is given (a programmatic call).
        prog: the program name shown by ``--help`` and used by the completion script.
        default_factory: the base config when the command line gives no ``--factory``/``--yaml`` (overrides the
            decorator's): a function returning a ``run.Partial`` of ``fn``, or a task factory's name.
        default_executor: an executor to use when the command line names none (overrides the decorator's).
        default_plugins: plugins applied when the task launches (overrides the decorator's).
        cmd_defaults: defaults of the command-line options, by name: ``{"skip_confirmation": True}``,
            ``{"detach": True, "name": "nightly"}`` (see ``--help`` for the options).
        registry: the factory registry (defaults to the process-wide one).

    Returns:
        Without ``exit``: the task's result; the resolved ``run.Partial`` for ``--dryrun`` and ``--to-*``; None
        for ``--help`` and completion.

    Raises:
        Without ``exit``: the usage or configuration error (a ``NemorunError``), or the task's own exception.
    """
    from nemorun_core.cli.session import Session, TaskFailed

    if callable(argv) and default_factory is None:
        argv, default_factory = None, argv
    should_exit = (argv is None) if exit is None else exit
    words = list(sys.argv[1:] if argv is None else argv)
    info = info_of(fn)
    overrides = {k: v for k, v in (("default_factory", default_factory), ("default_executor", default_executor),
                                   ("default_plugins", default_plugins)) if v is not None}
    if overrides:
        info = dataclasses.replace(info, **overrides)
    try:
        session = Session(fn, info, prog=prog, registry=registry, cmd_defaults=cmd_defaults)
        result = session.run(words)
    except TaskFailed as failed:
        if not should_exit:
            raise failed.cause.with_traceback(failed.cause.__traceback__) from None
        import traceback

        traceback.print_exception(type(failed.cause), failed.cause, failed.cause.__traceback__)
        print(f"error: {session.task_name} failed: {type(failed.cause).__name__}: {failed.cause}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        if not should_exit:
            raise
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except NemorunError as exc:
        if not should_exit:
            raise
        _report(exc)
        sys.exit(2 if _is_usage(exc) else 1)
    if should_exit:
        sys.exit(0 if session.exit_code is None else session.exit_code)
    return result


def _is_usage(exc: BaseException) -> bool:
    from nemorun_core.cli.argv import UsageError

    return isinstance(exc, (UsageError, ConfigError))


def _report(exc: BaseException) -> None:
    if os.environ.get("NEMORUN_DEBUG") == "1":
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__)
    text = str(exc)
    if "hint:" not in text and _is_usage(exc):
        text += "\n  hint: see --help for the parameters and options"
    print(f"error: {text}", file=sys.stderr)
