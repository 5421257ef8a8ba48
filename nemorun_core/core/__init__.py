"""NeMo Run's module paths (``nemo_run.core.execution.slurm`` ...) under nemorun's name, for code moved over with only
the import renamed. Each module here re-exports the real one: one class, one identity, so ``isinstance`` holds
whichever path a name was imported from. New code should import from ``nemorun_core`` (``run.SlurmExecutor``)."""
