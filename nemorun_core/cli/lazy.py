"""``LazyEntrypoint`` and ``lazy_imports``: name a task and set its arguments without importing its code yet.

    with run.cli.lazy_imports():
        from my_project.heavy import train        # not imported: a stand-in that remembers the dotted path

    task = run.cli.LazyEntrypoint(train, factory="fast")   # or LazyEntrypoint("my_project.heavy.train")
    task.model.hidden_size = 1024                 # recorded, applied in order by resolve()
    task.epochs = 3
    cfg = task.resolve()                          # imports now: run.Partial(train) from the factory, then the sets

Useful where importing the task is slow (a deep-learning framework) or impossible here (a package installed only on
the cluster): the launch script stays quick until the config is needed. ``resolve`` uses the command line's grammar
and factories, so a misspelled name fails there with a did-you-mean.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import sys
from typing import Any, Iterator


class LazyModule:
    """A module, or something inside one, named but not imported: ``resolve()`` imports it."""

    __slots__ = ("_path",)

    def __init__(self, path: str):
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> "LazyModule":
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # copy, pickle and inspect probe dunders: do not invent them
        return LazyModule(f"{self._path}.{name}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot set {name!r} on the lazy import {self._path!r}; resolve() it first")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self._path} is a lazy import (inside run.cli.lazy_imports()), so it cannot be called; "
                        "give it to run.cli.LazyEntrypoint, or import it outside the block")

    def __repr__(self) -> str:
        return f"<lazy {self._path}>"

    @property
    def dotted_path(self) -> str:
        return self._path

    def resolve(self) -> Any:
        """Import the module, or the module that holds the named object, and return it.

        Raises:
            ImportError: nothing importable is at that path.
        """
        return _import_path(self._path)


def _import_path(path: str) -> Any:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            if cut == 1:
                raise
            continue
        for i, attr in enumerate(parts[cut:]):
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                raise ImportError(f"cannot find {'.'.join(parts[:cut + i + 1])!r} (from {path!r})") from None
        return obj
    raise ImportError(path)


@contextlib.contextmanager
def lazy_imports(fallback_to_lazy: bool = False) -> Iterator[None]:
    """Within the block, ``import`` statements of the calling module give :class:`LazyModule` stand-ins.

    Only the module whose code contains the ``with`` is affected (imports made by other modules, on any thread,
    are real); relative imports are real too.

    Args:
        fallback_to_lazy: import for real where possible, and give a stand-in only for what cannot be imported.
    """
    caller = sys._getframe(2).f_globals  # 0: this generator, 1: contextmanager's __enter__, 2: the with block
    real = builtins.__import__

    def lazy_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if globals is not caller or level:
            return real(name, globals, locals, fromlist, level)
        if fallback_to_lazy:
            try:
                return real(name, globals, locals, fromlist, level)
            except ImportError:
                pass
        return LazyModule(name if fromlist else name.partition(".")[0])

    builtins.__import__ = lazy_import
    try:
        yield
    finally:
        builtins.__import__ = real


class _Path:
    """``task.model`` of a LazyEntrypoint: records ``task.model.hidden_size = 1024`` on its entrypoint."""

    __slots__ = ("_entry", "_segments")

    def __init__(self, entry: "LazyEntrypoint", segments: tuple[str, ...]):
        object.__setattr__(self, "_entry", entry)
        object.__setattr__(self, "_segments", segments)

    def __getattr__(self, name: str) -> "_Path":
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Path(self._entry, (*self._segments, name))

    def __setattr__(self, name: str, value: Any) -> None:
        self._entry._assignments.append(((*self._segments, name), value))


class LazyEntrypoint:
    """A task named by its dotted path, configured by attribute assignments, imported only by :meth:`resolve`.

    Args:
        target: the task: a dotted path (``"my_pkg.train.train_model"``, optionally followed by command-line words:
            ``"my_pkg.train.train_model --factory fast epochs=3"``), a stand-in from :func:`lazy_imports`, or the
            function itself.
        factory: the base config: the name of a task factory registered for the target (``--factory NAME``), or a
            dotted path to a function returning a ``run.Partial`` of it.
    """

    def __init__(self, target: Any, factory: str | None = None):
        words: list[str] = []
        if isinstance(target, str):
            target, *words = target.split()
            if not target:
                raise ValueError("LazyEntrypoint needs a target: a dotted path such as 'my_pkg.train.train_model'")
        elif isinstance(target, LazyModule):
            target = target.dotted_path
        elif not callable(target):
            raise TypeError(f"LazyEntrypoint takes a dotted path, a lazy import or a function, got {target!r}")
        if "--factory" in words:
            i = words.index("--factory")
            if i + 1 >= len(words):
                raise ValueError(f"LazyEntrypoint({target!r}): --factory needs a name")
            factory = factory or words[i + 1]
            del words[i:i + 2]
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_factory", factory)
        object.__setattr__(self, "_words", words)
        object.__setattr__(self, "_assignments", [])

    def __getattr__(self, name: str) -> _Path:
        if name.startswith("__") and name.endswith("__") or name.startswith("_"):
            raise AttributeError(name)
        return _Path(self, (name,))

    def __setattr__(self, name: str, value: Any) -> None:
        self._assignments.append(((name,), value))

    def __repr__(self) -> str:
        target = self._target if isinstance(self._target, str) else getattr(self._target, "__qualname__", "?")
        extra = f", factory={self._factory!r}" if self._factory else ""
        return f"LazyEntrypoint({target!r}{extra}, {len(self._words) + len(self._assignments)} settings)"

    def __nemorun_task__(self) -> Any:
        """What ``run.run`` and ``exp.add`` call to get the task: :meth:`resolve`, with the default registry."""
        return self.resolve()

    def resolve(self, *, registry: Any = None) -> Any:
        """Import the target and return its ``run.Partial``: the factory's config, then the words, then the sets.

        Raises:
            ImportError: the target cannot be imported.
            OverrideError: a word or an assignment names no parameter (with a did-you-mean) or does not fit.
        """
        import dataclasses

        from nemorun_core.cli.argv import Args
        from nemorun_core.cli.entrypoint import info_of
        from nemorun_core.cli.session import Session
        from nemorun_core.config.factories import import_dotted
        from nemorun_core.config.grammar import LiteralValue, Override, format_path, parse
        from nemorun_core.config.overrides import Applier

        target = _import_path(self._target) if isinstance(self._target, str) else self._target
        if isinstance(target, LazyModule):
            target = target.resolve()
        info, args = info_of(target), Args()
        named = self._factory
        if named and "." in named and "(" not in named and import_dotted(named) is not None:
            info = dataclasses.replace(info, default_factory=import_dotted(named))
        elif named:
            args.factory.append(named)
        cfg, _ = Session(target, info, registry=registry)._base(args)
        applier = Applier(registry)
        cfg = applier.apply_all(cfg, [parse(w) for w in self._words])
        for segments, value in self._assignments:
            if isinstance(value, LazyModule):
                value = value.resolve()
            path = format_path(segments)
            assignment = Override(f"{path}={value!r}", tuple(segments), "=", LiteralValue(value, repr(value)))
            cfg = applier.apply(cfg, assignment)
        return cfg
