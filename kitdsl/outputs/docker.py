"""The ``docker`` format: the ``tar`` format followed by LinuxKit's ``Dockerfile``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import ClassVar

from kitdsl.outputs.base import Boot, Job, Needs, register
from kitdsl.outputs.entry import Entry
from kitdsl.outputs.files import AtomicFiles
from kitdsl.outputs.tar import write_tar

DOCKERFILE = b'FROM scratch\nCOPY . ./\nENTRYPOINT ["/bin/rc.init"]\n'
"""What LinuxKit appends for ``-format docker``: build the tar's contents into an image whose
entry point is LinuxKit's init."""


@register("docker")
class Docker:
    """``<name>.docker``: the ``tar`` format followed by a ``Dockerfile``, so the system can be
    built into a Docker image (``docker build - < name.docker``)."""

    needs: ClassVar[Needs] = Needs.STREAM

    def filenames(self, name: str, boot: Boot) -> list[str]:
        """The one file written for ``name``."""
        return [f"{name}.docker"]

    def write(self, job: Job) -> list[Path]:
        """Stream the tar, then the ``Dockerfile`` (no PAX records, as LinuxKit writes it)."""
        entries = itertools.chain(job.rootfs, [Entry.file("Dockerfile", DOCKERFILE)])
        with AtomicFiles(job.target.folder) as files:
            write_tar(entries, job.boot, files.create(job.target.filename(".docker")))
        return files.written
