"""Show a config tree to a person: a rich tree for terminals, nested HTML for Jupyter.

``repr(config)`` is left to Fiddle (``<Config[ModelConfig(hidden_size=768)]>``): it is compact, and it is what
tracebacks and logs show. These renderers are for looking at a whole tree. Values are rendered as plain text
(``rich.text.Text``, ``html.escape``), never as markup, so a string value like ``"[red]x"`` or ``"<b>"`` shows as
itself.
"""

from __future__ import annotations

import html as _html
from typing import Any, Iterable

from nemorun_core.config.buildable import is_buildable, target_name

_MAX_VALUE = 120


def _kind(node: Any) -> str:
    import fiddle as fdl

    return "Partial" if isinstance(node, fdl.Partial) else "Config"


def _value_text(value: Any) -> str:
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        module = getattr(value, "__module__", "")
        name = getattr(value, "__qualname__", repr(value))
        return name if module in ("builtins", "__main__", None) else f"{module}.{name}"
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _children(value: Any) -> Iterable[tuple[str, Any]]:
    if is_buildable(value):
        for k, v in value.__arguments__.items():
            yield (f"[{k}]" if isinstance(k, int) else str(k)), v
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield f"[{i}]", v
    elif isinstance(value, dict):
        for k, v in value.items():
            yield repr(k), v


def _has_nested(value: Any) -> bool:
    """Containers holding configs are shown as subtrees; plain containers are short enough as one value."""
    if is_buildable(value):
        return True
    if isinstance(value, (list, tuple, dict)):
        return any(_has_nested(v) for _, v in _children(value))
    return False


# -- rich ------------------------------------------------------------------------------------------------------------
def rich_tree(config: Any, *, label: str | None = None) -> Any:
    """A ``rich.tree.Tree`` of ``config``: one node per config (``Partial`` marked), its arguments as children.

    A config shared in several places is expanded the first time and shown as a reference afterwards.
    """
    from rich.text import Text
    from rich.tree import Tree

    seen: dict[int, str] = {}

    def node_label(name: str | None, value: Any, path: str) -> Any:
        text = Text()
        if name is not None:
            text.append(name, style="bold")
            text.append(": ")
        if is_buildable(value):
            kind = _kind(value)
            text.append(kind, style="magenta" if kind == "Partial" else "cyan")
            text.append(" ")
            text.append(target_name(value.__fn_or_cls__), style="bold green")
            if id(value) in seen:
                text.append(f"  (shared, see {seen[id(value)] or '<root>'})", style="dim")
        elif isinstance(value, (list, tuple)):
            text.append(f"{type(value).__name__} of {len(value)}", style="dim")
        elif isinstance(value, dict):
            text.append(f"dict of {len(value)}", style="dim")
        return text

    def add(tree: Any, value: Any, path: str) -> None:
        if is_buildable(value):
            if id(value) in seen:
                return
            seen[id(value)] = path
        for name, child in _children(value):
            child_path = f"{path}{name}" if name.startswith("[") else (f"{path}.{name}" if path else name)
            if _has_nested(child):
                shared = is_buildable(child) and id(child) in seen
                branch = tree.add(node_label(name, child, child_path))
                if not shared:
                    add(branch, child, child_path)
            else:
                leaf = Text()
                leaf.append(name, style="bold")
                leaf.append(" = ")
                leaf.append(_value_text(child), style="yellow")
                tree.add(leaf)

    root = Tree(node_label(label, config, ""), guide_style="dim")
    if _has_nested(config):
        add(root, config, "")
    return root


# -- HTML ------------------------------------------------------------------------------------------------------------
_STYLE = (
    "<style>.nemorun-config ul{list-style:none;margin:0;padding-left:1.2em;border-left:1px solid #ccc}"
    ".nemorun-config .kind{color:#a0a}.nemorun-config .target{font-weight:bold;color:#070}"
    ".nemorun-config .value{color:#a50}</style>"
)


def html(config: Any) -> str:
    """Nested HTML lists for Jupyter's ``_repr_html_``; every name and value is escaped."""
    seen: set[int] = set()

    def head(value: Any) -> str:
        return (
            f'<span class="kind">{_kind(value)}</span> '
            f'<span class="target">{_html.escape(target_name(value.__fn_or_cls__))}</span>'
        )

    def body(value: Any) -> str:
        if is_buildable(value):
            if id(value) in seen:
                return ""
            seen.add(id(value))
        items = []
        for name, child in _children(value):
            label = f"<code>{_html.escape(name)}</code>"
            if is_buildable(child):
                shared = " <i>(shared)</i>" if id(child) in seen else ""
                items.append(f"<li>{label}: {head(child)}{shared}{body(child)}</li>")
            elif _has_nested(child):
                items.append(f"<li>{label}: {_html.escape(type(child).__name__)}{body(child)}</li>")
            else:
                shown = _html.escape(_value_text(child))
                items.append(f'<li>{label} = <span class="value">{shown}</span></li>')
        return "<ul>" + "".join(items) + "</ul>" if items else ""

    if is_buildable(config):
        top = head(config) + body(config)
    else:
        top = f'<span class="value">{_html.escape(_value_text(config))}</span>'
    return f'{_STYLE}<div class="nemorun-config">{top}</div>'
