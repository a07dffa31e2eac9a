"""The ``kitdsl`` command: each command is a thin call into one library function."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic_core import PydanticSerializationError
from rich.console import Console
from rich.syntax import Syntax

from kitdsl import __version__
from kitdsl.errors import KitError, OutputError, UsageError

if TYPE_CHECKING:
    from kitdsl.oci.media import Platform

app = typer.Typer(
    name="kitdsl",
    help="Build lean, immutable Linux systems from OCI images, configured in Python.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
_state = {"debug": False}

FilesArg = Annotated[
    list[str],
    typer.Argument(
        help="system.py files (FILE.py or FILE.py:NAME) or LinuxKit YAML files, merged in order.",
        metavar="FILE...",
    ),
]


def _version(value: bool) -> None:
    if value:
        print(f"kitdsl {__version__}")
        raise typer.Exit


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    _state["debug"] = debug


DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks for errors.", show_default=False)
]


OutputOpt = Annotated[
    Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
]


def _set_debug(debug: bool) -> None:
    # --debug is accepted before and after the command name.
    _state["debug"] = _state["debug"] or debug


def _base(output: Path | None) -> Path | None:
    """The folder an output will be read from: relative file sources are written for it."""
    return output.parent if output else None


def _write(text: str, output: Path | None, *, language: str | None = None) -> None:
    """Write to a file atomically (temporary file, then rename) or to standard output."""
    if output is None:
        console = Console()
        if language and console.is_terminal:
            console.print(Syntax(text, language, theme="ansi_dark", background_color="default"))
        else:
            sys.stdout.write(text)
        return
    from kitdsl.fsutil import atomic_write_text

    try:
        atomic_write_text(output, text)
    except OSError as exc:
        raise OutputError(
            f"cannot write {output}: {exc.strerror or exc}",
            hint="give a file path in a folder you can write to",
        ) from exc


@app.command()
def inspect(
    files: FilesArg,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Show the file:line that set each component and field."),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Print the resolved system."""
    _set_debug(debug)
    from kitdsl.load import describe, load_system
    from kitdsl.pkg.system import lockfile_context

    system = load_system(files)
    with lockfile_context(files[-1], _platform(None)):
        if json_output:
            _write(describe.to_json(system, explain=explain), None)
        else:
            _write(describe.to_text(system, explain=explain), None, language="yaml")


@app.command()
def convert(
    files: Annotated[list[str], typer.Argument(help="LinuxKit YAML files.", metavar="IN.yml...")],
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Convert LinuxKit YAML to an idiomatic system.py."""
    _set_debug(debug)
    from kitdsl.load import is_yaml, load_system
    from kitdsl.load.pysource import system_to_python

    not_yaml = [name for name in files if not is_yaml(name)]
    if not_yaml:
        raise UsageError(f"convert reads LinuxKit YAML, not {not_yaml[0]}")
    system = load_system(files)
    _write(
        system_to_python(
            system,
            source=", ".join(Path(f).name for f in files),
            base=_base(output),
        ),
        output,
        language="python",
    )


@app.command()
def export(
    files: FilesArg,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Write the system as LinuxKit YAML."""
    _set_debug(debug)
    from kitdsl.load import load_system
    from kitdsl.load.linuxkit_yaml import dump_linuxkit_yaml
    from kitdsl.pkg.system import lockfile_context

    system = load_system(files)
    with lockfile_context(files[-1], _platform(None)):
        text = dump_linuxkit_yaml(system, base=_base(output))
    _write(text, output, language="yaml")


def _report(exc: KitError) -> NoReturn:
    if _state["debug"]:
        traceback.print_exception(exc)
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        exc.render(), style="red", markup=False
    )
    sys.exit(exc.exit_code)


ArchOpt = Annotated[
    str | None,
    typer.Option(
        "--arch",
        help="Target platform: an architecture (amd64, arm64) or os/arch[/variant]. "
        "Default: this machine's.",
    ),
]


_OPERATING_SYSTEMS = frozenset({"linux", "windows", "darwin", "freebsd"})


def _platform(arch: str | None) -> Platform:
    from kitdsl.oci.media import Platform
    from kitdsl.plan import host_platform

    if arch is None:
        return host_platform()
    try:
        # "arm64", "arm64/v8" and "linux/arm64/v8" all name a Linux platform.
        full = arch if arch.split("/")[0] in _OPERATING_SYSTEMS else f"linux/{arch}"
        return Platform.parse(full)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@app.command()
def plan(
    files: FilesArg,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    arch: ArchOpt = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="The image cache folder.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Show the build plan (the DAG of steps) without running it; layers the cache or the
    lockfile already know are listed."""
    _set_debug(debug)
    from kitdsl.images import cached_source
    from kitdsl.load import load_system
    from kitdsl.pkg.system import lockfile_context
    from kitdsl.plan import plan_images, render_plan, render_plan_json

    system = load_system(files)
    platform = _platform(arch)
    with lockfile_context(files[-1], platform, cache_dir=cache):
        image_plan = plan_images(system, cached_source(files[-1], cache), platform=platform)
    text = render_plan_json(image_plan.plan) if json_output else render_plan(image_plan.plan)
    _write(text if text.endswith("\n") else text + "\n", None)


def _register() -> None:
    # The image commands live in their own module; importing it adds them to ``app``.
    import kitdsl.cli_build
    import kitdsl.cli_images
    import kitdsl.cli_manifest
    import kitdsl.cli_pkg
    import kitdsl.cli_run  # noqa: F401


def main() -> None:
    """Entry point: run the app, turning kitdsl errors into messages and exit codes."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("kitdsl").addHandler(handler)
    logging.getLogger("kitdsl").propagate = False
    _register()
    try:
        app()
    except KitError as exc:
        _report(exc)
    except PydanticSerializationError as exc:
        # A value that only shows itself when written out, such as the reference an
        # ImageProvider gives.
        message = re.sub(r"^Error calling function `\w+`: \w+: ", "", str(exc))
        _report(KitError(message))
    except KeyboardInterrupt:
        sys.exit(130)
