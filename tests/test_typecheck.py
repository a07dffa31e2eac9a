"""A user's type checker understands system.py files: mistakes show before kitdsl runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

Project = Callable[[dict[str, str]], Path]


def mypy(root: Path, file: str) -> subprocess.CompletedProcess[str]:
    # An editable install is an import hook mypy cannot follow; an installed kitdsl (with its
    # py.typed marker) is found on its own. Point mypy at the package either way.
    env = {**os.environ, "MYPYPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", file],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


@pytest.mark.slow
def test_type_checker_catches_mistakes_in_system_files(project: Project) -> None:
    root = project(
        {
            "good.py": """
                from kitdsl import File, Service, System

                system = System(
                    services=[Service(name="a", image="x:1", capabilities=["CAP_NET_ADMIN"])],
                    files=[File(path="etc/x", contents="", mode=0o644, uid="a")],
                    init=["linuxkit/init:v1"],
                )
            """,
            "bad.py": """
                from kitdsl import Service

                a = Service(name="a", image="x:1", capabilites=["CAP_NET_ADMIN"])
                b = Service(name="b", image="x:1", capabilities=["CAP_NET_ADMN"])
                c = Service(name="c", image="x:1", readonly="yes")
            """,
        }
    )
    good = mypy(root, "good.py")
    assert good.returncode == 0, good.stdout
    bad = mypy(root, "bad.py")
    assert bad.returncode == 1
    assert 'bad.py:3: error: Unexpected keyword argument "capabilites"' in bad.stdout
    assert "bad.py:4: error:" in bad.stdout and "CAP_NET_ADMN" in bad.stdout
    assert "bad.py:5: error:" in bad.stdout
