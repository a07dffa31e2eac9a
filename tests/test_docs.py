"""The documentation is tested: its files are written out and its commands run.

In a Markdown page, in order, in a fresh project:

* a fenced block after ``<!-- file: PATH -->`` is written to PATH (again later in the page to
  change it);
* a ``console`` block after ``<!-- run -->`` is run: each ``$ kitdsl ...`` or ``$ pytest ...``
  line is executed and must print exactly the lines that follow it, where ``…`` stands for any
  text within a line, and a line holding only ``…`` for any number of lines;
* a fenced block after ``<!-- expect: PATH -->`` must be exactly what PATH holds then.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kitdsl.dsl import reference_doc
from tests.conftest import REPO

DOCS = REPO / "docs"
_MARKER = re.compile(
    r"<!-- ((?P<kind>file|expect): (?P<path>\S+)|run) -->\n```\w*\n(?P<body>.*?)```", re.S
)
_COMMANDS = {"kitdsl": [sys.executable, "-m", "kitdsl"], "pytest": [sys.executable, "-m", "pytest"]}


def parse(text: str) -> list[tuple[str, str, str]]:
    """("file", path, contents), ("expect", path, contents) and ("run", command, expected)
    steps, in page order."""
    steps: list[tuple[str, str, str]] = []
    for match in _MARKER.finditer(text):
        body = match.group("body")
        if match.group("path"):
            steps.append((match.group("kind"), match.group("path"), body))
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


def matches(expected: str, output: str) -> bool:
    """Whether ``output`` is ``expected``, ``…`` standing for any text (see the module)."""
    parts = []
    for line in expected.rstrip().splitlines():
        if line == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append("[^\n]*".join(re.escape(piece) for piece in line.split("…")) + r"\n")
    return re.fullmatch("".join(parts), output.rstrip() + "\n") is not None


def test_matches() -> None:
    assert matches("a\nb", "a\nb\n")
    assert matches("1 passed in …s", "1 passed in 0.2s")
    assert matches("first\n…\nlast", "first\nx\ny\nlast")
    assert matches("first\n…\nlast", "first\nlast")
    assert not matches("a\nb", "a\nc")
    assert not matches("1 passed in …s", "1 failed in 0.2s")
    assert not matches("first\n…\nlast", "first\nx")


PAGES = sorted(page for page in DOCS.glob("*.md") if parse(page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page(page: Path, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    # Nothing of the developer's: a cache of the project's own, a fixed terminal width.
    env = {**os.environ, "KITDSL_CACHE": str(tmp_path / ".cache" / "kitdsl"), "COLUMNS": "80"}
    env.pop("PYTEST_ADDOPTS", None)
    for kind, first, second in parse(page.read_text()):
        target = tmp_path / first
        if kind == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(second)
            continue
        if kind == "expect":
            assert target.read_text() == second, f"{page.name}: {first} differs"
            continue
        argv = shlex.split(first)
        assert argv[0] in _COMMANDS, f"{page.name}: only kitdsl and pytest are run: {first}"
        result = subprocess.run(
            [*_COMMANDS[argv[0]], *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        output = result.stdout + result.stderr
        assert matches(second, output), f"{page.name}: $ {first}\n{output}"


def test_reference_is_current() -> None:
    assert (DOCS / "reference.md").read_text() == reference_doc.render(), (
        "docs/reference.md is stale: run `just docs`"
    )
