"""The command line, run as a user runs it: exit codes, messages, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from syrupy.assertion import SnapshotAssertion

from tests.conftest import REPO

Project = Callable[[dict[str, str]], Path]


def kitdsl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitdsl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_inspect_example_systems(snapshot: SnapshotAssertion) -> None:
    for spec in ("systems/edge.py", "systems/gateway.py", "systems/gateway.py:debug"):
        result = kitdsl("inspect", "--explain", spec)
        assert result.returncode == 0, result.stderr
        assert result.stdout == snapshot(name=spec)


def test_inspect_json_explain() -> None:
    result = kitdsl("inspect", "--json", "--explain", "systems/edge.py")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["services"]] == ["getty", "rngd", "sshd", "httpd"]
    getty = data["explain"]["services/getty"]
    assert getty["origin"] == "systems/common/base.py:22"
    assert getty["overrides"] == {"env": "systems/edge.py:21"}


def test_invalid_system_exit_code_and_message(project: Project) -> None:
    root = project(
        {
            "s.py": "from kitdsl import Service, System\n"
            "system = System(services=[Service(name='a', image='x:1', capabilites=[])])\n"
        }
    )
    result = kitdsl("inspect", "s.py", cwd=root)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("s.py:2: error: invalid Service\n")
    assert "unknown field 'capabilites'; did you mean 'capabilities'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_exception_in_user_code_and_debug(project: Project) -> None:
    root = project({"s.py": "raise RuntimeError('boom')\n"})
    plain = kitdsl("inspect", "s.py", cwd=root)
    assert plain.returncode == 3
    assert plain.stderr.strip() == "s.py:1: error: RuntimeError: boom"
    debug = kitdsl("--debug", "inspect", "s.py", cwd=root)
    assert debug.returncode == 3
    assert "Traceback" in debug.stderr and "RuntimeError: boom" in debug.stderr


def test_no_system_in_file(project: Project) -> None:
    root = project({"s.py": "x = 1\n"})
    result = kitdsl("inspect", "s.py", cwd=root)
    assert result.returncode == 2
    assert "s.py defines no 'system'" in result.stderr


def test_version_and_help() -> None:
    assert kitdsl("--version").stdout.startswith("kitdsl ")
    help_text = kitdsl("--help").stdout
    for command in ("inspect", "convert", "export"):
        assert command in help_text
