"""The override grammar, as the command line sees it: a re-export of :mod:`nemorun_core.config.grammar`.

The grammar moved under ``config/`` so that config-level code and the orchestrators can use it without importing the
CLI (nothing imports upward); this module keeps ``nemorun_core.cli.grammar`` working for existing imports.
"""

from __future__ import annotations

from nemorun_core.config.grammar import (
    FALSE_WORDS,
    NONE_WORDS,
    OPS,
    TRUE_WORDS,
    BareString,
    FactoryCall,
    FileRef,
    LiteralValue,
    Override,
    Segment,
    Value,
    ValueList,
    a_type,
    accepts_none,
    coerce,
    combine,
    error,
    format_path,
    is_open,
    parse,
    parse_path,
    parse_value,
    union_members,
)

__all__ = [
    "FALSE_WORDS", "NONE_WORDS", "OPS", "TRUE_WORDS", "BareString", "FactoryCall", "FileRef", "LiteralValue",
    "Override", "Segment", "Value", "ValueList", "a_type", "accepts_none", "coerce", "combine", "error",
    "format_path", "is_open", "parse", "parse_path", "parse_value", "union_members",
]
