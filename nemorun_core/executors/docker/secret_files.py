"""How secret environment variables reach a container without being part of it.

A container's environment is part of its configuration: ``docker inspect`` shows it to anyone with access to the
engine, and a failed container kept for inspection keeps it. So a secret (``nemorun_core.secrets.is_secret``: by
name, by value, or marked ``run.Secret``) is never in ``environment``. Instead, between create and start, the
executor copies one file per secret into the container (``put_archive``: the engine's API, not a command line),
mode 0600 and owned by the user the container runs as, under :data:`SECRETS_DIR`; the container's command is
wrapped by :data:`READER`, a fixed ``/bin/sh`` script that exports each file's bytes under the file's name, removes
the file, and ``exec``s the real command. No value is ever part of a script: the shell only reads them as data
(``$(cat ...)``, with a sentinel so trailing newlines survive), so multi-line values (PEM keys, JSON credentials)
arrive byte for byte and nothing in a value can run. Jobs without secrets keep their command as it is.

With a read-only root file system (``extra_args={"read_only": True}``) the files go into an anonymous volume
mounted at :data:`SECRETS_ROOT` (removed with the container).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from typing import Any, Mapping

from nemorun_core.errors import SubmissionError
from nemorun_core.secrets import is_secret

SECRETS_ROOT = "/.nemorun"
SECRETS_DIR = f"{SECRETS_ROOT}/secrets"
READER_NAME = "nemorun-secrets"  # the script's $0: what its error messages start with
# $1... is the real command. Only file names chosen by nemorun (validated variable names) become names; values
# are read as data. A file that cannot be read or removed stops the job before the task runs (exit 125).
READER = (
    f'd={SECRETS_DIR}; '
    'for f in "$d"/*; do '
    '[ -f "$f" ] || continue; '
    'v=$(cat -- "$f" && printf x) || { echo "$0: cannot read $f" >&2; exit 125; }; '
    'export "${f##*/}=${v%x}"; '
    'rm -f -- "$f" || { echo "$0: cannot remove $f" >&2; exit 125; }; '
    'done; '
    'rmdir "$d" 2>/dev/null; '
    'exec "$@"'
)


def split_env(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) parts of a container environment."""
    plain, secret = {}, {}
    for name, value in env.items():
        (secret if is_secret(name, value) else plain)[name] = value
    return plain, secret


def wrap(command: list[str]) -> list[str]:
    """The container command that loads the secret files and then runs ``command`` (its arguments unchanged)."""
    return ["/bin/sh", "-c", READER, READER_NAME, *command]


def needs_volume(extra_args: Mapping[str, Any]) -> bool:
    """A read-only root file system refuses ``put_archive``; a volume mounted there does not."""
    return bool(extra_args.get("read_only"))


def archive(values: Mapping[str, str], uid: int, gid: int, *, in_volume: bool) -> tuple[str, bytes]:
    """(path to extract at, tar bytes) of the secret files: the directory 0700 and the files 0600, owned by
    ``uid``:``gid`` so that the container's user can read and then remove them."""
    buf = io.BytesIO()
    base = "secrets" if in_volume else posixpath.relpath(SECRETS_DIR, "/")
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if not in_volume:
            tar.addfile(_entry(posixpath.relpath(SECRETS_ROOT, "/"), 0o711, 0, 0, directory=True))
        tar.addfile(_entry(base, 0o700, uid, gid, directory=True))
        for name in sorted(values):
            data = values[name].encode("utf-8", "surrogateescape")
            info = _entry(f"{base}/{name}", 0o600, uid, gid)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return (SECRETS_ROOT if in_volume else "/"), buf.getvalue()


def _entry(name: str, mode: int, uid: int, gid: int, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode, info.uid, info.gid = mode, uid, gid
    return info


def owner(api: Any, container_id: str, user: str) -> tuple[int, int]:
    """The uid and gid the container runs as (``Config.User``: the executor's ``user`` or the image's).

    A name is looked up in the container's own ``/etc/passwd`` (copied out of the created container: the host's
    users are not the image's). Only the uid decides access to a 0600 file; the gid is the user's primary group.
    """
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    if name.isdigit():
        uid, gid = int(name), 0
    else:
        passwd = _passwd(api, container_id)
        if name not in passwd:
            raise SubmissionError(f"user {name!r} (DockerExecutor.user or the image's USER) is not in the image's "
                                  "/etc/passwd, so its secret files cannot be given to it; use a numeric 'uid[:gid]'")
        uid, gid = passwd[name]
    return uid, int(group) if group.isdigit() else gid


def _passwd(api: Any, container_id: str) -> dict[str, tuple[int, int]]:
    """user name -> (uid, gid) from the container's /etc/passwd; empty when the image has none."""
    from docker.errors import NotFound

    try:
        stream, _ = api.get_archive(container_id, "/etc/passwd")
    except NotFound:
        return {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = next((m for m in tar.getmembers() if m.isfile()), None)
        text = tar.extractfile(member).read().decode("utf-8", "replace") if member else ""
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
            out.setdefault(fields[0], (int(fields[2]), int(fields[3])))
    return out


def container_user(api: Any, container_id: str) -> tuple[str, int, int]:
    """(``Config.User`` as the engine has it, its uid, its gid) of a created container: one inspect, and the
    image's /etc/passwd only for a user given by name."""
    user = (api.inspect_container(container_id).get("Config") or {}).get("User") or ""
    return (user, *owner(api, container_id, user))


def deliver(api: Any, container_id: str, values: Mapping[str, str], uid: int, gid: int, *, in_volume: bool) -> None:
    """Copy the secret files, owned by ``uid``:``gid`` (:func:`container_user`), into the created (not yet
    started) container."""
    if not values:
        return
    path, data = archive(values, uid, gid, in_volume=in_volume)
    if not api.put_archive(container_id, path, data):
        raise SubmissionError(f"the Docker engine refused the secret files of container {container_id[:12]} "
                              f"(put_archive at {path})")
