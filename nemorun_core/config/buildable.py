"""``run.Config`` and ``run.Partial``: Fiddle buildables that check names and types when they are set.

Fiddle already refuses unknown argument names; these subclasses add what a user needs at configuration time: the
closest valid name in the error, a check of every value against the parameter's annotation, and a ``build`` that
names the config path whose construction failed.

As in NeMo Run, a dataclass instance given as an argument is stored as its config (``run.Config(cls, **fields)``),
so the tree stays editable and serializable (by assignment too, so that a config read back from a file or from
``to_code`` is equal to the one written); and a parameter annotated ``run.OptionalDefaultConfig[T]`` (that is,
``Annotated[Optional[T], run.Config[T]]``, default ``None``) that is not given gets a fresh ``run.Config(T)``.

Methods on a buildable shadow parameters of the same name for attribute *reading* (``cfg.build`` is the method).
The methods are kept few for that reason: ``build``, ``validate``, ``walk``, ``broadcast``, ``clone``, ``diff``,
``visualize`` and the ``to_*`` exports. A parameter that collides is still reachable with
``cfg.__arguments__["build"]``.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from typing import Annotated, Any, Callable, Generic, Optional, TypeVar

import fiddle as fdl

from nemorun_core.errors import ConfigTypeError, UnknownParameterError
from nemorun_core.config import typecheck

T = TypeVar("T")


def unwrap_target(fn_or_cls: Any) -> Any:
    """The plain function behind a ``@run.partial`` / ``@run.cli.entrypoint`` wrapper, or the object itself."""
    return getattr(fn_or_cls, "__nemorun_wrapped__", fn_or_cls)


def target_name(fn_or_cls: Any) -> str:
    return getattr(fn_or_cls, "__qualname__", None) or getattr(fn_or_cls, "__name__", None) or repr(fn_or_cls)


def is_buildable(value: Any) -> bool:
    return isinstance(value, fdl.Buildable)


def _valid_names(fn_or_cls: Any) -> list[str] | None:
    """Parameter names accepted by ``fn_or_cls``, or None when it takes ``**kwargs`` (anything goes)."""
    try:
        sig = inspect.signature(fn_or_cls)
    except (TypeError, ValueError):
        return None
    names = []
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind is not inspect.Parameter.VAR_POSITIONAL:
            names.append(p.name)
    return names


class _Checked:
    """Mixin over a Fiddle buildable: friendly unknown-name errors and annotation checks on every assignment."""

    def __init__(self, fn_or_cls: Any, /, *args: Any, **kwargs: Any):
        fn_or_cls = unwrap_target(fn_or_cls)
        if not is_buildable(fn_or_cls):
            if not callable(fn_or_cls):
                raise TypeError(
                    f"{type(self).__name__} needs a function or class to configure, got {fn_or_cls!r}"
                )
            valid = _valid_names(fn_or_cls)
            if valid is not None:
                for name in kwargs:
                    if name not in valid:
                        raise UnknownParameterError(name, target_name(fn_or_cls), valid)
            args = tuple(_as_config(a) for a in args)
            kwargs = {k: _as_config(v) for k, v in kwargs.items()}
        try:
            super().__init__(fn_or_cls, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"cannot configure {target_name(fn_or_cls)}: {exc}") from None
        if not is_buildable(fn_or_cls):
            try:
                defaults = typecheck.default_buildables(self.__fn_or_cls__)
            except TypeError:  # an unhashable callable: no cached annotations, and none of these defaults
                defaults = ()
            for name, buildable_cls, produced in defaults:
                if name not in self.__arguments__:
                    super().__setattr__(name, buildable_cls(produced))
        for name, value in list(self.__arguments__.items()):
            if isinstance(name, str):
                self._check_value(name, value)

    def _check_value(self, name: str, value: Any) -> None:
        annotation = typecheck.parameter_annotations(self.__fn_or_cls__).get(name)
        if annotation is None:
            return
        reason = typecheck.mismatch(value, annotation)
        if reason is not None:
            detail = "" if reason == "wrong type" else reason
            raise ConfigTypeError(
                f"{target_name(self.__fn_or_cls__)}.{name}", typecheck.type_name(annotation), value, detail=detail
            )

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__") and name.endswith("__"):
            return super().__setattr__(name, value)
        valid = _valid_names(self.__fn_or_cls__)
        if valid is not None and name not in valid:
            raise UnknownParameterError(name, target_name(self.__fn_or_cls__), valid)
        value = _as_config(value)
        self._check_value(name, value)
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("__") or name.startswith("_repr") or name.startswith("_ipython"):
                raise
            valid = _valid_names(self.__fn_or_cls__) or sorted(k for k in self.__arguments__ if isinstance(k, str))
            if name in valid:
                # A real parameter with no value and no default: say so, rather than "no parameter".
                raise AttributeError(
                    f"{target_name(self.__fn_or_cls__)}.{name} is not set and has no default; "
                    f"set it with cfg.{name} = ..."
                ) from None
            raise UnknownParameterError(name, target_name(self.__fn_or_cls__), valid) from None

    # -- the few methods (see the module docstring) ---------------------------------------------------------------
    def build(self) -> Any:
        """Build the object this config describes (calling every nested config). Same as ``run.build(self)``."""
        from nemorun_core.config.building import build

        return build(self)

    def validate(self) -> None:
        """Check every value's type and run the registered validation rules; raise on the first failure."""
        from nemorun_core.config.validation import validate

        validate(self)

    def walk(self, **fns: Callable[[Any], Any]) -> "_Checked":
        """Return a copy where each named argument, wherever it appears in the tree, is replaced by ``fn(old)``."""
        from nemorun_core.config.tree import walk_arguments

        return walk_arguments(self, **fns)

    def broadcast(self, **values: Any) -> "_Checked":
        """Return a copy where each named argument is set to the value in every config of the tree that accepts it."""
        from nemorun_core.config.tree import broadcast

        return broadcast(self, **values)

    def clone(self) -> "_Checked":
        """A deep copy: changing the clone (or anything nested in it) leaves this config as it is."""
        return copy.deepcopy(self)

    def diff(self, old: Any, trim: bool = True, **kwargs: Any) -> Any:
        """A Graphviz drawing of what changed from ``old`` to this config (NeMo Run's ``cfg.diff(old)``).

        ``trim`` leaves out what did not change; other keyword arguments go to ``fiddle.graphviz.render_diff``.
        For the changes as text (one line per changed path), use ``run.diff(old, new)``.
        """
        return _graphviz("diff").render_diff(old=old, new=self, trim=trim, **kwargs)

    def visualize(self, **kwargs: Any) -> Any:
        """A Graphviz drawing of the tree (a ``graphviz.Graph``: shown inline in a notebook, ``.source`` is the DOT
        text, ``.render(...)`` writes an image). Keyword arguments go to ``fiddle.graphviz.render``."""
        return _graphviz("visualize").render(self, **kwargs)

    def to_yaml(self) -> str:
        from nemorun_core.config import serialize

        return serialize.to_yaml(self)

    def to_toml(self) -> str:
        from nemorun_core.config import serialize

        return serialize.to_toml(self)

    def to_json(self) -> str:
        from nemorun_core.config import serialize

        return serialize.to_json(self)

    def to_code(self) -> str:
        from nemorun_core.config import serialize

        return serialize.to_code(self)

    def __rich__(self) -> Any:
        from nemorun_core.config.render import rich_tree

        return rich_tree(self)

    def _repr_html_(self) -> str:
        from nemorun_core.config.render import html

        return html(self)


