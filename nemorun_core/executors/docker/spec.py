"""The container specs of a Docker job: validation of the executor's fields and rendering of the exact keyword
arguments given to ``DockerClient.containers.create``. Pure: no I/O, no Docker SDK import.

A spec is plain JSON data so that ``dryrun`` can show it as it is. Three values are not plain in the SDK call and
are converted at creation only (:func:`to_sdk_kwargs`): ``mounts`` (``docker.types.Mount``),
``device_requests`` (``docker.types.DeviceRequest``) and ``ulimits`` (``docker.types.Ulimit``).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from typing import Any, Mapping, Sequence

from nemorun_core.errors import ConfigError
from nemorun_core.executors import ranks
from nemorun_core.executors.base import resolve_argv
from nemorun_core.executors.docker import secret_files
from nemorun_core.executors.fields import check_count, check_env_vars, check_seconds, check_word

# Where nemorun itself and packaged code appear inside the container.
NEMORUN_LIB = "/opt/nemorun/lib"
CODE_DIR = "/workspace/code"
SECRET = "<secret>"

LABEL_KEY = "nemorun.key"
LABEL_JOB = "nemorun.job"
LABEL_RANK = "nemorun.rank"
LABEL_WORLD = "nemorun.containers"
LABEL_JOB_DIR = "nemorun.job_dir"

NETWORKS = ("host", "none")
NETWORK_RULE = (
    "nemorun runs containers with network 'host' (the container shares this machine's network) or 'none' (no "
    "network); Docker's bridge and user-defined networks put containers on addresses outside this machine, "
    "which this project does not use"
)

# The Docker reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?)"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^{_NAME}(?::{_TAG})?(?:@{_DIGEST})?$")
_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")

_SIZE = re.compile(r"^[0-9]+[bkmg]?$", re.IGNORECASE)
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.\-]*(:[A-Za-z0-9_.][A-Za-z0-9_.\-]*)?$")
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_PORT = re.compile(r"^(?:(?P<host>[0-9]+):)?(?P<ctr>[0-9]+)(?:/(?P<proto>tcp|udp|sctp))?$")
IPC_MODES = ("private", "shareable", "host", "none")
ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
           "rtprio", "rttime", "sigpending", "stack")
CLEANUP = ("on_success", "always", "never")

# containers.create arguments that extra_args may set. The ones nemorun sets itself are refused with the field to
# use instead (below); anything else is refused as unknown, so a typo never silently does nothing.
EXTRA_ARGS = frozenset({
    "blkio_weight", "blkio_weight_device", "cap_add", "cap_drop", "cgroup_parent", "cgroupns", "cpu_count",
    "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpuset_cpus",
    "cpuset_mems", "device_cgroup_rules", "device_read_bps", "device_read_iops", "device_write_bps",
    "device_write_iops", "devices", "domainname", "entrypoint", "extra_hosts", "group_add", "healthcheck",
    "hostname", "init", "kernel_memory", "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit",
    "nano_cpus", "oom_kill_disable", "oom_score_adj", "pid_mode", "pids_limit", "platform", "privileged",
    "read_only", "security_opt", "stop_signal", "storage_opt", "sysctls", "tmpfs", "userns_mode", "uts_mode",
})
OWN_ARGS = {
    "image": "container_image", "command": "the task", "environment": "env_vars", "labels": "(set by nemorun)",
    "mounts": "volumes", "volumes": "volumes", "network": "network", "network_mode": "network", "ports": "ports",
    "device_requests": "num_gpus", "runtime": "runtime", "shm_size": "shm_size", "ulimits": "ulimits",
    "ipc_mode": "ipc_mode", "user": "user", "name": "(set by nemorun)", "working_dir": "the task's cwd",
    "detach": "(set by nemorun)", "auto_remove": "cleanup", "remove": "cleanup", "restart_policy": "(not supported: "
    "a restarted container would hide the job's outcome; use the experiment's retries)",
}
# Host directories never mounted from a task's import path: they would hide the image's own system and packages.
_SYSTEM_DIRS = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/opt", "/proc", "/run", "/sbin",
                          "/sys", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/local/lib", "/var"})


def _err(field: str, message: str) -> ConfigError:
    return ConfigError(message, path=f"DockerExecutor.{field}")


# -- field validation ------------------------------------------------------------------------------------------------
def check_image(image: Any, field: str = "container_image") -> str:
    if not isinstance(image, str) or not image:
        raise _err(field, f"must be an image reference such as 'nvidia/pytorch:24.05-py3', got {image!r}")
    first, _, rest = image.partition("/")
    # Only a first component with '.' or ':' (or "localhost") is a registry; otherwise it is a lowercase path.
    as_path = rest and not ("." in first or ":" in first or first == "localhost") and first != first.lower()
    if len(image) > 255 or as_path or not (_REFERENCE.fullmatch(image) or _IMAGE_ID.fullmatch(image)):
        raise _err(field, f"{image!r} is not a valid image reference (lowercase [registry/]name[:tag][@digest], "
                          "e.g. 'nvidia/pytorch:24.05-py3')")
    return image


def parse_volume(spec: Any, index: int) -> dict[str, Any]:
    """``"/host:/ctr[:ro|rw]"`` -> a bind mount dict."""
    field = f"volumes[{index}]"
    if not isinstance(spec, str):
        raise _err(field, f"must be a string '/host/path:/container/path[:ro]', got {spec!r}")
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise _err(field, f"{spec!r} must be '/host/path:/container/path' or '/host/path:/container/path:ro'")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if not source.startswith("/"):
        raise _err(field, f"host path {source!r} in {spec!r} is not absolute; write the full path (named Docker "
                          "volumes are not supported)")
    if not target.startswith("/"):
        raise _err(field, f"container path {target!r} in {spec!r} must be absolute")
    if mode not in ("ro", "rw"):
        raise _err(field, f"mode {mode!r} in {spec!r} must be 'ro' or 'rw'")
    return bind(posixpath.normpath(source), posixpath.normpath(target), read_only=mode == "ro")


def bind(source: str, target: str, *, read_only: bool) -> dict[str, Any]:
    return {"type": "bind", "source": source, "target": target, "read_only": read_only}


def anonymous_volume(target: str) -> dict[str, Any]:
    """An anonymous volume (the engine creates it, removing the container with ``v=True`` removes it)."""
    return {"type": "volume", "source": None, "target": target, "read_only": False}


def _port_number(value: Any, field: str, spec: Any) -> int:
    if isinstance(value, bool):
        raise _err(field, f"{spec!r}: a port must be an int, got {value!r}")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise _err(field, f"{spec!r}: a port must be an int, got {value!r}") from None
    if isinstance(value, float) or not 1 <= port <= 65535:
        raise _err(field, f"{spec!r}: port {value!r} is out of range (1-65535)")
    return port


def parse_ports(ports: Any, network: str) -> dict[str, int]:
    """Accept ``[8080]``, ``["8080:8080"]``, ``["8080/udp"]``, ``[(8080, 8080)]`` (host, container) and
    ``{8080: 8080}`` (container -> host, as the SDK's ``ports``); return the SDK form ``{"8080/tcp": 8080}``."""
    if ports is None:
        return {}
    items: list[tuple[Any, Any, str, Any]] = []  # (host, container, proto, as given)
    if isinstance(ports, Mapping):
        for ctr, host in ports.items():
            proto = "tcp"
            if isinstance(ctr, str) and "/" in ctr:
                ctr, proto = ctr.split("/", 1)
            items.append((host, ctr, proto, {ctr: host}))
    elif isinstance(ports, (list, tuple)):
        for entry in ports:
            if isinstance(entry, (list, tuple)) and len(entry) == 2:
                items.append((entry[0], entry[1], "tcp", entry))
            elif isinstance(entry, str):
                m = _PORT.fullmatch(entry.strip())
                if not m:
                    raise _err("ports", f"{entry!r} is not a port mapping; write 8080, '8080:8080' (host:container)"
                                        " or '8080/udp'")
                items.append((m["host"] or m["ctr"], m["ctr"], m["proto"] or "tcp", entry))
            else:
                items.append((entry, entry, "tcp", entry))
    else:
        raise _err("ports", f"must be a list such as [8080] or ['8080:8080'], or a dict {{8080: 8080}}, got {ports!r}")
    out: dict[str, int] = {}
    for host, ctr, proto, given in items:
        host_port, ctr_port = _port_number(host, "ports", given), _port_number(ctr, "ports", given)
        if proto not in ("tcp", "udp", "sctp"):
            raise _err("ports", f"{given!r}: protocol {proto!r} must be tcp, udp or sctp")
        if network == "none":
            raise _err("ports", f"{given!r}: network='none' gives the container no network, so no port can be "
                                "published; use network='host'")
        if host_port != ctr_port:
            raise _err("ports", f"{given!r}: with network='host' the container uses this machine's ports directly, "
                                f"so port {ctr_port} cannot be published as {host_port}; make them equal")
        out[f"{ctr_port}/{proto}"] = host_port
    return out


def parse_ulimits(ulimits: Any) -> list[dict[str, Any]]:
    """Accept ``{"nofile": (soft, hard)}``, ``{"nofile": 1024}``, ``[{"name", "soft", "hard"}]`` or
    ``["nofile=1024:2048"]``; return ``[{"name", "soft", "hard"}]`` sorted by name."""
    if ulimits is None:
        return []
    entries: list[tuple[Any, Any, Any]] = []
    if isinstance(ulimits, Mapping):
        for name, value in ulimits.items():
            soft, hard = (value if isinstance(value, (list, tuple)) and len(value) == 2 else (value, value))
            entries.append((name, soft, hard))
    elif isinstance(ulimits, (list, tuple)):
        for entry in ulimits:
            if isinstance(entry, Mapping):
                entries.append((entry.get("name"), entry.get("soft"), entry.get("hard", entry.get("soft"))))
            elif isinstance(entry, str) and "=" in entry:
                name, _, limits = entry.partition("=")
                soft, _, hard = limits.partition(":")
                entries.append((name, soft, hard or soft))
            else:
                raise _err("ulimits", f"{entry!r} must be {{'name': 'nofile', 'soft': N, 'hard': N}} or 'nofile=N:M'")
    else:
        raise _err("ulimits", f"must be a dict such as {{'nofile': (65536, 65536)}} or a list, got {ulimits!r}")
    out = []
    for name, soft, hard in entries:
        if name not in ULIMITS:
            raise _err("ulimits", f"unknown limit {name!r}; known: {', '.join(ULIMITS)}")
        try:
            soft_i, hard_i = int(soft), int(hard)
        except (TypeError, ValueError):
            raise _err("ulimits", f"limits of {name!r} must be ints (-1: unlimited), got {soft!r}, {hard!r}") from None
        if hard_i != -1 and (soft_i == -1 or soft_i > hard_i):
            raise _err("ulimits", f"soft limit of {name!r} ({soft_i}) is above its hard limit ({hard_i})")
        out.append({"name": name, "soft": soft_i, "hard": hard_i})
    return sorted(out, key=lambda u: u["name"])


HEALTHCHECK_DURATIONS = ("interval", "timeout", "start_period")  # what docker.types.Healthcheck reads


def check_healthcheck(value: Any) -> None:
    """Refuse a health check the engine would refuse at creation: the Docker SDK's dict (``test``, ``interval``,
    ``timeout``, ``retries``, ``start_period``; durations in nanoseconds, 0 or >= 1 ms). The SDK ignores other
    keys silently, so they are refused here."""
    if not isinstance(value, Mapping):
        raise _err("healthcheck", f"must be a dict such as {{'test': ['CMD', 'true'], 'interval': 10**10}}, "
                                  f"got {value!r}")
    known = ("test", "retries", *HEALTHCHECK_DURATIONS)
    for key, item in value.items():
        if key not in known:
            from nemorun_core.errors import did_you_mean

            raise _err("healthcheck", f"unknown key {key!r}{did_you_mean(str(key), known) or ''}; the keys are "
                                      f"{', '.join(known)}")
        if key == "test":
            ok = (isinstance(item, str) and item) or (isinstance(item, (list, tuple)) and item
                                                      and all(isinstance(a, str) for a in item))
            if not ok:
                raise _err("healthcheck", f"test must be a command string or a list such as ['CMD', 'curl', "
                                          f"'-f', 'http://localhost'], got {item!r}")
        elif key == "retries":
            check_count(item, "DockerExecutor.healthcheck.retries", minimum=0)
        elif isinstance(item, bool) or not isinstance(item, int) or (item != 0 and item < 1_000_000):
            raise _err("healthcheck", f"{key} is in nanoseconds (an int, 0 or at least 1 ms = 1000000), got "
                                      f"{item!r}; e.g. 10 s is 10**10")
    if value and "test" not in value:
        raise _err("healthcheck", "needs a 'test' command, e.g. {'test': ['CMD', 'true']}")


def check_env(env: Any, field: str = "env_vars") -> None:
    check_env_vars(env, f"DockerExecutor.{field}")


def check_fields(ex: Any) -> None:
    """Validate every field of a ``DockerExecutor``; each error names the field and the fix."""
    check_image(ex.container_image)
    if ex.network not in NETWORKS:
        raise _err("network", f"{ex.network!r} is not allowed: {NETWORK_RULE}. Use network='host' or 'none'")
    num_gpus = ex.num_gpus
    if num_gpus is not None and num_gpus != "all" and (
            not isinstance(num_gpus, int) or isinstance(num_gpus, bool) or num_gpus < 0):
        raise _err("num_gpus", f"must be None, an int >= 0 or 'all' (or -1, NeMo Run's 'all'), got {num_gpus!r}")
    if not isinstance(ex.volumes, (list, tuple)):
        raise _err("volumes", f"must be a list of '/host:/container[:ro]' strings, got {ex.volumes!r}")
    for i, volume in enumerate(ex.volumes):
        parse_volume(volume, i)
    parse_ports(ex.ports, ex.network)
    check_env(ex.env_vars)
    parse_ulimits(ex.ulimits)
    if ex.shm_size is not None and not (
            (isinstance(ex.shm_size, int) and not isinstance(ex.shm_size, bool) and ex.shm_size > 0)
            or (isinstance(ex.shm_size, str) and _SIZE.fullmatch(ex.shm_size))):
        raise _err("shm_size", f"must be bytes (int) or a size such as '16g' or '512m', got {ex.shm_size!r}")
    if ex.ipc_mode is not None and ex.ipc_mode not in IPC_MODES and not (
            isinstance(ex.ipc_mode, str) and ex.ipc_mode.startswith("container:") and _IDENT.fullmatch(ex.ipc_mode[10:])):
        raise _err("ipc_mode", f"must be one of {', '.join(IPC_MODES)} or 'container:<name>', got {ex.ipc_mode!r}")
    check_word(ex.runtime, "DockerExecutor.runtime", _IDENT, "must be a runtime name such as 'nvidia', got {value}")
    check_word(ex.user, "DockerExecutor.user", _USER, "must be 'name', 'uid' or 'uid:gid', got {value}")
    if not isinstance(ex.privileged, bool):
        raise _err("privileged", f"must be True or False, got {ex.privileged!r}")
    check_healthcheck(ex.healthcheck)
    for name, given in (("privileged", ex.privileged), ("healthcheck", ex.healthcheck)):
        if given and isinstance(ex.extra_args, Mapping) and name in ex.extra_args:
            raise _err(name, f"is also given in extra_args[{name!r}]; set it in one place")
    if not isinstance(ex.extra_args, Mapping):
        raise _err("extra_args", f"must be a dict of containers.create arguments, got {ex.extra_args!r}")
    for key, value in ex.extra_args.items():
        if key in OWN_ARGS:
            raise _err("extra_args", f"{key!r} is set by nemorun; use {OWN_ARGS[key]} instead")
        if key not in EXTRA_ARGS:
            from nemorun_core.errors import did_you_mean

            hint = did_you_mean(str(key), EXTRA_ARGS) or f"; allowed: {', '.join(sorted(EXTRA_ARGS))}"
            raise _err("extra_args", f"unknown containers.create argument {key!r}{hint}")
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise _err("extra_args", f"value of {key!r} must be plain data (str, number, list, dict), "
                                     f"got {value!r}") from None
    for name in ("nodes", "ntasks_per_node"):
        check_count(getattr(ex, name), f"DockerExecutor.{name}")
    if not isinstance(ex.python, str) or not ex.python or any(c.isspace() for c in ex.python):
        raise _err("python", f"must be the interpreter's name or path in the image, got {ex.python!r}")
    if ex.cleanup not in CLEANUP:
        raise _err("cleanup", f"must be one of {', '.join(CLEANUP)}, got {ex.cleanup!r}")
    check_seconds(ex.cancel_grace_s, "DockerExecutor.cancel_grace_s", what="a number of seconds")
    from nemorun_core.launchers import resolve_launcher

    resolve_launcher(ex.launcher)


# -- rendering -------------------------------------------------------------------------------------------------------
def container_name(key: str, rank: int) -> str:
    """A stable, valid container name for rank ``rank`` of the job ``key``: the engine refuses a second container of
    the same name, which makes two racing submissions of one job start it once."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", key).strip("-.")[:80] or "job"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"nemorun-{slug}-{digest}-{rank}"


def code_mounts(sys_path: Sequence[str], taken: set[str]) -> list[dict[str, Any]]:
    """Read-only mounts, at the same paths, of the host directories on the task's import path."""
    out = []
    for entry in sys_path:
        path = posixpath.normpath(entry) if isinstance(entry, str) and entry.startswith("/") else None
        if path is None or path in _SYSTEM_DIRS or path in taken:
            continue
        if "site-packages" in path.split("/") or "dist-packages" in path.split("/"):
            continue  # the host's installed packages would shadow the image's own
        taken.add(path)
        out.append(bind(path, path, read_only=True))
    return out


def master_port(key: str) -> int:
    """The job's preferred rendezvous port (``ranks.preferred_port``): a dry plan's, and a plan's without one."""
    return ranks.preferred_port(key)


def job_env(ex: Any, job: Any, *, code_target: str | None) -> dict[str, str]:
    """The environment of every container of ``job`` (secrets included; see :func:`secret_env`)."""
    env = {**ex.env_vars, **job.env}
    check_env(env, "env_vars")
    user_pythonpath = env.pop("PYTHONPATH", "")
    # Packaged code is importable by Scripts too (Python tasks also get it from the runner's sys_path).
    env["PYTHONPATH"] = ":".join(p for p in (user_pythonpath, code_target, NEMORUN_LIB) if p)
    env["NEMORUN_JOB_DIR"] = job.job_dir
    env["NEMORUN_JOB_KEY"] = job.key
    return env


def secret_env(ex: Any, job: Any) -> dict[str, str]:
    """The secret variables of ``job``: never in a container's spec, copied into each container before it starts
    (``secret_files``). The same for every rank."""
    return secret_files.split_env(job_env(ex, job, code_target=None))[1]


def render_specs(ex: Any, job: Any, *, image: str, nemorun_src: str, sys_path: Sequence[str] | None,
                 code_dir: str | None, code_target: str | None = None,
                 port: int | None = None) -> list[dict[str, Any]]:
    """The ``containers.create`` keyword arguments of every container of ``job``, rank order.

    Secret variables are not among them (``docker inspect`` would show them): the command of a job that has some
    is wrapped by ``secret_files.READER``, which loads them from files copied in before start.

    Args:
        ex: the DockerExecutor.
        job: the Job (command uses the token ``"python"`` for the interpreter).
        image: the image to run (the executor's, or the one a DockerImagePackager built).
        nemorun_src: host directory of the ``nemorun_core`` package, mounted read-only under NEMORUN_LIB.
        sys_path: the task's import path (host paths) to mount read-only; None when code comes packaged.
        code_dir: host directory holding extracted packaged code (mounted at ``code_target``), or None.
        code_target: where the packaged code is in the container (CODE_DIR, or a DockerImagePackager's workdir,
            where the image holds it); the default working directory. None: the code is mounted from ``sys_path``.
        port: the rendezvous port of a job of several containers (``MASTER_PORT``; the plan's); None: the job's
            preferred port (:func:`master_port`).
    """
    from nemorun_core.launchers import resolve_launcher, wrap_command

    env_base, secrets = secret_files.split_env(job_env(ex, job, code_target=code_target))

    mounts = [bind(job.job_dir, job.job_dir, read_only=False),
              bind(nemorun_src, posixpath.join(NEMORUN_LIB, "nemorun_core"), read_only=True)]
    taken = {job.job_dir, NEMORUN_LIB}
    if code_dir is not None:
        code_target = code_target or CODE_DIR
        mounts.append(bind(code_dir, code_target, read_only=True))
        taken.add(code_target)
    if job.cwd and job.cwd.startswith("/") and code_target is None:
        mounts += code_mounts([job.cwd], taken)
    if sys_path:
        mounts += code_mounts(sys_path, taken)
    for i, volume in enumerate(ex.volumes):
        m = parse_volume(volume, i)
        if m["target"] in {x["target"] for x in mounts}:
            raise _err(f"volumes[{i}]", f"{volume!r} mounts over {m['target']}, which nemorun mounts itself (the "
                                        "job directory, nemorun or the task's code); choose another container path")
        mounts.append(m)
    if secrets and secret_files.needs_volume(ex.extra_args):
        mounts.append(anonymous_volume(secret_files.SECRETS_ROOT))

    argv = resolve_argv(job.command, ex.python)
    nodes, ntasks = ex.nodes, ex.ntasks_per_node
    launcher = resolve_launcher(ex.launcher)
    per_container: list[tuple[list[str], dict[str, str]]] = []
    if launcher is not None:
        for node in range(nodes):
            cmd = wrap_command(launcher, argv, nodes=nodes, nproc_per_node=ntasks, node_rank=node,
                               master_addr=ranks.LOOPBACK, profile_dir=job.job_dir)
            per_container.append((cmd, ranks.node_env(node, nodes)))
    else:
        envs = ranks.process_envs(nodes, ntasks, ranks.LOOPBACK, master_port(job.key) if port is None else port)
        per_container = [(argv, one) for one in envs]

    common: dict[str, Any] = {
        "image": image,
        "mounts": mounts,
        "network_mode": ex.network,
        "working_dir": job.cwd or code_target or job.job_dir,
    }
    if ex.num_gpus not in (None, 0):
        common["device_requests"] = [{"count": -1 if ex.num_gpus == "all" else ex.num_gpus,
                                      "capabilities": [["gpu"]]}]
    ports = parse_ports(ex.ports, ex.network)
    if ports:
        common["ports"] = ports
    for name in ("runtime", "ipc_mode", "user", "shm_size"):
        if getattr(ex, name) is not None:
            common[name] = getattr(ex, name)
    ulimits = parse_ulimits(ex.ulimits)
    if ulimits:
        common["ulimits"] = ulimits
    if ex.privileged:
        common["privileged"] = True
    if ex.healthcheck:
        common["healthcheck"] = {k: list(v) if k == "test" and not isinstance(v, str) else v
                                 for k, v in ex.healthcheck.items()}
    common.update(ex.extra_args)

    specs = []
    for rank, (cmd, extra_env) in enumerate(per_container):
        name = container_name(job.key, rank)
        if ex.network == "none" and "hostname" not in ex.extra_args:
            # With no network the container's own name does not resolve, and libraries that look themselves up
            # (torchrun's rendezvous, for one) hang: give it a hostname that resolves to loopback.
            hostname = name[-63:].lstrip("-.") or "nemorun"
            common_for_rank = {**common, "hostname": hostname, "extra_hosts": {hostname: "127.0.0.1"}}
        else:
            common_for_rank = common
        specs.append({
            **common_for_rank,
            "name": name,
            "command": secret_files.wrap(list(cmd)) if secrets else list(cmd),
            "environment": {**env_base, **extra_env},
            "labels": {LABEL_KEY: job.key, LABEL_JOB: job.name, LABEL_RANK: str(rank),
                       LABEL_WORLD: str(len(per_container)), LABEL_JOB_DIR: job.job_dir},
        })
    return specs


def dump(specs: list[dict[str, Any]], secret_names: Sequence[str] = ()) -> str:
    """What submission sends: the containers' specs and, when the job has secrets, the files copied into each
    container before it starts (names only; the values are shown as ``<secret>``)."""
    data: dict[str, Any] = {"containers": specs}
    if secret_names:
        data["secret_files"] = {"directory": secret_files.SECRETS_DIR, "mode": "0600",
                                "variables": {name: SECRET for name in sorted(secret_names)}}
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def to_sdk_kwargs(one: dict[str, Any]) -> dict[str, Any]:
    """A rendered spec -> ``containers.create`` keyword arguments (mounts, GPU requests, ulimits as SDK types)."""
    from docker.types import DeviceRequest, Mount, Ulimit

    kwargs = dict(one)
    kwargs["mounts"] = [Mount(target=m["target"], source=m["source"], type=m.get("type", "bind"),
                              read_only=m["read_only"]) for m in one.get("mounts", [])]
    if "device_requests" in one:
        kwargs["device_requests"] = [DeviceRequest(count=d["count"], capabilities=d["capabilities"])
                                     for d in one["device_requests"]]
    if "ulimits" in one:
        kwargs["ulimits"] = [Ulimit(name=u["name"], soft=u["soft"], hard=u["hard"]) for u in one["ulimits"]]
    return kwargs
