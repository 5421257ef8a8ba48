"""Constructor arguments checked before ``__init__`` runs, for every class that opts in (executors, tunnels'
settings, packagers): a misspelled keyword is an :class:`UnknownArgumentError` with did-you-mean, a missing one a
:class:`MissingArgumentError` that shows an example. Used through the :class:`CheckedInit` metaclass.

A bottom-layer module (it imports only ``errors``), so every layer that defines user-facing classes can share it.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping

from nemorun_core.errors import ConfigError, UnknownParameterError, did_you_mean


class UnknownArgumentError(UnknownParameterError, TypeError):
    """A keyword an executor (or tunnel) does not take: a ``ConfigError`` with a did-you-mean, and still the
    ``TypeError`` Python raises for an unexpected argument."""

    def __init__(self, name: str, target: str, valid: list[str]):
        self.name, self.target, self.valid = name, target, list(valid)
        hint = did_you_mean(name, valid) or (f"; it takes {', '.join(valid)}" if valid else "; it takes none")
        ConfigError.__init__(self, f"{target} got an unexpected argument {name!r}{hint}")


class MissingArgumentError(ConfigError, TypeError):
    """A required setting left out; ``names`` are the missing parameters."""

    def __init__(self, message: str, names: list[str], *, path: str | None = None):
        self.names = names
        super().__init__(message, path=path)


_SIGNATURES: dict[type, Any] = {}


def _init_signature(cls: type) -> Any:
    sig = _SIGNATURES.get(cls)
    if sig is None:
        import inspect

        sig = inspect.signature(cls.__init__)
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])  # drop self
        _SIGNATURES[cls] = sig
    return sig


def check_init_args(cls: type, args: tuple, kwargs: Mapping[str, Any]) -> None:
    """Refuse a misspelled or missing constructor argument of ``cls`` with an error that says the fix.

    Called by :class:`CheckedInit` (the metaclass of ``Executor`` and ``Packager``) so it covers every executor
    and packager class, third-party ones included. Only unknown
    keywords and missing required parameters are reported here; anything else (too many positional arguments)
    is left to ``__init__``, which raises Python's own ``TypeError``.

    ``cls.arg_examples`` (optional, ``{"container_image": "'python:3.11-slim'"}``) gives the example value the
    message shows for a missing parameter.

    Raises:
        UnknownArgumentError: ``LocalExecutor got an unexpected argument 'env'; did you mean 'env_vars'?``.
        MissingArgumentError: ``DockerExecutor.container_image: is required: pass it, e.g.
            DockerExecutor(container_image='python:3.11-slim')``.
    """
    import inspect

    try:
        sig = _init_signature(cls)
    except (TypeError, ValueError):  # no introspectable signature: leave it to __init__
        return
    params = sig.parameters
    kinds = {p.kind for p in params.values()}
    name = cls.__name__
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        accepted = [n for n, p in params.items()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not n.startswith("_")]
        for key in kwargs:
            if key not in params or params[key].kind is inspect.Parameter.POSITIONAL_ONLY:
                raise UnknownArgumentError(key, name, accepted)
    positional = [n for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    given = set(positional[:len(args)]) | set(kwargs)
    missing = [n for n, p in params.items()
               if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in given]
    if missing:
        examples = getattr(cls, "arg_examples", None) or {}
        shown = ", ".join(f"{n}={examples.get(n, '...')}" for n in missing)
        if len(missing) == 1:
            raise MissingArgumentError(f"is required: pass it, e.g. {name}({shown})", missing,
                                       path=f"{name}.{missing[0]}")
        raise MissingArgumentError(f"needs {', '.join(missing)}: pass them, e.g. {name}({shown})", missing,
                                   path=name)


class CheckedInit(abc.ABCMeta):
    """The metaclass of ``Executor`` (and, through ``PackagerMeta``, of ``Packager``): every construction
    (``cls(...)``, not a copy or an unpickle) first runs :func:`check_init_args`."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = type(cls).canonical_args(cls, args, kwargs)
        check_init_args(cls, args, kwargs)
        return super().__call__(*args, **kwargs)

    def canonical_args(cls, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        """The arguments as ``__init__`` takes them; a metaclass that accepts other spellings converts them here
        (``PackagerMeta``: NeMo Run's names). Unchanged by default."""
        return args, kwargs

    def shown_signature(cls) -> Any:
        """The signature ``inspect.signature(cls)`` shows: ``__init__``'s, without ``self``."""
        return _init_signature(cls)

    @property
    def __signature__(cls) -> Any:
        # inspect.signature(cls) would otherwise show __call__'s (*args, **kwargs): the config layer and the CLI
        # read the constructor's parameters from it.
        try:
            return type(cls).shown_signature(cls)
        except (TypeError, ValueError) as e:
            raise AttributeError("__signature__") from e
