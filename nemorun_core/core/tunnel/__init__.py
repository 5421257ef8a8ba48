"""``nemo_run.core.tunnel.*`` paths: re-exports of :mod:`nemorun_core.tunnel`."""
