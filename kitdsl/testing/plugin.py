"""The kitdsl pytest plugin (loaded through the ``pytest11`` entry point).

``system_manifest("systems/edge.py")`` builds the system as ``kitdsl build`` does, without
writing an output, and gives its :class:`~kitdsl.manifest.Manifest`; compare it with a syrupy
snapshot::

    def test_edge(system_manifest, snapshot):
        assert system_manifest("systems/edge.py") == snapshot

In a test that uses ``system_manifest``, ``snapshot`` stores manifests as text files
(:class:`~kitdsl.testing.snapshot.ManifestExtension`); other tests keep syrupy's default.

Settings, command line first, then the ini file (``[tool.pytest.ini_options]``), then the
environment:

- ``--kitdsl-cache`` / ``kitdsl_cache`` / ``$KITDSL_CACHE``: the image cache folder;
- ``kitdsl_arch``: the target platform (default: this machine's);
- ``kitdsl_insecure``: registry hosts reached over plain HTTP (one per line);
- ``kitdsl_mirrors``: ``DOMAIN=URL`` mirrors tried first (one per line);
- ``kitdsl_pull``: ask registries again what tags mean.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kitdsl.errors import KitError

if TYPE_CHECKING:
    from kitdsl.images import ImageOptions
    from kitdsl.manifest import Manifest

SystemManifest = Callable[..., "Manifest"]
"""The ``system_manifest`` fixture: system files (relative to the rootdir) → manifest."""

_OPERATING_SYSTEMS = ("linux/", "windows/", "darwin/", "freebsd/")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kitdsl", "kitdsl system manifests")
    group.addoption(
        "--kitdsl-cache",
        default=None,
        help="kitdsl image cache folder (default: kitdsl_cache, $KITDSL_CACHE, ~/.cache/kitdsl)",
    )
    parser.addini("kitdsl_cache", "kitdsl image cache folder (relative to the rootdir)")
    parser.addini("kitdsl_arch", "target platform of system_manifest (default: this machine's)")
    parser.addini("kitdsl_insecure", "registry hosts reached over plain HTTP", type="linelist")
    parser.addini("kitdsl_mirrors", "DOMAIN=URL registry mirrors tried first", type="linelist")
    parser.addini("kitdsl_pull", "ask registries again what tags mean", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    # Registered now, after every plugin loaded at start-up, so this ``snapshot`` overrides
    # syrupy's whatever order the entry points were loaded in.
    if config.pluginmanager.hasplugin("syrupy") and not config.pluginmanager.hasplugin(
        "kitdsl-snapshot"
    ):
        config.pluginmanager.register(_SnapshotOverride(), "kitdsl-snapshot")


class _SnapshotOverride:
    @pytest.fixture
    def snapshot(self, request: pytest.FixtureRequest, snapshot: Any) -> Any:
        """syrupy's ``snapshot``, storing text files in tests that use ``system_manifest``."""
        if "system_manifest" not in request.fixturenames:
            return snapshot
        from kitdsl.testing.snapshot import ManifestExtension

        return snapshot.use_extension(ManifestExtension)


def image_options(config: pytest.Config) -> ImageOptions:
    """The :class:`~kitdsl.images.ImageOptions` the plugin's settings give."""
    from kitdsl.images import ImageOptions
    from kitdsl.oci.media import Platform

    cache: str | None = config.getoption("kitdsl_cache") or config.getini("kitdsl_cache") or None
    arch: str = config.getini("kitdsl_arch") or ""
    mirrors: dict[str, list[str]] = {}
    for item in config.getini("kitdsl_mirrors"):
        domain, sep, url = item.partition("=")
        if not sep or not url:
            raise pytest.UsageError(f"kitdsl_mirrors: {item!r} must be DOMAIN=URL")
        mirrors.setdefault(domain, []).append(url)
    platform = None
    if arch:
        try:
            platform = Platform.parse(
                arch if arch.startswith(_OPERATING_SYSTEMS) else f"linux/{arch}"
            )
        except ValueError as error:
            raise pytest.UsageError(f"kitdsl_arch: {error}") from None
    return ImageOptions(
        cache_dir=config.rootpath / cache if cache else None,
        platform=platform,
        pull=bool(config.getini("kitdsl_pull")),
        insecure=tuple(config.getini("kitdsl_insecure")),
        mirrors=mirrors,
    )


@pytest.fixture(scope="session")
def _kitdsl_manifests() -> dict[tuple[str, ...], Manifest]:
    """Manifests already computed this session: a system is built once, however many tests
    look at it."""
    return {}


@pytest.fixture
def system_manifest(
    request: pytest.FixtureRequest, _kitdsl_manifests: dict[tuple[str, ...], Manifest]
) -> SystemManifest:
    """``system_manifest("systems/edge.py", ...)``: the manifest of the system in these files
    (merged in order; paths relative to the rootdir; ``FILE.py:NAME`` and ``.tar`` outputs
    too)."""
    config = request.config

    def get(*files: str | Path) -> Manifest:
        from kitdsl.manifest import load_manifest

        if not files:
            raise TypeError("system_manifest needs at least one file")
        resolved = tuple(_resolve(config.rootpath, str(name)) for name in files)
        if resolved not in _kitdsl_manifests:
            try:
                _kitdsl_manifests[resolved] = load_manifest(list(resolved), image_options(config))
            except KitError as error:
                pytest.fail(error.render(), pytrace=False)
        return _kitdsl_manifests[resolved]

    return get


def _resolve(root: Path, name: str) -> str:
    """``name`` from the rootdir, keeping a ``:NAME`` suffix."""
    path, sep, attribute = name.partition(":")
    if (root / name).exists() or Path(name).exists():
        path, sep, attribute = name, "", ""
    full = Path(path) if Path(path).is_absolute() else root / path
    return f"{full}{sep}{attribute}"
