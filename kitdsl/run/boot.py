"""Booting a system to the end: what ``kitdsl run qemu`` does, as one function.

::

    from kitdsl.run import BootSpec, RunOptions, boot

    result = boot(BootSpec.from_output(Path("out/edge")), RunOptions(timeout=120))
    print(result.outcome, result.exit_code)
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import termios
from collections.abc import Callable, Iterator
from typing import IO

from kitdsl.errors import OutputError
from kitdsl.run.accel import AccelChoice, choose_accel
from kitdsl.run.errors import RunError
from kitdsl.run.process import Outcome, QemuProcess, RunResult
from kitdsl.run.qemu import PreparedDisk, find_qemu, prepare_disk
from kitdsl.run.spec import BootSpec, RunOptions

Status = Callable[[str], None]


def boot(
    spec: BootSpec,
    options: RunOptions | None = None,
    *,
    console: IO[bytes] | None = None,
    interactive: bool = False,
    status: Status | None = None,
) -> RunResult:
    """Boot ``spec`` and wait until the guest stops (or ``options.timeout`` passes).

    The console's bytes go to ``console`` as they come (and, cleaned, to
    ``options.console_log``). With ``interactive``, qemu reads the terminal on standard input
    and the console is multiplexed with qemu's monitor (Ctrl-A x quits, Ctrl-A c switches);
    the terminal's settings are restored afterwards. ``status`` receives progress messages
    (the accelerator chosen and why).
    """
    options = options or RunOptions()
    qemu, disks, choice = prepare(spec, options)
    if status is not None:
        status(describe_choice(choice))
    try:
        with (
            _console_log(options) as log,
            _terminal_kept(interactive),
            QemuProcess.start(
                qemu,
                spec,
                options,
                accel=choice.accel,
                disks=disks,
                serial="terminal" if interactive else "pipe",
                stdin=sys.stdin.fileno() if interactive else subprocess.DEVNULL,
                sink=console,
                log=log,
                keep_console=False,  # shown and logged as it comes; a long run keeps nothing
            ) as process,
        ):
            try:
                result = process.wait(options.timeout)
                if result is None:
                    result = process.stop("timeout")
            except KeyboardInterrupt:
                result = process.stop("stop")
    except RunError as error:
        if choice.accel == "kvm" and error.hint is None:
            error.hint = kvm_hint(choice)
        raise
    if result.outcome is Outcome.TIMEOUT and choice.accel == "kvm":
        result = _with_kvm_note(result, choice)
    return result


def prepare(spec: BootSpec, options: RunOptions) -> tuple[str, list[PreparedDisk], AccelChoice]:
    """Everything a boot needs before qemu starts: the qemu binary, the disks (created when
    missing) and the accelerator (probed when ``auto``)."""
    qemu = find_qemu(options.qemu)
    spec.check()
    disks = [prepare_disk(disk, qemu) for disk in options.disks]
    return qemu, disks, choose_accel(options.accel, spec.kernel, qemu)


def describe_choice(choice: AccelChoice) -> str:
    """One line saying which accelerator boots the guest and why."""
    text = f"accelerator: {choice.accel} ({choice.reason}"
    if choice.probed and choice.verdict is not None:
        text += f"; probe took {choice.verdict.seconds:.2f} s, verdict cached"
    elif choice.verdict is not None and choice.accel == "kvm" and not choice.verdict.works:
        text += f"; warning: the KVM probe on this host found: {choice.verdict.reason}"
    return text + ")"


def describe_result(result: RunResult, timeout: float | None = None) -> str:
    """One line saying how the run ended."""
    after = f"after {result.seconds:.1f} s"
    match result.outcome:
        case Outcome.POWEROFF:
            return f"the guest powered off {after}"
        case Outcome.PANIC:
            return f"the guest's kernel panicked {after}: {result.detail}"
        case Outcome.REBOOT:
            return f"the guest rebooted {after}; qemu runs with -no-reboot, so the run ends"
        case Outcome.TIMEOUT:
            limit = f"after {timeout:g} s" if timeout is not None else "at the time limit"
            text = f"the guest was still running {limit}, so qemu was stopped"
            return f"{text} {result.detail}".rstrip()
        case Outcome.STOPPED:
            return f"qemu was stopped {after}: {result.detail}"


def kvm_hint(choice: AccelChoice) -> str:
    """What to say when a guest under KVM failed or hung: what the probe knows."""
    if choice.verdict is None:
        return "KVM was not probed on this host; --accel auto probes it and falls back to TCG"
    if choice.verdict.works:
        return f"the KVM probe on this host passed ({choice.verdict.reason}); try --accel tcg"
    return f"the KVM probe on this host found: {choice.verdict.reason}; use --accel tcg or auto"


def _with_kvm_note(result: RunResult, choice: AccelChoice) -> RunResult:
    note = f"(it ran under KVM: {kvm_hint(choice)})"
    return RunResult(result.outcome, result.seconds, result.accel, note)


@contextlib.contextmanager
def _console_log(options: RunOptions) -> Iterator[IO[str] | None]:
    # The log is written as the guest prints, not atomically: after a crash it must hold
    # everything up to the crash, and `tail -f` must work while the guest runs.
    if options.console_log is None:
        yield None
        return
    try:
        options.console_log.parent.mkdir(parents=True, exist_ok=True)
        handle = options.console_log.open("w", encoding="utf-8", newline="\n")
    except OSError as error:
        raise OutputError(
            f"cannot write the console log {options.console_log}: {error.strerror}",
            hint="give --console-log a file in a folder you can write to",
        ) from error
    with handle:
        yield handle


@contextlib.contextmanager
def _terminal_kept(interactive: bool) -> Iterator[None]:
    """Put the terminal's settings back even when qemu, which sets it raw, is killed."""
    saved = None
    if interactive:
        with contextlib.suppress(termios.error, OSError):
            saved = termios.tcgetattr(sys.stdin.fileno())
    try:
        yield
    finally:
        if saved is not None:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
