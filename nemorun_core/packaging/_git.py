"""Git plumbing for GitArchivePackager: one function per question asked of git, each failing with a clear message."""

from __future__ import annotations

import os
import subprocess

from nemorun_core.errors import did_you_mean
from nemorun_core.packaging.base import PackagingError


def git(args: list[str], cwd: str, *, what: str, check: bool = True) -> tuple[int, str]:
    """Run ``git args`` in ``cwd``; return (exit status, stdout).

    Raises:
        PackagingError: git is missing, or (``check``) it failed: ``what`` says what we were doing, git's own
            message follows.
    """
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise PackagingError("git is not installed or not on PATH; install it, or use PatternPackager") from None
    except NotADirectoryError:
        raise PackagingError(f"{what}: {cwd!r} is not a directory") from None
    if check and proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        raise PackagingError(f"{what}: `git {' '.join(args[:2])}` failed in {cwd}: {message}")
    return proc.returncode, proc.stdout.decode("utf-8", "surrogateescape")


def repo_root(path: str) -> tuple[str, bool]:
    """The top-level directory of the repository containing ``path``, and whether it has a work tree.

    A bare repository (no work tree) is returned as its own directory.
    """
    if not os.path.isdir(path):
        raise PackagingError(f"GitArchivePackager: {path!r} is not a directory")
    rc, out = git(["rev-parse", "--show-toplevel"], path, what="find the repository", check=False)
    if rc == 0:
        return out.strip(), True
    rc, out = git(["rev-parse", "--is-bare-repository"], path, what="find the repository", check=False)
    if rc == 0 and out.strip() == "true":
        return os.path.abspath(path), False
    raise PackagingError(
        f"{path!r} is not inside a git repository: GitArchivePackager packages commits of one. "
        "Run it from your repository (or give repo=...), or use PatternPackager for code outside git"
    )


def resolve_commit(root: str, ref: str) -> str:
    """The full commit id ``ref`` names; raise naming the ref (with the closest branch or tag) when unknown."""
    rc, out = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], root,
                  what="resolve ref", check=False)
    if rc == 0:
        return out.strip()
    _, refs = git(["for-each-ref", "--format=%(refname:short)"], root, what="list refs", check=False)
    hint = did_you_mean(ref, refs.split())
    raise PackagingError(f"unknown ref {ref!r} in {root}{hint}; give a branch, tag or commit of this repository")


def check_subpath(root: str, commit: str, subpath: str, ref: str) -> None:
    """Raise unless ``subpath`` is a directory of ``commit``, with the closest existing name."""
    if not subpath:
        return
    rc, out = git(["cat-file", "-t", f"{commit}:{subpath}"], root, what="find subpath", check=False)
    if rc == 0 and out.strip() == "tree":
        return
    if rc == 0:
        raise PackagingError(f"subpath {subpath!r} is a file at {ref} in {root}; subpath names a directory")
    parent, _, name = subpath.rpartition("/")
    _, names = git(["ls-tree", "-z", "--name-only", "-d", f"{commit}:{parent}"], root, what="list", check=False)
    hint = did_you_mean(name, [n for n in names.split("\0") if n])
    raise PackagingError(
        f"subpath {subpath!r} does not exist at {ref} ({commit[:12]}) in {root}{hint}; subpath is relative to the "
        "repository root, and only committed directories exist there (commit it, or pass include_uncommitted=True)"
    )


def work_tree_changes(root: str, subpath: str, submodules: bool) -> tuple[list[str], list[str]]:
    """Tracked files with uncommitted changes (``"M path"`` lines) and untracked files under ``subpath``."""
    args = ["status", "--porcelain=v1", "-z", "--untracked-files=normal"]
    if not submodules:
        args.append("--ignore-submodules=all")
    _, out = git([*args, "--", subpath or "."], root, what="check for uncommitted changes")
    changed, untracked = [], []
    records = iter(out.split("\0"))
    for record in records:
        if not record:
            continue
        code, path = record[:2], record[3:]
        if code == "??":
            untracked.append(path)
        else:
            changed.append(f"{code.strip()} {path}")
            if code[0] in "RC":  # a rename or copy is followed by its source path
                next(records, None)
    return changed, untracked


def gitlinks(root: str, commit: str, subpath: str) -> list[tuple[str, str]]:
    """The submodules (path relative to ``subpath``, recorded commit) in ``commit`` under ``subpath``."""
    rc, _ = git(["cat-file", "-e", f"{commit}:.gitmodules"], root, what="find submodules", check=False)
    if rc != 0:  # no .gitmodules: no submodules, and no need to list the whole tree
        return []
    _, out = git(["ls-tree", "-r", "-z", f"{commit}:{subpath}"], root, what="list submodules")
    links = []
    for record in out.split("\0"):
        meta, _, path = record.partition("\t")
        if meta.startswith("160000 "):
            links.append((path, meta.split()[2]))
    return links


def submodule_repo(root: str, path: str, commit: str) -> str:
    """The checked-out repository of the submodule at ``root/path``, checked to hold ``commit``."""
    sub = os.path.join(root, path)
    fix = "run `git submodule update --init --recursive`, or pass include_submodules=False"
    if not os.path.exists(os.path.join(sub, ".git")):
        raise PackagingError(f"submodule {path!r} of {root} is not checked out; {fix}")
    rc, _ = git(["cat-file", "-e", f"{commit}^{{commit}}"], sub, what="find submodule commit", check=False)
    if rc != 0:
        raise PackagingError(f"submodule {path!r} of {root} does not have its recorded commit {commit[:12]}; {fix}")
    return sub


def ls_files(root: str, pathspec: str, *, untracked: bool) -> list[tuple[str, bool]]:
    """Index entries under ``pathspec`` as (path, is_submodule), plus untracked non-ignored files when asked."""
    _, out = git(["ls-files", "-z", "--stage", "--", pathspec], root, what="list tracked files")
    entries = {}
    for record in out.split("\0"):
        if record:
            meta, _, path = record.partition("\t")
            entries[path] = meta.startswith("160000 ")  # a path in conflict is listed once per stage
    if untracked:
        _, out = git(["ls-files", "-z", "--others", "--exclude-standard", "--", pathspec], root,
                     what="list untracked files")
        entries.update((path, False) for path in out.split("\0") if path and not path.endswith("/"))
    return sorted(entries.items())


def clone(url: str, dest: str) -> str:
    """Clone ``url`` into ``dest`` (no checkout: git archive reads objects) and return ``dest``."""
    git(["clone", "--quiet", "--no-checkout", "--", url, dest], os.path.dirname(dest), what=f"clone {url}")
    return dest


def fetch_if_missing(root: str, ref: str) -> str:
    """Fetch ``ref`` from origin when a fresh clone lacks it (a commit on no branch); return what to resolve."""
    rc, _ = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], root,
                what="resolve ref", check=False)
    if rc == 0:
        return ref
    rc, _ = git(["fetch", "--quiet", "origin", "--", ref], root, what=f"fetch {ref}", check=False)
    return "FETCH_HEAD" if rc == 0 else ref


def checkout_submodules(root: str, commit: str) -> None:
    """Check out ``commit`` and its submodules in a clone made by :func:`clone`."""
    git(["checkout", "--quiet", "--detach", commit], root, what="check out the commit")
    git(["submodule", "update", "--init", "--recursive", "--quiet"], root, what="check out submodules")
