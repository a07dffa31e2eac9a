"""Packages defined in Python: OCI images built from Debian packages and files, on demand.

A :class:`Package` is used wherever an image reference is::

    httpd = Package(
        name="httpd",
        debian=["busybox-static"],
        keep=["bin/busybox"],
        files=[File(path="bin/httpd", symlink="busybox")],
        cmd=["/bin/httpd", "-f", "-p", "80", "-h", "/www"],
        config=ContainerConfig(net="host", capabilities=["CAP_NET_BIND_SERVICE"]),
    )
    system = System(services=[Service(name="web", image=httpd)])

The image holds the files of the Debian packages named (with their dependencies, resolved
from a signed Debian archive: :mod:`kitdsl.pkg.debian`) and then ``files``, on top of the
images of the ``base`` packages. Its reference is ``<org>/<name>:<tag>``, where the tag is a
digest of the definition and of what it resolved to (the exact ``.deb`` files, the contents of
file sources, the base packages' tags): the same tag always means the same image, and a
change to any input gives a new tag. A build makes the image only when the cache does not
already have that tag (:mod:`kitdsl.pkg.build`).

Reading :attr:`Package.reference` resolves the package in the current
:class:`~kitdsl.pkg.context.PackageContext` (the lockfile's pins first, then the archive).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kitdsl.dsl import ContainerConfig, File
from kitdsl.dsl.base import Model
from kitdsl.dsl.types import ImageProvider

__all__ = ["DEFAULT_DROP", "Package"]

DEFAULT_DROP = (
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/lintian/*",
    "usr/share/locale/*",
    "usr/share/bug/*",
)
"""What is left out of Debian packages unless asked for: documentation, manual pages,
translations and tool metadata, none of which a lean system reads."""

NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


class Package(Model, ImageProvider):
    """An image built from Debian packages and files (see the module documentation)."""

    kind: ClassVar[str] = "package"
    """What builds it; part of the tag, so another kind of package never shares one."""

    name: str
    """The image's name (``httpd``): lower case letters, digits and ``.``, ``_``, ``-``."""
    org: str = "kitdsl"
    """What the name is under: an organisation (``kitdsl``), or a registry and path
    (``registry.example.com/team``) to push it to."""
    debian: list[str] = Field(default_factory=list)
    """Debian packages to install, with the packages they depend on (``Depends`` and
    ``Pre-Depends``; not ``Recommends``)."""
    exclude: list[str] = Field(default_factory=list)
    """Debian packages kept out of the dependency closure (``libc-bin`` when only the shared
    libraries of ``libc6`` are wanted, say)."""
    keep: list[str] | None = None
    """Only the files of the Debian packages matching these globs (``usr/sbin/runc``,
    ``lib/x86_64-linux-gnu/*.so*``), with their parent directories; ``None`` keeps all."""
    drop: list[str] = Field(default_factory=lambda: list(DEFAULT_DROP))
    """Files of the Debian packages left out (globs; a directory's glob drops what is in it)."""
    files: list[File] = Field(default_factory=list)
    """Files added on top of the Debian packages (``metadata`` is not allowed here)."""
    base: list[Package] = Field(default_factory=list)
    """Packages whose images this one is built on: their layers come first."""
    entrypoint: list[str] | None = None
    """The image's entry point."""
    cmd: list[str] | None = None
    """The image's command (the arguments of the entry point)."""
    env: list[str] = Field(default_factory=list)
    """The image's environment (``NAME=value``)."""
    workdir: str | None = None
    """The image's working directory."""
    config: ContainerConfig | None = None
    """How containers of this image run, written to the ``org.mobyproject.config`` label as
    LinuxKit reads it (capabilities, binds, namespaces, ``readonly``...)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Other labels of the image."""
    suite: str = "bookworm"
    """The Debian release the packages come from."""
    components: list[str] = Field(default_factory=lambda: ["main"])
    """The archive components searched."""
    security: bool = True
    """Also take packages from the release's security updates (``<suite>-security``)."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(
                f"package name {value!r} must be lower case letters and digits, separated by "
                "'.', '_' or '-'"
            )
        return value

    @field_validator("files")
    @classmethod
    def _check_files(cls, value: list[File]) -> list[File]:
        for file in value:
            if file.metadata is not None:
                raise ValueError(f"file {file.path!r}: metadata belongs in a system's files")
            for what in ("uid", "gid"):
                if not isinstance(getattr(file, what), int):
                    raise ValueError(f"file {file.path!r}: a package's {what} is a number")
        return value

    @property
    def repository(self) -> str:
        """``<org>/<name>``: the reference without its tag."""
        return f"{self.org.rstrip('/')}/{self.name}"

    @property
    def reference(self) -> str:
        """``<org>/<name>:<tag>``, the tag resolved in the current package context."""
        from kitdsl.pkg.context import current_context

        return f"{self.repository}:{current_context().resolved(self).tag}"

    def request(self) -> dict[str, Any]:
        """What resolving the package depends on (what a lockfile pin is kept for)."""
        return {
            "debian": self.debian,
            "exclude": self.exclude,
            "suite": self.suite,
            "components": self.components,
            "security": self.security,
        }

    def definition(self) -> dict[str, Any]:
        """What the user wrote, as plain data: part of the tag. Base packages count by their
        tags, and ``org`` not at all (pushing a package elsewhere does not change it)."""
        data = self.model_dump(mode="json", exclude={"base", "org"})
        data["kind"] = self.kind
        return data
