"""Shell completion: ``python train.py --completion bash|zsh|fish`` prints a script; the script calls back
``python train.py --complete CWORD WORDS...``, which prints one candidate per line.

Candidates: options after ``-``; parameter paths (``model.hidden_size=``) for a new word; after ``PATH=``, the
factories offered for that parameter, ``true``/``false`` for bools, enum members and literal choices; file names
after ``@`` and after options that take a file.

Bash splits words at ``=``, ``:`` and ``@`` (its ``COMP_WORDBREAKS``) and replaces only the part after the last
break, so its script rebuilds whole words from ``COMP_LINE`` and passes ``COMP_WORDBREAKS`` along; the candidates
are then trimmed here to what bash will replace.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any, Sequence

SHELLS = ("bash", "zsh", "fish")
_CONFIG_SUFFIXES = (".yaml", ".yml", ".toml", ".json")
_FILE_FLAGS = frozenset({"--yaml", "--to-yaml", "--to-toml", "--to-json"})


def _fn_name(prog: str) -> str:
    return "_nemorun_complete_" + re.sub(r"\W", "_", os.path.basename(prog))


def script(shell: str, command: Sequence[str], prog: str) -> str:
    """The completion script for ``shell``, completing ``prog`` by running ``command --complete ...``."""
    from nemorun_core.cli.argv import UsageError

    if shell not in SHELLS:
        raise UsageError(f"unknown shell {shell!r} for --completion", f"use one of {', '.join(SHELLS)}")
    cmd = shlex.join(command)
    fn = _fn_name(prog)
    name = os.path.basename(prog)
    names = " ".join(dict.fromkeys([shlex.quote(name), shlex.quote("./" + name)]))
    if shell == "bash":
        return f"""# bash completion for {name}: eval "$({cmd} --completion bash)"
{fn}() {{
    local -a words
    local cword
    if [[ -n "${{COMP_LINE-}}" ]]; then
        # Whole words from the line: COMP_WORDS is split at '=', ':' and '@' as well as at spaces.
        local line="${{COMP_LINE:0:${{COMP_POINT:-${{#COMP_LINE}}}}}}"
        read -ra words <<< "$line"
        if [[ ${{#words[@]}} -eq 0 || "$line" == *[[:space:]] ]]; then words+=(""); fi
        cword=$(( ${{#words[@]}} - 1 ))
    else
        words=("${{COMP_WORDS[@]}}")
        cword=${{COMP_CWORD:-$(( ${{#words[@]}} - 1 ))}}
    fi
    mapfile -t COMPREPLY < <(NEMORUN_COMP_WORDBREAKS="${{COMP_WORDBREAKS-}}" {cmd} --complete "$cword" "${{words[@]}}" 2>/dev/null)
}}
complete -o nospace -F {fn} {names}
"""
    if shell == "zsh":
        return f"""#compdef {name}
# zsh completion for {name}: eval "$({cmd} --completion zsh)"
{fn}() {{
    local -a candidates
    candidates=("${{(@f)$({cmd} --complete $((CURRENT - 1)) "${{words[@]}}" 2>/dev/null)}}")
    compadd -S '' -- "${{candidates[@]}}"
}}
compdef {fn} {names}
"""
    return f"""# fish completion for {name}: {cmd} --completion fish | source
function {fn}
    set -l words (commandline -opc) (commandline -ct)
    {cmd} --complete (math (count $words) - 1) $words 2>/dev/null
end
complete -c {shlex.quote(name)} -f -a '({fn})'
"""


def candidates(session: Any, cword: int, words: Sequence[str]) -> list[str]:
    """Completions for word ``cword`` of ``words`` (the whole command line, program words included)."""
    start = _first_arg(words, session)
    i = cword - start
    if i < 0:
        return []
    args = list(words[start:])
    cur = args[i] if i < len(args) else ""
    prev = args[i - 1] if i >= 1 else ""
    try:
        found = _raw(session, cur, prev)
    except Exception:  # completion must never print a traceback into the user's prompt
        found = []
    return _trim(cur, sorted(dict.fromkeys(found)), os.environ.get("NEMORUN_COMP_WORDBREAKS"))


def _first_arg(words: Sequence[str], session: Any) -> int:
    """Index of the first argument: after the word naming the script (``python train.py ...``), else after argv[0]."""
    names = {os.path.basename(session.script)} if session.script else set()
    names.add(os.path.basename(session.prog.split()[-1]))
    for idx, word in enumerate(words):
        if os.path.basename(word) in names:
            return idx + 1
    return 1


def _trim(cur: str, found: list[str], wordbreaks: str | None) -> list[str]:
    if not wordbreaks:
        return found
    breaks = [c for c in wordbreaks if not c.isspace() and c not in "\"'"]
    cut = max((cur.rfind(c) for c in breaks), default=-1)
    if cut < 0:
        return found
    prefix = cur[: cut + 1]
    return [c[len(prefix):] for c in found if c.startswith(prefix)]


def _raw(session: Any, cur: str, prev: str) -> list[str]:
    from nemorun_core.cli.help import OPTIONS

    if prev in ("--factory", "-f"):
        if cur.startswith("@"):
            return ["@" + f for f in _files(cur[1:])]
        return [f.name for f in session.registry.for_task(session.target) if f.name.startswith(cur)]
    if prev in _FILE_FLAGS:
        return _files(cur, config_only=False)
    if prev == "--executor":
        return [e for e in [*executor_names(), "none"] if e.startswith(cur)]
    if prev == "--completion":
        return [s for s in SHELLS if s.startswith(cur)]
    if prev == "--name":
        return []
    if cur.startswith("-"):
        flags = [f for o in OPTIONS for f in o[0] if f.startswith("--")]
        if not session.launches:
            from nemorun_core.cli.argv import LAUNCH_FLAGS

            flags = [f for f in flags if f not in LAUNCH_FLAGS]
        return [f for f in flags if f.startswith(cur)]
    if "=" in cur:
        lhs, _, value = cur.partition("=")
        return [f"{lhs}={v}" for v in _values(session, lhs.rstrip("+-*/"), value)]
    return [p for p in _paths(session) if p.startswith(cur)]


def executor_names() -> list[str]:
    """The backends ``--executor`` accepts, from the registry (built-ins and entry points; aliases are accepted
    but not offered). Completion must not fail: a broken third-party entry point leaves the built-ins offered."""
    from nemorun_core.executors import registry

    try:
        return registry.default().names()
    except registry.RegistryError:
        return [entry.name for entry in registry.BUILTINS]


def _paths(session: Any) -> list[str]:
    from nemorun_core.cli.help import rows
    from nemorun_core.cli.overrides import parameters
    from nemorun_core.cli.session import default_config

    cfg = default_config(session.target, session.registry)
    out = [f"{r.path}=" for r in rows(session.target, cfg)]
    if session.launches and "executor" not in parameters(session.target):
        out.append("executor=")
    return out


def _values(session: Any, path: str, value: str) -> list[str]:
    import enum
    import typing

    from nemorun_core.cli import grammar
    from nemorun_core.cli.overrides import dataclass_of, parameters

    if value.startswith("@"):
        return ["@" + f for f in _files(value[1:])]
    if path == "executor" and "executor" not in parameters(session.target):
        return [e for e in [*executor_names(), "none"] if e.startswith(value)]
    owner, annotation, name = session.target, None, None
    for seg in path.split("."):
        if annotation is not None:
            owner = dataclass_of(annotation)
            if owner is None:
                return []
        name = seg
        annotation = parameters(owner).get(seg, (None, None))[0]
    found = [f.name for f in session.registry.for_parameter(owner, name, annotation)
             if dataclass_of(annotation) is not None or f.target is not None]
    for m in grammar.union_members(annotation):
        if m is bool:
            found += ["true", "false"]
        elif m is None or m is type(None):
            found.append("None")
        elif isinstance(m, type) and issubclass(m, enum.Enum):
            found += list(m.__members__)
        elif typing.get_origin(m) is typing.Literal:
            found += [str(a) for a in typing.get_args(m)]
    return [v for v in found if v.startswith(value)]


def _files(prefix: str, *, config_only: bool = True) -> list[str]:
    """Paths starting with ``prefix``: directories (with ``/``) and, when ``config_only``, config files only."""
    head, tail = os.path.split(prefix)
    directory = os.path.expanduser(head) or "."
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for entry in entries:
        if not entry.startswith(tail) or (entry.startswith(".") and not tail.startswith(".")):
            continue
        full = os.path.join(directory, entry)
        shown = os.path.join(head, entry) if head else entry
        if os.path.isdir(full):
            out.append(shown + "/")
        elif not config_only or entry.lower().endswith(_CONFIG_SUFFIXES):
            out.append(shown)
    return out
