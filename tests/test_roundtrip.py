"""Round trips: System → LinuxKit YAML → System, and System → Python source → System."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from kitdsl import File, Kernel, Service, System
from kitdsl.load import load_system
from kitdsl.load.file_sources import source_path
from kitdsl.load.linuxkit_yaml import dump_linuxkit_yaml, load_linuxkit_yaml, parse_linuxkit_yaml
from kitdsl.load.pysource import system_to_python
from tests import strategies
from tests.conftest import REPO
from tests.strategies import systems

Project = Callable[[dict[str, str]], Path]
DATA = Path(__file__).parent / "data" / "linuxkit"
FIXTURES = sorted(DATA.glob("*.yml"))
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Drawn systems are constructed in tests/strategies.py, so their relative file sources are
# relative to its folder; outputs written for that folder keep them as they are.
DRAWN_IN = Path(strategies.__file__).parent


def run_python(source: str) -> Any:
    """Execute generated source in a fresh namespace, as importing the file would."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated system.py>", "exec"), namespace)
    return namespace["system"]


@PROPERTY
@given(systems())
def test_yaml_dump_reads_back_equal(system: System) -> None:
    text = dump_linuxkit_yaml(system, base=DRAWN_IN)
    assert parse_linuxkit_yaml(text) == system


@PROPERTY
@given(systems())
def test_python_source_runs_back_to_an_equal_system(system: System) -> None:
    source = system_to_python(system, source="linuxkit.yml", base=DRAWN_IN)
    assert run_python(source) == system


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.name)
def test_fixture_to_python_and_back(path: Path) -> None:
    system = load_linuxkit_yaml([path])
    assert run_python(system_to_python(system, source=path.name, base=DATA)) == system


def test_python_source_of_several_files_merged() -> None:
    system = load_linuxkit_yaml([DATA / "base.yml", DATA / "base-debug.yml"])
    assert run_python(system_to_python(system, base=DATA)) == system


def test_generated_sources_are_ruff_formatted_and_lint_clean(tmp_path: Path) -> None:
    for path in FIXTURES:
        system = load_linuxkit_yaml([path])
        (tmp_path / f"{path.stem.replace('-', '_')}.py").write_text(
            system_to_python(system, source=path.name, base=DATA)
        )
    # The repository's own settings, but the line length of ruff's and black's default, which
    # the generated code is for: the repository's longer lines would hide lines that are too long.
    config = ["--config", str(REPO / "pyproject.toml"), "--line-length", "88"]
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


# --- relative file sources ----------------------------------------------------------------------

_SHARED = """
    from kitdsl import File

    key = File(path="root/.ssh/authorized_keys", source="../keys/edge.pub", mode=0o600)
"""
_PRODUCT = """
    from kitdsl import File, System
    from systems.common import ssh

    system = System(
        files=[
            ssh.key,
            File(path="etc/motd", source="motd"),
            File(path="etc/hosts", source="/etc/hosts"),
            File(path="etc/profile", source="~/.profile"),
        ]
    )
"""


def _sources(system: System) -> list[Path | None]:
    return [source_path(file) for file in system.files]


def test_export_keeps_sources_of_files_from_several_folders(project: Project) -> None:
    root = project({"systems/common/ssh.py": _SHARED, "systems/edge.py": _PRODUCT})
    system = load_system([str(root / "systems/edge.py")])
    expected = [root / "systems/keys/edge.pub", root / "systems/motd", Path("/etc/hosts")]
    assert _sources(system)[:3] == expected
    out = root / "out" / "edge.yml"
    out.parent.mkdir()
    out.write_text(dump_linuxkit_yaml(system, base=out.parent))
    assert [file.source for file in parse_linuxkit_yaml(out.read_text()).files] == [
        "../systems/keys/edge.pub",
        "../systems/motd",
        "/etc/hosts",
        "~/.profile",
    ]
    assert _sources(load_linuxkit_yaml([out])) == _sources(system)


def test_export_to_standard_output_is_read_from_the_current_directory(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project({"systems/common/ssh.py": _SHARED, "systems/edge.py": _PRODUCT})
    system = load_system([str(root / "systems/edge.py")])
    monkeypatch.chdir(root / "systems/common")
    text = dump_linuxkit_yaml(system)
    assert parse_linuxkit_yaml(text).files[0].source == "../keys/edge.pub"
    assert _sources(parse_linuxkit_yaml(text)) == _sources(system)


def test_convert_keeps_sources_of_files_from_several_yaml_folders(project: Project) -> None:
    root = project(
        {
            "yaml/base.yml": "files:\n  - path: etc/a\n    source: keys/a.pub\n",
            "yaml/extra/debug.yml": "files:\n  - path: etc/b\n    source: ../../b.txt\n",
        }
    )
    system = load_linuxkit_yaml([root / "yaml/base.yml", root / "yaml/extra/debug.yml"])
    assert _sources(system) == [root / "yaml/keys/a.pub", root / "b.txt"]
    out = root / "systems" / "converted.py"
    out.parent.mkdir()
    out.write_text(system_to_python(system, base=out.parent))
    assert 'source="../yaml/keys/a.pub"' in out.read_text()
    assert 'source="../b.txt"' in out.read_text()
    assert _sources(load_system([str(out)])) == _sources(system)
