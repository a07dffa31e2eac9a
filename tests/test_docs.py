"""The documentation is tested: its files are written out and its commands run.

In a Markdown page, a fenced block after ``<!-- file: PATH -->`` is written to PATH in a fresh
project, and a ``console`` block after ``<!-- run -->`` is run there: each ``$ kitdsl ...`` line
is executed and must print exactly the lines that follow it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kitdsl.dsl import reference_doc
from tests.conftest import REPO

DOCS = REPO / "docs"
_MARKER = re.compile(r"<!-- (file: (?P<path>\S+)|run) -->\n```\w*\n(?P<body>.*?)```", re.S)


def parse(text: str) -> list[tuple[str, str, str]]:
    """("file", path, contents) and ("run", command, expected) steps, in page order."""
    steps: list[tuple[str, str, str]] = []
    for match in _MARKER.finditer(text):
        body = match.group("body")
        if match.group("path"):
            steps.append(("file", match.group("path"), body))
            continue
        command, expected = None, []
        for line in body.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    steps.append(("run", command, "\n".join(expected)))
                command, expected = line[2:], []
            else:
                expected.append(line)
        if command is not None:
            steps.append(("run", command, "\n".join(expected)))
    return steps


PAGES = sorted(page for page in DOCS.glob("*.md") if parse(page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page(page: Path, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    for kind, first, second in parse(page.read_text()):
        if kind == "file":
            target = tmp_path / first
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(second)
            continue
        argv = shlex.split(first)
        assert argv[0] == "kitdsl", f"{page.name}: only kitdsl commands are run: {first}"
        result = subprocess.run(
            [sys.executable, "-m", "kitdsl", *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        output = (result.stdout + result.stderr).rstrip()
        assert output == second.rstrip(), f"{page.name}: $ {first}"


def test_reference_is_current() -> None:
    assert (DOCS / "reference.md").read_text() == reference_doc.render(), (
        "docs/reference.md is stale: run `just docs`"
    )
