"""``SlurmExecutor``: run a job on a Slurm cluster, reached through a tunnel (SSH or this machine).

One job is one ``sbatch`` of a script rendered from ``sbatch.sh.j2``: ``prepare`` decides the remote job directory
and uploads the code, the pure ``render`` makes the script, and ``dryrun`` is the same render of a plan made without
a remote call (a ``~`` in an SSH tunnel's ``job_dir`` and a package's digest are then declared placeholders). The
script sent is kept in the job directory as ``sbatch.sh``. Submission is one remote command: the
job's files travel as a tar on its stdin, with the secret environment values ahead of it as base64 data (never
parsed as shell, never written to disk or put on a command line); the command claims the job directory for the
job's key and submits only if it has no ``slurm_job_id`` yet, so a retried submission finds the first job instead
of starting another, and a submission under another key is refused. Status of many jobs is one remote call
(``squeue`` and ``sacct`` together), and so is a poller's round of status plus new log lines (``poll_many``).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shlex
import tarfile
from typing import Any, ClassVar, Iterator, Mapping, Optional, Sequence

from nemorun_core.credentials import CredentialKind, CredentialSlot
from nemorun_core.errors import ConfigError, SubmissionError
from nemorun_core.executors import ranks
from nemorun_core.executors.base import (Capability, Executor, Job, JobHandle, JobStatus, SubmitRequest,
                                         resolve_argv)
from nemorun_core.executors.fields import (check_arg_list, check_count, check_env_vars, check_interpreter,
                                           check_word)
from nemorun_core.executors.slurm import details as _details
from nemorun_core.executors.slurm import options as _options
from nemorun_core.executors.slurm.details import SlurmJobDetails
from nemorun_core.jobfiles import JobFiles
from nemorun_core.packaging.base import check_packager, packages_code
from nemorun_core.secrets import is_secret

# Every pattern is used with fullmatch: `$` in re.match also matches before a final newline, and a newline in an
# #SBATCH value ends the directive and starts a line of its own.
_IDENT = re.compile(r"[A-Za-z0-9_.,:@%+=&|!()\[\]*\-/]+")  # what #SBATCH values may hold: no spaces, quotes, #
_TIME = re.compile(r"(\d+-)?\d+(:\d{1,2}){0,2}|\d+-\d+")
_MEM = re.compile(r"\d+[KMGT]?B?", re.IGNORECASE)
_PARAM = re.compile(r"[a-z][a-z0-9\-_]*")
_ARRAY = re.compile(r"[0-9][0-9,\-:%]*")
# What a launcher's per-node shell expressions are given as: plain words that quoting leaves alone, replaced by the
# variable references once the rest of the argument is quoted (see ``SlurmExecutor.run_command``).
_NODE_VARS = {"__NEMORUN_NODE_RANK__": "$SLURM_NODEID", "__NEMORUN_HEAD_NODE__": "$NEMORUN_HEAD_NODE"}
DEPENDENCY_TYPES = ("afterok", "afterany", "afternotok", "aftercorr")
# Slurm's own files in the job directory, beside the common ones of nemorun_core.jobfiles.JobFiles.
SCRIPT_FILE = "sbatch.sh"
JOB_ID_FILE = "slurm_job_id"
JOB_KEY_FILE = "key"  # the key of the job submitted from a directory: who may re-attach to it


# What a dry plan shows for what only submission can know (SubmitRequest.placeholders).
HOME_PLACEHOLDER = "<remote home>"
DIGEST_PLACEHOLDER = "<package digest>"


@dataclasses.dataclass(frozen=True)
class SlurmPlan:
    """What :meth:`SlurmExecutor.prepare` decided for one job: all its request depends on beyond the job and the
    executor's settings.

    Attributes:
        remote_dir: the job's directory on the cluster (absolute, unless a dry plan holds a placeholder).
        code_dir: the directory of the uploaded code package on the cluster, or None without a packager.
        placeholders: tokens a dry plan shows for what only submission can know, with what replaces them.
    """

    remote_dir: str
    code_dir: Optional[str] = None
    placeholders: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(kw_only=True)
class SlurmResources:
    """The resources of one component of a heterogeneous job."""

    nodes: int = 1
    ntasks_per_node: int = 1
    partition: Optional[str] = None
    gpus_per_node: Optional[int] = None
    cpus_per_task: Optional[int] = None
    mem: Optional[str] = None
    constraint: Optional[str] = None


@dataclasses.dataclass(kw_only=True)
class SlurmExecutor(Executor):
    """Run tasks as Slurm batch jobs.

    Args:
        account, partition, qos: where the job is charged and queued.
        nodes, ntasks_per_node: processes per job (``srun`` starts ``nodes * ntasks_per_node``; with a launcher such
            as ``run.Torchrun()``, one launcher per node starting ``ntasks_per_node`` workers).
        gpus_per_node, gpus_per_task, cpus_per_task, mem, exclusive, constraint: resources (``mem="64G"``).
        time: wall-clock limit (``"HH:MM:SS"``, ``"D-HH:MM:SS"`` or minutes); ``time_limit`` is the same setting.
        env_vars: environment of the job; secrets (named like one, key material, or ``run.Secret(value)``) are
            passed at submission, byte for byte, and never rendered.
        setup_lines: shell lines run before the task (``module load``, ``source venv/bin/activate``); they are the
            user's own code and are not quoted.
        srun_args: extra ``srun`` arguments.
        additional_parameters: more ``#SBATCH`` options, ``{"mail-type": "END", "requeue": True}``.
        container_image, container_mounts, container_workdir: for sites with a container plugin (pyxis/enroot):
            passed to ``srun`` as ``--container-*``.
        retries: on failure, the job requeues itself up to this many times (``#SBATCH --requeue``).
        array: a job array (``"0-99%10"``): every element runs the task with its ``SLURM_ARRAY_TASK_ID``.
        heterogeneous: components of a heterogeneous job (``[SlurmResources(...), ...]``); the task runs as one
            ``srun`` step across all of them.
        dependency_type: how experiment dependencies become ``--dependency`` (``afterok`` by default).
        dependencies: more Slurm jobs to wait for (``["12345"]``, or NeMo Run's handles), beside the tasks of the
            experiment given to ``exp.add(..., dependencies=...)``; each becomes part of ``--dependency``.
        job_name_prefix: put in front of the job's Slurm name (``"myteam-nemo:"``), as ``squeue`` shows it.
        job_details: where the job's output goes (a ``SlurmJobDetails`` of ``nemorun_core.core.execution.slurm``;
            subclass it and override ``stdout`` / ``stderr`` for custom paths); default ``log.out`` (and
            ``log.err``) in the job's directory.
        stderr_to_stdout: stderr goes into the job's log (default); False: to ``job_details.stderr`` of its own.
        gres, exclude, comment, signal, network: as ``sbatch`` (``gres="gpu:8"``, ``exclude="node[01-03]"``,
            ``signal="USR1@90"``, a free-text ``comment``).
        mem_per_gpu, mem_per_cpu, cpus_per_gpu: memory and CPUs by GPU or CPU (``mem_per_gpu="80G"``); one memory
            option at most, and ``cpus_per_gpu`` not beside ``cpus_per_task``.
        container_env: names of variables of the job's environment whose values override the image's inside the
            container (pyxis' ``--container-env``); needs ``container_image``.
        tunnel: how to reach the cluster (``run.SSHTunnel(...)`` or ``run.LocalTunnel(job_dir=...)``).
        packager: how to ship code (``run.GitArchivePackager()``...); None or the pass-through ``run.Packager()``:
            the cluster sees the same files (a shared filesystem).
        python: the interpreter on the cluster that runs Python tasks: an absolute path or a command name.
        launcher: ``None``, ``"torchrun"`` or ``run.Torchrun(...)``.
    """

    account: Optional[str] = None
    partition: Optional[str] = None
    qos: Optional[str] = None
    nodes: int = 1
    ntasks_per_node: int = 1
    gpus_per_node: Optional[int] = None
    gpus_per_task: Optional[int] = None
    cpus_per_task: Optional[int] = None
    mem: Optional[str] = None
    exclusive: bool = False
    constraint: Optional[str] = None
    time: Optional[str] = None
    time_limit: Optional[str] = None
    env_vars: dict[str, str] = dataclasses.field(default_factory=dict)
    setup_lines: list[str] = dataclasses.field(default_factory=list)
    srun_args: list[str] = dataclasses.field(default_factory=list)
    additional_parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    container_image: Optional[str] = None
    container_mounts: list[str] = dataclasses.field(default_factory=list)
    container_workdir: Optional[str] = None
    retries: int = 0
    array: Optional[str] = None
    heterogeneous: list[SlurmResources] = dataclasses.field(default_factory=list)
    dependency_type: str = "afterok"
    dependencies: list[str] = dataclasses.field(default_factory=list)
    job_name_prefix: Optional[str] = None
    job_details: SlurmJobDetails = dataclasses.field(default_factory=SlurmJobDetails)
    stderr_to_stdout: bool = True
    gres: Optional[str] = None
    exclude: Optional[str] = None
    comment: Optional[str] = None
    signal: Optional[str] = None
    network: Optional[str] = None
    mem_per_gpu: Optional[str] = None
    mem_per_cpu: Optional[str] = None
    cpus_per_gpu: Optional[int] = None
    container_env: list[str] = dataclasses.field(default_factory=list)
    tunnel: Any = None
    packager: Any = None
    python: str = "python3"
    launcher: Any = None

    backend: ClassVar[str] = "slurm"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOGS, Capability.CANCEL, Capability.DETACH, Capability.STATUS_MANY, Capability.FIND,
         Capability.FETCH_FILES, Capability.DEPENDENCIES, Capability.REQUEUE})
    credential_slots: ClassVar[tuple[CredentialSlot, ...]] = (
        CredentialSlot("ssh", CredentialKind.SSH, "tunnel",
                       "the cluster's login node (without it the cluster's commands run on this machine)"),)

    def __post_init__(self) -> None:
        if self.time_limit is not None:
            if self.time is not None and self.time != self.time_limit:
                raise ConfigError(f"time={self.time!r} and time_limit={self.time_limit!r} disagree; they are one "
                                  "setting, give one", path="SlurmExecutor.time")
            self.time, self.time_limit = self.time_limit, None
        # NeMo Run's setup_lines is one text of lines, and its additional_parameters default None.
        if isinstance(self.setup_lines, str):
            self.setup_lines = self.setup_lines.splitlines()
        if self.additional_parameters is None:
            self.additional_parameters = {}
        if self.heterogeneous is False:
            self.heterogeneous = []
        if self.tunnel is None:
            from nemorun_core.home import default_home
            from nemorun_core.tunnel.local import LocalTunnel

            # Under $NEMORUN_HOME like every other file nemorun keeps on this machine (read now, not at import).
            self.tunnel = LocalTunnel(job_dir=os.path.join(default_home(), "slurm-jobs"))
        self.check()

    # -- validation -------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Reject bad settings before anything is submitted; each error names the field and the fix."""
        for name in ("account", "partition", "qos", "constraint", "container_image", "array"):
            _ident(getattr(self, name), name)
        for name in ("nodes", "ntasks_per_node"):
            _positive(getattr(self, name), name)
        for name in ("gpus_per_node", "gpus_per_task", "cpus_per_task"):
            value = getattr(self, name)
            if value is not None:
                _positive(value, name, zero_ok=name.startswith("gpus"))
        if self.mem is not None and not _MEM.fullmatch(str(self.mem)):
            raise ConfigError(f"{self.mem!r} is not a memory size; write e.g. '64G' or '512M'", path="SlurmExecutor.mem")
        if self.time is not None and not _TIME.fullmatch(str(self.time)):
            raise ConfigError(f"{self.time!r} is not a Slurm time; write 'HH:MM:SS', 'D-HH:MM:SS' or minutes",
                              path="SlurmExecutor.time")
        if self.array is not None and not _ARRAY.fullmatch(self.array):
            raise ConfigError(f"{self.array!r} is not an array spec; write e.g. '0-99' or '0-99%10'",
                              path="SlurmExecutor.array")
        check_count(self.retries, "SlurmExecutor.retries", minimum=0)
        if self.dependency_type not in DEPENDENCY_TYPES:
            raise ConfigError(f"{self.dependency_type!r} is not one of {', '.join(DEPENDENCY_TYPES)}",
                              path="SlurmExecutor.dependency_type")
        check_env_vars(self.env_vars, "SlurmExecutor.env_vars")
        check_packager(self.packager, "SlurmExecutor.packager")
        for key, value in self.additional_parameters.items():
            if not isinstance(key, str) or not _PARAM.fullmatch(key):
                raise ConfigError(f"{key!r} is not an sbatch option name (e.g. 'mail-type')",
                                  path="SlurmExecutor.additional_parameters")
            if value is not None and not isinstance(value, bool) and not _IDENT.fullmatch(str(value)):
                raise ConfigError(f"value of {key!r} ({value!r}) has spaces, quotes, '#' or newlines, which #SBATCH "
                                  "lines cannot carry", path="SlurmExecutor.additional_parameters")
        for line in self.setup_lines:
            if not isinstance(line, str) or "\n" in line or "\0" in line:
                raise ConfigError("each setup line must be one string without newlines; give a list of lines",
                                  path="SlurmExecutor.setup_lines")
        check_arg_list(self.srun_args, "SlurmExecutor.srun_args")
        check_arg_list(self.container_mounts, "SlurmExecutor.container_mounts")
        if self.container_workdir is not None:
            check_arg_list([self.container_workdir], "SlurmExecutor.container_workdir")
        check_interpreter(self.python, "SlurmExecutor.python")
        if self.heterogeneous is True:
            raise ConfigError("heterogeneous=True (NeMo Run's form, filled from a job group) is not supported: "
                              "give the components, heterogeneous=[run.SlurmResources(nodes=1, ...), ...]; the "
                              "task runs as one srun step across them", path="SlurmExecutor.heterogeneous")
        if not isinstance(self.heterogeneous, (list, tuple)):
            raise ConfigError(f"must be a list of run.SlurmResources(...), got {self.heterogeneous!r}",
                              path="SlurmExecutor.heterogeneous")
        for i, group in enumerate(self.heterogeneous):
            if not isinstance(group, SlurmResources):
                raise ConfigError(f"component {i} must be a SlurmResources(...)", path="SlurmExecutor.heterogeneous")
            _positive(group.nodes, f"heterogeneous[{i}].nodes")
            _positive(group.ntasks_per_node, f"heterogeneous[{i}].ntasks_per_node")
            _ident(group.partition, f"heterogeneous[{i}].partition")
            _ident(group.constraint, f"heterogeneous[{i}].constraint")
        _options.check(self)
        _details.check_details(self.job_details)
        from nemorun_core.launchers import resolve_launcher

        resolve_launcher(self.launcher)

    # -- rendering (pure) -------------------------------------------------------------------------------------------
    def remote_dir(self, job: Job, root: str | None = None) -> str:
        """The job's directory on the cluster: ``<root>/<experiment id>/<task>[/attempt-N]``.

        Args:
            root: the base directory; default ``tunnel.job_dir`` as written (pure: a ``~`` in it stays, for
                ``dryrun``). Submission passes :meth:`job_root`, where ``~`` is the remote home.
        """
        parts = job.key.split("/")
        exp_id, task, attempt = (parts + ["0", "0"])[:3] if len(parts) >= 2 else (job.key, "task", "0")
        path = f"{(root or self.tunnel.job_dir).rstrip('/')}/{exp_id}/{task}"
        return path if attempt in ("0", "") else f"{path}/attempt-{attempt}"

    def job_root(self) -> str:
        """``tunnel.job_dir`` with a leading ``~`` made the remote home (one remote lookup per tunnel): quoted in
        commands and written in ``#SBATCH`` lines, a ``~`` would otherwise be a literal directory name."""
        return self.tunnel.expand_home(self.tunnel.job_dir)

    def job_name(self, job: Job) -> str:
        """The job's Slurm name: ``job_name_prefix`` and the job's key (how ``find`` knows it in ``squeue``)."""
        return ((self.job_name_prefix or "") + re.sub(r"[^A-Za-z0-9_.\-]", "_", job.key.replace("/", ".")))[:200]

    def log_paths(self, job: Job, remote_dir: str) -> tuple[str, Optional[str]]:
        """The job's ``--output`` path and its ``--error`` path (None: stderr is in the output), from
        ``job_details`` (see ``slurm/details.py``). Pure."""
        return _details.output_paths(self.job_details, job_name=self.job_name(job), remote_dir=remote_dir,
                                     separate_stderr=not self.stderr_to_stdout, array=bool(self.array))

    def log_extras(self, job: Job, remote_dir: str) -> dict[str, str]:
        """What a handle records of the job's log paths: only those that are not the default ``log.out``."""
        out, err = self.log_paths(job, remote_dir)
        extras = {} if out == JobFiles(remote_dir).log else {"log": out}
        if err is not None:
            extras["err"] = err
        return extras

    def log_file(self, handle: JobHandle) -> str:
        """The file holding the job's output (its ``--output``, the default ``log.out`` or a ``job_details``
        path)."""
        pattern = handle.extra("log")
        return _details.resolve(pattern, handle.job_id) if pattern else JobFiles(handle.job_dir).log

    def err_file(self, handle: JobHandle) -> Optional[str]:
        """The file holding the job's stderr when it is not in the output (``stderr_to_stdout=False``), else None."""
        pattern = handle.extra("err")
        return _details.resolve(pattern, handle.job_id) if pattern else None

    def directives(self, job: Job, remote_dir: str, depends_on: Sequence[str] = ()) -> list[list[str]]:
        out, err = self.log_paths(job, remote_dir)
        common = [f"--job-name={self.job_name(job)}", f"--output={out}"]
        if err is not None:
            common.append(f"--error={err}")
        common += ["--open-mode=append", f"--chdir={remote_dir}"]
        if self.time:
            common.append(f"--time={self.time}")
        for flag, value in (("account", self.account), ("qos", self.qos)):
            if value:
                common.append(f"--{flag}={value}")
        common += _options.job_options(self)
        if self.array:
            common.append(f"--array={self.array}")
        if self.retries:
            common.append("--requeue")
        waits = list(dict.fromkeys([*depends_on, *_options.dependency_ids(self.dependencies)]))
        if waits:
            common.append(f"--dependency={self.dependency_type}:{':'.join(waits)}")
        for key, value in sorted(self.additional_parameters.items()):
            if value is True or value is None:
                common.append(f"--{key}")
            elif value is not False:
                common.append(f"--{key}={value}")
        if not self.heterogeneous:
            return [common + self._resources(SlurmResources(
                nodes=self.nodes, ntasks_per_node=self.ntasks_per_node, partition=self.partition,
                gpus_per_node=self.gpus_per_node, cpus_per_task=self.cpus_per_task, mem=self.mem,
                constraint=self.constraint))]
        groups = [self._resources(g) for g in self.heterogeneous]
        groups[0] = common + groups[0]
        return groups

    def _resources(self, r: SlurmResources) -> list[str]:
        out = [f"--nodes={r.nodes}", f"--ntasks-per-node={self._tasks_per_node(r)}"]
        for flag, value in (("partition", r.partition), ("gpus-per-node", r.gpus_per_node),
                            ("cpus-per-task", r.cpus_per_task), ("mem", r.mem), ("constraint", r.constraint)):
            if value is not None:
                out.append(f"--{flag}={value}")
        if self.gpus_per_task is not None:
            out.append(f"--gpus-per-task={self.gpus_per_task}")
        if self.exclusive:
            out.append("--exclusive")
        return out + _options.resource_options(self)

    def _tasks_per_node(self, r: SlurmResources) -> int:
        from nemorun_core.launchers import resolve_launcher

        return 1 if resolve_launcher(self.launcher) is not None else r.ntasks_per_node

    def _groups(self) -> list[tuple[int, int]]:
        """(nodes, tasks per node) of each component of the job (one unless it is heterogeneous)."""
        if self.heterogeneous:
            return [(g.nodes, g.ntasks_per_node) for g in self.heterogeneous]
        return [(self.nodes, self.ntasks_per_node)]

    def run_command(self, job: Job, remote_dir: str) -> tuple[str, bool]:
        """The srun line of the script, and whether it needs the head node's address.

        A job of several tasks (no launcher) runs each through ``sh -c`` that first exports the rank environment
        of ``executors/ranks.py`` from the task's own ``SLURM_*`` values (known only on its node), then ``exec``s
        the command, which is passed as arguments (``"$@"``), never as shell text. With a launcher on several
        nodes, each launcher process gets its node's rank the same way.
        """
        from nemorun_core.launchers import resolve_launcher, wrap_command

        q = shlex.quote
        argv = resolve_argv([_remote_path(a, job.job_dir, remote_dir) for a in job.command], self.python)
        srun = ["srun", *self.srun_args]
        if self.heterogeneous:
            srun.append(f"--het-group=0-{len(self.heterogeneous) - 1}")
        if self.container_image:
            srun.append(f"--container-image={self.container_image}")
            if self.container_mounts:
                srun.append(f"--container-mounts={','.join(self.container_mounts)}")
            if self.container_workdir:
                srun.append(f"--container-workdir={self.container_workdir}")
            srun += _options.srun_options(self)
        launcher = resolve_launcher(self.launcher)
        if launcher is None:
            if sum(n * t for n, t in self._groups()) <= 1:
                return " ".join(q(a) for a in srun + argv), False
            prelude = ranks.exports(ranks.slurm_task_env(self._groups()))
            return (" ".join(q(a) for a in srun) + " sh -c " + q(prelude + '; exec "$@"') + " nemorun-task "
                    + " ".join(q(a) for a in argv)), True
        rank, head = _NODE_VARS
        wrapped = wrap_command(launcher, argv, nodes=self.nodes, nproc_per_node=self.ntasks_per_node,
                               node_rank=rank, master_addr=head, profile_dir=remote_dir)
        inner = " ".join(_with_node_vars(a) for a in wrapped)
        node = ranks.node_env('"$SLURM_NODEID"', self.nodes)
        if node:
            inner = f"{ranks.exports(node)}; {inner}"
        return " ".join(q(a) for a in srun) + " --ntasks-per-node=1 bash -c " + q(inner), True

    def script(self, job: Job, remote_dir: str, depends_on: Sequence[str] = (), code_dir: str | None = None) -> str:
        """The sbatch script of ``job`` in ``remote_dir`` (pure; see :meth:`render` for the whole request)."""
        from nemorun_core.executors.slurm.template import render_sbatch

        _check_key(job)
        env = self.job_env(job)
        run_command, head = self.run_command(job, remote_dir)
        return render_sbatch(
            name=job.name, key=job.key, job_dir=remote_dir,
            groups=self.directives(job, remote_dir, depends_on),
            env=[(k, v) for k, v in sorted(env.items()) if not is_secret(k, v)],
            secret_names=sorted(k for k, v in env.items() if is_secret(k, v)),
            cwd=code_dir or job.cwd or remote_dir, setup_lines=self.setup_lines,
            run_command=run_command, head_node=head, retries=self.retries,
        )

    def job_env(self, job: Job) -> dict[str, str]:
        """The job's environment (the executor's, then the task's), checked: every name a shell identifier, every
        value a string without NUL (an environment cannot hold one)."""
        env = {**self.env_vars, **job.env}
        check_env_vars(env, f"SlurmExecutor.env_vars (with the env of task {job.name!r})")
        return env

    # -- prepare (I/O) and render (pure): what dryrun shows is what submit sends ---------------------------------
    def prepare(self, job: Job, *, dry: bool = False) -> "SlurmPlan":
        """Decide where the job lives on the cluster and where its code is.

        Without ``dry`` (for :meth:`submit`): the tunnel's ``job_dir`` with ``~`` made the remote home (one
        lookup per tunnel), and, with a packager, the code packaged and uploaded unless the cluster has it
        (blocking remote calls and local writes). With ``dry`` (for :meth:`dryrun`): the same decisions with no
        remote call and no write; the remote home (a ``~`` through an SSH tunnel) and the package's digest are
        declared placeholders, since only that work can tell them.

        Raises:
            ConfigError: a bad setting.
            SubmissionError: the job directory holds characters ``#SBATCH`` lines cannot carry.
            TunnelError: (not ``dry``) the cluster could not be reached.
        """
        from nemorun_core.executors.slurm.remote import check_path, upload_code
        from nemorun_core.tunnel.local import LocalTunnel

        self.check()
        _check_key(job)
        placeholders: dict[str, str] = {}
        written = self.tunnel.job_dir
        if not dry or isinstance(self.tunnel, LocalTunnel):  # this machine's home is known without a command
            root = self.job_root()
        elif written == "~" or written.startswith("~/"):
            root = HOME_PLACEHOLDER + written[1:]
            placeholders[HOME_PLACEHOLDER] = f"the home directory of the login on {self.tunnel.address}"
        else:
            root = written
        remote_dir = self.remote_dir(job, root)
        check_path(self.remote_dir(job, written) if root.startswith(HOME_PLACEHOLDER) else remote_dir)
        code_dir = None
        if packages_code(self.packager):  # None or the pass-through run.Packager(): the cluster has the code
            if dry:
                code_dir = f"{root.rstrip('/')}/code/{DIGEST_PLACEHOLDER}"
                placeholders[DIGEST_PLACEHOLDER] = "the content digest of the code package built at submission"
            else:
                code_dir = upload_code(self)
        return SlurmPlan(remote_dir=remote_dir, code_dir=code_dir, placeholders=tuple(sorted(placeholders.items())))

    def render(self, job: Job, plan: "SlurmPlan") -> SubmitRequest:
        """The job's request: the sbatch script (kept in the remote job directory as ``sbatch.sh``) and the files
        that travel with it (``task.json`` importing from the uploaded code, when there is a packager). Pure."""
        from nemorun_core.executors.files import rewrite_payload

        files = dict(job.files)
        if JobFiles.TASK in files and plan.code_dir:
            files[JobFiles.TASK] = rewrite_payload(files[JobFiles.TASK], [plan.code_dir])
        text = self.script(job, plan.remote_dir, [h.job_id for h in job.depends_on], plan.code_dir)
        return SubmitRequest(self.backend, text, files=files,
                             meta={"remote_dir": plan.remote_dir, "address": self.tunnel.address,
                                   "job_name": self.job_name(job), "code_dir": plan.code_dir},
                             sent_as=SCRIPT_FILE, placeholders=dict(plan.placeholders))

    def dryrun(self, job: Job) -> SubmitRequest:
        """Exactly what :meth:`submit` sends: ``render(job, prepare(job, dry=True))``. No remote command."""
        return self.render(job, self.prepare(job, dry=True))

    # -- the contract -----------------------------------------------------------------------------------------------
    def batch_key(self) -> tuple[str, str]:
        return (self.backend, self.tunnel.address)

    def status_calls(self, n: int) -> int:
        """One remote command (``squeue`` and ``sacct`` together) for any number of running jobs; failed jobs add
        one more, for their tasks' own errors."""
        return 1 if n > 0 else 0

    @property
    def nodes_and_tasks(self) -> tuple[int, int]:
        return self.nodes, self.ntasks_per_node

    def submit(self, job: Job) -> JobHandle:
        """Send the request of ``render(job, prepare(job))`` (what :meth:`dryrun` shows) in one remote command;
        see ``remote.submit``. Idempotent by key."""
        from nemorun_core.executors.slurm.remote import submit

        plan = self.prepare(job)
        return submit(self, job, plan.remote_dir, self.render(job, plan))

    def find(self, key: str, job_dir: str) -> JobHandle | None:
        from nemorun_core.executors.slurm.remote import find

        return find(self, key)

    def status_many(self, handles: Sequence[JobHandle]) -> dict[JobHandle, JobStatus]:
        from nemorun_core.executors.slurm.remote import status_many

        return status_many(self, handles)

    def poll_many(self, offsets: Mapping[JobHandle, int]) -> dict[JobHandle, tuple[JobStatus, list[str]]]:
        """Status and new log lines of many jobs in one remote command (see ``remote.poll_many``)."""
        from nemorun_core.executors.slurm.remote import poll_many

        return poll_many(self, offsets)

    def logs(self, handle: JobHandle, *, follow: bool = False, offset: int = 0) -> Iterator[str]:
        from nemorun_core.executors.slurm.remote import logs

        return logs(self, handle, follow=follow, offset=offset)

    def cancel(self, handle: JobHandle) -> None:
        self.tunnel.run(f"scancel {shlex.quote(handle.job_id)}", check=False)

    def fetch_file(self, handle: JobHandle, name: str) -> bytes | None:
        return self.tunnel.read_bytes(f"{handle.job_dir}/{name}")

    def log_location(self, handle: JobHandle) -> str:
        err = self.err_file(handle)
        where = f"{self.tunnel.address}:{self.log_file(handle)}"
        return f"{where} (stderr: {err})" if err else where

    def log_tail(self, handle: JobHandle, lines: int = 20) -> list[str]:
        """The last lines of the job's output, then of its stderr when that is a file of its own."""
        out = []
        for path in filter(None, (self.log_file(handle), self.err_file(handle))):
            result = self.tunnel.run(f"tail -n {int(lines)} {shlex.quote(path)}", check=False)
            if result.ok:
                out += result.stdout.splitlines()
        return out

    # -- NeMo Run's executor methods --------------------------------------------------------------------------------
    def info(self) -> str:
        """``"SlurmExecutor on <cluster address>"``."""
        return f"{type(self).__qualname__} on {self.tunnel.address}"


def job_files_tar(files: dict[str, str], script: str) -> bytes:
    """A tar (uncompressed, deterministic) of the job's files and its sbatch script, sent on the submit's stdin."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, text in sorted({**files, SCRIPT_FILE: script}.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o700 if name.endswith(".sh") else 0o600  # private to the cluster user
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _check_key(job: Job) -> None:
    if "\n" in job.key or "\r" in job.key or "\0" in job.key:
        # it names the job directory, which #SBATCH lines and the submit command carry
        raise SubmissionError(f"job key {job.key!r} contains a newline or NUL; keys are "
                              "'<experiment id>/<task>/<attempt>'")


def _with_node_vars(arg: str) -> str:
    """One argument of a launcher's command for ``bash -c``: quoted as data, except the per-node variables.

    Only the placeholders of ``_NODE_VARS`` become ``$SLURM_NODEID``/``$NEMORUN_HEAD_NODE`` (in double quotes, with
    everything else there escaped); any ``$``, backquote or quote of the user's own arguments stays literal.
    """
    if not any(mark in arg for mark in _NODE_VARS):
        return shlex.quote(arg)
    text = "".join("\\" + c if c in '\\"$`' else c for c in arg)
    for mark, var in _NODE_VARS.items():
        text = text.replace(mark, var)
    return f'"{text}"'


def _remote_path(arg: str, local_dir: str, remote_dir: str) -> str:
    if arg == local_dir or arg.startswith(local_dir.rstrip("/") + "/"):
        return remote_dir + arg[len(local_dir.rstrip("/")):]
    return arg


def _ident(value: Any, field: str) -> None:
    check_word(value, f"SlurmExecutor.{field}", _IDENT,
               "{value} cannot go into an #SBATCH line (spaces, quotes, '#', ';' and newlines are not allowed); "
               "check the spelling of the name")


def _positive(value: Any, field: str, zero_ok: bool = False) -> None:
    check_count(value, f"SlurmExecutor.{field}", minimum=0 if zero_ok else 1)
