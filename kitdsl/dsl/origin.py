"""Where a model was defined: the file and line in the user's code that constructed it.

Models record their construction site so that errors and ``kitdsl inspect --explain`` can point
at the user's source, not at pydantic's or ours.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pydantic

from kitdsl.errors import Location

_INTERNAL_PREFIXES = (
    str(Path(__file__).parent.parent),  # the kitdsl package
    str(Path(pydantic.__file__).parent),
    "<frozen ",
)


def is_internal(filename: str) -> bool:
    """True for frames of kitdsl itself, pydantic and the import machinery."""
    return filename.startswith(_INTERNAL_PREFIXES)


def caller_location() -> Location | None:
    """The innermost stack frame outside kitdsl and pydantic: where the user's code called us."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not is_internal(filename):
            return Location(filename, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return None
