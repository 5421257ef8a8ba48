"""Write a config tree as Python code that rebuilds it: ``cfg.to_code()``.

The output is meant to be read, pasted into a script and edited::

    import nemorun_core as run
    from my_project.model import ModelConfig
    from my_project.train import train_model

    config = run.Partial(train_model, model=run.Config(ModelConfig, hidden_size=768), seed=7)

Short calls stay on one line, long ones are broken with one argument per line. A config shared in several places
is written once as a variable and referenced, so the code rebuilds the same sharing (and builds it once). Objects
defined in the launching script (``__main__``) cannot be imported by the reader of the code: they are listed in a
comment and referenced by their bare name, to be pasted into the script that defines them.
"""

from __future__ import annotations

import dataclasses
import enum
import keyword
import math
import pathlib
import re
from typing import Any, Union

from nemorun_core.config.buildable import is_buildable
from nemorun_core.config.building import TreeGuard, join_path
from nemorun_core.config.serialize import resolve
from nemorun_core.errors import SerializationError

WIDTH = 100
_INDENT = 4


@dataclasses.dataclass
class _Atom:
    text: str


@dataclasses.dataclass
class _Seq:
    """A bracketed list of items: a call ``f(a, k=v)``, a list, a tuple or a dict."""

    open: str
    items: list[tuple[str, "_Node"]]  # (prefix such as "k=" or "'k': ", item)
    close: str
    single_comma: bool = False  # a one-item tuple needs its trailing comma even on one line


_Node = Union[_Atom, _Seq]


def _flat(node: _Node) -> str:
    if isinstance(node, _Atom):
        return node.text
    inner = ", ".join(prefix + _flat(item) for prefix, item in node.items)
    if node.single_comma and len(node.items) == 1:
        inner += ","
    return node.open + inner + node.close


def _render(node: _Node, column: int, indent: int) -> str:
    """Render ``node`` starting at ``column``; continuation lines are indented relative to ``indent``."""
    flat = _flat(node)
    if isinstance(node, _Atom) or column + len(flat) <= WIDTH or not node.items:
        return flat
    inner = indent + _INDENT
    lines = [node.open]
    for prefix, item in node.items:
        lines.append(" " * inner + prefix + _render(item, inner + len(prefix), inner) + ",")
    lines.append(" " * indent + node.close)
    return "\n".join(lines)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


