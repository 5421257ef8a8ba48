"""``nemo_run.run.plugin``: the plugin base class, :class:`nemorun_core.experiment.plugin.Plugin`.

NeMo Run names it ``ExperimentPlugin`` (its ``run.Plugin`` is an alias); here both names are the one class, so a
plugin subclassing either is a ``run.Plugin``.
"""

from nemorun_core.experiment.plugin import Plugin

ExperimentPlugin = Plugin

__all__ = ["ExperimentPlugin", "Plugin"]
