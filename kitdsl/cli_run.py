"""``kitdsl run qemu``: a thin command over :func:`kitdsl.run.boot`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from kitdsl.cli import DebugOpt, _set_debug, app
from kitdsl.errors import UsageError

run_app = typer.Typer(help="Boot built systems.", no_args_is_help=True)
app.add_typer(run_app, name="run")


@run_app.command("qemu")
def qemu(
    output: Annotated[
        Path | None,
        typer.Argument(
            help="The build to boot, by its prefix: out/edge boots out/edge-kernel with "
            "out/edge-initrd.img (or out/edge-squashfs.img) and out/edge-cmdline; or a system "
            "file (edge.py, edge.py:NAME, linuxkit.yml), built first into the current folder "
            "(as kitdsl build does).",
            metavar="OUTPUT",
        ),
    ] = None,
    kernel: Annotated[
        Path | None, typer.Option("--kernel", help="A kernel to boot instead of OUTPUT's.")
    ] = None,
    initrd: Annotated[Path | None, typer.Option("--initrd", help="The initrd for --kernel.")] = (
        None
    ),
    cmdline: Annotated[
        Path | None,
        typer.Option("--cmdline", help="A file holding the kernel command line for --kernel."),
    ] = None,
    mem: Annotated[int, typer.Option("--mem", help="Guest memory in MiB.", metavar="MIB")] = 1024,
    cpus: Annotated[int, typer.Option("--cpus", help="Guest CPUs.", metavar="N")] = 1,
    publish: Annotated[
        list[str] | None,
        typer.Option(
            "--publish",
            "-p",
            help="Reach a guest port from 127.0.0.1 (repeatable).",
            metavar="HOST:GUEST[/tcp|udp]",
        ),
    ] = None,
    disk: Annotated[
        list[str] | None,
        typer.Option(
            "--disk",
            help="Attach a virtio disk (repeatable); created with qemu-img when missing.",
            metavar="PATH[,size=N[M|G]][,format=raw|qcow2]",
        ),
    ] = None,
    append: Annotated[
        list[str] | None,
        typer.Option(
            "--append", help="Add to the kernel command line (repeatable).", metavar="TEXT"
        ),
    ] = None,
    accel: Annotated[
        str,
        typer.Option(
            "--accel", help="auto (probe KVM once, else TCG), kvm or tcg.", metavar="auto|kvm|tcg"
        ),
    ] = "auto",
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="Stop the guest after this many seconds (exit 124).",
            metavar="SECONDS",
        ),
    ] = None,
    console_log: Annotated[
        Path | None,
        typer.Option(
            "--console-log", help="Console log without ANSI escapes (default <OUTPUT>-console.log)."
        ),
    ] = None,
    qemu_path: Annotated[
        str | None,
        typer.Option(
            "--qemu", help="The qemu binary (default qemu-system-x86_64).", metavar="PATH"
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="The image cache, when OUTPUT is a system file to build."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Boot a built system under qemu with its console on this terminal; the exit code tells
    how the guest ended: 0 power off, 11 kernel panic, 12 reboot, 124 timeout, 130 stopped."""
    _set_debug(debug)
    from kitdsl.run import BootSpec, Disk, Publish, RunOptions, boot, describe_result

    if (output is None) == (kernel is None):
        raise UsageError(
            "give a build to boot (OUTPUT) or --kernel, not both or neither",
            hint="kitdsl run qemu out/edge, or kitdsl run qemu --kernel K --initrd I",
        )
    if output is not None:
        if initrd is not None or cmdline is not None:
            raise UsageError("--initrd and --cmdline go with --kernel, not with OUTPUT")
        if _is_system_file(str(output)):
            output = _build(str(output), cache)
        spec = BootSpec.from_output(output)
        log: Path | None = console_log or spec.kernel.with_name(
            spec.kernel.name.removesuffix("-kernel") + "-console.log"
        )
    else:
        assert kernel is not None
        text = cmdline.read_text().strip() if cmdline is not None else ""
        spec = BootSpec(kernel, initrd=initrd, cmdline=text)
        log = console_log
    if accel not in ("auto", "kvm", "tcg"):
        raise UsageError(f"--accel {accel}: choose auto, kvm or tcg")
    options = RunOptions(
        mem=mem,
        cpus=cpus,
        publish=tuple(Publish.parse(item) for item in publish or ()),
        disks=tuple(Disk.parse(item) for item in disk or ()),
        append=" ".join(append or ()),
        accel="kvm" if accel == "kvm" else "tcg" if accel == "tcg" else "auto",
        timeout=timeout,
        console_log=log,
        qemu=qemu_path,
    )

    def status(message: str) -> None:
        typer.echo(f"kitdsl: {message}", err=True)

    # `kill` stops the guest as Ctrl-C does: qemu is stopped, not left running alone.
    signal.signal(signal.SIGTERM, _interrupt)

    result = boot(
        spec, options, console=sys.stdout.buffer, interactive=_is_terminal(), status=status
    )
    status(describe_result(result, timeout))
    raise typer.Exit(result.exit_code)


def _is_system_file(text: str) -> bool:
    path = text.split(".py:", 1)[0] + (".py" if ".py:" in text else "")
    return path.endswith((".py", ".yml", ".yaml")) and Path(path).is_file()


def _build(file: str, cache: Path | None) -> Path:
    """Build ``file`` as ``kitdsl build FILE`` does (kernel+initrd, into the current folder);
    return the prefix of what it wrote."""
    from kitdsl.build import build_system
    from kitdsl.cli_images import _options
    from kitdsl.load import load_system
    from kitdsl.lockfile import Lockfile, lock_path
    from kitdsl.outputs import Target
    from kitdsl.plan import choose_reporter

    name = Path(file.split(":", 1)[0]).stem
    build_system(
        load_system([file]),
        _options(cache=cache),
        ["kernel+initrd"],
        Target(Path("."), name),
        lock=Lockfile.read(lock_path(file)),
        reporter=choose_reporter(),
    )
    return Path(name)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _is_terminal() -> bool:
    """Whether standard input is a terminal qemu can read (then the console is interactive)."""
    try:
        return sys.stdin.isatty() and sys.stdin.fileno() >= 0
    except (AttributeError, ValueError, OSError):
        return False
