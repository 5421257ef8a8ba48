"""Command lines for tasks: ``@run.cli.entrypoint``, ``@run.cli.factory``, ``run.cli.main`` and ``run.cli_command``.

Importing this package is cheap: the decorators only record what they decorate; the parser, the override grammar
and Fiddle are loaded when ``main`` (or ``parse_cli_args``, ``LazyEntrypoint.resolve``) runs. The ``nemorun``
console script lives in :mod:`nemorun_core.cli.app`. NeMo Run's module paths ``nemo_run.cli.api`` and
``nemo_run.cli.lazy`` are :mod:`nemorun_core.cli.api` and :mod:`nemorun_core.cli.lazy`.
"""

from nemorun_core.cli.catalog import list_entrypoints, list_factories, resolve_factory
from nemorun_core.cli.context import RunContext
from nemorun_core.cli.entrypoint import cli_command, entrypoint, main
from nemorun_core.cli.factories import factory
from nemorun_core.cli.lazy import LazyEntrypoint, lazy_imports
from nemorun_core.cli.parsing import parse_cli_args, parse_config, parse_partial

__all__ = ["LazyEntrypoint", "RunContext", "cli_command", "entrypoint", "factory", "lazy_imports",
           "list_entrypoints", "list_factories", "main", "parse_cli_args", "parse_config", "parse_partial",
           "resolve_factory"]
