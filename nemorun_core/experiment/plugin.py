"""``run.Plugin``: change a task and its executor before it is submitted, or reject it.

A plugin's ``setup(task, executor)`` gets the task's own copies. ``task`` is the ``run.Config`` / ``run.Partial`` /
``run.Script`` itself (so ``isinstance(task, run.Partial)`` and ``task.some_arg = ...`` work as in NeMo Run), and a
configured task also has ``task.config``, the spec's way of reading and setting its arguments::

    if task.config.get("learning_rate", 0) <= 0:
        raise ValueError("Learning rate must be positive")
    task.config.logging = {"level": "DEBUG"}

A name the task cannot take is an error naming it and the task's parameters, both for reading and for setting: a
misspelled ``task.config.get("learnig_rate", 1)`` must not quietly validate nothing. ``"name" in task.config`` asks
whether the task takes a parameter. When the task's own function has a parameter named ``config``, ``task.config``
is that argument (as in NeMo Run) and the view is not added. A ``run.Script`` has no named arguments, so it has no
``config`` (``hasattr(task, "config")`` is False); plugins change its ``args`` and ``env``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Mapping
from typing import Any, Iterator, Sequence

from nemorun_core.errors import ExperimentError, PluginError, UnknownParameterError, did_you_mean

_NOTHING = object()


class Plugin:
    """Base class of plugins.

    ``setup(task, executor)`` is called once per task when the task is added to an experiment (or given to
    ``run.run``), on the task's own copies of the config and executor: it may change environment variables
    (``executor.env_vars``), task arguments (``task.config.some_arg = ...`` or ``task.some_arg = ...``) or executor
    settings. Raising any exception rejects the task: nothing is submitted and the error names the plugin and the
    task.
    """

    def setup(self, task: Any, executor: Any) -> None:  # noqa: B027 - an optional hook, empty by default
        """Adjust ``task`` and ``executor`` in place; raise to reject the task."""

    @property
    def name(self) -> str:
        return type(self).__name__


def plugin_name(plugin: Any) -> str:
    return getattr(plugin, "name", None) if isinstance(plugin, Plugin) else type(plugin).__name__


def check_plugins(plugins: Any, where: str) -> list[Any]:
    """The plugins as a list: NeMo Run's one ``Plugin`` or a list of them; anything without ``setup`` is refused.

    Raises:
        ExperimentError: an item has no callable ``setup(task, executor)``.
    """
    if plugins is None:
        return []
    items = [plugins] if not isinstance(plugins, (list, tuple)) else list(plugins)
    for i, item in enumerate(items):
        if not callable(getattr(type(item), "setup", None)):
            from nemorun_core.config.buildable import is_buildable

            if is_buildable(item):
                from nemorun_core.config.building import build

                items[i] = item = build(item)  # run.Config(MyPlugin, ...), as the CLI's plugins= gives them
        if not callable(getattr(item, "setup", None)):
            raise ExperimentError(f"plugins of {where} must be run.Plugin objects with a setup(task, executor) "
                                  f"method, got {item!r}")
    return items


def apply_plugins(plugins: Sequence[Any], task: Any, executor: Any, task_name: str) -> None:
    """Run each plugin's ``setup`` on the task and executor, in order, with ``task.config`` available.

    Raises:
        PluginError: a plugin raised (its error is kept as the cause and quoted in the message).
    """
    for plugin in plugins:
        with config_view(task, task_name):
            try:
                plugin.setup(task, executor)
            except Exception as exc:
                raise PluginError(f"plugin {plugin_name(plugin)} rejected task {task_name!r}: "
                                  f"{type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def config_view(task: Any, task_name: str) -> Iterator[None]:
    """Give ``task`` a ``config`` attribute (a :class:`TaskArguments`) for the duration of the block.

    The view sits in the instance's ``__dict__``, which attribute reading consults before Fiddle's argument lookup;
    assigning ``task.config = ...`` still goes to Fiddle (an argument named ``config``). Nothing is left behind, so
    the stored and submitted task is exactly the configured one.
    """
    import fiddle as fdl

    if not isinstance(task, fdl.Buildable) or "config" in _parameters(task)[0]:
        yield
        return
    task.__dict__["config"] = TaskArguments(task, task_name)
    try:
        yield
    finally:
        task.__dict__.pop("config", None)


def _parameters(task: Any) -> tuple[list[str], bool]:
    """The parameter names of the task's function or class, and whether it takes ``**kwargs`` too."""
    try:
        sig = inspect.signature(task.__fn_or_cls__)
    except (TypeError, ValueError):
        return sorted(k for k in task.__arguments__ if isinstance(k, str)), True
    names, extra = [], False
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            extra = True
        elif p.kind is not inspect.Parameter.VAR_POSITIONAL:
            names.append(p.name)
    return names, extra


class TaskArguments(Mapping):
    """``task.config`` in a plugin: the arguments of a configured task, read and set by name.

    Reading gives the value set, else the parameter's default (``get`` gives its ``default`` when there is neither);
    setting checks the value against the parameter's annotation as ``cfg.name = value`` does. Iterating gives the
    names that have a value (set or default).

    Raises (reading or setting a name the task does not take):
        UnknownParameterError: naming the task, the closest parameter and every parameter it has.
    """

    def __init__(self, task: Any, task_name: str):
        object.__setattr__(self, "_task", task)
        object.__setattr__(self, "_task_name", task_name)

    # -- names ----------------------------------------------------------------------------------------------------
    def _check(self, name: str) -> None:
        names, extra = _parameters(self._task)
        if name in names or (extra and isinstance(name, str) and name.isidentifier()):
            return
        from nemorun_core.config.buildable import target_name

        target = target_name(self._task.__fn_or_cls__)
        exc = UnknownParameterError(name, target, names)
        exc.args = (f"task {self._task_name!r} ({target}) has no parameter {name!r}"
                    f"{did_you_mean(name, names) or ''}; its parameters: {', '.join(names) or '(none)'}",)
        raise exc

    def __contains__(self, name: object) -> bool:
        names, extra = _parameters(self._task)
        return name in names or (extra and name in self._task.__arguments__)

    # -- reading --------------------------------------------------------------------------------------------------
    def get(self, name: str, default: Any = None) -> Any:
        """The argument's value (set, else its default), or ``default`` when it has neither."""
        self._check(name)
        value = self._value(name)
        return default if value is _NOTHING else value

    def _value(self, name: str) -> Any:
        try:
            return getattr(self._task, name)
        except AttributeError:  # a parameter with no value and no default
            return _NOTHING

    def __getitem__(self, name: str) -> Any:
        self._check(name)
        return getattr(self._task, name)  # unset and no default: Fiddle's error says so

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        names, _ = _parameters(self._task)
        extra = [k for k in self._task.__arguments__ if isinstance(k, str) and k not in names]
        return iter([n for n in names if self._value(n) is not _NOTHING] + extra)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    # -- setting --------------------------------------------------------------------------------------------------
    def __setitem__(self, name: str, value: Any) -> None:
        self._check(name)
        setattr(self._task, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        """Unset the argument: it goes back to the parameter's default."""
        self._check(name)
        if name in self._task.__arguments__:
            delattr(self._task, name)

    def update(self, values: Mapping[str, Any] = (), **kwargs: Any) -> None:  # type: ignore[assignment]
        """Set several arguments; every name is checked before any is set."""
        items = {**dict(values), **kwargs}
        for name in items:
            self._check(name)
        for name, value in items.items():
            setattr(self._task, name, value)

    def __repr__(self) -> str:
        return f"TaskArguments({self._task_name!r}, {dict(self)!r})"
