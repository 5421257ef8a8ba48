"""Where nemorun keeps its files on this machine: ``$NEMORUN_HOME``, by default ``~/.nemorun``.

A bottom module (it imports only ``os``) so that executors, the experiment store and both orchestrator packages can
all ask for the home without importing the store, and so that nothing below the experiment layer imports upward.

The environment variable is the one source of truth: :func:`set_nemorun_home` sets it, so the experiments,
executors and job processes started afterwards (children inherit the environment) all use the new home, and
nothing caches it.
"""

from __future__ import annotations

import os


def default_home() -> str:
    """``$NEMORUN_HOME`` or ``~/.nemorun``, read at call time (never cached at import)."""
    return os.path.abspath(os.path.expanduser(os.environ.get("NEMORUN_HOME") or "~/.nemorun"))


def get_nemorun_home() -> str:
    """The nemorun home in use now (NeMo Run's name for :func:`default_home`): ``$NEMORUN_HOME`` or ``~/.nemorun``,
    as an absolute path."""
    return default_home()


def set_nemorun_home(path: str | os.PathLike[str]) -> None:
    """Use ``path`` as the nemorun home from now on, in this process and the processes it starts.

    Sets ``$NEMORUN_HOME`` (``~`` expanded, made absolute); experiments and jobs already started keep the home
    they were started with. The directory is created when something is first written there.

    Raises:
        ValueError: ``path`` is empty or not a path.
    """
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"set_nemorun_home needs a directory path, got {path!r}; "
                         "for example run.set_nemorun_home('~/.nemorun')")
    os.environ["NEMORUN_HOME"] = os.path.abspath(os.path.expanduser(path))
