"""Form fields for an executor class, generated from its dataclass fields: what makes a typed Prefect block of it.

:mod:`nemorun_prefect.blocks` gives every backend of the registry a block type whose fields are the executor's own
settings (names, types, defaults, and descriptions from the ``Args:`` section of the class's docstring), so that
Prefect's UI shows a form instead of a JSON editor. Nothing here is written per backend: a third-party executor
registered through the ``nemorun.executors`` entry points gets its form the same way.

How a setting becomes a form field (its :class:`Setting` ``kind``):

* ``plain``: ``str``, ``int``, ``float``, ``bool``, a ``Literal``, ``Optional`` of those, and ``list`` / ``dict``
  of them keep their type (a text box, a number, a toggle, a list editor...); an ``Optional`` one is shown as its
  type alone (no "null" choice in the UI), and left empty it is None;
* ``model`` / ``models``: a dataclass (``EchoLimits``), or a list of them (``list[SlurmResources]``), becomes a
  nested pydantic model of the same fields, generated the same way;
* ``json``: anything else (``Any``, objects such as launchers and tunnels) stays a JSON value in nemorun's
  serialized form (``{"_target_": "module:Class", "_instance_": true, ...}``) or a plain value.

:func:`to_config` and :func:`from_config` turn form values into the executor's serialized config
(:func:`nemorun_core.config.serialize.encode` with ``payload=True``) and back. Descriptions go through
:func:`markdown_safe`: Prefect's UI renders field descriptions as Markdown with HTML, so a literal ``<redacted>``
would be read as an (unknown, dropped) HTML tag.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from typing import Any, Literal, Mapping, Optional, Union

import pydantic
from pydantic import Field

from nemorun_core.errors import ConfigError

_SIMPLE = (str, int, float, bool)
# An HTML-tag-like span (`<redacted>`, `</x>`, `<!-- -->`) outside Markdown code spans.
_TAG = re.compile(r"<[A-Za-z!/][^<>]*>")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_RST_LITERAL = re.compile(r"``([^`]+)``")
_ARG_LINE = re.compile(r"^(\s*)([A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)\s*(?:\([^)]*\))?:\s*(.*)$")
_SECTION = re.compile(r"^(Args|Arguments|Attributes|Returns|Raises|Yields|Examples?|Notes?)\s*:\s*$")


def markdown_safe(text: str) -> str:
    """``text`` with every HTML-tag-like span (``<redacted>``) outside code spans put in backticks.

    Prefect's UI lexes a description as Markdown and renders an HTML token through a sanitizer, so ``<redacted>``
    shows as nothing; as a code span it shows literally (``&lt;`` or ``\\<`` would show the escape itself, because
    the UI unescapes the lexer's text once).
    """
    out, last = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_TAG.sub(lambda m: f"`{m.group(0)}`", text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_TAG.sub(lambda m: f"`{m.group(0)}`", text[last:]))
    return "".join(out)


def _rst_literals(text: str) -> str:
    """RST inline literals (````x````, what docstrings use) as Markdown code spans (```x```, what the UI renders)."""
    return _RST_LITERAL.sub(lambda m: f"`{m.group(1)}`", text)


def docstring_args(cls: type) -> dict[str, str]:
    """``{setting: description}`` from the ``Args:`` (or ``Attributes:``) section of ``cls``'s Google-style
    docstring; a line naming several settings (``account, partition, qos: ...``) describes each of them."""
    lines = (inspect.getdoc(cls) or "").splitlines()
    found: dict[str, str] = {}
    in_args, indent, names, text = False, None, [], []

    def flush() -> None:
        described = _rst_literals(" ".join(t.strip() for t in text).strip())
        if len(names) > 1:  # one line for several settings: say which, or the form repeats a sentence that fits none
            described = f"{', '.join(names)}: {described}"
        for name in names:
            found.setdefault(name, described)

    for line in lines:
        section = _SECTION.match(line.strip()) if not line.startswith((" ", "\t")) else None
        if section:
            flush()
            names, text, indent = [], [], None
            in_args = section.group(1) in ("Args", "Arguments", "Attributes")
            continue
        if not in_args:
            continue
        match = _ARG_LINE.match(line)
        depth = len(line) - len(line.lstrip())
        if match and (indent is None or depth <= indent) and line.strip():
            flush()
            indent = depth
            names = [n.strip() for n in match.group(2).split(",")]
            text = [match.group(3)]
        elif line.strip() and names:
            text.append(line)
        elif not line.strip() and not names:
            continue
    flush()
    return found


@dataclasses.dataclass(frozen=True)
class Setting:
    """One executor setting as a form field.

    Attributes:
        field: the executor's dataclass field.
        name: the form field's name (the field's own, unless it clashes with an attribute of the block class).
        kind: ``"plain"``, ``"model"``, ``"models"`` or ``"json"`` (see the module docstring).
        model: the nested form model of a ``model`` / ``models`` setting.
    """

    field: str
    name: str
    kind: str
    model: Optional[type[pydantic.BaseModel]] = None


@dataclasses.dataclass(frozen=True)
class Form:
    """The form of one dataclass (an executor, or a dataclass nested in one): its target and its settings."""

    target: str
    cls: type
    settings: tuple[Setting, ...]

    def names(self) -> list[str]:
        return [s.name for s in self.settings]


def _target(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _plain(annotation: Any) -> bool:
    """Whether a form can edit values of ``annotation`` as they are (JSON of the same shape as the config)."""
    if annotation in _SIMPLE:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return all(isinstance(a, _SIMPLE) for a in args)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return len(rest) == 1 and _plain(rest[0])
    if origin in (list, tuple, set, frozenset) and args:
        return len([a for a in args if a is not Ellipsis]) == 1 and args[0] in _SIMPLE
    if origin is dict and len(args) == 2:
        return args[0] is str and (args[1] in _SIMPLE or args[1] is Any)
    return False


def _optional_arg(annotation: Any) -> tuple[Any, bool]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return annotation, False


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _no_null_choice(inner: Any) -> Any:
    """``Optional[inner]`` whose form field is one of ``inner`` alone: pydantic writes an ``Optional`` as
    ``anyOf: [inner, null]``, which Prefect's UI shows as a choice between "inner" and "null" to make before the
    field can be typed in. Here the schema is ``inner``'s; an empty field (the UI sends nothing, null, or a blank
    string) is None, the setting's default."""
    from typing import Annotated

    schema = pydantic.TypeAdapter(inner).json_schema()
    return Annotated[Optional[inner], pydantic.BeforeValidator(_blank_is_none), pydantic.WithJsonSchema(schema)]


