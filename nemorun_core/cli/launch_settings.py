"""Which overrides configure where the task runs rather than the task: executor, plugins and the run context.

A launching entrypoint takes, beside its own parameters::

    executor=slurm executor.nodes=2         where the task runs (when the task has no parameter named executor)
    plugins=my_plugin plugins.project=x     run.Plugin objects applied before submission (idem for plugins)
    run.executor=docker run.executor.nodes=2   NeMo Run's spelling of the same, for any entrypoint
    ctx.executor=local ctx.detach=true      an experiment entrypoint's run context (its ``ctx`` parameter)

:func:`split` sorts the parsed overrides into those groups (prefixes stripped, so the executor machinery sees
``executor...`` whichever way it was written); :func:`resolve_plugins` turns the plugin settings into objects.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Optional, Sequence, Union

from nemorun_core.cli.argv import UsageError
from nemorun_core.config.grammar import BareString, LiteralValue, Override, coerce

_LAUNCH_FIELDS = ("executor", "plugins")


@dataclasses.dataclass
class Routed:
    """The overrides of one command line, by what they configure."""

    task: list[Override] = dataclasses.field(default_factory=list)
    executor: list[Override] = dataclasses.field(default_factory=list)
    plugins: list[Override] = dataclasses.field(default_factory=list)
    context: list[Override] = dataclasses.field(default_factory=list)


def split(parsed: Sequence[Override], *, params: Sequence[str], launches: bool, ctx_name: str | None) -> Routed:
    """Sort ``parsed`` into task, executor, plugin and run-context overrides.

    Args:
        params: the task's parameter names: a task parameter called ``executor`` (or ``plugins``, ``run``) keeps
            its overrides.
        launches: whether the entrypoint launches at all; when not, everything configures the task.
        ctx_name: the experiment entrypoint's run-context parameter, whose overrides never reach the task.
    """
    out = Routed()
    prefixes = {p for p in (ctx_name, "run" if "run" not in params else None) if p}
    for ov in parsed:
        head = ov.path[0]
        if launches and head in prefixes and len(ov.path) > 1:
            inner = dataclasses.replace(ov, path=ov.path[1:])
            group = inner.path[0]
            if group in _LAUNCH_FIELDS:
                getattr(out, group).append(inner)
            elif head == ctx_name:
                out.context.append(inner)
            else:
                raise UsageError(f"{ov.text!r}: run.{group} is not a launch setting",
                                 "run. takes executor and plugins, for example run.executor=local")
        elif launches and head in _LAUNCH_FIELDS and head not in params:
            getattr(out, head).append(ov)
        elif head == ctx_name:
            out.context.append(dataclasses.replace(ov, path=ov.path[1:]) if len(ov.path) > 1 else ov)
        else:
            out.task.append(ov)
    return out


def context_settings(overrides: Sequence[Override], ctx_name: str) -> dict[str, Any]:
    """``ctx.detach=true`` and the like: the RunContext fields other than executor and plugins, coerced.

    Raises:
        UsageError: an unknown field (with a did-you-mean) or a value that does not fit its type.
    """
    from nemorun_core.cli.context import RunContext
    from nemorun_core.errors import did_you_mean

    fields = {f.name: f for f in dataclasses.fields(RunContext) if f.name not in _LAUNCH_FIELDS}
    out: dict[str, Any] = {}
    for ov in overrides:
        name = ov.path[0] if ov.path and isinstance(ov.path[0], str) else ""
        if len(ov.path) != 1 or name not in fields or ov.op != "=":
            hint = did_you_mean(name, [*fields, *_LAUNCH_FIELDS]).lstrip("; ") or \
                f"the run context has {', '.join([*_LAUNCH_FIELDS, *fields])}"
            raise UsageError(f"{ov.text!r} does not set a field of the run context {ctx_name}", hint)
        if not isinstance(ov.value, (LiteralValue, BareString)):
            raise UsageError(f"{ov.text!r}: {ctx_name}.{name} takes a plain value",
                             f"for example {ctx_name}.{name}=true")
        annotation = {"bool": bool, "str": str}.get(str(fields[name].type), fields[name].type)
        out[name] = coerce(ov.value, annotation, text=ov.text, path=f"{ctx_name}.{name}")
    return out


def _plugins_slot(plugins=None):  # type: ignore[no-untyped-def]
    """A one-parameter holder so that ``plugins...`` overrides go through the same machinery as the task's."""
    return plugins


def plugins_slot(default: Any) -> Any:
    """A ``run.Partial`` holding the default plugins, for the overrides to apply to."""
    from nemorun_core.config.buildable import Partial, is_buildable

    if "plugins" not in _plugins_slot.__annotations__:
        from nemorun_core.experiment.plugin import Plugin

        # A Union with the class itself, so that ``plugins=my_plugin`` finds factories returning a Plugin.
        _plugins_slot.__annotations__["plugins"] = Optional[Union[Plugin, list[Plugin]]]
    slot = Partial(_plugins_slot)
    if default is not None:
        slot.plugins = copy.deepcopy(default) if is_buildable(default) or isinstance(default, (list, tuple)) \
            else default
    return slot


def resolve_plugins(slot: Any) -> list[Any]:
    """The plugin objects a plugins slot holds: configs built, one plugin or a list, each with ``setup``.

    Raises:
        UsageError: an item is not a plugin.
    """
    from nemorun_core.config.buildable import is_buildable
    from nemorun_core.config.building import build

    value = slot.__arguments__.get("plugins")
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for i, item in enumerate(items):
        where = f"plugins[{i}]" if isinstance(value, (list, tuple)) else "plugins"
        obj = build(item, path=where) if is_buildable(item) else item
        if not callable(getattr(obj, "setup", None)):
            raise UsageError(f"{where} is {obj!r}, not a plugin",
                             "give a run.Plugin (a subclass with setup(task, executor)), a config of one, or the "
                             "name of a factory returning one")
        out.append(obj)
    return out
