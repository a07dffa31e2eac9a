"""``kitdsl pull``, ``kitdsl lock`` and ``kitdsl cache ...``: thin commands over
:mod:`kitdsl.images` and :class:`kitdsl.oci.cache.Cache`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kitdsl.cli import ArchOpt, DebugOpt, FilesArg, _platform, _set_debug, app
from kitdsl.errors import UsageError

if TYPE_CHECKING:
    from kitdsl.images import ImageOptions

CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache", help="The image cache folder (default: $KITDSL_CACHE or ~/.cache/kitdsl)."
    ),
]
PullOpt = Annotated[
    bool, typer.Option("--pull", help="Ask registries again what tags mean, even if cached.")
]
DockerOpt = Annotated[
    bool, typer.Option("--docker", help="Use images the local Docker engine already has.")
]
JobsOpt = Annotated[int | None, typer.Option("--jobs", "-j", help="Steps run at once.")]
InsecureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--insecure", help="A registry host reached over plain HTTP or without TLS checks."
    ),
]
MirrorOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mirror", help="DOMAIN=URL: a mirror tried first, e.g. docker.io=http://127.0.0.1:5000."
    ),
]
FrozenOpt = Annotated[
    bool, typer.Option("--frozen", help="Fail if the system no longer matches its lockfile.")
]
CaOpt = Annotated[
    list[Path] | None,
    typer.Option("--ca-cert", help="Extra trusted CA certificates (file or folder)."),
]

DebianMirrorOpt = Annotated[
    str | None,
    typer.Option(
        "--debian-mirror",
        help="The Debian archive packages are built from (default: $KITDSL_DEBIAN_MIRROR, "
        "this machine's apt sources, or http://deb.debian.org/debian).",
    ),
]
DebianKeyringOpt = Annotated[
    Path | None,
    typer.Option(
        "--debian-keyring", help="Keys the Debian archive is signed with, if not Debian's."
    ),
]

cache_app = typer.Typer(help="Inspect and maintain the image cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _options(
    *,
    cache: Path | None,
    arch: str | None = None,
    pull: bool = False,
    docker: bool = False,
    jobs: int | None = None,
    insecure: list[str] | None = None,
    mirror: list[str] | None = None,
    ca_cert: list[Path] | None = None,
    debian_mirror: str | None = None,
    debian_keyring: Path | None = None,
) -> ImageOptions:
    from kitdsl.images import ImageOptions

    mirrors: dict[str, list[str]] = {}
    for item in mirror or []:
        domain, sep, url = item.partition("=")
        if not sep or not url:
            raise UsageError(f"--mirror {item!r} must be DOMAIN=URL")
        mirrors.setdefault(domain, []).append(url)
    return ImageOptions(
        cache_dir=cache,
        platform=_platform(arch),
        pull=pull,
        docker=docker,
        jobs=jobs,
        insecure=tuple(insecure or ()),
        mirrors=mirrors,
        ca_certs=tuple(ca_cert or ()),
        debian_mirror=debian_mirror,
        debian_keyring=debian_keyring,
    )


@app.command()
def pull(
    files: FilesArg,
    cache: CacheOpt = None,
    arch: ArchOpt = None,
    pull: PullOpt = False,
    docker: DockerOpt = False,
    jobs: JobsOpt = None,
    frozen: FrozenOpt = False,
    insecure: InsecureOpt = None,
    mirror: MirrorOpt = None,
    ca_cert: CaOpt = None,
    debian_mirror: DebianMirrorOpt = None,
    debian_keyring: DebianKeyringOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Fetch every image of the system into the cache (the lockfile's pins win)."""
    _set_debug(debug)
    from kitdsl.images import pull_system
    from kitdsl.load import load_system
    from kitdsl.lockfile import Lockfile, lock_path
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
    result = pull_system(
        system,
        options,
        lock=Lockfile.read(path),
        frozen_lock=path if frozen else None,
        reporter=choose_reporter(),
    )
    count = sum(len(images) for images in result.images.values())
    typer.echo(f"{count} images of {len(result.images)} components are in the cache")


