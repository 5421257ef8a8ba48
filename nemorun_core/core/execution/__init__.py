"""``nemo_run.core.execution.*`` paths: each backend's module re-exports its real executor module."""
