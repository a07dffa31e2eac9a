"""Images from the local Docker engine (``--docker``), through the Docker SDK.

With ``--docker``, an image the engine already has is used without any registry: it is
exported with ``docker save`` (streamed to a temporary file, never held in memory), verified
and its content imported into the cache. The name is not recorded: the engine's copy has
other digests than the registry's, so it must not become what the tag means for later
builds or lockfiles. An image
the engine does not have, or has for another platform, is left to the registry. No engine at
all is reported once as a warning, and the registry is used.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from kitdsl import reference
from kitdsl.log import warn
from kitdsl.oci.cache import Cache
from kitdsl.oci.media import Descriptor, Platform
from kitdsl.oci.store import ref_key

_CHUNK = 1 << 20


class DockerSource:
    """Looks images up in a Docker engine and copies the ones it has into the cache."""

    def __init__(self, cache: Cache, *, client: Any = None, base_url: str | None = None) -> None:
        self.cache = cache
        self._client = client
        self._base_url = base_url
        self._unavailable: str | None = None

    def _engine(self) -> Any:
        """The SDK client, or ``None`` (once warned) when no engine answers."""
        if self._client is not None or self._unavailable is not None:
            return self._client
        import docker  # only --docker needs the SDK loaded

        try:
            client = (
                docker.DockerClient(base_url=self._base_url)
                if self._base_url
                else docker.from_env()
            )
            client.ping()
        except Exception as exc:  # the SDK raises many kinds for "no engine here"
            self._unavailable = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warn(f"--docker: no Docker engine answers ({self._unavailable}); using registries")
            return None
        self._client = client
        return client

    def lookup(self, ref: str, platform: Platform) -> Descriptor | None:
        """Copy ``ref`` from the engine into the cache and return its manifest descriptor;
        ``None`` when the engine does not have it for ``platform``."""
        client = self._engine()
        if client is None:
            return None
        import docker.errors

        parsed = reference.parse(ref)
        name = parsed.familiar if parsed.digest is None else str(parsed)
        try:
            image = client.images.get(name)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            warn(f"--docker: the engine failed to look up {name}: {exc.explanation or exc}")
            return None
        attrs = image.attrs
        found = Platform(
            os=attrs.get("Os", "linux"),
            architecture=attrs.get("Architecture", ""),
            variant=attrs.get("Variant") or None,
        )
        if not found.matches(platform):
            warn(f"--docker: the engine has {name} for {found}, not {platform}; using registries")
            return None
        with tempfile.TemporaryDirectory(prefix="kitdsl-docker-") as folder:
            archive = Path(folder) / "image.tar"
            with archive.open("wb") as handle:
                for chunk in image.save(chunk_size=_CHUNK, named=False):
                    handle.write(chunk)
            # The engine's copy is re-serialised by `docker save`: its digests exist on no
            # registry, so it is stored without recording what the tag means.
            imported = self.cache.import_archive(archive, name=ref_key(ref), record=False)
        if not imported:
            return None
        root = imported[0]
        return Descriptor(
            media_type=root.media_type,
            digest=root.digest,
            size=self.cache.blob_path(root.digest).stat().st_size,
        )
