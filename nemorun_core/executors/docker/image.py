"""The code a container runs: an image the engine must already have (:func:`require_image`), packaged code
extracted once per digest for a bind mount (:func:`extract_code`), or ``DockerImagePackager``, which bakes the task's
code into an image built FROM a base image.

The tag is derived from content, ``nemorun-code:<sha256(base image id + package digest)[:16]>``, so unchanged code on
an unchanged base image is built once and reused by every later submission (no rebuild, not even a cached one).
The build context is made in memory (a Dockerfile and the archive's files under ``code/``); the build never pulls
and runs with network ``none``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import posixpath
import tarfile
from typing import Any

from nemorun_core.errors import ConfigError, SubmissionError
from nemorun_core.executors.base import package_code
from nemorun_core.executors.docker import engine
from nemorun_core.executors.install import install_once
from nemorun_core.packaging.base import Package, Packager, packages_code

TAG_REPO = "nemorun-code"


@dataclasses.dataclass
class DockerImagePackager(Packager):
    """Package code as a Docker image for ``DockerExecutor(packager=DockerImagePackager(...))``.

    Args:
        base_image: the image to build on (must be on the engine; it is never pulled).
        packager: what code goes in (``run.GitArchivePackager()``, ``run.PatternPackager(...)``...); None:
            ``GitArchivePackager()`` (the repository's committed files).
        workdir: where the code lands in the image; the task's import path and default working directory.
    """

    base_image: str
    packager: Any = None
    workdir: str = "/workspace"

    def __post_init__(self) -> None:
        from nemorun_core.executors.docker.spec import check_image

        check_image(self.base_image, field="packager.base_image")
        if not isinstance(self.workdir, str) or not self.workdir.startswith("/") or posixpath.normpath(
                self.workdir) == "/":
            raise ConfigError(f"must be an absolute directory other than '/', got {self.workdir!r}",
                              path="DockerImagePackager.workdir")
        if self.packager is not None and not isinstance(self.packager, Packager):
            raise ConfigError(f"must be a packager such as run.GitArchivePackager(), got {self.packager!r}",
                              path="DockerImagePackager.packager")
        if self.packager is not None and not packages_code(self.packager):
            raise ConfigError("the pass-through run.Packager() puts no code into the image: give a packager that "
                              "does (run.GitArchivePackager(), run.PatternPackager(...)), or use "
                              "DockerExecutor(packager=run.Packager()) to mount the host's code",
                              path="DockerImagePackager.packager")

    def _inner(self) -> Packager:
        if self.packager is not None:
            return self.packager
        from nemorun_core.packaging.git import GitArchivePackager

        return GitArchivePackager()

    def package(self, base_dir: str, output_dir: str) -> Package:
        """The code archive (of the inner packager) that goes into the image."""
        return self._inner().package(base_dir, output_dir)

    @staticmethod
    def tag_for(base_image_id: str, package_digest: str) -> str:
        return f"{TAG_REPO}:{hashlib.sha256((base_image_id + package_digest).encode()).hexdigest()[:16]}"

    def build(self, client: Any, base_dir: str, output_dir: str) -> str:
        """Return the tag of the image holding the code under ``base_dir``, building it only if it does not exist.

        Blocking (a build takes seconds). Raises SubmissionError when the base image is missing or the build fails.
        """
        from docker.errors import BuildError, DockerException, ImageNotFound

        base = require_image(client, self.base_image)
        package = package_code(self, output_dir, base_dir)
        tag = self.tag_for(base.id, package.digest)
        try:
            client.images.get(tag)
            return tag  # the same code on the same base was built before
        except ImageNotFound:
            pass
        context = build_context(self.base_image, self.workdir, package.path, base.id, package.digest)
        try:
            client.images.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag, pull=False, rm=True,
                                forcerm=True, network_mode="none")
        except BuildError as exc:
            log = "".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log)
            raise SubmissionError(f"building the code image on {self.base_image} failed: {exc.msg}\n{log[-2000:]}")
        except DockerException as exc:
            raise SubmissionError(f"building the code image on {self.base_image} failed: {exc}") from None
        return tag


def build_context(base_image: str, workdir: str, archive: str, base_id: str, digest: str) -> bytes:
    """An uncompressed tar: a Dockerfile plus the archive's members under ``code/`` (names checked as for
    extraction, so a crafted archive cannot place files outside the code directory)."""
    from nemorun_core.packaging.extract import check_name, check_symlinks

    dockerfile = (
        f"FROM {base_image}\n"
        f'LABEL nemorun.base_image_id="{base_id}" nemorun.package_digest="{digest}"\n'
        f"COPY code/ {workdir}/\n"
        f"WORKDIR {workdir}\n"
    ).encode()
    out = io.BytesIO()
    with tarfile.open(archive, "r:*") as src, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        members = src.getmembers()
        names = {m.name: check_name(m.name, where=f" in {archive}") for m in members}
        check_symlinks({names[m.name]: m.linkname for m in members if m.issym()}, where=f" in {archive}")
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        dst.addfile(info, io.BytesIO(dockerfile))
        code = tarfile.TarInfo("code")
        code.type, code.mode = tarfile.DIRTYPE, 0o755
        dst.addfile(code)
        for m in members:
            if not (m.isfile() or m.isdir() or m.issym()):
                continue
            m.name = "code/" + names[m.name]
            m.uid = m.gid = 0
            m.uname = m.gname = ""
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    return out.getvalue()


def require_image(client: Any, image: str) -> Any:
    """The image object; SubmissionError (naming the fix) if the engine does not have it. Never pulls."""
    from docker.errors import DockerException, ImageNotFound

    try:
        return client.images.get(image)
    except ImageNotFound:
        raise SubmissionError(f"image {image} is not on this Docker engine; build or load it (docker pull {image} / "
                              "docker load); nemorun never pulls implicitly") from None
    except DockerException as exc:
        if engine.is_unreachable(exc):
            raise
        raise SubmissionError(f"cannot reach the Docker engine to check image {image}: {exc}") from None


def extract_code(packager: Any, home: str) -> str:
    """Package the code (once per experiment run) and extract it (once per content digest, see
    ``executors/install.py``) into ``<home>/docker-code/<digest>``."""
    from nemorun_core.packaging.extract import safe_extract

    package = package_code(packager, os.path.join(home, "packages"))
    return install_once(os.path.join(home, "docker-code"), package.digest, lambda tmp: safe_extract(package.path, tmp))
