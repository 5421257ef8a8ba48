"""Split an entrypoint's argv into flags and ``PATH=VALUE`` overrides.

Hand-written rather than argparse: overrides and flags interleave freely, a word that starts with ``-`` is always a
flag (a path never does), an unknown flag gets a "did you mean", and ``--complete`` must take the rest of the line
verbatim whatever it contains.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from nemorun_core.errors import NemorunError, did_you_mean


class UsageError(NemorunError):
    """The command line itself is wrong (an unknown flag, a flag without its value). Exit status 2."""

    def __init__(self, message: str, hint: str = ""):
        self.hint = hint
        super().__init__(message + (f"\n  hint: {hint}" if hint else ""))


# flag -> (attribute, takes a value)
_FLAGS: dict[str, tuple[str, bool | None]] = {  # None: a --no-X flag
    "--factory": ("factory", True), "-f": ("factory", True),
    "--yaml": ("yaml", True),
    "--executor": ("executor", True),
    "--name": ("name", True), "-n": ("name", True),
    "--detach": ("detach", False),
    "--dryrun": ("dryrun", False), "--dry-run": ("dryrun", False),
    "--to-yaml": ("to_yaml", True),
    "--to-toml": ("to_toml", True),
    "--to-json": ("to_json", True),
    "--yes": ("yes", False), "-y": ("yes", False), "--no-confirm": ("yes", False),
    "--direct": ("direct", False), "--no-direct": ("direct", None),
    "--tail-logs": ("tail_logs", False), "--no-tail-logs": ("tail_logs", None),
    "--verbose": ("verbose", False), "-v": ("verbose", False),
    "--lazy": ("lazy", False),
    "--help": ("help", False), "-h": ("help", False),
    "--completion": ("completion", True),
}
# Flags that only make sense when the CLI launches the task itself (not for ``@run.cli_command``).
LAUNCH_FLAGS = frozenset({"--executor", "--name", "-n", "--detach", "--direct", "--no-direct", "--tail-logs",
                          "--no-tail-logs"})
_BOOL_ATTRS = frozenset({"yes", "detach", "dryrun", "direct", "tail_logs", "verbose", "lazy"})
# ``run.cli.main(fn, cmd_defaults={...})`` keys: NeMo Run's option names, mapped to the attributes they set.
CMD_DEFAULTS = {"skip_confirmation": "yes", "yes": "yes", "no_confirm": "yes", "detach": "detach", "dryrun": "dryrun",
                "direct": "direct", "tail_logs": "tail_logs", "name": "name", "executor": "executor",
                "verbose": "verbose", "lazy": "lazy", "yaml": "yaml", "to_yaml": "to_yaml", "to_toml": "to_toml",
                "to_json": "to_json"}


@dataclasses.dataclass
class Args:
    factory: list[str] = dataclasses.field(default_factory=list)
    yaml: str | None = None
    executor: str | None = None
    name: str | None = None
    detach: bool = False
    dryrun: bool = False
    to_yaml: str | None = None
    to_toml: str | None = None
    to_json: str | None = None
    yes: bool = False
    direct: bool = False
    tail_logs: bool | None = None  # None: the launcher's own default (run.run tails the logs)
    verbose: bool = False
    lazy: bool = False
    help: bool = False
    completion: str | None = None
    complete: tuple[int, list[str]] | None = None
    overrides: list[str] = dataclasses.field(default_factory=list)

    @property
    def export(self) -> tuple[str, str] | None:
        """``(format, destination)`` of the first ``--to-*`` flag given, or None."""
        for fmt in ("yaml", "toml", "json"):
            dest = getattr(self, f"to_{fmt}")
            if dest is not None:
                return fmt, dest
        return None


def defaults_from(cmd_defaults: dict[str, object] | None) -> Args:
    """``Args`` holding ``run.cli.main(..., cmd_defaults=)``; the command line then overrides them.

    Raises:
        UsageError: an unknown key (with a did-you-mean) or a value of the wrong kind.
    """
    args = Args()
    for key, value in (cmd_defaults or {}).items():
        attr = CMD_DEFAULTS.get(key)
        if attr is None:
            hint = did_you_mean(key, list(CMD_DEFAULTS)).lstrip("; ") or f"keys: {', '.join(CMD_DEFAULTS)}"
            raise UsageError(f"cmd_defaults has no option {key!r}", hint)
        flag = attr in _BOOL_ATTRS
        if not isinstance(value, bool if flag else (str, type(None))):
            raise UsageError(f"cmd_defaults[{key!r}] must be {'True or False' if flag else 'a string'}, got "
                             f"{value!r}", f"for example cmd_defaults={{{key!r}: {_example_default(attr)}}}")
        setattr(args, attr, value)
    return args


def _example_default(attr: str) -> str:
    return "True" if attr in _BOOL_ATTRS else repr(_example(attr))


def parse_argv(argv: Sequence[str], *, launch_flags: bool = True, defaults: Args | None = None) -> Args:
    """Parse ``argv`` (without the program name), starting from ``defaults`` (see :func:`defaults_from`).

    Raises:
        UsageError: an unknown flag, a flag missing its value, or a malformed ``--complete``.
    """
    flags = {k: v for k, v in _FLAGS.items() if launch_flags or k not in LAUNCH_FLAGS}
    args = dataclasses.replace(defaults, factory=list(defaults.factory), overrides=[]) if defaults else Args()
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--complete":
            rest = list(argv[i:])
            try:
                args.complete = (int(rest[0]), rest[1:])
            except (IndexError, ValueError):
                raise UsageError("--complete needs CWORD WORDS...", "this flag is used by the completion script") from None
            return args
        if word == "--":
            args.overrides.extend(argv[i:])
            break
        if not word.startswith("-") or word == "-":
            args.overrides.append(word)
            continue
        name, eq, inline = word.partition("=")
        if name not in flags:
            hint = did_you_mean(name, list(flags)).lstrip("; ")
            if name in LAUNCH_FLAGS:
                hint = "this command launches nothing itself, so it takes no launch options"
            raise UsageError(f"unknown option {name!r}", hint or "see --help")
        attr, takes_value = flags[name]
        if takes_value:
            if eq:
                value = inline
            elif i < len(argv):
                value, i = argv[i], i + 1
            else:
                raise UsageError(f"option {name} needs a value", f"for example {name} {_example(attr)}")
            if attr == "factory":
                args.factory.append(value)
            else:
                setattr(args, attr, value)
        else:
            if eq:
                raise UsageError(f"option {name} takes no value", f"write {name} alone")
            setattr(args, attr, takes_value is not None)  # ``--no-X`` (None) turns X off
    return args


def _example(attr: str) -> str:
    return {"factory": "my_factory", "yaml": "config.yaml", "executor": "local", "name": "my-run",
            "to_yaml": "config.yaml", "to_toml": "config.toml", "to_json": "config.json",
            "completion": "bash"}.get(attr, "VALUE")
