"""The image plan of a system, run against an in-memory image source.

The source is a fake on purpose: these tests are about the planner (dedupe, order, failures,
progress); the registry client is tested against a real registry elsewhere.
"""

from __future__ import annotations

import io
import re
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from kitdsl import Kernel, Onboot, Service, System, Volume
from kitdsl.dsl.types import ImageProvider
from kitdsl.errors import ImageError
from kitdsl.oci.digest import digest_of
from kitdsl.oci.media import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, Platform
from kitdsl.plan import (
    PlainReporter,
    ResolvedImage,
    StepContext,
    execute,
    fetch_images,
    host_platform,
    plan_images,
    render_plan,
    render_plan_json,
)

AMD64 = Platform(os="linux", architecture="amd64")
BASE = "base layer"  # in both getty and sshd


def blob(name: str, media_type: str = OCI_LAYER_GZIP) -> Descriptor:
    return Descriptor(media_type=media_type, digest=digest_of(name.encode()), size=100 * len(name))


IMAGES = {
    "docker.io/linuxkit/kernel:6.6": ["kernel files"],
    "docker.io/linuxkit/init:v1": ["init"],
    "docker.io/linuxkit/runc:v1": ["runc"],
    "docker.io/linuxkit/getty:v1": [BASE, "getty"],
    "docker.io/linuxkit/sshd:v1": [BASE, "sshd"],
    "docker.io/library/alpine:3.20": ["alpine"],
}