def _is_dataclass(annotation: Any) -> bool:
    return inspect.isclass(annotation) and dataclasses.is_dataclass(annotation)


def form_of(cls: type, *, reserved: frozenset[str] = frozenset(), _models: dict[type, Any] | None = None
            ) -> tuple[Form, dict[str, tuple[Any, Any]]]:
    """The form of dataclass ``cls``, and its pydantic field definitions ``{name: (annotation, FieldInfo)}``.

    Args:
        cls: an executor class (or a dataclass nested in one); its ``init`` fields become settings.
        reserved: names a setting may not take (the block class's own attributes): such a setting is named
            ``<name>_setting``.

    Raises:
        ConfigError: ``cls`` is not a dataclass (nemorun executors are).
    """
    if not _is_dataclass(cls):
        raise ConfigError(f"{_target(cls)} is not a dataclass, so no form can be generated for it; save it with "
                          "NemorunExecutorBlock.from_executor (its config as JSON)", path=cls.__qualname__)
    models = {} if _models is None else _models
    hints = typing.get_type_hints(cls)
    docs = docstring_args(cls)
    settings, definitions = [], {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        name = f"{f.name}_setting" if f.name in reserved or f.name.startswith("model_") else f.name
        annotation = hints.get(f.name, Any)
        inner, optional = _optional_arg(annotation)
        item = typing.get_args(inner)[0] if typing.get_origin(inner) is list and typing.get_args(inner) else None
        description = docs.get(f.name) or f"The {cls.__name__} setting `{f.name}`."
        if _plain(annotation):
            kind, model, form_type = "plain", None, _no_null_choice(inner) if optional else annotation
        elif _is_dataclass(inner) or (item is not None and _is_dataclass(item)):
            sub = inner if _is_dataclass(inner) else item
            if sub not in models:
                sub_form, sub_defs = form_of(sub, _models=models)
                models[sub] = pydantic.create_model(sub.__name__, __doc__=markdown_safe(
                    (inspect.getdoc(sub) or sub.__name__).split("\n\n")[0]), **sub_defs)
                models[sub].__nemorun_form__ = sub_form
            model = models[sub]
            kind = "model" if _is_dataclass(inner) else "models"
            form_type = (Optional[model] if optional else model) if kind == "model" else list[model]
        else:
            kind, model, form_type = "json", None, Optional[Any]
            description += (" As JSON: a plain value, or nemorun's serialized form of an object "
                            "(`{\"_target_\": \"module:Class\", \"_instance_\": true, ...}`).")
        default = _default(f, kind, model)
        settings.append(Setting(f.name, name, kind, model))
        definitions[name] = (form_type, Field(title=f.name.replace("_", " ").title(),
                                              description=markdown_safe(description), **default))
    return Form(_target(cls), cls, tuple(settings)), definitions


def _default(f: dataclasses.Field, kind: str, model: Any) -> dict[str, Any]:
    """The pydantic default of a field: its value, a factory of it, or nothing (a required field)."""
    from nemorun_core.config import serialize

    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        factory = f.default_factory  # type: ignore[misc]
        return {"default_factory": lambda: _form_value(serialize.encode(factory(), payload=True), kind, model)}
    else:
        return {}
    if value is None or isinstance(value, _SIMPLE):
        return {"default": value}
    encoded = serialize.encode(value, payload=True)
    return {"default_factory": lambda: _form_value(encoded, kind, model)}


def _form_value(value: Any, kind: str, model: Any) -> Any:
    """A setting's value in the form, from its value in the executor's serialized config."""
    if value is None:
        return None
    if kind == "model":
        return model(**from_config(model.__nemorun_form__, value))
    if kind == "models":
        return [model(**from_config(model.__nemorun_form__, v)) for v in value]
    return value


def from_config(form: Form, config: Mapping[str, Any]) -> dict[str, Any]:
    """The form values (``{form field: value}``) of a serialized config of ``form``'s class.

    Raises:
        ConfigError: the config is of another class, or has settings the form does not know.
    """
    if config.get("_target_") != form.target:
        raise ConfigError(f"a config of {config.get('_target_')!r} does not fit the form of {form.target}",
                          path=form.cls.__name__)
    known = {s.field for s in form.settings}
    extra = sorted(k for k in config if not k.startswith("_") and k not in known)
    if extra:
        raise ConfigError(f"settings {extra} are not fields of {form.cls.__name__}; save it with "
                          "NemorunExecutorBlock.from_executor (its config as JSON)", path=form.cls.__name__)
    return {s.name: _form_value(config[s.field], s.kind, s.model) for s in form.settings if s.field in config}


def to_config(form: Form, values: Mapping[str, Any]) -> dict[str, Any]:
    """The serialized config (``serialize.encode(executor, payload=True)``'s form) of the form values ``values``."""
    config: dict[str, Any] = {"_target_": form.target, "_instance_": True}
    for s in form.settings:
        if s.name not in values:
            continue
        value = values[s.name]
        if s.kind == "model" and value is not None:
            value = _nested(value)
        elif s.kind == "models" and value is not None:
            value = [_nested(v) for v in value]
        config[s.field] = value
    return config


def _nested(value: Any) -> dict[str, Any]:
    form = type(value).__nemorun_form__
    return to_config(form, {name: getattr(value, name) for name in form.names()})


__all__ = ["Form", "Setting", "docstring_args", "form_of", "from_config", "markdown_safe", "to_config"]
