"""``run.Script``: a task that runs a script file or inline text instead of a Python function."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from typing import Optional

from nemorun_core.errors import ConfigError

_ENTRYPOINTS_BY_SUFFIX = {".py": "python", ".sh": "bash", ".bash": "bash"}


@dataclasses.dataclass
class Script:
    """Run a script file (``Script("train.py", args=[...])``) or inline text (``Script(inline="echo hi")``).

    Args:
        path: the script file. Relative paths are taken from ``cwd`` (or the executor's working directory).
        inline: script text to run instead of a file; written into the job directory.
        args: arguments passed to the script.
        env: environment variables for this task (on top of the executor's ``env_vars``).
        cwd: working directory of the task.
        entrypoint: the interpreter: ``"python"``, ``"bash"`` or ``"sh"``; guessed from the file suffix, bash for
            inline text.
        m: run ``path`` as a module (``python -m path``).
    """

    path: str = ""
    inline: str = ""
    args: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    cwd: Optional[str] = None
    entrypoint: str = ""
    m: bool = False

    def __post_init__(self) -> None:
        if bool(self.path) == bool(self.inline):
            raise ConfigError(
                "give exactly one of a script path or inline text: Script('train.py') or Script(inline='echo hi')",
                path="Script",
            )
        if isinstance(self.args, str):
            raise ConfigError(f"args must be a list of strings, got the string {self.args!r}; "
                              f"write args={shlex.split(self.args)!r}", path="Script.args")
        self.args = [str(a) for a in self.args]
        for k, v in self.env.items():
            if not isinstance(k, str) or not k.replace("_", "a").isalnum() or k[:1].isdigit():
                raise ConfigError(f"{k!r} is not a valid environment variable name", path="Script.env")
            if not isinstance(v, str):
                raise ConfigError(f"value of {k!r} must be a string, got {v!r}; write {k}={str(v)!r}", path="Script.env")
        if self.entrypoint and self.entrypoint not in ("python", "bash", "sh"):
            raise ConfigError(f"entrypoint must be 'python', 'bash' or 'sh', got {self.entrypoint!r}",
                              path="Script.entrypoint")

    @property
    def interpreter(self) -> str:
        if self.entrypoint:
            return self.entrypoint
        if self.m:
            return "python"
        if self.inline:
            return "bash"
        return _ENTRYPOINTS_BY_SUFFIX.get(os.path.splitext(self.path)[1], "bash")

    def command(self, inline_file: str, python: str) -> list[str]:
        """The argv that runs this script; ``inline_file`` is where inline text was written.

        ``python`` is what stands for the Python interpreter (the experiment layer passes the executors' token,
        ``nemorun_core.executors.base.PYTHON``, which each executor resolves; this layer cannot import it).
        The ``"python"`` compared here is the entrypoint's name as the user writes it, not that token."""
        interp = python if self.interpreter == "python" else self.interpreter
        if self.m:
            return [interp, "-m", self.path, *self.args]
        return [interp, inline_file if self.inline else self.path, *self.args]

    def get_name(self) -> str:
        """A short name for the script (NeMo Run's ``get_name``): the file's base name, or the first ten characters of
        inline text with every run of other characters than letters and digits made ``_``."""
        if self.inline:
            return re.sub(r"[^0-9a-zA-Z]+", "_", self.inline.strip()[:10])
        return os.path.basename(self.path)

    def to_command(self, with_entrypoint: bool = False, filename: Optional[str] = None,
                   is_local: bool = False) -> list[str]:
        """The script as an argument list (NeMo Run's ``to_command``), for ``subprocess`` or ``shlex.join``.

        A file: ``[path, *args]`` (``["-m", path, *args]`` with ``m=True``). Inline text: ``["-c", text]``, or, with
        ``filename``, the text is written there (with a ``#!/usr/bin/env bash`` line) and the command is
        ``[filename]``. ``with_entrypoint`` puts the interpreter first (``python``, ``bash`` or ``sh``, as
        :attr:`interpreter` chooses). ``is_local`` is accepted for NeMo Run code and changes nothing: the
        executors place the job's files themselves, so the file is named where it was written.

        Unlike NeMo Run, inline text is one argument, not pre-quoted for a shell line: ``shlex.join`` quotes it.
        """
        del is_local
        if self.inline:
            if filename:
                os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
                with open(filename, "w") as f:
                    f.write("#!/usr/bin/env bash\n" + self.inline)
                cmd = [filename]
            else:
                cmd = ["-c", self.inline]
        else:
            cmd = ["-m", self.path, *self.args] if self.m else [self.path, *self.args]
        return [self.interpreter, *cmd] if with_entrypoint else cmd

    def check_exists(self, base: str | None) -> None:
        """Fail before submission when a local script file is missing."""
        if self.inline or self.m:
            return
        full = self.path if os.path.isabs(self.path) else os.path.join(base or os.getcwd(), self.path)
        if not os.path.isfile(full):
            raise ConfigError(
                f"script file {self.path!r} does not exist (looked in {os.path.dirname(full) or '.'}); "
                "check the path or set cwd=",
                path="Script.path",
            )
