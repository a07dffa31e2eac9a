"""The project's own systems, pinned: every path of what they build (type, mode, owner, size,
hash or link target) and every container's settings, stored as readable text in
``tests/__snapshots__/test_systems/``.

A change to a system, a bundled package, the init, or the Debian packages they are made of
(``kitdsl lock --update``) shows here as a diff a reviewer can read; refresh the files with
``pytest tests/test_systems.py --snapshot-update``. The Debian packages are those the systems'
lockfiles pin, so the files do not move when Debian publishes an update.
"""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion

from kitdsl.testing.plugin import SystemManifest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "system", ["systems/edge.py", "systems/gateway.py", "systems/gateway.py:debug"]
)
def test_what_the_systems_hold(
    system_manifest: SystemManifest, snapshot: SnapshotAssertion, system: str
) -> None:
    assert system_manifest(system) == snapshot
