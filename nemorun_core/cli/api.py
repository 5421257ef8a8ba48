"""NeMo Run's module path ``nemo_run.cli.api``: the CLI's public functions and classes, re-exported.

The same objects as ``run.cli.*`` (one identity), so code written against either name sees the same registries.
"""

from nemorun_core.cli.catalog import list_entrypoints, list_factories, resolve_factory
from nemorun_core.cli.context import RunContext
from nemorun_core.cli.entrypoint import cli_command, entrypoint, main
from nemorun_core.cli.factories import factory
from nemorun_core.cli.parsing import parse_cli_args, parse_config, parse_partial

__all__ = ["RunContext", "cli_command", "entrypoint", "factory", "list_entrypoints", "list_factories", "main",
           "parse_cli_args", "parse_config", "parse_partial", "resolve_factory"]
