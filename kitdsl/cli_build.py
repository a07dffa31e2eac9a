"""``kitdsl build``: a thin command over :func:`kitdsl.build.build_system`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kitdsl.cli import ArchOpt, DebugOpt, FilesArg, _set_debug, app
from kitdsl.cli_images import (
    CacheOpt,
    CaOpt,
    DebianKeyringOpt,
    DebianMirrorOpt,
    DockerOpt,
    FrozenOpt,
    InsecureOpt,
    JobsOpt,
    MirrorOpt,
    PullOpt,
    _options,
)

DEFAULT_FORMAT = "kernel+initrd"


@app.command()
def build(
    files: FilesArg,
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format", "-f", help=f"Output format (repeatable; default {DEFAULT_FORMAT})."
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder the outputs are written to.")
    ] = Path("."),
    name: Annotated[
        str | None,
        typer.Option("--name", help="Base name of the outputs (default: the last file's stem)."),
    ] = None,
    cache: CacheOpt = None,
    arch: ArchOpt = None,
    pull: PullOpt = False,
    docker: DockerOpt = False,
    jobs: JobsOpt = None,
    frozen: FrozenOpt = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Run every assembly and output step again, even when the outputs are up to "
            "date or parts are in the cache (images still come from the cache).",
        ),
    ] = False,
    insecure: InsecureOpt = None,
    mirror: MirrorOpt = None,
    ca_cert: CaOpt = None,
    debian_mirror: DebianMirrorOpt = None,
    debian_keyring: DebianKeyringOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Build the system: fetch its images (the lockfile's pins win), assemble its root file
    system and write each output format; prints the files written. Outputs already up to
    date are left as they are, and parts of earlier builds are reused (see --rebuild)."""
    _set_debug(debug)
    from kitdsl.build import build_system
    from kitdsl.load import load_system
    from kitdsl.lockfile import Lockfile, lock_path
    from kitdsl.outputs import Target
    from kitdsl.plan import choose_reporter

    options = _options(
        cache=cache,
        arch=arch,
        pull=pull,
        docker=docker,
        jobs=jobs,
        insecure=insecure,
        mirror=mirror,
        ca_cert=ca_cert,
        debian_mirror=debian_mirror,
        debian_keyring=debian_keyring,
    )
    path = lock_path(files[-1])
    system = load_system(files)
    base = name or Path(files[-1].split(":", 1)[0]).stem
    written = build_system(
        system,
        options,
        formats or [DEFAULT_FORMAT],
        Target(output, base),
        lock=Lockfile.read(path),
        frozen_lock=path if frozen else None,
        reporter=choose_reporter(),
        rebuild=rebuild,
    )
    for item in written:
        typer.echo(str(item))
