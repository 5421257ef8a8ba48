"""The ``SlurmExecutor`` options that NeMo Run names beyond the basic resources (``gres``, ``exclude``, ``comment``,
``mem_per_gpu``, ``mem_per_cpu``, ``cpus_per_gpu``, ``signal``, ``network``, ``container_env``, ``dependencies``,
``job_name_prefix``): their checks and their ``#SBATCH`` / ``srun`` rendering. Pure.

Each check refuses, before anything is submitted, what ``sbatch`` would refuse only after the job was sent (two
memory options at once, ``--cpus-per-gpu`` beside ``--cpus-per-task``) or what an ``#SBATCH`` line cannot carry.
"""

from __future__ import annotations

import re
import shlex
import signal as _signal
from typing import Any

from nemorun_core.errors import ConfigError
from nemorun_core.executors.fields import ENV_NAME, check_count, check_word

# What #SBATCH values may hold (as executor._IDENT): no spaces, quotes, '#'.
IDENT = re.compile(r"[A-Za-z0-9_.,:@%+=&|!()\[\]*\-/]+")
MEM = re.compile(r"\d+[KMGT]?B?", re.IGNORECASE)
# --signal=[{R|B}:]<sig_num>[@sig_time]: a name (USR1, SIGUSR1) or a number, seconds before the time limit.
SIGNAL = re.compile(r"(?:(?P<where>R|B|RB|BR):)?(?P<sig>[A-Za-z0-9]+)(?:@(?P<time>\d+))?")
JOB_ID = re.compile(r"\d+(?:_\d+)?")
PREFIX = re.compile(r"[A-Za-z0-9_.:@+=,\-]*")
# The #SBATCH option of each field, to refuse the same option given again in additional_parameters.
FLAGS = {"gres": "gres", "exclude": "exclude", "comment": "comment", "mem_per_gpu": "mem-per-gpu",
         "mem_per_cpu": "mem-per-cpu", "cpus_per_gpu": "cpus-per-gpu", "signal": "signal", "network": "network"}


def _err(field: str, message: str) -> ConfigError:
    return ConfigError(message, path=f"SlurmExecutor.{field}")


def check(ex: Any) -> None:
    """Check the options of this module on ``ex`` (a ``SlurmExecutor``); each error names the field and the fix."""
    for name in ("gres", "exclude", "network"):
        check_word(getattr(ex, name), f"SlurmExecutor.{name}", IDENT,
                   "{value} cannot go into an #SBATCH line (spaces, quotes, '#', ';' and newlines are not "
                   "allowed); write e.g. " + {"gres": "'gpu:8'", "exclude": "'node[01-03],node07'",
                                              "network": "'sn_all'"}[name])
    prefix = ex.job_name_prefix
    if prefix is not None and (not isinstance(prefix, str) or not PREFIX.fullmatch(prefix)):
        raise _err("job_name_prefix", f"{prefix!r} cannot start a Slurm job name; use letters, digits and "
                                      "_.:@+=,- (e.g. 'myteam-nemo:')")
    _check_memory(ex)
    _check_cpus_per_gpu(ex)
    if ex.signal is not None:
        check_signal(ex.signal)
    if ex.comment is not None:
        comment = ex.comment
        if not isinstance(comment, str) or not comment or any(c in comment for c in "\n\r\0\\"):
            raise _err("comment", f"must be one line of text without backslashes, got {comment!r}")
    _check_container_env(ex)
    if not isinstance(ex.stderr_to_stdout, bool):
        raise _err("stderr_to_stdout", f"must be True (stderr in the job's log) or False (its own file, see "
                                       f"job_details.stderr), got {ex.stderr_to_stdout!r}")
    dependency_ids(ex.dependencies)
    for field, flag in FLAGS.items():
        if getattr(ex, field) is not None and flag in (ex.additional_parameters or {}):
            raise _err(field, f"is also given as additional_parameters[{flag!r}]; set it in one place")


def _check_memory(ex: Any) -> None:
    for name in ("mem_per_gpu", "mem_per_cpu"):
        value = getattr(ex, name)
        if value is not None and not MEM.fullmatch(str(value)):
            raise _err(name, f"{value!r} is not a memory size; write e.g. '16G' or '512M'")
    component_mem = any(g.mem is not None for g in ex.heterogeneous)
    given = [n for n in ("mem", "mem_per_gpu", "mem_per_cpu") if getattr(ex, n) is not None]
    if component_mem and "mem" not in given:
        given.insert(0, "heterogeneous[].mem")
    if len(given) > 1:
        raise _err(given[1], f"Slurm takes one of --mem, --mem-per-cpu and --mem-per-gpu; {' and '.join(given)} "
                             "are both set: keep one")


