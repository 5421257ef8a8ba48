"""NeMo Run's ``cli_command(app, "name", fn)``: an entrypoint as a subcommand of a Typer app.

    app = typer.Typer()
    run.cli.cli_command(app, "train", train_model)
    app()                                   # my-tool train model.hidden_size=1024 --dryrun

Every word after the subcommand reaches the entrypoint's own parser (:func:`nemorun_core.cli.main`), so overrides,
``--factory``, ``--help`` and the exit statuses are the same as ``python train.py ...``.
"""

from __future__ import annotations

from typing import Any, Callable


def add_command(app: Any, name: str | None = None, fn: Callable[..., Any] | None = None, *,
                default_factory: Any = None, type: str = "task",  # noqa: A002 - NeMo Run's name for it
                command_kwargs: dict[str, Any] | None = None, is_main: bool = False,
                help: str | None = None, **_: Any) -> Any:  # noqa: A002
    """Add ``fn`` to the Typer ``app`` as the command ``name`` (or the app's only command with ``is_main``).

    Returns:
        The Typer app.

    Raises:
        TypeError: no function was given, or ``type`` is neither "task" nor "experiment".
    """
    import dataclasses

    import typer

    from nemorun_core.cli.entrypoint import entrypoint, info_of, main

    if fn is None or not callable(fn):
        raise TypeError("cli_command(app, name, fn): give the Typer app, the command's name and the function")
    if getattr(fn, "__nemorun_cli__", None) is None:
        fn = entrypoint(fn, type=type)
    elif info_of(fn).type != type and type != "task":
        fn = entrypoint(getattr(fn, "__nemorun_wrapped__", fn), **{
            k: v for k, v in dataclasses.asdict(info_of(fn)).items()
            if k in ("namespace", "name", "help", "default_executor", "default_plugins", "default_factory")}, type=type)
    settings = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
    kwargs = {"context_settings": settings, "add_help_option": False, **(command_kwargs or {})}
    summary = help or info_of(fn).help or (fn.__doc__ or "").strip().split("\n\n")[0] or None
    command_name = name or getattr(fn, "__name__", "run")

    def command(ctx: typer.Context) -> None:
        main(fn, list(ctx.args), exit=True, prog=ctx.command_path, default_factory=default_factory)

    command.__doc__ = summary
    command.__annotations__["ctx"] = typer.Context  # the real class: typer is imported here, not in the module
    if is_main:
        app.callback(invoke_without_command=True, **kwargs)(command)
    else:
        app.command(command_name, help=summary, **kwargs)(command)
    return app
