"""Executor fields as Airflow template fields: the string settings a user templates (``partition``,
``container_image``, ``env_vars`` values...), for any executor.

Which fields: an executor's dataclass fields of type ``str`` (or ``str | None``) and ``dict[str, str]``; nothing here
names a backend. Two ways in, both rendered as ``NemorunOperator.executor_fields`` (a template field):

* a Jinja template already in the executor (``run.LocalExecutor(env_vars={"DAY": "{{ ds }}"})``), where the
  executor's own checks accept it;
* the operator's ``executor_fields={"partition": "{{ params.partition }}"}``, for a field whose checks refuse a
  template (a Slurm partition must be a plain word): the executor is built with a plain value and this one wins.
  For a ``dict[str, str]`` field the given keys are merged into the executor's dict.

After rendering, :func:`apply_fields` builds the executor again with the rendered values (``dataclasses.replace``),
so its checks run on what was rendered and a bad value is an error that names the field.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from nemorun_core.errors import ConfigError, did_you_mean

_TEMPLATED = ("{{", "{%")


def is_template(value: Any) -> bool:
    return isinstance(value, str) and any(t in value for t in _TEMPLATED)


def templatable_fields(executor: Any) -> dict[str, str]:
    """The executor's templatable dataclass fields: name -> ``"str"`` or ``"dict"`` (``{}`` for a non-dataclass)."""
    if not dataclasses.is_dataclass(executor):
        return {}
    try:
        hints = typing.get_type_hints(type(executor))
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: fall back to the declared text
        hints = {}
    kinds: dict[str, str] = {}
    for field in dataclasses.fields(executor):
        if not field.init:
            continue
        hint = hints.get(field.name, field.type)
        if hint in (str, typing.Optional[str], "str", "str | None", "Optional[str]"):
            kinds[field.name] = "str"
        elif hint in (dict[str, str], typing.Dict[str, str], "dict[str, str]"):
            kinds[field.name] = "dict"
    return kinds


def collect_fields(executor: Any, given: Mapping[str, Any] | None, *, path: str) -> dict[str, Any]:
    """The executor fields to render: templates found in ``executor``, then ``given`` (checked) over them.

    Raises:
        ConfigError: ``given`` is not a mapping, names a field that is not templatable (with the ones that are), or
            gives a value of the wrong shape.
    """
    where = f"{path}.executor_fields"
    kinds = templatable_fields(executor)
    found: dict[str, Any] = {}
    for name, kind in kinds.items():
        value = getattr(executor, name)  # a declared dataclass field
        if kind == "str" and is_template(value):
            found[name] = value
        elif kind == "dict" and isinstance(value, Mapping):
            templated = {k: v for k, v in value.items() if is_template(v)}
            if templated:
                found[name] = templated
    if given is None:
        return found
    if not isinstance(given, Mapping):
        raise ConfigError(f"must be a dict of executor field -> template ({{'partition': '{{{{ params.p }}}}'}}), "
                          f"not {type(given).__name__}", path=where)
    cls = type(executor).__name__
    for name, value in given.items():
        kind = kinds.get(name)
        if kind is None:
            have = ", ".join(sorted(kinds)) or "none"
            declared = {f.name for f in dataclasses.fields(executor)} if dataclasses.is_dataclass(executor) else ()
            hint = (" (it is not a str or dict[str, str] field: set it in the executor, or template the task's "
                    "values with overrides)") if name in declared else did_you_mean(str(name), kinds)
            raise ConfigError(f"{cls} has no templatable field {name!r}{hint}; its str and dict[str, str] fields: "
                              f"{have}", path=f"{where}.{name}")
        if kind == "str" and not isinstance(value, str):
            raise ConfigError(f"{cls}.{name} is a str field: give a string (a template), not "
                              f"{type(value).__name__}", path=f"{where}.{name}")
        if kind == "dict" and not (isinstance(value, Mapping) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            raise ConfigError(f"{cls}.{name} is a dict[str, str] field: give a dict of strings (the keys are merged "
                              f"into the executor's), not {value!r}", path=f"{where}.{name}")
        found[name] = {**found.get(name, {}), **value} if kind == "dict" else value
    return found


def apply_fields(executor: Any, rendered: Mapping[str, Any], *, path: str) -> Any:
    """A copy of ``executor`` with the rendered fields (dict fields merged), checked by the executor itself.

    Raises:
        ConfigError: the executor refuses a rendered value; the message names the field, what it rendered to, and
            that the template gave it.
    """
    if not rendered:
        return executor
    changes: dict[str, Any] = {}
    for name, value in rendered.items():
        current = getattr(executor, name)  # a declared dataclass field (collect_fields checked the name)
        changes[name] = {**(current or {}), **value} if isinstance(value, Mapping) else value
    try:
        return dataclasses.replace(executor, **changes)
    except ConfigError as exc:
        shown = {k: v for k, v in rendered.items() if not isinstance(v, Mapping)}
        raise ConfigError(f"the executor refuses a rendered template ({shown or 'dict fields'}): {exc}. Fix the "
                          "template in executor_fields (or in the executor) so that it renders to a valid value",
                          path=f"{path}.executor_fields") from None


__all__ = ["apply_fields", "collect_fields", "is_template", "templatable_fields"]
