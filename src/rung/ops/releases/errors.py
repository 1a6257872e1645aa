"""Typed errors of releases and channels (the CLI prints their message as one line)."""

from __future__ import annotations

from typing import Any

from rung.errors import RungError


class ReleaseError(RungError):
    """A release or channel operation cannot be done (unknown id, bad channel name, ...)."""


class PromotionRefused(ReleaseError):
    """The gate or the paired comparison said no; `check` holds the numbers."""

    def __init__(self, message: str, check: Any = None) -> None:
        super().__init__(message)
        self.check = check


class ChannelConflict(ReleaseError):
    """The channel moved (another promotion, rollback or flag) while this change was being made."""
