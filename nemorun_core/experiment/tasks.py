"""Tasks inside an experiment: normalizing what users add, references between tasks, and turning a task into a Job.

A task is a ``run.Config`` (run by building it), a ``run.Partial`` (built, then called) or a ``run.Script``. A plain
callable plus keyword arguments becomes a ``run.Partial``.

A string value ``"{train.output}"`` anywhere in a task's config refers to the return value of task ``train``
(``"{train.output.path}"`` to one key of it, ``"{train.dir}"`` to its job directory). The reference makes ``train``
a dependency and is replaced when the dependent task starts. ``exp.add`` returns a :class:`TaskRef` whose ``output``
formats as that string, so ``f"{ref.output}"`` and ``ref.output`` both work.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
from typing import Any, Callable

from nemorun_core.config.typecheck import TASK_REF
from nemorun_core.errors import ConfigError, ExperimentError, did_you_mean
from nemorun_core.executors.base import PYTHON, Executor, Job, JobHandle, JobStatus, runner_command
from nemorun_core.jobfiles import JobFiles


class _Placeholder(str):
    """A str that renders as a task reference; keeps its parts for code that wants them."""

    def __new__(cls, task: str, field: str, path: tuple[str, ...] = ()):
        text = "{" + ".".join((task, field, *path)) + "}"
        obj = super().__new__(cls, text)
        obj.task, obj.field, obj.path = task, field, path
        return obj

    def __getattr__(self, key: str) -> "_Placeholder":
        if key.startswith("_"):
            raise AttributeError(key)
        return _Placeholder(self.task, self.field, (*self.path, key))

    def __getitem__(self, key: Any) -> "_Placeholder":  # type: ignore[override]
        return _Placeholder(self.task, self.field, (*self.path, str(key)))

    def __reduce__(self) -> tuple[Any, ...]:
        # Copies and pickles are the plain string: the reference is resolved from its text.
        return (str, (str(self),))


class TaskRef(str):
    """What ``Experiment.add`` returns: the task's id, usable in ``dependencies=[...]`` and as ``"{name.output}"``.

    It is the task's name as a ``str`` (NeMo Run's ``add`` returns the job id, a string: it prints, compares and
    hashes as the name), with the spec's references beside it: ``ref.output`` (``ref.output.path`` for one key of
    it) and ``ref.dir``. Copies and pickles are the plain string.
    """

    __slots__ = ()

    @property
    def name(self) -> str:
        return str.__str__(self)

    @property
    def output(self) -> _Placeholder:
        return _Placeholder(self.name, "output")

    @property
    def dir(self) -> _Placeholder:
        return _Placeholder(self.name, "dir")

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (str.__str__(self),))


@dataclasses.dataclass(frozen=True)
class UnloadedTask:
    """Stands for a stored task whose code cannot be imported in this process (another directory, another env).

    Status, logs, results and cancel do not need the task's code, so loading an experiment never fails on it; what
    does need it (rerun, configurations) raises with the reason.
    """

    kind: str
    reason: str

    def require(self, name: str) -> None:
        raise ExperimentError(
            f"task {name!r} cannot be loaded in this process ({self.reason}); run this from the directory or "
            "environment the experiment was launched from, or put its code on PYTHONPATH"
        )


@dataclasses.dataclass
class TaskSpec:
    """One task of an experiment, with its own copies of config and executor."""

    name: str
    task: Any
    executor: Executor
    dependencies: list[str]
    plugins: list[str] = dataclasses.field(default_factory=list)
    handle: JobHandle | None = None
    status: JobStatus | None = None
    tail_logs: bool = False  # print its log lines while the experiment runs (exp.add(..., tail_logs=True))

    @property
    def id(self) -> str:
        """NeMo Run's name for the task's id in ``exp.jobs``: its name."""
        return self.name

    @property
    def state(self) -> Any:
        """The last known ``JobState`` (PENDING before it was submitted); ``status`` has the message beside it."""
        from nemorun_core.executors.base import JobState

        return self.status.state if self.status is not None else JobState.PENDING

    @property
    def kind(self) -> str:
        if isinstance(self.task, UnloadedTask):
            return self.task.kind
        from nemorun_core.config.script import Script

        if isinstance(self.task, Script):
            return "script"
        import fiddle as fdl

        return "partial" if isinstance(self.task, fdl.Partial) else "config"


def normalize_task(obj: Any, kwargs: dict[str, Any]) -> Any:
    """Turn what the user passed to ``add``/``run`` into a Config, Partial or Script."""
    from nemorun_core.config.buildable import Partial, is_buildable
    from nemorun_core.config.script import Script

    # A task that becomes one when asked (``run.cli.LazyEntrypoint``: imported and configured only now), through
    # a method looked up on its type, so nothing here imports the command-line layer.
    to_task = getattr(type(obj), "__nemorun_task__", None)
    if to_task is not None:
        obj = to_task(obj)
    if isinstance(obj, Script) or is_buildable(obj):
        if kwargs:
            raise ExperimentError(
                f"keyword arguments {sorted(kwargs)} were given with an already configured task; set them on the "
                "config instead (cfg.name = value) or pass the function itself: exp.add(fn, arg=value)"
            )
        return copy.deepcopy(obj)
    if callable(obj):
        return Partial(obj, **kwargs)
    raise ExperimentError(
        f"cannot run {obj!r}: give a run.Config, run.Partial, run.Script or a function (with its keyword arguments)"
    )


def default_name(task: Any) -> str:
    from nemorun_core.config.script import Script

    if isinstance(task, Script):
        base = os.path.splitext(os.path.basename(task.path))[0] if task.path else "script"
    else:
        target = getattr(task, "__fn_or_cls__", None)
        base = getattr(target, "__name__", None) or "task"
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "-" for c in base).strip("-.") or "task"
    return cleaned if cleaned[0].isalnum() else "t" + cleaned


# -- references ------------------------------------------------------------------------------------------------------
def map_values(node: Any, fn: Callable[[Any], Any]) -> Any:
    """A copy of a config tree (or Script) with ``fn`` applied to every leaf value."""
    import fiddle as fdl

    from nemorun_core.config.script import Script

    if isinstance(node, fdl.Buildable):
        new = copy.copy(node)
        for key, value in node.__arguments__.items():
            new.__arguments__[key] = map_values(value, fn)
        return new
    if isinstance(node, Script):
        return dataclasses.replace(node, args=[map_values(a, fn) for a in node.args],
                                   env={k: map_values(v, fn) for k, v in node.env.items()})
    if isinstance(node, list):
        return [map_values(v, fn) for v in node]
    if isinstance(node, tuple):
        return tuple(map_values(v, fn) for v in node)
    if isinstance(node, dict):
        return {k: map_values(v, fn) for k, v in node.items()}
    return fn(node)


def referenced_tasks(task: Any) -> list[str]:
    found: list[str] = []

    def visit(value: Any) -> Any:
        if isinstance(value, str):
            for m in TASK_REF.finditer(value):
                if m.group(1) not in found:
                    found.append(m.group(1))
        return value

    map_values(task, visit)
    return found


def resolve_references(task: Any, lookup: Callable[[str, str], Any]) -> Any:
    """Replace every ``{name.output...}`` / ``{name.dir}`` with its value; ``lookup(name, field)`` gives it."""

    def value_of(m: Any) -> Any:
        value = lookup(m.group(1), m.group(2))
        for key in filter(None, m.group(3).split(".")):
            try:
                value = value[int(key)] if isinstance(value, list) else value[key]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ExperimentError(
                    f"reference {m.group(0)!r}: the output of {m.group(1)!r} has no {key!r} "
                    f"(it is {json.dumps(value, default=repr)[:200]})"
                ) from None
        return value

    def replace(value: Any) -> Any:
        if not isinstance(value, str) or "{" not in value:
            return value
        whole = TASK_REF.fullmatch(value)
        if whole:
            return value_of(whole)  # the value itself, not its string form
        return TASK_REF.sub(lambda m: str(value_of(m)), value)

    return map_values(task, replace)


def check_references(name: str, refs: list[str], known: list[str]) -> None:
    for ref in refs:
        if ref not in known:
            hint = did_you_mean(ref, known) or (f"; tasks added so far: {', '.join(known)}" if known else
                                               "; no task has been added before it")
            raise ExperimentError(
                f"task {name!r} refers to '{{{ref}.output}}' but there is no task {ref!r}{hint}. "
                "Add the referenced task first, or use the TaskRef that exp.add returned: f\"{ref.output}\""
            )


# -- jobs ------------------------------------------------------------------------------------------------------------
def launch_path(task: Any = None) -> list[str]:
    """Directories the task's process needs on sys.path to import what the launching process imports.

    In order: the launching script's directory (``sys.path[0]``), the working directory, the root the task's own
    function or class is imported from (a DAG or flow that imports ``mypkg.train`` through ``PYTHONPATH`` or its
    dags folder: neither of the first two points there in an orchestrator's worker), and the ``PYTHONPATH``
    entries that are source trees (not ``site-packages``). Executors that start the task elsewhere (a container) mount the ones that exist.
    """
    entries: list[str] = []

    def add(path: str | None) -> None:
        if path and os.path.isdir(path) and os.path.abspath(path) not in entries:
            entries.append(os.path.abspath(path))

    first = sys.path[0] if sys.path else ""
    entries.append(os.path.abspath(first or os.getcwd()))
    add(os.getcwd())
    add(_import_root(getattr(task, "__fn_or_cls__", None)))
    for path in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if os.path.basename(path.rstrip(os.sep)) not in ("site-packages", "dist-packages"):
            add(path)  # source trees; installed packages come from the task's own environment
    return entries


def _import_root(target: Any) -> str | None:
    """The sys.path entry ``target``'s module is imported from (``/src`` for ``/src/pkg/mod.py`` as ``pkg.mod``)."""
    name = getattr(target, "__module__", None)
    module = sys.modules.get(name) if isinstance(name, str) else None
    path = getattr(module, "__file__", None)
    if not path or name == "__main__":
        return None
    root = os.path.dirname(os.path.abspath(path))
    depth = name.count(".") + (1 if os.path.basename(path) == "__init__.py" else 0)
    for _ in range(depth):
        root = os.path.dirname(root)
    return root


def task_payload(spec: TaskSpec) -> dict[str, Any]:
    """The runner's ``task.json`` (for a Script task, the stored form of the script; the runner does not read it)."""
    from nemorun_core.config.serialize import encode

    return {"version": 1, "name": spec.name, "kind": spec.kind, "task": encode(spec.task, payload=True),
            "sys_path": launch_path(spec.task)}


def make_job(spec: TaskSpec, key: str, job_dir: str, task: Any | None = None) -> Job:
    """The Job for ``spec`` (with ``task`` in place of ``spec.task`` when references were resolved)."""
    from nemorun_core.config.script import Script

    task = spec.task if task is None else task
    launcher = spec.executor.launcher
    if isinstance(task, Script):
        inline_name = "script.py" if task.interpreter == "python" else "script.sh"
        inline_path = os.path.join(job_dir, inline_name)
        files = {inline_name: task.inline} if task.inline else {}
        return Job(spec.name, key, task.command(inline_path, PYTHON), job_dir, env=dict(task.env), files=files,
                   launcher=launcher, cwd=task.cwd)
    payload = task_payload(dataclasses.replace(spec, task=task))
    return Job(spec.name, key, runner_command(job_dir), job_dir,
               files={JobFiles.TASK: json.dumps(payload)}, launcher=launcher)


def check_task(spec: TaskSpec) -> None:
    """Every check that can fail before submission: the config's types and rules, script files, executor fields."""
    from nemorun_core.config.script import Script

    if isinstance(spec.task, Script):
        spec.task.check_exists(spec.task.cwd or spec.executor.working_dir)
    else:
        from nemorun_core.config.validation import validate

        try:
            validate(spec.task)
        except ConfigError as exc:
            exc.args = (f"task {spec.name!r}: {exc}",)  # keep the type and path; say which task it was
            raise
    spec.executor.check()
