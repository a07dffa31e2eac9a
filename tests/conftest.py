"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import build_file_tree

REPO = Path(__file__).resolve().parent.parent

# Commands the tests run (`python -m kitdsl ...`, from temporary folders) use this checkout's
# kitdsl, whatever copy of it is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    part for part in (str(REPO), os.environ.get("PYTHONPATH", "")) if part
)


@pytest.fixture
def project(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """A throw-away project: ``project({"systems/x.py": "..."})`` returns its root."""

    def make(spec: dict[str, str]) -> Path:
        return build_file_tree(tmp_path, {"pyproject.toml": "", **spec})

    return make