class MemorySource:
    """Images as lists of layer names; records every call; can fail on a chosen blob."""

    def __init__(self, fail: str | None = None, known: bool = False) -> None:
        self.fail = fail
        self.known = known
        self.lock = threading.Lock()
        self.resolved: Counter[str] = Counter()
        self.fetched: Counter[str] = Counter()

    def _image(self, reference: str, platform: Platform) -> ResolvedImage:
        if reference not in IMAGES:
            raise ImageError(f"{reference}: manifest unknown")
        return ResolvedImage(
            reference=reference,
            manifest=blob(f"manifest of {reference} for {platform}", OCI_MANIFEST),
            config=blob(f"config of {reference}", OCI_CONFIG),
            layers=tuple(blob(name) for name in IMAGES[reference]),
        )

    def resolve(self, reference: str, platform: Platform) -> ResolvedImage:
        with self.lock:
            self.resolved[f"{reference} {platform}"] += 1
        return self._image(reference, platform)

    def fetch_blob(
        self, reference: str, descriptor: Descriptor, progress: Callable[[int], None]
    ) -> None:
        with self.lock:
            self.fetched[descriptor.digest] += 1
        if descriptor.digest == self.fail:
            raise ImageError("connection reset by peer")
        for _ in range(descriptor.size // 100):
            progress(100)

    def cached(self, reference: str, platform: Platform) -> ResolvedImage | None:
        return self._image(reference, platform) if self.known else None


def make_system() -> System:
    return System(
        kernel=Kernel(image="linuxkit/kernel:6.6"),
        init=["linuxkit/init:v1", "linuxkit/runc:v1"],
        onboot=[Onboot(name="sysctl", image="alpine:3.20")],
        services=[
            Service(name="getty", image="linuxkit/getty:v1"),
            Service(name="sshd", image="linuxkit/sshd:v1"),
            Service(name="tools", image="docker.io/library/alpine:3.20"),
            Service(name="shell", image="library/alpine:3.20"),
        ],
        volumes=[Volume(name="data", image="alpine:3.20")],
    )


def test_each_image_is_resolved_once_and_each_blob_fetched_once() -> None:
    source = MemorySource()
    images = fetch_images(make_system(), source, platform=AMD64, jobs=4)
    # alpine is written three ways by four components and resolved once.
    assert source.resolved == Counter({f"{ref} linux/amd64": 1 for ref in IMAGES})
    assert set(source.fetched.values()) == {1}
    assert source.fetched[blob(BASE).digest] == 1
    assert list(images) == [
        "kernel",
        "init/init",
        "init/runc",
        "onboot/sysctl",
        "services/getty",
        "services/sshd",
        "services/tools",
        "services/shell",
        "volumes/data",
    ]
    assert images["volumes/data"][0] is images["onboot/sysctl"][0]
    assert images["services/getty"][0].layers == (blob(BASE), blob("getty"))


def test_a_shared_layer_belongs_to_every_component_needing_it() -> None:
    image_plan = plan_images(make_system(), MemorySource(), platform=AMD64)
    execute(image_plan.plan, jobs=4)
    shared = image_plan.plan[f"fetch-blob {blob(BASE).digest}"]
    assert shared.components == ("services/getty", "services/sshd")
    resolve = image_plan.plan["resolve docker.io/library/alpine:3.20 linux/amd64"]
    assert resolve.components == (
        "onboot/sysctl",
        "services/tools",
        "services/shell",
        "volumes/data",
    )


def test_results_and_rendered_plan_do_not_depend_on_jobs() -> None:
    def run(jobs: int) -> tuple[dict[str, tuple[ResolvedImage, ...]], str, str]:
        image_plan = plan_images(make_system(), MemorySource(), platform=AMD64)
        before = render_plan(image_plan.plan)
        results = image_plan.results(execute(image_plan.plan, jobs=jobs))
        return results, before, render_plan_json(image_plan.plan)

    first = run(1)
    for jobs in (2, 8, 8):
        assert run(jobs) == first


def test_the_plan_before_running_says_layers_come_after_resolve() -> None:
    system = System(services=[Service(name="getty", image="linuxkit/getty:v1")])
    text = render_plan(plan_images(system, platform=AMD64).plan)
    assert text == (
        "2 steps, 0 B to fetch so far; 1 step will add more when they run\n"
        "\n"
        "services/getty\n"
        "  1. resolve docker.io/linuxkit/getty:v1 for linux/amd64\n"
        "     (layers: known after resolve)\n"
        "  2. image docker.io/linuxkit/getty:v1 for linux/amd64 ready  [after 1]\n"
    )


def test_a_cache_backed_source_lets_the_plan_show_layers() -> None:
    system = System(services=[Service(name="getty", image="linuxkit/getty:v1")])
    text = render_plan(plan_images(system, MemorySource(known=True), platform=AMD64).plan)
    config = blob("config of docker.io/linuxkit/getty:v1").digest[:19]
    assert "known after resolve" not in text
    assert f"  2. fetch config {config} of docker.io/linuxkit/getty:v1" in text
    assert re.search(r"  5\. image .* ready  \[after 1, 2, 3, 4\]", text)


def test_a_failing_layer_names_component_layer_and_image() -> None:
    source = MemorySource(fail=blob("getty").digest)
    with pytest.raises(ImageError) as caught:
        fetch_images(make_system(), source, platform=AMD64, jobs=1)
    short = blob("getty").digest[:19]
    assert caught.value.message == (
        f"services/getty: fetch layer {short} of docker.io/linuxkit/getty:v1: "
        "connection reset by peer"
    )
    assert caught.value.exit_code == 7
    # Steps after the failure in plan order were never started.
    assert blob("sshd").digest not in source.fetched


def test_an_unknown_image_fails_at_resolve() -> None:
    system = System(services=[Service(name="web", image="nginx:1")])
    with pytest.raises(ImageError) as caught:
        fetch_images(system, MemorySource(), platform=AMD64)
    assert caught.value.message == (
        "services/web: resolve docker.io/library/nginx:1 for linux/amd64: "
        "docker.io/library/nginx:1: manifest unknown"
    )


def test_the_default_platform_is_this_machine_s() -> None:
    system = System(services=[Service(name="getty", image="linuxkit/getty:v1")])
    platform = host_platform()
    assert platform.os == "linux"
    assert f"resolve docker.io/linuxkit/getty:v1 {platform}" in plan_images(system).plan


def test_oci_volumes_resolve_every_platform_they_keep() -> None:
    system = System(
        volumes=[
            Volume(
                name="multi",
                image="alpine:3.20",
                format="oci",
                platforms=["linux/arm64", "linux/amd64"],
            )
        ]
    )
    image_plan = plan_images(system, MemorySource(), platform=AMD64)
    assert dict(image_plan.images) == {
        "volumes/multi": (
            "image docker.io/library/alpine:3.20 linux/arm64",
            "image docker.io/library/alpine:3.20 linux/amd64",
        )
    }
    images = image_plan.results(execute(image_plan.plan))
    assert [image.manifest for image in images["volumes/multi"]] == [
        blob("manifest of docker.io/library/alpine:3.20 for linux/arm64", OCI_MANIFEST),
        blob("manifest of docker.io/library/alpine:3.20 for linux/amd64", OCI_MANIFEST),
    ]


class Package(ImageProvider):
    @property
    def reference(self) -> str:
        return "localhost/pkg/tools:dev"


def test_provider_images_are_built_not_resolved() -> None:
    system = System(services=[Service(name="tools", image=Package())])
    image_plan = plan_images(system, MemorySource(), platform=AMD64)
    ready = image_plan.plan["image localhost/pkg/tools:dev linux/amd64"]
    assert ready.deps == ("build localhost/pkg/tools:dev",)
    assert "resolve localhost/pkg/tools:dev linux/amd64" not in image_plan.plan
    assert "build localhost/pkg/tools:dev (Package)" in render_plan(image_plan.plan)
    with pytest.raises(ImageError, match="building images is not supported yet"):
        execute(image_plan.plan)

    built: list[str] = []
    made = ResolvedImage("localhost/pkg/tools:dev", blob("m"), blob("c"), (blob("tools"),))

    def builder(provider: ImageProvider, _: StepContext) -> ResolvedImage:
        built.append(provider.reference)
        return made

    images = fetch_images(system, MemorySource(), platform=AMD64, builder=builder)
    assert built == ["localhost/pkg/tools:dev"]
    assert images["services/tools"] == (made,)


def test_plain_progress_prints_a_line_per_step_start_and_finish() -> None:
    system = System(
        services=[
            Service(name="getty", image="linuxkit/getty:v1"),
            Service(name="sshd", image="linuxkit/sshd:v1"),
        ]
    )
    stream = io.StringIO()
    fetch_images(system, MemorySource(), platform=AMD64, jobs=1, reporter=PlainReporter(stream))
    lines = stream.getvalue().splitlines()
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", stream.getvalue())
    base = blob(BASE)
    # Resolves run first, so by the time the shared layer starts both images need it.
    fetch = f"services/getty, services/sshd: fetch layer {base.digest[:19]} of docker.io/linuxkit/"
    assert lines[0] == "plan: 0/4 steps, 0 B/0 B"
    assert lines[1] == "start  services/getty: resolve docker.io/linuxkit/getty:v1 for linux/amd64"
    assert re.fullmatch(
        r"done   services/getty: resolve docker\.io/linuxkit/getty:v1 for linux/amd64 "
        r"in \d+\.\d\ds \[1/4 steps, 0 B/0 B\]",
        lines[2],
    )
    assert lines[3].startswith("added  3 steps (")
    assert f"start  {fetch}getty:v1 (1000 B)" in lines
    assert any(
        re.fullmatch(rf"done   {re.escape(fetch)}getty:v1: 1000 B in .*", line) for line in lines
    )
    assert re.fullmatch(r"total: 9/9 steps, (\S+ \S+)/\1", lines[-1])
