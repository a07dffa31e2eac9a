"""``kitdsl run qemu FILE``: a system file is built first, then booted; the guest's way of
ending is the exit code."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SYSTEM = """
from kitdsl import Onboot, System, packages
from systems.common import base

# Powers the machine off from an onboot container: it needs the host's pid namespace and
# CAP_SYS_BOOT, which is what a real "shut down after the job" container would ask for.
off = Onboot(
    name="off",
    image=packages.busybox,
    pid="host",
    capabilities=["CAP_SYS_BOOT"],
    command=["poweroff", "-f"],
)
system = base.system.replace(onboot=[off], services=[])
"""


def test_a_system_file_is_built_then_booted(
    project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    root = project({"off.py": SYSTEM})
    (root / "systems").symlink_to(Path(__file__).resolve().parent.parent / "systems")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kitdsl",
            "run",
            "qemu",
            "off.py",
            "--accel",
            "tcg",
            "--timeout",
            "120",
            "--cache",
            str(tmp_path / "cache"),
        ],
        cwd=root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (root / "off-kernel").is_file() and (root / "off-initrd.img").is_file()
    assert "powered off" in result.stderr
    log = (root / "off-console.log").read_text()
    assert "off" in log
