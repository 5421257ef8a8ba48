"""Launchers turn the command of one task process into a distributed command (torchrun, ft_launcher, ...)."""

from __future__ import annotations

from typing import Any

from nemorun_core.errors import ConfigError

_BY_NAME = {
    "torchrun": "nemorun_core.launchers.torchrun:Torchrun",
    "fault_tolerance": "nemorun_core.launchers.fault_tolerance:FaultTolerance",
    "ft": "nemorun_core.launchers.fault_tolerance:FaultTolerance",
}


def resolve_launcher(launcher: Any) -> Any:
    """Return a launcher object for ``None``, a launcher instance, or a name such as ``"torchrun"``."""
    if launcher is None or launcher == "":
        return None
    if isinstance(launcher, str):
        target = _BY_NAME.get(launcher.lower())
        if target is None:
            from nemorun_core.errors import did_you_mean

            raise ConfigError(
                f"unknown launcher {launcher!r}{did_you_mean(launcher.lower(), _BY_NAME) or ''}; "
                f"known launchers: {', '.join(_BY_NAME)}",
                path="launcher",
            )
        import importlib

        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)()
    if not hasattr(launcher, "wrap"):
        raise ConfigError(f"{launcher!r} is not a launcher (it has no wrap method); use run.Torchrun()", path="launcher")
    return launcher


def wrap_command(launcher: Any, argv: list[str], *, profile_dir: str, **shape: Any) -> list[str]:
    """``launcher.wrap(argv, **shape)``, telling nemorun's own launchers (:class:`~nemorun_core.launchers.base.
    Launcher`) the job's directory where the job runs (their profiler reports go there); another object with a
    ``wrap`` method gets the shape only.

    Args:
        shape: ``nodes``, ``nproc_per_node``, ``node_rank``, ``master_addr`` (see ``Torchrun.wrap``).
    """
    from nemorun_core.launchers.base import Launcher

    if isinstance(launcher, Launcher):
        return launcher.wrap(argv, profile_dir=profile_dir, **shape)
    return launcher.wrap(argv, **shape)
