"""Configuration: Config/Partial on Fiddle, Script, build, validation, serialization, tree tools.

This package __init__ stays empty on purpose: the runner imports ``nemorun_core.config.serialize`` and must not pay
for Fiddle (about 0.27 s of imports) just by entering the package."""
