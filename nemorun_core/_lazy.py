"""Kept for existing imports: the implementation is :mod:`nemorun_core.lazy` (public, shared by all three packages)."""

from __future__ import annotations

from nemorun_core.lazy import lazy_exports

__all__ = ["lazy_exports"]
