"""Validate a whole config tree before anything is submitted: types, missing arguments, custom rules.

Values are checked when they are set, but only relative to the config that holds them (``ModelConfig.hidden_size``),
and a required argument can only be found missing once the tree is complete. :func:`validate` re-checks the
finished tree from its root, so every problem is reported with its full dotted path (``model.hidden_size``) and a fix.

Custom rules are registered with :func:`validation_rule`::

    @run.validation_rule(ModelConfig)
    def heads_divide_hidden(cfg):
        if cfg.hidden_size % cfg.num_heads:
            return "hidden_size must be divisible by num_heads"

A rule receives the Config node and either raises (``assert`` works) or returns an error string; ``None``/``True``
mean it passed. A rule with a class target applies to every Config/Partial of that class or a subclass anywhere in
the tree; a function target applies to configs of exactly that function; no target means the root of every tree.

Rules live in a :class:`RuleRegistry`. The module-level :data:`REGISTRY` is the default (as Fiddle keeps its
registries at module level), and every registration can be undone: ``rule.remove()``, ``with rule: ...``, or
``with REGISTRY.isolated(): ...`` which restores the registry on exit, so tests never leak rules into each other.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from typing import Any, Callable, Iterator, Optional

from nemorun_core.config import typecheck
from nemorun_core.config.buildable import is_buildable, target_name, unwrap_target
from nemorun_core.config.building import TreeGuard, join_path
from nemorun_core.errors import ConfigError, ConfigTypeError, ValidationError

RuleFn = Callable[[Any], Any]


class ValidationRule:
    """A registered rule. Calling it calls the rule function; ``remove()`` (or leaving ``with rule:``) unregisters it.

    Attributes:
        fn: the rule function.
        target: the class or function whose configs it checks, or None for the root of every tree.
        name: the name used in error messages (the function's name unless given).
    """

    def __init__(self, fn: RuleFn, target: Any, name: str, registry: "RuleRegistry"):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.target = target
        self.name = name
        self._registry = registry

    def __call__(self, config: Any) -> Any:
        return self.fn(config)

    def applies_to(self, node: Any, is_root: bool) -> bool:
        if self.target is None:
            return is_root
        if not is_buildable(node):
            return False
        configured = node.__fn_or_cls__
        if configured is self.target:
            return True
        return inspect.isclass(configured) and inspect.isclass(self.target) and issubclass(configured, self.target)

    def remove(self) -> None:
        """Unregister this rule. Removing twice is harmless."""
        self._registry.unregister(self)

    def __enter__(self) -> "ValidationRule":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        on = "root configs" if self.target is None else target_name(self.target)
        return f"<ValidationRule {self.name} on {on}>"


class RuleRegistry:
    """An ordered set of validation rules. Rules run in registration order."""

    def __init__(self) -> None:
        self._rules: list[ValidationRule] = []
        self._lock = threading.Lock()  # rules may be registered from imports running in threads

    def register(self, fn: RuleFn, target: Any = None, *, name: Optional[str] = None) -> ValidationRule:
        """Register ``fn`` for configs of ``target`` (None: the root of every tree) and return its handle."""
        if not callable(fn):
            raise TypeError(f"a validation rule must be a function taking the config, got {fn!r}")
        if target is not None:
            target = unwrap_target(target)
            if not callable(target):
                raise TypeError(
                    f"validation_rule() takes the class or function whose configs the rule checks, got {target!r}"
                )
        rule = ValidationRule(fn, target, name or getattr(fn, "__name__", repr(fn)), self)
        with self._lock:
            self._rules.append(rule)
        return rule

    def unregister(self, rule: ValidationRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def rules(self) -> list[ValidationRule]:
        with self._lock:
            return list(self._rules)

    @contextlib.contextmanager
    def isolated(self) -> Iterator["RuleRegistry"]:
        """Within the block rules may be added or removed freely; on exit the registry is as it was."""
        saved = self.rules()
        try:
            yield self
        finally:
            with self._lock:
                self._rules = saved


REGISTRY = RuleRegistry()


def validation_rule(
    target: Any = None, *, name: Optional[str] = None, registry: Optional[RuleRegistry] = None
) -> Callable[[RuleFn], ValidationRule]:
    """Decorator registering a validation rule: ``@run.validation_rule(ModelConfig)`` or ``@run.validation_rule()``.

    Always call it (with or without a target): the bare form ``@run.validation_rule`` cannot be told apart from a
    function target, so it is not supported.

    Args:
        target: the class (subclasses included) or function whose configs the rule checks; None for root configs.
        name: the rule's name in error messages; defaults to the function's name.
        registry: where to register; defaults to the module-level :data:`REGISTRY`.

    Returns:
        A decorator turning the rule function into a :class:`ValidationRule` (still callable as the function).
    """
    reg = registry if registry is not None else REGISTRY

    def decorate(fn: RuleFn) -> ValidationRule:
        return reg.register(fn, target, name=name)

    return decorate


def validate(
    config: Any, *, all_errors: bool = False, registry: Optional[RuleRegistry] = None
) -> None:
    """Check a whole config tree: every value against its annotation, required arguments, registered rules.

    Required arguments are checked on every Config, and on the root when it is a Partial (a task is called with no
    arguments); a nested Partial may leave arguments open on purpose, to be supplied by whoever calls it. A node
    shared in several places is checked once, under the first path that reaches it. Rules of a node run only when
    the node's own values passed, so a wrong type is not reported a second time through a crashing rule.

    Args:
        config: the root of the tree (a Config, a Partial, or any value for the root rules).
        all_errors: collect every problem and report them together instead of stopping at the first.
        registry: the rules to run; defaults to the module-level :data:`REGISTRY`.

    Raises:
        ValidationError: the first problem (or all of them); ``error.path`` is the first problem's dotted path and
            ``error.problems`` holds each problem as its own ConfigError.
    """
    checker = _Checker(registry if registry is not None else REGISTRY, all_errors)
    try:
        checker.visit(config, "", is_root=True)
    except _Stop:
        pass
    if checker.problems:
        raise _combined(checker.problems)


class _Stop(Exception):
    """Raised inside the walk to stop at the first problem."""


class _Checker:
    def __init__(self, registry: RuleRegistry, all_errors: bool):
        self.rules = registry.rules()
        self.all_errors = all_errors
        self.problems: list[ConfigError] = []
        self.seen: set[int] = set()
        self.guard = TreeGuard(ValidationError)  # a cycle or runaway depth stops the walk at once, with its path

    def report(self, problem: ConfigError) -> None:
        self.problems.append(problem)
        if not self.all_errors:
            raise _Stop

    def visit(self, node: Any, path: str, is_root: bool = False) -> None:
        if is_buildable(node):
            if id(node) in self.seen:
                self.guard.enter(node, path)  # checked once when shared; a node that is its own ancestor is a cycle
                self.guard.leave(node)
                return
            self.seen.add(id(node))
            before = len(self.problems)
            self.check_node(node, path, is_root)
            self.guard.enter(node, path)
            for key, value in node.__arguments__.items():
                self.visit(value, join_path(path, key))
            self.guard.leave(node)
            if len(self.problems) == before:
                self.run_rules(node, path, is_root)
            return
        if isinstance(node, (list, tuple, dict)):
            self.guard.enter(node, path)
            for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
                self.visit(value, join_path(path, key))
            self.guard.leave(node)
        if is_root:
            self.run_rules(node, path, is_root)

    def check_node(self, node: Any, path: str, is_root: bool) -> None:
        import fiddle as fdl

        target = node.__fn_or_cls__
        annotations = typecheck.parameter_annotations(target)
        for name, value in node.__arguments__.items():
            if not isinstance(name, str) or name not in annotations:
                continue
            reason = typecheck.mismatch(value, annotations[name])
            if reason is not None:
                detail = "" if reason == "wrong type" else reason
                self.report(
                    ConfigTypeError(join_path(path, name), typecheck.type_name(annotations[name]), value, detail=detail)
                )
        if isinstance(node, fdl.Partial) and not is_root:
            return
        for index, name in _required_parameters(target):
            if name not in node.__arguments__ and index not in node.__arguments__:
                where = join_path(path, name)
                self.report(ConfigError(f"missing required argument; set it with {where}=...", path=where))

    def run_rules(self, node: Any, path: str, is_root: bool) -> None:
        for rule in self.rules:
            if not rule.applies_to(node, is_root):
                continue
            try:
                outcome = rule.fn(node)
            except Exception as exc:  # a rule says "no" by raising anything; assert is the common way
                message = str(exc) or type(exc).__name__
            else:
                if outcome is None or outcome is True:
                    continue
                message = "the rule returned False" if outcome is False else str(outcome)
            self.report(ValidationError(f"rule {rule.name!r} failed: {message}", path=path or _root_name(node)))


def _required_parameters(target: Any) -> list[tuple[int, str]]:
    """(position, name) of each parameter without a default; Fiddle keys positional-only values by position."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        (i, p.name)
        for i, p in enumerate(params)
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _root_name(node: Any) -> str:
    if is_buildable(node):
        return f"<root {target_name(node.__fn_or_cls__)}>"
    return "<root>"


def _combined(problems: list[ConfigError]) -> ValidationError:
    if len(problems) == 1:
        error = ValidationError(str(problems[0]))
    else:
        lines = "\n".join(f"  {p}" for p in problems)
        error = ValidationError(f"{len(problems)} problems in the configuration:\n{lines}")
    # The message already carries each path; set the attribute without prefixing it a second time.
    error.path = problems[0].path
    error.problems = problems
    return error
