"""``nemo_run.run.experiment``: :class:`nemorun_core.experiment.experiment.Experiment`."""

from nemorun_core.experiment.experiment import Experiment

__all__ = ["Experiment"]
