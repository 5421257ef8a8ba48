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
    """

    kind: str = "entrypoint"
    namespace: str | None = None
    default_executor: Any = None
    help: str | None = None
    require_confirmation: bool = True


def _wrap(fn: Callable[..., Any], info: EntrypointInfo) -> Callable[..., Any]:
    target = getattr(fn, "__nemorun_wrapped__", fn)
    if not callable(target):
        raise TypeError(f"@run.cli.{info.kind} decorates a function, got {fn!r}")

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
    return wrapper


def entrypoint(
    fn: Callable[..., Any] | None = None,
    *,
    namespace: str | None = None,
    default_executor: Any = None,
    help: str | None = None,  # noqa: A002 - the spec's name for it
    require_confirmation: bool = True,
) -> Any:
    """Make ``fn`` a command line: ``python train.py model.hidden_size=1024``. Usable bare or with options.

    Args:
        fn: the task function. Its parameters become overridable paths; its docstring becomes ``--help``.
        namespace: the group the ``nemorun`` console script lists it under.
        default_executor: run through this executor (a ``run.Config`` of one, or an instance) unless the command
            line says otherwise (``--executor``/``executor=...``).
        help: the summary shown by ``--help`` instead of the docstring's first paragraph.
        require_confirmation: ask before launching on an executor when stdin is a terminal (``--yes`` skips it).

    Returns:
        A wrapper that calls ``fn`` when called directly and has ``.main(argv=None)``.
    """
    info = EntrypointInfo("entrypoint", namespace, default_executor, help, require_confirmation)
    return _wrap(fn, info) if fn is not None else functools.partial(_wrap, info=info)


def cli_command(fn: Callable[..., Any] | None = None, *, help: str | None = None) -> Any:  # noqa: A002
    """Make a function with plain (primitive) parameters a command line; it does its own launching.

    ``python train.py model_size=13b learning_rate=3e-4`` calls ``train(model_size="13b", learning_rate=3e-4)`` in
    this process. The executor options (``--executor``, ``--name``, ``--detach``) are not offered.
    """
    info = EntrypointInfo("command", help=help, require_confirmation=False)
    return _wrap(fn, info) if fn is not None else functools.partial(_wrap, info=info)


def info_of(fn: Any) -> EntrypointInfo:
    return getattr(fn, "__nemorun_cli__", None) or EntrypointInfo()


def main(
    fn: Callable[..., Any],
    argv: Sequence[str] | None = None,
    *,
    exit: bool | None = None,  # noqa: A002 - reads naturally at call sites: main(fn, argv, exit=False)
    prog: str | None = None,
    default_executor: Any = None,
    registry: Any = None,
) -> Any:
    """Run ``fn`` from a command line.

    Args:
        fn: a function, optionally decorated with ``@run.cli.entrypoint``/``@run.cli_command``/``@run.partial``.
        argv: the arguments without the program name; ``sys.argv[1:]`` when None.
        exit: end the process with the exit status (0/1/2) instead of returning. Defaults to True when ``argv`` is
            None (a script's ``__main__``) and False when ``argv`` is given (a programmatic call).
        prog: the program name shown by ``--help`` and used by the completion script.
        default_executor: an executor to use when the command line names none (overrides the decorator's).
        registry: the factory registry (defaults to the process-wide one).

    Returns:
        Without ``exit``: the task's result; the resolved ``run.Partial`` for ``--dryrun`` and ``--to-*``; None
        for ``--help`` and completion.

    Raises:
        Without ``exit``: the usage or configuration error (a ``NemorunError``), or the task's own exception.
    """
    from nemorun_core.cli.session import Session, TaskFailed

    should_exit = (argv is None) if exit is None else exit
    words = list(sys.argv[1:] if argv is None else argv)
    session = Session(fn, info_of(fn), prog=prog, registry=registry, default_executor=default_executor)
    try:
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
