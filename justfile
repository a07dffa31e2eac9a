# kitdsl tasks. `just test` is what CI runs.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Lint, type-check and run the whole test suite.
test: lint typecheck
    python3 -m pytest

# ruff: lint and formatting.
lint:
    ruff check kitdsl tests systems bench
    ruff format --check kitdsl tests systems bench

# mypy --strict on the package and the example systems.
typecheck:
    mypy
    mypy --strict systems

# Format the code.
fmt:
    ruff format kitdsl tests systems bench
    ruff check --fix kitdsl tests systems bench

# Regenerate docs/reference.md from the models.
docs:
    python3 -m kitdsl.dsl.reference_doc > docs/reference.md

# Show the example system.
inspect:
    kitdsl inspect systems/edge.py

# Benchmarks (figures go to docs/performance.md).
bench: bench-load

# Time loading a large system.py and its LinuxKit YAML twin.
bench-load:
    python3 bench/bench_load.py
