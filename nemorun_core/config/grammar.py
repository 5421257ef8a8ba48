"""The override grammar: ``PATH OP VALUE`` arguments of an entrypoint, parsed and coerced without side effects.

An override is one command-line word::

    model.hidden_size=1024        set a value (a Python literal, or a bare string when it is not one)
    layers[0].size*=2             arithmetic on the current value: += -= *= /=
    data_path=/path/to/data       a bare string: anything that is not a Python literal
    model=@configs/model.yaml     load a value from a .yaml/.yml/.toml/.json file
    model=my_model(hidden_size=3) call a registered factory with literal keyword arguments
    model=my_model                call a registered factory with its defaults
    model=my_model(1024)          ... with positional arguments too; model=pkg.module.fn(...) by dotted path
    models=[my_model(), big()]    a list (or tuple) whose items are factory calls and literals
    flags|={'a': 1}               merge into the current dict

Coercion to the parameter's annotation is done only where the intent is unambiguous, and never silently changes
what the user wrote into something else:

* ``true/false/yes/no/on/off`` (and ``1``/``0``) become bools and ``null/none`` becomes None, but only for
  parameters that accept a bool (resp. None); for a ``str`` (resp. ``int``) parameter they stay what they were.
* A number typed for a ``str`` parameter is kept as the text that was typed (``version=1.10`` gives ``"1.10"``).
* An int typed for a ``float`` parameter becomes a float; a list for a ``tuple`` parameter becomes a tuple; a string
  for a ``Path`` or an ``Enum`` parameter becomes a Path or the member of that name.
* Quotes mean "this is a string": ``x="'3'"`` (quotes that survived the shell) is the string ``'3'`` and is
  refused for an ``int`` parameter, like any other string (``expected int, got '3'``).
* ``/=`` on an ``int`` parameter keeps an int when the result is whole and fails otherwise.

This module is pure and imports only the standard library (plus ``nemorun_core.errors`` and the annotation
checker), so parsing is cheap and every rule is unit-tested on its own.

It lives under ``config/`` because config-level code (overrides, orchestrators applying a task's overrides) uses it;
``nemorun_core.cli.grammar`` re-exports it for the command line.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import math
import pathlib
import re
import types
import typing
from typing import Any, Union

from nemorun_core.errors import OverrideError

OPS = ("=", "+=", "-=", "*=", "/=", "|=")
TRUE_WORDS = frozenset({"true", "yes", "on"})
FALSE_WORDS = frozenset({"false", "no", "off"})
NONE_WORDS = frozenset({"none", "null"})

_NAME = r"[A-Za-z_]\w*"
_SEGMENT = re.compile(rf"({_NAME})((?:\[-?\d+\])*)")
_INDEX = re.compile(r"\[(-?\d+)\]")
_CALL = re.compile(r"([A-Za-z_][\w.]*)\((.*)\)", re.DOTALL)
_IDENT = re.compile(r"[A-Za-z_][\w.]*")

Segment = Union[str, int]


# -- parsed values ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LiteralValue:
    """A Python literal (``ast.literal_eval``); ``raw`` is the text as typed, kept for ``str`` parameters."""

    value: Any
    raw: str


@dataclasses.dataclass(frozen=True)
class BareString:
    """Text that is not a Python literal: a path, a word, or the name of a factory."""

    text: str

    @property
    def is_identifier(self) -> bool:
        return bool(_IDENT.fullmatch(self.text))


@dataclasses.dataclass(frozen=True)
class FileRef:
    """``@file.yaml``: a value loaded from a config file."""

    path: str


@dataclasses.dataclass(frozen=True)
class FactoryCall:
    """``name(a, k=v, ...)``: a registered factory (or a dotted path) called with literal arguments."""

    name: str
    kwargs: dict[str, Any]
    args: tuple[Any, ...] = ()


@dataclasses.dataclass(frozen=True)
class ValueList:
    """``[my_model(), big(hidden=2), None]``: a list (``kind`` "list") or tuple whose items include factory calls."""

    items: tuple[Any, ...]
    kind: str = "list"


Value = Union[LiteralValue, BareString, FileRef, FactoryCall, ValueList]


@dataclasses.dataclass(frozen=True)
class Override:
    """One parsed override: ``text`` as given, ``path`` segments (names and list indices), ``op`` and ``value``."""

    text: str
    path: tuple[Segment, ...]
    op: str
    value: Value

    @property
    def dotted(self) -> str:
        return format_path(self.path)


def error(text: str, path: str, problem: str, hint: str) -> OverrideError:
    """An OverrideError that names the path, the problem, the override as typed and how to fix it."""
    err = OverrideError(f"{problem} (in override {text!r})\n  hint: {hint}", path=path or None)
    err.override = text  # type: ignore[attr-defined]
    err.hint = hint  # type: ignore[attr-defined]
    return err


def a_type(value: Any) -> str:
    """``"an int"``, ``"a str"``: the type of ``value`` with its article, for messages."""
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def format_path(segments: typing.Sequence[Segment]) -> str:
    out = ""
    for seg in segments:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}" if out else seg
    return out


# -- parsing ---------------------------------------------------------------------------------------------------------
def parse(text: str) -> Override:
    """Parse one ``PATH OP VALUE`` word. Raises OverrideError for malformed input; applies nothing."""
    eq = text.find("=")
    if eq < 0:
        raise error(text, "", f"{text!r} is not an override: there is no '='",
                    "write PATH=VALUE, for example model.hidden_size=1024 (flags start with --)")
    lhs, raw = text[:eq], text[eq + 1:]
    op = "="
    if lhs and lhs[-1] in "+-*/|":
        op, lhs = lhs[-1] + "=", lhs[:-1]
    path = parse_path(lhs, text)
    value = parse_value(raw, text, format_path(path))
    if op != "=" and not isinstance(value, (LiteralValue, BareString)) and not (
            op == "+=" and isinstance(value, ValueList)):
        raise error(text, format_path(path), f"{op} needs a literal operand, got {raw!r}",
                    f"use a number or a string, for example {format_path(path)}{op}2")
    return Override(text, path, op, value)


def parse_path(lhs: str, text: str) -> tuple[Segment, ...]:
    """``model.layers[0].size`` -> ``("model", "layers", 0, "size")``."""
    if not lhs.strip():
        raise error(text, "", "the path before '=' is empty",
                    "write PATH=VALUE, for example model.hidden_size=1024")
    segments: list[Segment] = []
    for part in lhs.split("."):
        if not part:
            raise error(text, lhs, f"the path {lhs!r} has an empty name (a leading, trailing or doubled '.')",
                        "separate names with single dots, for example model.hidden_size")
        m = _SEGMENT.fullmatch(part)
        if not m:
            raise error(text, lhs, f"{part!r} is not a valid name in the path {lhs!r}",
                        "names are letters, digits and '_' (not starting with a digit), with optional [index]")
        segments.append(m.group(1))
        segments.extend(int(i) for i in _INDEX.findall(m.group(2)))
    return tuple(segments)


def parse_value(raw: str, text: str = "", path: str = "") -> Value:
    """Classify the text after the operator. See the module docstring for the rules."""
    s = raw.strip()
    if s.startswith("@"):
        if not s[1:]:
            raise error(text, path, "'@' must be followed by a file name",
                        f"write {path or 'key'}=@config.yaml (or .toml, .json)")
        return FileRef(s[1:])
    call = _CALL.fullmatch(s)
    if call:
        args, kwargs = _parse_call(call.group(1), call.group(2), text, path)
        return FactoryCall(call.group(1), kwargs, args)
    try:
        return LiteralValue(ast.literal_eval(s), s)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    items = _value_list(s, text, path) if s[:1] in "[(" else None
    if items is not None:
        return items
    if s and (s[0] in "[{(\"'" or s[-1] in "]})\"'"):
        raise error(text, path, f"{raw!r} is not a valid Python literal (unbalanced brackets or quotes?)",
                    "check the brackets and quotes; quote the whole override for the shell, e.g. 'x=[1, 2]'")
    return BareString(raw)


def _parse_call(name: str, inner: str, text: str, path: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    hint = f"call factories with literal arguments, for example {name}(1024) or {name}(hidden_size=1024)"
    try:
        node = ast.parse(f"_({inner})", mode="eval").body
    except SyntaxError:
        raise error(text, path, f"cannot parse the arguments of {name}(...): {inner!r}", hint) from None
    assert isinstance(node, ast.Call)
    if any(isinstance(a, ast.Starred) for a in node.args) or any(kw.arg is None for kw in node.keywords):
        raise error(text, path, f"{name}(...) takes plain arguments, not *args or **kwargs", hint)

    def literal(value: ast.expr, what: str) -> Any:
        try:
            return ast.literal_eval(value)
        except ValueError:
            # A bare word (``activation=gelu``) is a string here too, as it is at the top level.
            if isinstance(value, ast.Name):
                return value.id
            raise error(text, path, f"{what} of {name}(...) is not a literal", hint) from None

    args = tuple(literal(a, f"argument {i + 1}") for i, a in enumerate(node.args))
    kwargs = {kw.arg: literal(kw.value, f"argument {kw.arg}=") for kw in node.keywords}
    return args, kwargs  # type: ignore[return-value]


def _value_list(s: str, text: str, path: str) -> ValueList | None:
    """``[f(), 3]`` / ``(f(), g())``: a list or tuple with factory calls among its items; None if it is not one."""
    try:
        node = ast.parse(s, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, (ast.List, ast.Tuple)):
        return None
    items: list[Any] = []
    for elt in node.elts:
        src = ast.get_source_segment(s, elt) or ""
        if isinstance(elt, ast.Call) and _IDENT.fullmatch(ast.get_source_segment(s, elt.func) or ""):
            inner = src[src.index("(") + 1:src.rindex(")")]
            fname = ast.get_source_segment(s, elt.func) or ""
            args, kwargs = _parse_call(fname, inner, text, path)
            items.append(FactoryCall(fname, kwargs, args))
            continue
        try:
            items.append(LiteralValue(ast.literal_eval(elt), src))
        except ValueError:
            if isinstance(elt, (ast.Name, ast.Attribute)) and _IDENT.fullmatch(src):
                items.append(BareString(src))  # a factory called with its defaults, or a bare word
                continue
            return None
    return ValueList(tuple(items), "tuple" if isinstance(node, ast.Tuple) else "list")


# -- coercion --------------------------------------------------------------------------------------------------------
_NONE_TYPE = type(None)


def union_members(annotation: Any) -> list[Any]:
    """The members of a Union/Optional (Annotated stripped), or ``[annotation]``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return union_members(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for a in typing.get_args(annotation):
            out.extend(union_members(a))
        return out
    return [annotation]


def is_open(annotation: Any) -> bool:
    """True when the annotation tells nothing we can coerce to (missing, Any, object, a TypeVar)."""
    return (annotation is None or annotation is Any or annotation is object or annotation is inspect.Parameter.empty
            or isinstance(annotation, (typing.TypeVar, str)))


def _accepts(annotation: Any, kind: type) -> bool:
    return any(m is kind for m in union_members(annotation))


def accepts_none(annotation: Any) -> bool:
    return any(m is None or m is _NONE_TYPE for m in union_members(annotation))


def coerce(value: LiteralValue | BareString, annotation: Any, *, text: str, path: str) -> Any:
    """The Python value for ``value`` assigned to a parameter annotated ``annotation``.

    Raises:
        OverrideError: the value does not fit (``model.hidden_size: expected int, got 'big'``).
    """
    if isinstance(value, BareString):
        return _coerce_bare(value.text, annotation, text=text, path=path)
    return _coerce_literal(value.value, value.raw, annotation, text=text, path=path)


def _coerce_bare(s: str, ann: Any, *, text: str, path: str) -> Any:
    if is_open(ann):
        return s
    low = s.strip().lower()
    members = union_members(ann)
    if low in NONE_WORDS and accepts_none(ann):
        return None
    if _accepts(ann, bool) and str not in members:
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
    for m in members:
        if m is str:
            return s
        if m is float and low in ("inf", "-inf", "+inf", "nan"):
            return float(low)
        named = _from_name(m, s)
        if named is not None:
            return named
        if typing.get_origin(m) is typing.Literal and s in typing.get_args(m):
            return s
    return _check(s, ann, text=text, path=path)


def _from_name(m: Any, s: str) -> Any:
    """``s`` as a path or an enum member when ``m`` is such a type; None otherwise."""
    if isinstance(m, type) and issubclass(m, pathlib.PurePath):
        return m(s)
    if isinstance(m, type) and issubclass(m, enum.Enum):
        return _enum_member(m, s)
    return None


def _enum_member(cls: type[enum.Enum], s: str) -> enum.Enum | None:
    if s in cls.__members__:
        return cls.__members__[s]
    for name, member in cls.__members__.items():
        if name.lower() == s.lower() or member.value == s:
            return member
    return None


def _coerce_literal(value: Any, raw: str, ann: Any, *, text: str, path: str) -> Any:
    if is_open(ann):
        return value
    members = union_members(ann)
    if str in members and isinstance(value, (int, float, complex)) and not any(
        m in (int, float, bool, complex) for m in members
    ):
        return raw  # the digits the user typed, not Python's repr of the number they parse to
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1) and bool in members and not any(
            m in (int, float, complex) for m in members):
        return bool(value)  # ``debug=1`` / ``debug=0`` for a bool parameter, as on most command lines
    if isinstance(value, int) and not isinstance(value, bool) and float in members and int not in members:
        return float(value)
    if isinstance(value, list):
        for m in members:
            if typing.get_origin(m) is tuple or m is tuple:
                value = tuple(value)
                break
    if isinstance(value, str):
        for m in members:
            named = _from_name(m, value)
            if named is not None:
                return named
    return _check(value, ann, text=text, path=path)


