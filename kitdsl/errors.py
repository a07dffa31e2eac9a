"""One error hierarchy for everything a user can cause.

Every error says what went wrong, where (a :class:`Location` in the user's file, an image, a
registry URL) and, when we know it, what to do about it. Each class has its own exit code so
scripts can tell failures apart; the CLI prints tracebacks only with ``--debug``.

| exit code | class |
|---|---|
| 1 | :class:`KitError` (any other failure) |
| 2 | :class:`UsageError`, and bad options or arguments |
| 3 | :class:`ConfigError`: the system definition is invalid |
| 4 | :class:`UserCodeError`: the user's module raised an exception |
| 5 | :class:`ImageConfigError`: an image's own configuration is invalid |
| 6 | :class:`OutputError`: a result could not be written |
| 7 | :class:`ImageError`: an image could not be got (registry, network, corrupt content) |
| 8 | :class:`CacheError`: the image cache is damaged or cannot be used |
| 9 | :class:`LockError`: the lockfile does not match the system (``--frozen``) |
| 10 | :class:`PackageError`: a distribution package could not be got, verified or resolved |
| 13 | :class:`RunError`: a system could not be booted or driven (qemu missing, files missing) |

``kitdsl run`` also exits with the guest's outcome: 0 when it powered off, 11 after a kernel
panic, 12 when it rebooted, 124 when ``--timeout`` ran out and 130 when it was stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Location:
    """A place in a user's file: ``path:line[:column]``."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        text = _display_path(self.file)
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text


def _display_path(file: str) -> str:
    """Show paths below the working directory relative to it, as compilers do."""
    path = Path(file)
    if not path.is_absolute():
        return file
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return file


class KitError(Exception):
    """Base of every error kitdsl reports to a user."""

    exit_code = 1
    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        hint: str | None = None,
        details: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        """The full text shown to a user: ``where: error: what`` plus details and a hint."""
        head = f"{self.kind}: {self.message}"
        if self.location is not None:
            head = f"{self.location}: {head}"
        lines = [head, *(f"  {line}" for line in self.details)]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class UsageError(KitError):
    """The command line asks for something that cannot be done (2, as for a bad option)."""

    exit_code = 2


class ConfigError(KitError):
    """A system definition (Python or YAML) is invalid."""

    exit_code = 3


class UserCodeError(KitError):
    """The user's own module raised an exception while it was being loaded."""

    exit_code = 4


class ImageConfigError(KitError):
    """An image's configuration (for example its ``org.mobyproject.config`` label) is invalid."""

    exit_code = 5


class OutputError(KitError):
    """A result could not be written where the user asked."""

    exit_code = 6


class ImageError(KitError):
    """An image could not be got: the registry refused, the network failed, content was
    corrupt."""

    exit_code = 7


class CacheError(KitError):
    """The image cache is damaged or cannot be used."""

    exit_code = 8


class LockError(KitError):
    """The lockfile does not match the system, or is not valid."""

    exit_code = 9


class PackageError(KitError):
    """A distribution package or its archive could not be used: a signature did not verify,
    a dependency cannot be satisfied, a download failed or a package file is malformed."""

    exit_code = 10


class RunError(KitError):
    """qemu cannot be run, a boot file is missing, or qemu failed by itself."""

    exit_code = 13
