"""Applying overrides, as the command line sees it: a re-export of :mod:`nemorun_core.config.overrides`.

Applying overrides moved under ``config/`` so that config-level code and the orchestrators can use it without
importing the CLI (nothing imports upward); this module keeps ``nemorun_core.cli.overrides`` working.
"""

from __future__ import annotations

from nemorun_core.config.overrides import (
    MISSING,
    Applier,
    all_defaulted,
    apply_overrides,
    dataclass_of,
    from_plain,
    loaded_target_problem,
    parameters,
)

__all__ = ["MISSING", "Applier", "all_defaulted", "apply_overrides", "dataclass_of", "from_plain",
           "loaded_target_problem", "parameters"]