def _check(value: Any, ann: Any, *, text: str, path: str, detail: str = "") -> Any:
    from nemorun_core.config import typecheck

    reason = typecheck.mismatch(value, ann)
    if reason is None:
        return value
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    extra = detail or ("" if reason == "wrong type" else f" ({reason})")
    name = typecheck.type_name(ann)
    raise error(text, path, f"expected {name}, got {shown}{extra}", _example_hint(path, ann, name))


def _example_hint(path: str, ann: Any, name: str) -> str:
    examples = {int: "1024", float: "2e-4", bool: "true", str: "some_text"}
    for m in union_members(ann):
        if m in examples:
            return f"pass a value of type {name}, for example {path}={examples[m]}"
        if isinstance(m, type) and issubclass(m, enum.Enum):
            return f"pass one of {', '.join(m.__members__)}, for example {path}={next(iter(m.__members__))}"
    return f"pass a value of type {name}"


# -- arithmetic ------------------------------------------------------------------------------------------------------
def combine(op: str, current: Any, operand: LiteralValue | BareString, annotation: Any, *, text: str, path: str) -> Any:
    """Apply ``+= -= *= /=`` to ``current``, checking both sides, and fit the result to ``annotation``."""
    rhs = operand.text if isinstance(operand, BareString) else operand.value
    sym = op[0]

    def fail(problem: str, hint: str) -> OverrideError:
        return error(text, path, problem, hint)

    if sym == "|":
        if isinstance(current, dict) and isinstance(rhs, dict):
            return _check({**current, **rhs}, annotation, text=text, path=path) if not is_open(annotation) \
                else {**current, **rhs}
        raise fail(f"|= merges a dict into a dict, got {a_type(current)} and {a_type(rhs)}",
                   f"write {path}|={{'key': value}} where {path} holds a dict")

    if isinstance(current, (int, float)) and not isinstance(current, bool):
        if not isinstance(rhs, (int, float)) or isinstance(rhs, bool):
            raise fail(f"{op} needs a number, got {rhs!r}", f"write a number, for example {path}{op}2")
        if sym == "/" and rhs == 0:
            raise fail("division by zero", f"divide by a non-zero number, for example {path}/=2")
        result = {"+": current + rhs, "-": current - rhs, "*": current * rhs, "/": current / rhs if rhs else 0}[sym]
        if isinstance(result, float) and not math.isfinite(result):
            raise fail(f"the result {result} is not a finite number", "use a smaller operand")
        if isinstance(result, float) and _accepts(annotation, int) and not _accepts(annotation, float):
            if not result.is_integer():
                raise fail(f"expected int, got {result!r} ({current!r} {sym} {rhs!r} is not whole)",
                           f"choose an operand that divides evenly, or set {path}=VALUE directly")
            result = int(result)
        return _check(result, annotation, text=text, path=path) if not is_open(annotation) else result
    kind = type(current).__name__
    if isinstance(current, str) and sym == "+" and isinstance(rhs, str):
        return current + rhs
    if isinstance(current, (list, tuple)) and sym == "+" and isinstance(rhs, (list, tuple)):
        return type(current)(list(current) + list(rhs))
    if isinstance(current, (str, list, tuple)):
        raise fail(f"{op} does not apply to {a_type(current)} ({current!r})",
                   f"only += works on {a_type(current)}, with another {kind}; or set {path}=VALUE directly")
    raise fail(f"{op} does not apply to {a_type(current)} ({current!r})",
               f"arithmetic works on numbers (and += on strings and lists); set {path}=VALUE directly")
