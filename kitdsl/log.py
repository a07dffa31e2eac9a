"""Warnings and progress messages for users, through the standard ``logging`` module.

Library code calls :func:`warn`; the CLI installs a handler that prints ``where: warning: what``.
"""

from __future__ import annotations

import logging

from kitdsl.errors import Location

logger = logging.getLogger("kitdsl")


def warn(message: str, *, location: Location | None = None) -> None:
    """Tell the user about something suspicious that does not stop the work."""
    prefix = f"{location}: " if location is not None else ""
    logger.warning("%swarning: %s", prefix, message)
