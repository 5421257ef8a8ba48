"""Command lines for tasks: ``@run.cli.entrypoint``, ``@run.cli.factory``, ``run.cli.main`` and ``run.cli_command``.

Importing this package is cheap: the decorators only record what they decorate; the parser, the override grammar
and Fiddle are loaded when ``main`` runs. The ``nemorun`` console script lives in :mod:`nemorun_core.cli.app`.
"""

from nemorun_core.cli.entrypoint import cli_command, entrypoint, main
from nemorun_core.cli.factories import factory

__all__ = ["cli_command", "entrypoint", "factory", "main"]
