"""``kitdsl pkg build | show-tag | push``: packages defined in Python, by themselves."""

from __future__ import annotations

from typing import Annotated

import typer

from kitdsl.cli import ArchOpt, DebugOpt, _platform, _set_debug, app
from kitdsl.cli_images import CacheOpt, CaOpt, DebianKeyringOpt, DebianMirrorOpt, InsecureOpt

pkg_app = typer.Typer(help="Build, name and push packages defined in Python.", no_args_is_help=True)
app.add_typer(pkg_app, name="pkg")

TargetsArg = Annotated[
    list[str],
    typer.Argument(
        help="FILE.py[:NAME] or MODULE[:NAME] (kitdsl.packages:httpd): the packages it defines "
        "(and those its system uses).",
        metavar="TARGET...",
    ),
]


@pkg_app.command("show-tag")
def show_tag(
    targets: TargetsArg,
    arch: ArchOpt = None,
    cache: CacheOpt = None,
    debian_mirror: DebianMirrorOpt = None,
    debian_keyring: DebianKeyringOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print the reference (ORG/NAME:TAG) of each package, resolving it if needed."""
    _set_debug(debug)
    from kitdsl.pkg.commands import show_tags

    for line in show_tags(
        targets,
        platform=_platform(arch),
        cache=cache,
        mirror=debian_mirror,
        keyring=debian_keyring,
    ):
        typer.echo(line)


@pkg_app.command("build")
def build(
    targets: TargetsArg,
    force: Annotated[
        bool, typer.Option("--force", help="Build even when the cache has the tag.")
    ] = False,
    arch: ArchOpt = None,
    cache: CacheOpt = None,
    debian_mirror: DebianMirrorOpt = None,
    debian_keyring: DebianKeyringOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Build each package into the cache (unless its tag is there) and print its reference."""
    _set_debug(debug)
    from kitdsl.pkg.commands import build_packages

    for line in build_packages(
        targets,
        platform=_platform(arch),
        cache=cache,
        mirror=debian_mirror,
        keyring=debian_keyring,
        force=force,
    ):
        typer.echo(line)


@pkg_app.command("push")
def push(
    targets: TargetsArg,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            help="Push under this registry and path (registry.example.com/team) instead of "
            "each package's own org.",
        ),
    ] = None,
    arch: ArchOpt = None,
    cache: CacheOpt = None,
    insecure: InsecureOpt = None,
    ca_cert: CaOpt = None,
    debian_mirror: DebianMirrorOpt = None,
    debian_keyring: DebianKeyringOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Build each package if needed, then push it to its registry; print where it went."""
    _set_debug(debug)
    from kitdsl.pkg.commands import push_packages

    for line in push_packages(
        targets,
        org=org,
        platform=_platform(arch),
        cache=cache,
        mirror=debian_mirror,
        keyring=debian_keyring,
        insecure=tuple(insecure or ()),
        ca_certs=tuple(ca_cert or ()),
    ):
        typer.echo(line)
