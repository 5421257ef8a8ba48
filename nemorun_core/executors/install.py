"""Installing a code package once per content digest, written once for every backend.

Packaged code (``Package.digest``: the sha256 of the archive) is extracted into a directory named by its digest,
``<root>/<digest>``, and reused by every later job with the same code. The rules, the same wherever it happens:

* the directory itself is the marker: it exists only whole, because it is filled under a temporary name
  (:func:`staging_dir`, unique to the process and the moment, so concurrent installs of one digest never share one)
  and renamed into place in one step;
* when the rename finds the directory already there, another process installed the same content first: the
  temporary copy is removed and theirs is used;
* the archive, where it must be copied first, travels as ``<root>/<digest>.tar.gz`` (:func:`archive_path`).

Docker extracts on this machine (:func:`install_once`); Slurm extracts on the cluster through its tunnel, where
the same steps are one shell command (:func:`install_command`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from typing import Callable


def target_dir(root: str, digest: str) -> str:
    """Where the package of ``digest`` is installed under ``root``."""
    return f"{root.rstrip('/')}/{digest}"


def staging_dir(target: str) -> str:
    """A temporary name beside ``target`` for one install: its own to this process and moment."""
    return f"{target}.tmp.{os.getpid()}.{time.time_ns()}"


def archive_path(target: str) -> str:
    """Where the archive is copied before a remote install into ``target``."""
    return f"{target}.tar.gz"


def install_once(root: str, digest: str, fill: Callable[[str], object]) -> str:
    """Install into ``<root>/<digest>`` on this machine unless it is there; return that directory.

    ``fill(tmp)`` writes the content into the (not yet existing) directory ``tmp``; it is renamed into place
    after. Blocking. Raises whatever ``fill`` raises (the temporary copy is removed first).
    """
    target = target_dir(root, digest)
    if os.path.isdir(target):
        return target
    tmp = staging_dir(target)
    try:
        fill(tmp)
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(target):  # not a lost race: a real failure
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def install_command(target: str, tmp: str, fill: str) -> str:
    """The shell command of one remote install of ``target`` through ``tmp`` (see :func:`install_once`).

    Args:
        target: the install directory (:func:`target_dir`).
        tmp: its temporary name (:func:`staging_dir`).
        fill: the shell command that fills ``$tmp`` (it may refer to the directory as ``"$tmp"``).

    The files are private to the user (``umask 077``); ``mv -T`` fails when ``target`` is already there (another
    install won), and then the temporary copy goes.
    """
    q = shlex.quote
    return (f"umask 077; tmp={q(tmp)}; mkdir -p \"$tmp\" && {fill} "
            f"&& (mv -T \"$tmp\" {q(target)} 2>/dev/null || rm -rf \"$tmp\")")
