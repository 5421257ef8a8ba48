"""``nemo_run.core.execution.launcher``: the launchers (:mod:`nemorun_core.launchers`)."""

from nemorun_core.launchers.base import Launcher
from nemorun_core.launchers.fault_tolerance import FaultTolerance
from nemorun_core.launchers.torchrun import Torchrun

__all__ = ["FaultTolerance", "Launcher", "Torchrun"]
