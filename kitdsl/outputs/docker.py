"""The ``docker`` format: ``<name>.docker`` (the ``tar`` format followed by LinuxKit's
``Dockerfile``), loaded into the local Docker engine as the image ``<name>:latest``.

The file is what LinuxKit writes for ``-format docker``. The image is made from it without a
build: ``docker build - < name.docker`` needs the build cache to give the same image twice,
and its ``COPY`` makes every file root's. Instead the file becomes the one layer of an image
handed to the engine as a ``docker save`` archive (``docker load``), with LinuxKit's entry
point (``/bin/rc.init``), the engine's own OS and architecture (as ``FROM scratch`` would
give) and LinuxKit's fixed time as its creation time. So the image holds exactly what the
file holds (``Dockerfile`` and ``boot/`` included, as ``docker build`` would give), owners
kept, and the same system gives the same image ID on the same engine. Nothing is fetched.

The engine is the one the Docker SDK finds: ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` and
``DOCKER_CERT_PATH``), else ``unix:///var/run/docker.sock``. When none answers, the file is
still written, and an :class:`~kitdsl.errors.OutputError` says so and how to load it later.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from kitdsl.errors import OutputError
from kitdsl.fsutil import file_sha256
from kitdsl.log import logger
from kitdsl.outputs.base import Boot, Job, Needs, register
from kitdsl.outputs.entry import DEFAULT_MTIME, Entry
from kitdsl.outputs.files import AtomicFiles
from kitdsl.outputs.tar import write_tar

if TYPE_CHECKING:
    from docker import DockerClient

DOCKERFILE = b'FROM scratch\nCOPY . ./\nENTRYPOINT ["/bin/rc.init"]\n'
"""What LinuxKit appends for ``-format docker``: build the tar's contents into an image whose
entry point is LinuxKit's init."""
ENTRYPOINT = ["/bin/rc.init"]
DEFAULT_HOST = "unix:///var/run/docker.sock"
LOAD_TIMEOUT = 1800
"""Seconds to wait for the engine to answer a load (it unpacks the whole system first)."""
_CREATED = datetime.fromtimestamp(DEFAULT_MTIME, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


def image_tag(name: str) -> str:
    """The tag the ``docker`` format gives the image of a system named ``name``:
    ``<name>:latest``, lowercased, with each run of characters Docker does not allow between
    letters and digits made one ``-`` (``Edge Box`` → ``edge-box:latest``)."""
    repository = re.sub(r"[^a-z0-9]+", lambda run: _separator(run[0]), name.lower())
    repository = repository.strip("._-")
    if not repository:
        raise OutputError(
            f"cannot make a Docker image name from {name!r}",
            hint="give the build a name with letters or digits (--name)",
        )
    return f"{repository}:latest"


def _separator(run: str) -> str:
    """A run of characters between letters and digits, as Docker allows it in a name."""
    return run if run in (".", "_", "__") or set(run) == {"-"} else "-"


def load_image(archive: Path, tag: str, *, client: DockerClient | None = None) -> str:
    """Load the tar ``archive`` (a root file system) into the Docker engine as a one-layer
    image tagged ``tag``, with entry point ``/bin/rc.init``; return the image ID.

    ``client`` defaults to the engine the environment names (``docker.from_env``). The image ID
    depends only on the archive's bytes and the engine's OS and architecture.
    """
    import docker.errors
    import requests

    client = client or _engine(archive, tag)
    try:
        engine = client.version()
        diff_id = "sha256:" + file_sha256(archive)
        config = _config(diff_id, os=engine.get("Os", "linux"), architecture=engine["Arch"])
        # The SDK hands the data to requests, which streams any iterable of chunks (chunked
        # transfer encoding) although the stubs only name bytes and files.
        chunks = _docker_archive(archive, diff_id, config, tag)
        loaded = client.images.load(cast(bytes, chunks))
    except (docker.errors.DockerException, requests.RequestException, OSError) as error:
        raise OutputError(
            f"the Docker engine did not load {archive}: {error}",
            hint=_import_hint(archive, tag),
        ) from error
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    if image_id not in {image.id for image in loaded}:
        raise OutputError(
            f"the Docker engine did not report loading {tag} from {archive}",
            hint=_import_hint(archive, tag),
        )
    logger.info("loaded %s (%s) into the Docker engine", tag, image_id)
    return image_id


def _engine(archive: Path, tag: str) -> DockerClient:
    """The engine the environment names; an :class:`OutputError` when none answers."""
    import docker

    address = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    try:
        client = docker.from_env()
        client.ping()
        client.api.timeout = LOAD_TIMEOUT  # after the ping, which should answer at once
    except docker.errors.DockerException as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OutputError(
            f"{archive} is written, but no Docker engine answers at {address} to load it",
            details=(reason,),
            hint="start dockerd, or set DOCKER_HOST to a running engine and build again; "
            f"or load the file yourself: {_import_command(archive, tag)}",
        ) from error
    return client


def _import_command(archive: Path, tag: str) -> str:
    # `docker import` keeps the files' owners; `docker build - < file` would make them root's.
    change = shlex.quote(f"ENTRYPOINT {json.dumps(ENTRYPOINT)}")
    return f"docker import --change {change} {shlex.quote(str(archive))} {tag}"


def _import_hint(archive: Path, tag: str) -> str:
    return f"load it yourself: {_import_command(archive, tag)}"


def _config(diff_id: str, *, os: str, architecture: str) -> bytes:
    """The image configuration: its bytes are the image ID, so they are fixed here."""
    config = {
        "architecture": architecture,
        "config": {"Entrypoint": ENTRYPOINT},
        "created": _CREATED,
        "history": [{"created": _CREATED, "created_by": "kitdsl build -f docker"}],
        "os": os,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _docker_archive(layer: Path, diff_id: str, config: bytes, tag: str) -> Iterator[bytes]:
    """A ``docker save`` archive of the one-layer image, as chunks: the layer is streamed from
    its file, never held in memory."""
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]
    yield from _member(config_name, config)
    size = layer.stat().st_size
    yield _header(layer_name, size)
    with layer.open("rb") as handle:
        yield from iter(lambda: handle.read(_CHUNK), b"")
    yield bytes(-size % _BLOCK)
    yield from _member("manifest.json", json.dumps(manifest).encode())
    yield bytes(2 * _BLOCK)


def _member(name: str, data: bytes) -> Iterator[bytes]:
    yield _header(name, len(data))
    yield data + bytes(-len(data) % _BLOCK)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, DEFAULT_MTIME
    return info.tobuf(format=tarfile.USTAR_FORMAT)


@register("docker")
class Docker:
    """``<name>.docker``: the ``tar`` format followed by a ``Dockerfile``, also loaded into the
    local Docker engine as ``<name>:latest`` (see :func:`image_tag`)."""

    needs: ClassVar[Needs] = Needs.STREAM

    def filenames(self, name: str, boot: Boot) -> list[str]:
        """The one file written for ``name``."""
        return [f"{name}.docker"]

    def write(self, job: Job) -> list[Path]:
        """Stream the tar, then the ``Dockerfile`` (no PAX records, as LinuxKit writes it);
        then load the file into the engine."""
        tag = image_tag(job.target.name)
        dockerfile = [Entry.file("Dockerfile", DOCKERFILE, mtime=job.boot.mtime)]
        with AtomicFiles(job.target.folder) as files:
            out = files.create(job.target.filename(".docker"))
            write_tar(job.rootfs, job.boot, out, job.cache, last=dockerfile)
        load_image(files.written[0], tag)
        return files.written
