"""How long loading a system takes: a generated system.py and its LinuxKit YAML twin.

Run with ``just bench-load``. Prints the median of several runs and the machine it ran on.
Loading is the start of every command, so it must stay well under the time a user notices.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kitdsl.load import load_system
from kitdsl.load.linuxkit_yaml import dump_linuxkit_yaml

SERVICES = 300
RUNS = 7


def generate(root: Path) -> tuple[Path, Path]:
    lines = [
        "from kitdsl import File, Kernel, Service, System",
        "",
        "system = System(",
        "    kernel=Kernel(image='linuxkit/kernel:6.6.71', cmdline='console=ttyS0'),",
        "    init=['linuxkit/init:v1.2.0', 'linuxkit/runc:v1.2.0'],",
        "    services=[",
    ]
    for index in range(SERVICES):
        lines.append(
            f"        Service(name='svc{index}', image='registry.example/svc{index}:1.{index}',"
            f" capabilities=['CAP_NET_ADMIN', 'CAP_SYS_ADMIN'], env=['INDEX={index}'],"
            f" binds=['/var/lib/svc{index}:/data'], uid='svc{index}'),"
        )
    lines.append("    ],")
    lines.append("    files=[")
    for index in range(SERVICES):
        lines.append(
            f"        File(path='etc/svc{index}.conf', contents='x = {index}\\n', mode=0o644),"
        )
    lines += ["    ],", ")", ""]
    (root / "pyproject.toml").write_text("")
    python = root / "big.py"
    python.write_text("\n".join(lines))
    yaml_file = root / "big.yml"
    yaml_file.write_text(dump_linuxkit_yaml(load_system([str(python)])))
    return python, yaml_file


def median_seconds(action: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        python, yaml_file = generate(Path(folder))
        components = SERVICES * 2
        for label, path in (("system.py", python), ("LinuxKit YAML", yaml_file)):
            seconds = median_seconds(lambda path=path: load_system([str(path)]))
            print(
                f"load {label}: {SERVICES} services + {SERVICES} files: "
                f"{seconds * 1000:.0f} ms ({seconds / components * 1e6:.0f} µs per component)"
            )
    print(f"machine: {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
