"""The errors booting can raise.

Guest outcomes (power off, panic, reboot, timeout) are not errors: they are
:class:`~kitdsl.run.process.Outcome` values with their own exit codes. These classes are for
what stops a guest from being booted or driven at all.
"""

from __future__ import annotations

from kitdsl.errors import RunError

__all__ = ["GuestExited", "MachineError", "MachineTimeout", "NoGuestShell", "RunError"]


class MachineError(RunError):
    """A :class:`~kitdsl.run.machine.Machine` could not do what a test asked."""


class MachineTimeout(MachineError):
    """What a test waited for did not happen in time; the message ends with the console's
    last lines."""


class GuestExited(MachineError):
    """The guest stopped while a test was still waiting for it."""


class NoGuestShell(MachineError):
    """:meth:`~kitdsl.run.machine.Machine.execute` found no shell on the guest's command
    port."""
