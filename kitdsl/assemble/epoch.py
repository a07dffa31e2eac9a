"""The time of the entries a build makes up, from ``SOURCE_DATE_EPOCH`` or LinuxKit's.

Every entry kitdsl writes itself (bundle configurations, mount points, the ``files`` section,
LinuxKit's own ``etc/hosts``...) carries one fixed modification time, so that the same inputs
give the same bytes. It is LinuxKit's, 2017-04-18T16:30:00Z, unless ``SOURCE_DATE_EPOCH`` is
set (https://reproducible-builds.org/specs/source-date-epoch/): then it is that time.

Entries taken from images keep the times their layers give them, whatever the variable says:
images are content-addressed, so those times are already reproducible, and changing them
would change what programs in the image see (a ``.pyc`` checked against its source's time is
no longer valid once the source's time is clamped, and is compiled again at every start on a
read-only root).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from kitdsl.assemble.layers import DEFAULT_MTIME
from kitdsl.errors import UsageError

__all__ = ["DEFAULT_MTIME", "SOURCE_DATE_EPOCH", "generated_mtime"]

SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
LIMIT = 1 << 32
"""The newc cpio format (initrds) holds times below 2**32 seconds (the year 2106)."""


def generated_mtime(environ: Mapping[str, str] | None = None) -> int:
    """The modification time of made-up entries: ``SOURCE_DATE_EPOCH`` from ``environ``
    (default: this process's environment) when it is set and not empty, else
    :data:`DEFAULT_MTIME`.

    Raises :class:`UsageError` when the variable is not a whole number of seconds since
    1970 that every output format can hold (the specification asks builds to fail then).
    """
    text = (os.environ if environ is None else environ).get(SOURCE_DATE_EPOCH, "")
    if not text:
        return DEFAULT_MTIME
    if not (text.isascii() and text.isdigit()) or int(text) >= LIMIT:
        raise UsageError(
            f"{SOURCE_DATE_EPOCH}={text!r} is not a time kitdsl can use",
            hint="set it to whole seconds since 1970-01-01 UTC, as `date +%s` prints them "
            f"(below {LIMIT}), or unset it to use LinuxKit's fixed time",
        )
    return int(text)
