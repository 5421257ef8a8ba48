"""Experiments: ``run.run``, ``run.Experiment``, the store, plugins and the scheduling of dependent tasks."""
