"""Small helpers that make file-tree fixtures pleasant."""

from __future__ import annotations

import textwrap
from pathlib import Path


def build_file_tree(root: Path, spec: dict[str, str]) -> Path:
    """Write ``{relative path: contents}`` under ``root`` (contents dedented) and return root."""
    for relative, contents in spec.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(contents).lstrip("\n"))
    return root
