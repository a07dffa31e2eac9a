"""A real Docker engine for tests, started by the tests themselves.

dockerd runs as on these machines: ``--storage-driver=vfs --iptables=false --bridge=none``,
with its own data folder and socket, so it touches nothing of the host's. When it cannot
start (not installed, not root), tests that need it are skipped and say why.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def dockerd() -> Iterator[str]:
    """The ``unix://`` address of a private Docker engine."""
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root to run")
    folder = Path(tempfile.mkdtemp(prefix="kitdsl-dockerd-"))
    socket = folder / "docker.sock"
    log = (folder / "dockerd.log").open("wb")
    process = subprocess.Popen(
        [
            "dockerd",
            "--storage-driver=vfs",
            "--iptables=false",
            "--bridge=none",
            f"--data-root={folder / 'data'}",
            f"--exec-root={folder / 'exec'}",
            f"--pidfile={folder / 'docker.pid'}",
            f"--host=unix://{socket}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"unix://{socket}"
    try:
        _wait_ready(process, address, folder / "dockerd.log")
        yield address
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ready(process: subprocess.Popen[bytes], address: str, log: Path) -> None:
    import docker

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-5:]
            pytest.skip("dockerd could not start: " + " | ".join(tail))
        try:
            docker.DockerClient(base_url=address).ping()
            return
        except Exception:
            time.sleep(0.2)
    process.kill()
    pytest.skip(f"dockerd did not answer within {START_TIMEOUT:.0f} s")
