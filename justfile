# kitdsl tasks. `just test` is what CI runs.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Lint, type-check and run the whole test suite (installs the system tools tests use).
test: deps lint typecheck
    python3 -m pytest

# The real components tests talk to: the reference registry, skopeo, umoci, Docker, qemu.
deps:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    for tool in docker-registry:docker-registry skopeo:skopeo umoci:umoci dockerd:docker.io \
            cpio:cpio bsdtar:libarchive-tools pigz:pigz htpasswd:apache2-utils \
            mksquashfs:squashfs-tools qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils \
            gpg:gpg; do
        command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && exit 0
    if [ "$(id -u)" != 0 ]; then
        echo "tests need: ${missing[*]} (apt-get install as root); their tests will be skipped" >&2
        exit 0
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

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
bench: bench-load bench-pull bench-gzip bench-build

# Time loading a large system.py and its LinuxKit YAML twin.
bench-load:
    python3 bench/bench_load.py

# Pull a generated 10-image, ~300 MB system from a local registry, against a plain download.
bench-pull: deps
    python3 bench/bench_pull.py

# Parallel gzip against zlib, gzip and pigz on ~150 MB.
bench-gzip: deps
    python3 bench/bench_gzip.py

# Build a generated ~450 MB system: full, no-change and one-service rebuilds, against
# compressing the same initrd once.
bench-build: deps
    python3 bench/bench_build.py
