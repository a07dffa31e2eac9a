"""The image part of a system's plan: resolve every image once, fetch every blob once.

For each distinct image (canonical reference and platform) of the kernel, init, containers and
volumes there is a *resolve* step, shared by every component that uses the image, and an
*image* step that is ready when all the image's blobs are. Resolving adds one ``fetch-blob``
step per config and layer; blobs are keyed by digest, so a layer shared by several images is
fetched once. Images given as :class:`~kitdsl.dsl.types.ImageProvider` objects are built first
by a *build* step.

Registry and cache work happens behind :class:`ImageSource`, so this module knows nothing of
HTTP or files.
"""

from __future__ import annotations

import platform as host
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from kitdsl import reference
from kitdsl.dsl.system import System
from kitdsl.dsl.types import ImageProvider
from kitdsl.errors import ImageError
from kitdsl.oci.media import Descriptor, Platform
from kitdsl.plan.executor import StepContext, execute
from kitdsl.plan.graph import Plan, Step, StepFunction
from kitdsl.plan.progress import Reporter

PENDING_LAYERS = "layers: known after resolve"


@dataclass(frozen=True)
class ResolvedImage:
    """What resolving a reference for a platform found: its manifest, config and layers."""

    reference: str
    """The canonical reference that was resolved (``docker.io/linuxkit/getty:v1``)."""
    manifest: Descriptor
    """The platform's image manifest (not the index)."""
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """The config, then the layers in order."""
        return (self.config, *self.layers)


class ImageSource(Protocol):
    """Where images come from: a registry client with a cache behind it, in practice."""

    def resolve(self, reference: str, platform: Platform) -> ResolvedImage:
        """Find the manifest of ``reference`` for ``platform``; raise
        :class:`~kitdsl.errors.ImageError` when it cannot."""
        ...

    def fetch_blob(
        self, reference: str, descriptor: Descriptor, progress: Callable[[int], None]
    ) -> None:
        """Make the blob available (in the cache), calling ``progress(n)`` as ``n`` more bytes
        arrive. ``progress`` raises when the build is stopping: let it propagate."""
        ...


@runtime_checkable
class CachedImageSource(Protocol):
    """A source that can say what an image holds without the network, so a rendered plan can
    list its layers. It must only answer when the run will agree: a digest-pinned reference,
    or a tag held by a lockfile."""

    def cached(self, reference: str, platform: Platform) -> ResolvedImage | None:
        """What resolving would give, if known locally; else ``None``."""
        ...


Builder = Callable[[ImageProvider, StepContext], ResolvedImage]
"""Builds a provider's image (into the cache, unless it is there already) and says what it
is."""


@dataclass(frozen=True)
class ImageUse:
    """One component's use of an image."""

    component: str
    """``kernel``, ``init/runc``, ``services/getty``, ``volumes/data``."""
    image: str | ImageProvider
    platform: Platform

    @property
    def reference(self) -> str:
        """The canonical reference, ``:latest`` added when it names no tag or digest."""
        text = self.image if isinstance(self.image, str) else self.image.reference
        return str(reference.parse(text).with_default_tag())


@dataclass(frozen=True)
class ImagePlan:
    """A plan holding the image steps, and which image step serves each component."""

    plan: Plan
    images: Mapping[str, tuple[str, ...]]
    """Component → keys of the steps that are ready when its image is, in boot order: one
    key, except for an ``oci`` volume keeping several platforms (one per platform)."""

    def results(self, results: Mapping[str, Any]) -> dict[str, tuple[ResolvedImage, ...]]:
        """Each component's resolved images, from :func:`~kitdsl.plan.executor.execute`'s
        results."""
        return {
            component: tuple(results[key] for key in keys)
            for component, keys in self.images.items()
        }


def host_platform() -> Platform:
    """The platform of this machine, named as OCI names it (``linux/amd64``)."""
    machine = host.machine().lower()
    architecture, variant = _MACHINES.get(machine, (machine, None))
    return Platform(os="linux", architecture=architecture, variant=variant)


# `uname -m` names (Linux, macOS) → OCI architecture and variant.
_MACHINES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i686": ("386", None),
}


def image_uses(system: System, platform: Platform) -> Iterator[ImageUse]:
    """Every image the system needs, in boot order: kernel, init, containers, volumes.

    A volume in ``oci`` format that names platforms needs the image for each of them;
    otherwise volumes, like everything else, use the target platform.
    """
    if system.kernel is not None and system.kernel.image is not None:
        yield ImageUse("kernel", system.kernel.image, platform)
    for image in system.init:
        text = image if isinstance(image, str) else image.reference
        yield ImageUse(f"init/{reference.parse(text).path.rsplit('/', 1)[-1]}", image, platform)
    for section, _, container in system.containers():
        yield ImageUse(f"{section}/{container.name}", container.image, platform)
    for volume in system.volumes:
        if volume.image is None:
            continue
        wanted = volume.platforms if volume.format == "oci" else []
        for each in [Platform.parse(text) for text in wanted] or [platform]:
            yield ImageUse(f"volumes/{volume.name}", volume.image, each)


