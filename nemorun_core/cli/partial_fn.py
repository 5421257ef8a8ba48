"""``@run.partial``: mark a function as a task that can be configured, bound to an executor, and run from a CLI.

    @run.partial
    def train_model(model: ModelConfig, seed: int = 42): ...

    train_model(model, seed=1)                          # a plain call, as if undecorated
    train_model.partial(model=run.Config(ModelConfig))  # run.Partial(train_model, ...)
    train_model.with_executor(run.LocalExecutor())(model, seed=1)   # runs as a task on that executor
    if __name__ == "__main__":
        train_model.main()                              # python train.py model.hidden_size=1024

The wrapper carries ``__nemorun_wrapped__``, so configuring it (``run.Config(train_model)``) configures the original
function, and a config serialized by name resolves back to it through the module attribute.

It sits at the top of the core, beside the command line, because a decorated function does the two things above
the config layer: it runs as a task (``run.run``, the experiment layer) and from a command line (``run.cli.main``).
``nemorun_core.config.partial_fn`` re-exports it for existing imports and pickles.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any, Callable, Optional, Sequence

from nemorun_core.config.buildable import Partial


class PartialFunction:
    """A function decorated with ``@run.partial``, optionally bound to an executor.

    Attributes:
        executor: the executor that calling the wrapper runs on, or None for a plain call.
    """

    def __init__(self, fn: Callable[..., Any], executor: Any = None):
        fn = getattr(fn, "__nemorun_wrapped__", fn)
        if not callable(fn):
            raise TypeError(f"@run.partial decorates a function, got {fn!r}")
        functools.update_wrapper(self, fn)  # __name__, __qualname__, __module__, __doc__, __wrapped__
        self.__nemorun_wrapped__ = fn
        self.__signature__ = inspect.signature(fn)
        self.executor = executor

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function; with a bound executor, run it there as a task and return the task's result.

        The executor path blocks until the task ends (``run.run`` without ``detach``).
        """
        fn = self.__nemorun_wrapped__
        if self.executor is None:
            return fn(*args, **kwargs)
        # Imported here: the experiment layer pulls in executors and the store, which a plain call never needs.
        from nemorun_core.experiment.launch import run

        return run(Partial(fn, *args, **kwargs), executor=self.executor, name=self.__name__)

    def partial(self, *args: Any, **kwargs: Any) -> Partial:
        """``run.Partial`` of the function with these arguments."""
        return Partial(self.__nemorun_wrapped__, *args, **kwargs)

    def with_executor(self, executor: Any) -> "PartialFunction":
        """A copy whose calls run on ``executor``; this wrapper is unchanged."""
        return PartialFunction(self.__nemorun_wrapped__, executor)

    def main(self, argv: Optional[Sequence[str]] = None) -> Any:
        """Run the function from the command line: ``python train.py model.hidden_size=1024``.

        Args:
            argv: the arguments, without the program name; ``sys.argv[1:]`` when None.
        """
        # Through the package, not entrypoint: ``run.cli.main`` is the public name this method stands for.
        from nemorun_core.cli import main

        return main(self, argv)

    def __reduce__(self) -> Any:
        # By name when the module attribute is this wrapper (or the wrapper this one was bound from), so plain
        # pickle works and the function is not copied by value. ``__main__`` is never by name: the process that
        # loads the pickle (the runner) has a different ``__main__``; there the function goes by value.
        named: Any = sys.modules.get(self.__module__) if self.__module__ != "__main__" else None
        for part in self.__qualname__.split("."):
            named = getattr(named, part, None)
        if named is self:
            return self.__qualname__
        if isinstance(named, PartialFunction) and named.__nemorun_wrapped__ is self.__nemorun_wrapped__:
            return (_rebound, (named, self.executor))
        return (PartialFunction, (self.__nemorun_wrapped__, self.executor))

    def __repr__(self) -> str:
        on = f" on {type(self.executor).__name__}" if self.executor is not None else ""
        return f"<run.partial {self.__module__}.{self.__qualname__}{on}>"


def _rebound(wrapper: PartialFunction, executor: Any) -> PartialFunction:
    return wrapper.with_executor(executor)


def partial(fn: Optional[Callable[..., Any]] = None, *, executor: Any = None) -> Any:
    """Decorator: ``@run.partial`` or ``@run.partial(executor=executor)``. See :class:`PartialFunction`.

    Args:
        fn: the function (when used without parentheses).
        executor: bind calls of the function to this executor.

    Returns:
        A :class:`PartialFunction`, or a decorator making one when called with options only.
    """
    if fn is not None:
        return PartialFunction(fn, executor)
    return lambda func: PartialFunction(func, executor)
