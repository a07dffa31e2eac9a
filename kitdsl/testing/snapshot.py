"""A syrupy extension storing a :class:`~kitdsl.manifest.Manifest` as its text.

Each snapshot is its own file, ``__snapshots__/<test module>/<test name>.txt``, holding
:meth:`Manifest.to_text` exactly: one path per line, sorted, so a change to the image shows
in a pull request as the lines that changed::

    def test_edge(system_manifest, snapshot):
        assert system_manifest("systems/edge.py") == snapshot(extension_class=ManifestExtension)

(With the kitdsl pytest plugin, ``snapshot`` already uses this extension in tests that use
``system_manifest``.)
"""

from __future__ import annotations

from typing import Any

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from kitdsl.manifest import Manifest

__all__ = ["ManifestExtension"]


class ManifestExtension(SingleFileSnapshotExtension):
    """Snapshots of manifests (or plain text) as ``.txt`` files."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"

    def serialize(self, data: Any, **kwargs: Any) -> str:
        if isinstance(data, Manifest):
            return data.to_text()
        if isinstance(data, str):
            return data
        raise TypeError(
            f"the manifest snapshot extension stores manifests and text, not "
            f"{type(data).__name__}; use snapshot(extension_class=AmberSnapshotExtension) "
            "for other values"
        )