def _check_cpus_per_gpu(ex: Any) -> None:
    if ex.cpus_per_gpu is None:
        return
    check_count(ex.cpus_per_gpu, "SlurmExecutor.cpus_per_gpu")
    if ex.cpus_per_task is not None or any(g.cpus_per_task is not None for g in ex.heterogeneous):
        raise _err("cpus_per_gpu", "Slurm does not take --cpus-per-gpu together with --cpus-per-task; keep one")
    gres = ex.gres or ""
    has_gpus = (ex.gpus_per_node or ex.gpus_per_task or "gpu" in gres
                or any(g.gpus_per_node for g in ex.heterogeneous))
    if not has_gpus:
        raise _err("cpus_per_gpu", "needs GPUs in the request: set gpus_per_node, gpus_per_task or gres='gpu:N'")


def check_signal(value: Any) -> None:
    """Refuse a ``--signal`` value that sbatch would not take: ``[R:|B:]<name or number>[@seconds]``."""
    m = SIGNAL.fullmatch(value) if isinstance(value, str) else None
    sig = m.group("sig") if m else ""
    known = sig.isdigit() and 0 < int(sig) < 65 or ("SIG" + sig.upper().removeprefix("SIG")) in _signal.Signals.__members__
    if not m or not known:
        raise _err("signal", f"{value!r} is not a Slurm signal spec; write e.g. 'USR1@90' (USR1 90 s before the "
                             "time limit) or 'B:TERM@120' (to the batch shell only)")
    if m.group("time") is not None and int(m.group("time")) > 65535:
        raise _err("signal", f"{value!r}: the time before the limit is at most 65535 seconds")


def _check_container_env(ex: Any) -> None:
    names = ex.container_env
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise _err("container_env", f"must be a list of variable names, got {names!r}")
    for name in names:
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise _err("container_env", f"{name!r} is not an environment variable name")
    if names and not ex.container_image:
        raise _err("container_env", "names the variables whose values go into the container (pyxis' "
                                    "--container-env); it needs container_image")


def dependency_ids(values: Any) -> list[str]:
    """The Slurm job ids of ``SlurmExecutor.dependencies``: ids (``"12345"``, ``"12345_3"``) or NeMo Run's
    handles (``"slurm_tunnel://nemo_run/12345/master/0"``).

    Raises:
        ConfigError: an entry that names no Slurm job.
    """
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise _err("dependencies", f"must be a list of Slurm job ids, got {values!r}")
    out = []
    for value in values:
        job_id = getattr(value, "job_id", value)  # a JobHandle
        if isinstance(job_id, str) and "://" in job_id:
            parts = job_id.partition("://")[2].split("/")
            job_id = parts[1] if len(parts) > 1 else ""
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise _err("dependencies", f"{value!r} is not a Slurm job id ('12345'); to wait for a task of the "
                                       "same experiment, use exp.add(..., dependencies=[...])")
        out.append(job_id)
    return out


def job_options(ex: Any) -> list[str]:
    """The job-wide ``#SBATCH`` options of this module (first component only for a heterogeneous job)."""
    out = []
    if ex.comment is not None:
        out.append(f"--comment={shlex.quote(ex.comment)}")  # sbatch's own parser takes quoted values
    for flag, value in (("signal", ex.signal), ("network", ex.network)):
        if value is not None:
            out.append(f"--{flag}={value}")
    return out


def resource_options(ex: Any) -> list[str]:
    """The per-component ``#SBATCH`` options of this module (repeated for each component of a heterogeneous
    job, like ``gpus_per_task``)."""
    return [f"--{flag}={value}" for flag, value in (
        ("gres", ex.gres), ("mem-per-gpu", ex.mem_per_gpu), ("mem-per-cpu", ex.mem_per_cpu),
        ("cpus-per-gpu", ex.cpus_per_gpu), ("exclude", ex.exclude)) if value is not None]


def srun_options(ex: Any) -> list[str]:
    """The container options of this module for ``srun`` (pyxis)."""
    return [f"--container-env={','.join(ex.container_env)}"] if ex.container_image and ex.container_env else []
