"""Where nemorun keeps its files on this machine: ``$NEMORUN_HOME``, by default ``~/.nemorun``.

A bottom module (it imports only ``os``) so that executors, the experiment store and both orchestrator packages can
all ask for the home without importing the store, and so that nothing below the experiment layer imports upward.
"""

from __future__ import annotations

import os


def default_home() -> str:
    """``$NEMORUN_HOME`` or ``~/.nemorun``, read at call time (never cached at import)."""
    return os.path.abspath(os.path.expanduser(os.environ.get("NEMORUN_HOME") or "~/.nemorun"))