class _Writer:
    def __init__(self, counts: dict[int, int]):
        self.counts = counts  # id(buildable) -> number of references; >1 means shared
        self.used = {"run", "config"}
        self.imports: dict[tuple[str, str], str] = {}  # (module, top-level name) -> local name
        self.main_names: set[str] = set()
        self.assignments: list[str] = []
        self.hoisted: dict[int, str] = {}
        self.guard = TreeGuard(SerializationError)

    # -- names --------------------------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        name = base if base.isidentifier() and not keyword.iskeyword(base) else f"{base}_"
        n = 2
        while name in self.used:
            name = f"{base}_{n}"
            n += 1
        self.used.add(name)
        return name

    def ref(self, obj: Any, path: str) -> str:
        obj = getattr(obj, "__nemorun_wrapped__", obj)
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None) or ""
        if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
            raise SerializationError(
                f"{qualname or obj!r} is a lambda or is defined inside a function, so code cannot name it; "
                "define it at module level",
                path=path or None,
            )
        top, _, rest = qualname.partition(".")
        if module == "builtins":
            return qualname
        if module == "__main__":
            self.main_names.add(top)
            self.used.add(top)
            return qualname
        try:
            found = resolve(f"{module}:{qualname}")
        except SerializationError:
            found = None
        if found is not obj:
            raise SerializationError(f"{module}.{qualname} cannot be imported by that name", path=path or None)
        key = (module, top)
        if key not in self.imports:
            if top in self.used:
                self.imports[key] = self.fresh(f"{module.rsplit('.', 1)[-1]}_{top}")
            else:
                self.imports[key] = self.fresh(top)
        return self.imports[key] + (f".{rest}" if rest else "")

    # -- values -------------------------------------------------------------------------------------------------
    def node(self, value: Any, path: str) -> _Node:
        """The code of ``value``; a container that contains itself, or nests too deep, is a SerializationError."""
        if not (is_buildable(value) or isinstance(value, (list, tuple, dict, set, frozenset))
                or dataclasses.is_dataclass(value) and not isinstance(value, type)) or id(value) in self.hoisted:
            return self._value(value, path)
        self.guard.enter(value, path)
        out = self._value(value, path)
        self.guard.leave(value)
        return out

    def _value(self, value: Any, path: str) -> _Node:
        if is_buildable(value):
            return self.buildable(value, path)
        if value is None or isinstance(value, (bool, int, str, bytes)) and not isinstance(value, enum.Enum):
            return _Atom(repr(value))
        if isinstance(value, float):
            return _Atom(repr(value) if math.isfinite(value) else f"float({str(value)!r})")
        if isinstance(value, enum.Enum):
            return _Atom(f"{self.ref(type(value), path)}.{value.name}")
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            items = [(f"{f}=", self.node(getattr(value, f), join_path(path, f))) for f in value._fields]
            return _Seq(self.ref(type(value), path) + "(", items, ")")
        if isinstance(value, (list, tuple)):
            items = [("", self.node(v, join_path(path, i))) for i, v in enumerate(value)]
            if isinstance(value, list):
                return _Seq("[", items, "]")
            return _Seq("(", items, ")", single_comma=True)
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise SerializationError(f"dict key {k!r} cannot be written as code", path=path or None)
                items.append((f"{k!r}: ", self.node(v, join_path(path, k))))
            return _Seq("{", items, "}")
        if isinstance(value, (set, frozenset)):
            items = [("", self.node(v, path)) for v in sorted(value, key=repr)]
            if isinstance(value, frozenset):
                return _Seq("frozenset({", items, "})") if items else _Atom("frozenset()")
            return _Seq("{", items, "}") if items else _Atom("set()")
        if isinstance(value, pathlib.PurePath):
            cls = pathlib.Path if isinstance(value, pathlib.Path) else type(value)
            return _Seq(self.ref(cls, path) + "(", [("", _Atom(repr(str(value))))], ")")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self.dataclass_instance(value, path)
        if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
            return _Atom(self.ref(value, path))
        raise SerializationError(
            f"a value of type {type(value).__name__} cannot be written as code; configure it with run.Config",
            path=path or None,
        )

    def buildable(self, value: Any, path: str) -> _Node:
        import fiddle as fdl

        if id(value) in self.hoisted:
            return _Atom(self.hoisted[id(value)])
        kind = "run.Partial" if isinstance(value, fdl.Partial) else "run.Config"
        items: list[tuple[str, _Node]] = [("", _Atom(self.ref(value.__fn_or_cls__, path)))]
        args = value.__arguments__
        for i in sorted(k for k in args if isinstance(k, int)):
            items.append(("", self.node(args[i], join_path(path, i))))
        for k, v in args.items():
            if not isinstance(k, int):
                items.append((f"{k}=", self.node(v, join_path(path, k))))
        call = _Seq(kind + "(", items, ")")
        if self.counts.get(id(value), 0) > 1 and path:
            name = self.fresh(_snake(getattr(value.__fn_or_cls__, "__name__", "shared")))
            prefix = f"{name} = "
            self.assignments.append(prefix + _render(call, len(prefix), 0))
            self.hoisted[id(value)] = name
            return _Atom(name)
        return call

    def dataclass_instance(self, value: Any, path: str) -> _Node:
        items = []
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            current = getattr(value, f.name)
            if f.default is not dataclasses.MISSING and _equal(current, f.default):
                continue
            if f.default_factory is not dataclasses.MISSING and _equal(current, f.default_factory()):
                continue
            items.append((f"{f.name}=", self.node(current, join_path(path, f.name))))
        return _Seq(self.ref(type(value), path) + "(", items, ")")


def _equal(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _count_references(value: Any, counts: dict[int, int], guard: TreeGuard, path: str = "") -> None:
    if is_buildable(value):
        counts[id(value)] = counts.get(id(value), 0) + 1
        if counts[id(value)] > 1:
            return  # its children were counted on the first visit
        children: Any = value.__arguments__.items()
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = enumerate(value)
    elif isinstance(value, dict):
        children = value.items()
    else:
        return
    guard.enter(value, path)
    for key, child in children:
        _count_references(child, counts, guard, join_path(path, key))
    guard.leave(value)


def to_code(config: Any, *, name: str = "config") -> str:
    """Python source that rebuilds ``config`` and binds it to ``name``.

    Args:
        config: a Config/Partial tree (or any value made of supported values).
        name: the variable the code assigns.

    Returns:
        The source, ending with a newline.

    Raises:
        SerializationError: a value has no importable name (a lambda, a local function) or no code form; the
            error's path names where it is.
    """
    counts: dict[int, int] = {}
    _count_references(config, counts, TreeGuard(SerializationError))
    writer = _Writer(counts)
    writer.used.add(name)
    root = writer.node(config, "")
    prefix = f"{name} = "
    body = prefix + _render(root, len(prefix), 0)

    by_module: dict[str, list[str]] = {}
    for (module, top), local in writer.imports.items():
        by_module.setdefault(module, []).append(top if local == top else f"{top} as {local}")
    lines = ["import nemorun_core as run"]
    lines += [f"from {m} import {', '.join(sorted(names))}" for m, names in sorted(by_module.items())]
    if writer.main_names:
        lines += ["", "# defined in the launching script: " + ", ".join(sorted(writer.main_names))]
    lines.append("")
    lines += writer.assignments
    lines.append(body)
    return "\n".join(lines) + "\n"
