"""The command line, run as a user runs it: exit codes, messages, outputs."""

from __future__ import annotations

import json
import re
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
        # Package tags follow Debian's updates and kitdsl's package builder; the layout of
        # what inspect prints is what this pins.
        shown = re.sub(r"(kitdsl/[a-z0-9._-]+):[0-9a-f]{20}", r"\1:TAG", result.stdout)
        assert shown == snapshot(name=spec)


def test_inspect_json_explain() -> None:
    result = kitdsl("inspect", "--json", "--explain", "systems/edge.py")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["services"]] == ["getty", "sshd", "httpd"]
    getty = data["explain"]["services/getty"]
    assert getty["origin"] == "systems/common/base.py:13"
    assert getty["overrides"] == {"env": "systems/edge.py:14"}


def test_invalid_system_exit_code_and_message(project: Project) -> None:
    root = project(
        {
            "s.py": "from kitdsl import Service, System\n"
            "system = System(services=[Service(name='a', image='x:1', capabilites=[])])\n"
        }
    )
    result = kitdsl("inspect", "s.py", cwd=root)
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.startswith("s.py:2: error: invalid Service\n")
    assert "unknown field 'capabilites'; did you mean 'capabilities'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_exception_in_user_code_and_debug(project: Project) -> None:
    root = project({"s.py": "raise RuntimeError('boom')\n"})
    plain = kitdsl("inspect", "s.py", cwd=root)
    assert plain.returncode == 4
    assert plain.stderr.strip() == "s.py:1: error: RuntimeError: boom"
    for args in (("--debug", "inspect", "s.py"), ("inspect", "s.py", "--debug")):
        debug = kitdsl(*args, cwd=root)
        assert debug.returncode == 4
        assert "Traceback" in debug.stderr and "RuntimeError: boom" in debug.stderr


def test_no_system_in_file(project: Project) -> None:
    root = project({"s.py": "x = 1\n"})
    result = kitdsl("inspect", "s.py", cwd=root)
    assert result.returncode == 3
    assert "s.py defines no 'system'" in result.stderr


def test_version_and_help() -> None:
    assert kitdsl("--version").stdout.startswith("kitdsl ")
    help_text = kitdsl("--help").stdout
    for command in ("inspect", "convert", "export"):
        assert command in help_text


def test_output_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    for target in (tmp_path / "taken", tmp_path / "missing" / "deeper" / "x.yml"):
        if target.name == "x.yml":
            (tmp_path / "missing").write_text("a file where a folder should be")
        result = kitdsl("export", "systems/edge.py", "-o", str(target))
        assert result.returncode == 6, result.stderr
        assert result.stderr.startswith(f"error: cannot write {target}: ")
        assert "Traceback" not in result.stderr


def test_bad_option_is_a_usage_error() -> None:
    result = kitdsl("inspect", "--frobnicate", "systems/edge.py")
    assert result.returncode == 2
    assert "No such option" in result.stderr


def test_image_provider_with_a_bad_reference(project: Project) -> None:
    root = project(
        {
            "s.py": """
                from kitdsl import ImageProvider, Service, System

                class Broken(ImageProvider):
                    @property
                    def reference(self) -> str:
                        return "example.com/Bad Name:dev"

                system = System(services=[Service(name="a", image=Broken())])
            """
        }
    )
    result = kitdsl("export", "s.py", cwd=root)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Broken gave an invalid image reference")
    assert "Traceback" not in result.stderr


def test_plan_shows_the_dag_without_running_it(project: Project) -> None:
    root = project(
        {
            "s.py": """
                from kitdsl import Onboot, Service, System

                system = System(
                    onboot=[Onboot(name="a", image="alpine:3.20")],
                    services=[Service(name="b", image="docker.io/library/alpine:3.20")],
                )
            """
        }
    )
    text = kitdsl("plan", "s.py", "--arch", "arm64", cwd=root)
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("resolve docker.io/library/alpine:3.20 for linux/arm64") == 1
    data = json.loads(kitdsl("plan", "--json", "s.py", "--arch", "arm64", cwd=root).stdout)
    assert data == json.loads(kitdsl("plan", "--json", "s.py", "--arch", "arm64", cwd=root).stdout)
    bad = kitdsl("plan", "s.py", "--arch", "linux//x", cwd=root)
    assert bad.returncode == 2 and "os/arch" in bad.stderr