# Value types of nemorun's own experiment layer (task references, handles) and credential values (which hold
# secrets a config would write down) are dataclasses whose identity matters
# where they are used: they are kept as they are, never turned into configs.
_KEPT_MODULES = ("nemorun_core.experiment.", "nemorun_core.orchestration", "nemorun_core.executors.base",
                 "nemorun_core.credentials")


def _as_config(value: Any) -> Any:
    """A dataclass instance given as an argument becomes its config; any other value is kept.

    Kept too: a dataclass whose ``__init__`` is its own (``@dataclass(init=False)``), whose fields need not be its
    parameters, and nemorun's own value types (``_KEPT_MODULES``)."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    cls = type(value)
    if (cls.__module__ or "").startswith(_KEPT_MODULES) or not cls.__dataclass_params__.init:  # type: ignore[attr-defined]
        return value
    from nemorun_core.config.autoconvert import to_config

    return to_config(value)


def _graphviz(method: str) -> Any:
    try:
        import graphviz  # noqa: F401  (fiddle.graphviz needs it; checked here for a clear message)
        from fiddle import graphviz as fdl_graphviz
    except ImportError as exc:
        raise ImportError(
            f"cfg.{method}() draws the config with Graphviz, and the Python package is not installed ({exc}); "
            "install it with `pip install graphviz` (rendering to an image also needs the Graphviz programs: "
            "`apt-get install graphviz`). For text, use run.diff(old, new) or print(cfg)"
        ) from None
    return fdl_graphviz


class Config(_Checked, fdl.Config, Generic[T]):
    """A configured call: ``run.Config(ModelConfig, hidden_size=768)`` builds ``ModelConfig(hidden_size=768)``.

    As a task, a Config of a function is run by building it (which calls the function).
    """


class Partial(_Checked, fdl.Partial, Generic[T]):
    """A configured call left open: building gives ``functools.partial``; as a task it is called with no arguments."""


# NeMo Run's aliases for a parameter that may be None but gets a fresh config when it is not given:
#     def train(model: run.OptionalDefaultConfig[ModelConfig] = None): ...
#     run.Partial(train).model        # run.Config(ModelConfig)
OptionalDefaultConfig = Annotated[Optional[T], Config[T]]
OptionalDefaultPartial = Annotated[Optional[T], Partial[T]]
