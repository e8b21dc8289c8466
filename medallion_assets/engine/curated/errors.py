"""Errors of the curated engine."""

from __future__ import annotations


class CuratedError(ValueError):
    """A curated load cannot proceed; the message names the SQL file or table and the culprit."""