def plan_images(
    system: System,
    source: ImageSource | None = None,
    *,
    platform: Platform | None = None,
    builder: Builder | None = None,
    plan: Plan | None = None,
) -> ImagePlan:
    """Add the steps that get every image of ``system`` to ``plan`` (a new one by default).

    ``source`` may be left out to only show the plan (``kitdsl plan``); running it then fails
    at the first resolve. ``builder`` builds images given as providers; without one, their
    build step fails saying so.
    """
    platform = platform or host_platform()
    plan = plan if plan is not None else Plan()
    uses = list(image_uses(system, platform))
    groups: dict[tuple[str, str], list[ImageUse]] = {}
    for use in uses:
        groups.setdefault((use.reference, str(use.platform)), []).append(use)
    keys = {
        name: _add_image(plan, group, source or _NoSource(), builder or _no_builder, platform)
        for name, group in groups.items()
    }
    images: dict[str, tuple[str, ...]] = {}
    for use in uses:
        key = keys[use.reference, str(use.platform)]
        images[use.component] = (*images.get(use.component, ()), key)
    return ImagePlan(plan, images)


def fetch_images(
    system: System,
    source: ImageSource,
    *,
    platform: Platform | None = None,
    jobs: int | None = None,
    reporter: Reporter | None = None,
    builder: Builder | None = None,
) -> dict[str, tuple[ResolvedImage, ...]]:
    """Resolve and fetch every image of ``system``; return each component's images, in boot
    order (one per component, except for ``oci`` volumes keeping several platforms).

    The one call behind ``kitdsl fetch --jobs N``; see :func:`~kitdsl.plan.executor.execute`
    for ``jobs``, failures and determinism.
    """
    image_plan = plan_images(system, source, platform=platform, builder=builder)
    return image_plan.results(execute(image_plan.plan, jobs=jobs, reporter=reporter))


# --- steps ------------------------------------------------------------------------------------


def _add_image(
    plan: Plan,
    uses: list[ImageUse],
    source: ImageSource,
    builder: Builder,
    target: Platform,
) -> str:
    """Add the build (for providers), resolve and image steps of one image; return the image
    step's key."""
    first = uses[0]
    ref, platform = first.reference, first.platform
    components = tuple(dict.fromkeys(use.component for use in uses))
    row = reference.parse(ref).familiar + ("" if platform == target else f" ({platform})")
    resolve_key = f"resolve {ref} {platform}"
    ready_key = f"image {ref} {platform}"
    ready_label = f"image {ref} for {platform} ready"
    providers = [use.image for use in uses if not isinstance(use.image, str)]
    if providers:
        # Built here (or found built in the cache): nothing to resolve or fetch.
        provider = providers[0]
        build = plan.add(
            Step(
                key=f"build {ref}",
                kind="build",
                label=f"build {ref} ({type(provider).__name__})",
                run=lambda context: builder(provider, context),
                components=components,
                rows=(row,),
            )
        )
        plan.add(
            Step(
                key=ready_key,
                kind="image",
                label=ready_label,
                run=lambda context: context.result(build.key),
                components=components,
                deps=(build.key,),
            )
        )
        return ready_key
    known = source.cached(ref, platform) if isinstance(source, CachedImageSource) else None

    def resolve(context: StepContext) -> ResolvedImage:
        resolved = source.resolve(ref, platform)
        for step in _image_steps(resolved, context.step, source, ready_key, ready_label):
            context.add(step)
        return resolved

    resolve_step = plan.add(
        Step(
            key=resolve_key,
            kind="resolve",
            label=f"resolve {ref} for {platform}",
            run=resolve,
            components=components,
            rows=(row,),
            pending=None if known else PENDING_LAYERS,
        )
    )
    plan.add(
        Step(
            key=ready_key,
            kind="image",
            label=ready_label,
            run=lambda context: context.result(resolve_key),
            components=components,
            deps=(resolve_key,),
        )
    )
    if known is not None:
        for step in _image_steps(known, resolve_step, source, ready_key, ready_label):
            plan.add(step)
    return ready_key


def _image_steps(
    resolved: ResolvedImage,
    resolve: Step,
    source: ImageSource,
    ready_key: str,
    ready_label: str,
) -> Iterator[Step]:
    """A fetch step per blob of ``resolved``, then the image step again, now waiting for them."""
    kinds = [("config", resolved.config), *(("layer", layer) for layer in resolved.layers)]
    for what, descriptor in kinds:
        yield Step(
            key=f"fetch-blob {descriptor.digest}",
            kind="fetch-blob",
            label=f"fetch {what} {_short(descriptor.digest)} of {resolved.reference}",
            run=_fetcher(source, resolved.reference, descriptor),
            components=resolve.components,
            deps=(resolve.key,),
            size=descriptor.size,
            rows=resolve.rows,
        )
    yield Step(
        key=ready_key,
        kind="image",
        label=ready_label,
        components=resolve.components,
        deps=tuple(f"fetch-blob {descriptor.digest}" for descriptor in resolved.blobs),
    )


def _fetcher(source: ImageSource, ref: str, descriptor: Descriptor) -> StepFunction:
    def fetch(context: StepContext) -> None:
        source.fetch_blob(ref, descriptor, context.advance)

    return fetch


def _short(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits, as Docker shows image ids."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


class _NoSource:
    """The source of a plan made only to be shown."""

    def resolve(self, reference: str, platform: Platform) -> ResolvedImage:
        raise ImageError(
            f"cannot resolve {reference}: this plan was made without an image source",
            hint="pass an ImageSource to plan_images() to run the plan",
        )

    def fetch_blob(
        self, reference: str, descriptor: Descriptor, progress: Callable[[int], None]
    ) -> None:
        raise ImageError(f"cannot fetch {descriptor.digest}: no image source")


def _no_builder(provider: ImageProvider, context: StepContext) -> ResolvedImage:
    raise ImageError(
        f"{provider.reference} is made by a {type(provider).__name__}, and building images "
        "is not supported yet",
        hint="build and push the image yourself and use its reference instead",
    )
