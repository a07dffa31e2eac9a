"""``kitdsl manifest`` and ``kitdsl diff``: thin commands over :mod:`kitdsl.manifest`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from kitdsl.cli import ArchOpt, DebugOpt, FilesArg, _set_debug, _write, app
from kitdsl.cli_images import (
    CacheOpt,
    CaOpt,
    DockerOpt,
    InsecureOpt,
    JobsOpt,
    MirrorOpt,
    PullOpt,
    _options,
)

if TYPE_CHECKING:
    from kitdsl.images import ImageOptions
    from kitdsl.manifest import Manifest

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
SideArg = Annotated[
    str,
    typer.Argument(help="A system file (FILE.py, FILE.py:NAME, LinuxKit YAML) or a tar output."),
]


def _load(files: list[str], options: ImageOptions) -> Manifest:
    from kitdsl.manifest import load_manifest
    from kitdsl.plan import choose_reporter

    return load_manifest(files, options, reporter=choose_reporter())


@app.command()
def manifest(
    files: FilesArg,
    json_output: JsonOpt = False,
    cache: CacheOpt = None,
    arch: ArchOpt = None,
    pull: PullOpt = False,
    docker: DockerOpt = False,
    jobs: JobsOpt = None,
    insecure: InsecureOpt = None,
    mirror: MirrorOpt = None,
    ca_cert: CaOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print what a system holds, one line per path, plus its containers and kernel: of a
    system's files (fetched and assembled as `kitdsl build` does, nothing written) or of a tar
    output (`kitdsl build -f tar`)."""
    _set_debug(debug)
    options = _options(
        cache=cache,
        arch=arch,
        pull=pull,
        docker=docker,
        jobs=jobs,
        insecure=insecure,
        mirror=mirror,
        ca_cert=ca_cert,
    )
    found = _load(files, options)
    _write(found.to_json() if json_output else found.to_text(), None)


@app.command()
def diff(
    before: SideArg,
    after: SideArg,
    json_output: JsonOpt = False,
    cache: CacheOpt = None,
    arch: ArchOpt = None,
    pull: PullOpt = False,
    docker: DockerOpt = False,
    jobs: JobsOpt = None,
    insecure: InsecureOpt = None,
    mirror: MirrorOpt = None,
    ca_cert: CaOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Compare two systems or tar outputs: added (+), removed (-) and changed (~) paths,
    containers and kernel. Exits 0 when they are the same, 1 when they differ (like diff)."""
    _set_debug(debug)
    from kitdsl.manifest import diff_manifests

    options = _options(
        cache=cache,
        arch=arch,
        pull=pull,
        docker=docker,
        jobs=jobs,
        insecure=insecure,
        mirror=mirror,
        ca_cert=ca_cert,
    )
    changes = diff_manifests(_load([before], options), _load([after], options))
    _write(changes.to_json() if json_output else changes.to_text(), None)
    if changes:
        raise typer.Exit(1)