@app.command()
def lock(
    files: FilesArg,
    update: Annotated[
        list[str] | None,
        typer.Option(
            "--update",
            help="Re-resolve this component or image (repeatable); "
            "--update all re-resolves everything.",
        ),
    ] = None,
    arch: Annotated[
        list[str] | None, typer.Option("--arch", help="Platforms to lock (repeatable).")
    ] = None,
    cache: CacheOpt = None,
    pull: PullOpt = False,
    insecure: InsecureOpt = None,
    mirror: MirrorOpt = None,
    ca_cert: CaOpt = None,
    debian_mirror: DebianMirrorOpt = None,
    debian_keyring: DebianKeyringOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Write FILE.lock beside the system: every image pinned to digests per platform, every
    package built from Debian pinned to its exact .deb files."""
    _set_debug(debug)
    from kitdsl.images import lock_images
    from kitdsl.load import load_system
    from kitdsl.lockfile import Lockfile, lock_path

    options = _options(
        cache=cache,
        pull=pull,
        insecure=insecure,
        mirror=mirror,
        ca_cert=ca_cert,
        debian_mirror=debian_mirror,
        debian_keyring=debian_keyring,
    )
    path = lock_path(files[-1])
    previous = Lockfile.read(path)
    names = None if update is None else ([] if update == ["all"] else update)
    platforms = [_platform(a) for a in arch or []]
    result = lock_images(
        load_system(files), options, previous=previous, update=names, platforms=platforms
    )
    result.write(path)
    typer.echo(
        f"wrote {path}: {len(result.images)} images and {len(result.packages)} packages for "
        f"{', '.join(result.platforms)}"
    )


@cache_app.command("ls")
def cache_ls(cache: CacheOpt = None, debug: DebugOpt = False) -> None:
    """List the images in the cache."""
    _set_debug(debug)
    from kitdsl.oci.cache import Cache

    for entry in Cache.open(cache).ls():
        state = "" if entry.complete else "  (incomplete: run kitdsl cache verify)"
        platforms = ",".join(entry.platforms) or "-"
        typer.echo(f"{entry.name}  {entry.digest[:19]}  {platforms}  {entry.size} B{state}")


@cache_app.command("rm")
def cache_rm(
    names: Annotated[list[str], typer.Argument(help="Image names.")],
    cache: CacheOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Forget images and delete the content only they used."""
    _set_debug(debug)
    from kitdsl.oci.cache import Cache

    removed = Cache.open(cache).remove(names, prune=True)
    typer.echo(
        f"removed {len(removed.names)} images, freed {removed.freed.blobs} blobs "
        f"({removed.freed.bytes} B)"
    )


@cache_app.command("prune")
def cache_prune(
    days: Annotated[
        float,
        typer.Option(
            "--assembled-days",
            help="Keep the parts of builds (assembled segments) used in the last DAYS days; "
            "0 removes them all.",
            metavar="DAYS",
        ),
    ] = 7,
    cache: CacheOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Delete content no image in the cache uses, parts of builds not used for a while, and
    leftovers of interrupted writes."""
    _set_debug(debug)
    from kitdsl.build import segment_cache
    from kitdsl.oci.cache import Cache

    opened = Cache.open(cache)
    freed = opened.prune()
    with opened.exclusive():
        parts, size = segment_cache(opened).prune(older_than=days * 86400)
    typer.echo(
        f"freed {freed.blobs} blobs, {parts} assembled parts and {freed.temporary} temporary "
        f"files ({freed.bytes + size} B)"
    )


@cache_app.command("verify")
def cache_verify(
    repair: Annotated[bool, typer.Option("--repair", help="Remove what is corrupt.")] = False,
    cache: CacheOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Check every blob against its digest and every image for missing content."""
    _set_debug(debug)
    from kitdsl.errors import CacheError
    from kitdsl.oci.cache import Cache

    problems = Cache.open(cache).verify(repair=repair)
    for problem in problems:
        typer.echo(str(problem))
    if problems and not all(p.repaired for p in problems):
        raise CacheError(f"the cache has {len(problems)} problems", hint="run with --repair")
    typer.echo("the cache is clean" if not problems else "repaired")


@cache_app.command("import")
def cache_import(
    archive: Annotated[Path, typer.Argument(help="An OCI layout tar or a docker-archive.")],
    name: Annotated[str | None, typer.Option("--name", help="Name for an unnamed image.")] = None,
    cache: CacheOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Import images from an OCI layout tarball or a `docker save` archive."""
    _set_debug(debug)
    from kitdsl.oci.cache import Cache

    for imported in Cache.open(cache).import_archive(archive, name=name):
        typer.echo(f"imported {imported.name} {imported.digest}")


@cache_app.command("export")
def cache_export(
    name: Annotated[str, typer.Argument(help="Image name.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The archive to write.")],
    format: Annotated[str, typer.Option("--format", help="oci or docker.")] = "oci",
    arch: ArchOpt = None,
    cache: CacheOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Export an image as an OCI layout tarball or a `docker load` archive."""
    _set_debug(debug)
    from kitdsl.oci.cache import Cache

    if format not in ("oci", "docker"):
        raise UsageError(f"--format must be oci or docker, not {format!r}")
    platform = _platform(arch) if arch else None
    exported = Cache.open(cache).export(
        name, output, format="docker" if format == "docker" else "oci", platform=platform
    )
    typer.echo(f"wrote {output}: {exported.blobs} blobs, {exported.size} B")


@cache_app.command("push")
def cache_push(
    name: Annotated[str, typer.Argument(help="Image name in the cache.")],
    target: Annotated[str | None, typer.Argument(help="Where to push (default: its name).")] = None,
    cache: CacheOpt = None,
    insecure: InsecureOpt = None,
    ca_cert: CaOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Push an image (or index) from the cache to a registry."""
    _set_debug(debug)
    from kitdsl.errors import CacheError
    from kitdsl.oci.cache import Cache

    options = _options(cache=cache, insecure=insecure, ca_cert=ca_cert)
    store = Cache.open(cache)
    root = store.get_ref(name)
    if root is None:
        raise CacheError(f"{name} is not in the cache", hint="see kitdsl cache ls")
    with options.client() as client:
        client.push(target or name, store, root)
    typer.echo(f"pushed {name} to {target or name}")
