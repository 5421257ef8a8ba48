"""Rendering of ``sbatch.sh.j2``. Pure: the same inputs give the same text (golden-tested)."""

from __future__ import annotations

import functools
import os
import shlex
from typing import Any


@functools.lru_cache(maxsize=1)
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.dirname(__file__)),
        autoescape=False,  # shell, not HTML: every user value goes through the `q` filter instead
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["q"] = lambda value: shlex.quote(str(value))
    # Text in a "# ..." line: a newline would end the comment and make the rest a command of the script.
    env.filters["comment"] = lambda value: str(value).replace("\r", "\\r").replace("\n", "\\n")
    return env.get_template("sbatch.sh.j2")


def render_sbatch(**context: Any) -> str:
    return _template().render(**context)
