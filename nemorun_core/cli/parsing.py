"""Overrides to configs without a command line: ``parse_cli_args``, ``parse_partial``, ``parse_config``.

    cfg = run.cli.parse_partial(train_model, "model=my_model(hidden_size=1024)", "epochs=3")
    cfg = run.cli.parse_cli_args(train_model, ["model.num_layers=5"], output_type=run.Config)

The same grammar, factories and errors as ``python train.py ...``, applied to ``run.Partial(fn)`` (with what the
command line fills in: ``is_target_default`` factories, dataclass parameters whose fields all have defaults).
Nothing is built or run, and required arguments may stay unset: the result is a config to finish in code.
"""

from __future__ import annotations

from typing import Any, Sequence


def parse_cli_args(fn: Any, args: Sequence[str], output_type: Any = None, *, output: Any = None,
                   registry: Any = None) -> Any:
    """Apply ``PATH=VALUE`` words to a config of ``fn``.

    Args:
        fn: a function or class (decorated or not).
        args: the override words, in order (every one is parsed before any is applied).
        output_type: ``run.Partial`` (default) or ``run.Config``: which kind of config to return.
        output: an existing config of ``fn`` to apply the words to (it is changed in place and returned).
        registry: the factory registry (defaults to the process-wide one).

    Raises:
        OverrideError: a malformed word, an unknown name (with a did-you-mean), a value of the wrong type.
    """
    from nemorun_core.cli.session import default_config
    from nemorun_core.config.buildable import Config, Partial
    from nemorun_core.config.overrides import apply_overrides

    if isinstance(args, str):
        raise TypeError(f"parse_cli_args takes a list of words, got the string {args!r}; write [{args!r}]")
    if output is not None:
        return apply_overrides(output, list(args), registry=registry)
    cfg = default_config(fn, registry)
    if output_type is not None and output_type is not Partial:
        if not (isinstance(output_type, type) and issubclass(output_type, Config)):
            raise TypeError(f"parse_cli_args(output_type=...) takes run.Partial or run.Config, got {output_type!r}")
        cfg = output_type(cfg.__fn_or_cls__, **cfg.__arguments__)
    return apply_overrides(cfg, list(args), registry=registry)


def parse_partial(fn: Any, *args: str, registry: Any = None) -> Any:
    """``run.Partial(fn)`` with the override words ``args`` applied (see :func:`parse_cli_args`)."""
    from nemorun_core.config.buildable import Partial

    return parse_cli_args(fn, list(args), Partial, registry=registry)


def parse_config(fn: Any, *args: str, registry: Any = None) -> Any:
    """``run.Config(fn)`` with the override words ``args`` applied (see :func:`parse_cli_args`)."""
    from nemorun_core.config.buildable import Config

    return parse_cli_args(fn, list(args), Config, registry=registry)
