"""Round trips: System → LinuxKit YAML → System, and System → Python source → System."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from kitdsl import File, Kernel, Service, System
from kitdsl.load.linuxkit_yaml import dump_linuxkit_yaml, load_linuxkit_yaml, parse_linuxkit_yaml
from kitdsl.load.pysource import system_to_python
from tests.strategies import systems

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "linuxkit"
FIXTURES = sorted(DATA.glob("*.yml"))
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_python(source: str) -> Any:
    """Execute generated source in a fresh namespace, as importing the file would."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated system.py>", "exec"), namespace)
    return namespace["system"]


@PROPERTY
@given(systems())
def test_yaml_dump_reads_back_equal(system: System) -> None:
    text = dump_linuxkit_yaml(system)
    assert parse_linuxkit_yaml(text) == system


@PROPERTY
@given(systems())
def test_python_source_runs_back_to_an_equal_system(system: System) -> None:
    source = system_to_python(system, source="linuxkit.yml")
    assert run_python(source) == system


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.name)
def test_fixture_to_python_and_back(path: Path) -> None:
    system = load_linuxkit_yaml([path])
    assert run_python(system_to_python(system, source=path.name)) == system


def test_python_source_of_several_files_merged() -> None:
    system = load_linuxkit_yaml([DATA / "base.yml", DATA / "base-debug.yml"])
    assert run_python(system_to_python(system)) == system


def test_generated_sources_are_ruff_formatted_and_lint_clean(tmp_path: Path) -> None:
    for path in FIXTURES:
        system = load_linuxkit_yaml([path])
        (tmp_path / f"{path.stem.replace('-', '_')}.py").write_text(
            system_to_python(system, source=path.name)
        )
    config = ["--config", str(REPO / "pyproject.toml")]
    ruff = [sys.executable, "-m", "ruff"]
    checks = [
        [*ruff, "format", "--check", "--diff", *config, str(tmp_path)],
        [*ruff, "check", *config, str(tmp_path)],
    ]
    for command in checks:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_python_source_reads_like_hand_written_code() -> None:
    system = System(
        kernel=Kernel(image="linuxkit/kernel:6.6.71", cmdline="console=ttyS0", tar=None),
        init=["linuxkit/init:v1.2.0", "linuxkit/runc:v1.2.0"],
        services=[
            Service(name="getty", image="linuxkit/getty:v1.0.0", env=["INSECURE=true"]),
            Service(
                name="sshd",
                image="linuxkit/sshd:v1.0.0",
                binds_add=["/root/.ssh:/root/.ssh", "/etc/resolv.conf:/etc/resolv.conf"],
                sysctl={"net.ipv4.ip_forward": "1"},
                readonly=False,
            ),
        ],
    )
    assert system_to_python(system, source="linuxkit.yml") == textwrap.dedent(
        '''\
        """Converted from linuxkit.yml."""

        from kitdsl import Kernel, Service, System

        system = System(
            kernel=Kernel(image="linuxkit/kernel:6.6.71", cmdline="console=ttyS0", tar=None),
            init=["linuxkit/init:v1.2.0", "linuxkit/runc:v1.2.0"],
            services=[
                Service(name="getty", image="linuxkit/getty:v1.0.0", env=["INSECURE=true"]),
                Service(
                    name="sshd",
                    image="linuxkit/sshd:v1.0.0",
                    binds_add=["/root/.ssh:/root/.ssh", "/etc/resolv.conf:/etc/resolv.conf"],
                    readonly=False,
                    sysctl={"net.ipv4.ip_forward": "1"},
                ),
            ],
        )
        '''
    )


def test_modes_are_octal_and_strings_escaped() -> None:
    system = System(
        files=[File(path="etc/a", contents='say "hi"\n\tbye\x00', mode=0o640, uid="root")]
    )
    source = system_to_python(system)
    assert "mode=0o640" in source
    assert r"""contents='say "hi"\n\tbye\x00'""" in source
    assert run_python(source) == system


def test_empty_system() -> None:
    assert system_to_python(System()) == (
        '"""A system converted to Python."""\n\nfrom kitdsl import System\n\nsystem = System()\n'
    )
    assert parse_linuxkit_yaml(dump_linuxkit_yaml(System())) == System()
