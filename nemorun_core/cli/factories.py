"""``@run.cli.factory`` and the factory registry: a re-export of :mod:`nemorun_core.config.factories`.

The registry moved under ``config/`` because applying an override (``model=my_model(...)``) looks factories up and
overrides are config-level; ``run.cli.factory`` and every existing import of this module keep working unchanged
(the same objects, so a registration made through either name is seen through both).
"""

from __future__ import annotations

from nemorun_core.config.factories import (
    REGISTRY,
    Factory,
    FactoryRegistry,
    call_factory,
    factory,
    isolated_registry,
    to_config,
)

__all__ = ["REGISTRY", "Factory", "FactoryRegistry", "call_factory", "factory", "isolated_registry", "to_config"]
