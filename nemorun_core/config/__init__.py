"""Configuration: Config/Partial on Fiddle, Script, build, validation, serialization, tree tools.

Also NeMo Run's ``nemo_run.config`` path: ``from nemorun_core.config import Config, Partial, Script`` gives the
classes ``run.Config``, ``run.Partial`` and ``run.Script`` (one class, one identity).

The names are bound on first use (PEP 562, as in nemorun_core/__init__.py): the runner imports
``nemorun_core.config.serialize`` and must not pay for Fiddle (about 0.27 s of imports) just by entering the
package. No name here is also a submodule's name (``autoconvert`` is not exported for that reason), so importing a
submodule never rebinds one.
"""

from __future__ import annotations

from nemorun_core.lazy import lazy_exports

TYPE_CHECKING = False

# public name -> module that defines it: the names of NeMo Run's nemo_run.config that nemorun has.
_EXPORTS: dict[str, str] = {
    "Config": "nemorun_core.config.buildable",
    "Partial": "nemorun_core.config.buildable",
    "OptionalDefaultConfig": "nemorun_core.config.buildable",
    "OptionalDefaultPartial": "nemorun_core.config.buildable",
    "Script": "nemorun_core.config.script",
    "build": "nemorun_core.config.building",
    "get_nemorun_home": "nemorun_core.home",
    "set_nemorun_home": "nemorun_core.home",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("nemorun_core.config", _EXPORTS, globals())

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nemorun_core.config.buildable import Config, OptionalDefaultConfig, OptionalDefaultPartial, Partial
    from nemorun_core.config.building import build
    from nemorun_core.config.script import Script
    from nemorun_core.home import get_nemorun_home, set_nemorun_home
