"""Reading an image's ``org.mobyproject.config`` label into a :class:`ContainerConfig`.

The label holds YAML or JSON text with the same keys as a container entry of a LinuxKit YAML
file (``maskedPaths``, ``capabilities.add``, ``runtime.bindNS``...), except ``name`` and
``image``. It is read by the LinuxKit YAML reader (:func:`parse_container_config`), so a label
and an entry share one key mapping and one scalar resolution, as they do in LinuxKit. This
module turns the reader's errors into errors about the image.
"""

from __future__ import annotations

from kitdsl.dsl import ContainerConfig
from kitdsl.errors import ConfigError, ImageConfigError, Location
from kitdsl.load.linuxkit_yaml import parse_container_config
from kitdsl.oci.image_config import MOBY_CONFIG_LABEL

_HINT = (
    "the label is part of the image: fix the `config` of the package that builds it, "
    "or use another image"
)


def parse_label(
    text: str, *, image: str, location: Location | None = None
) -> ContainerConfig | None:
    """Parse and validate the label text of ``image``; ``None`` when the label is empty.

    Raises :class:`ImageConfigError` naming the image and the offending key, with ``location``
    (the container entry that uses the image) as the place to look; the line and column inside
    the label are among the error's details.
    """
    if text == "":
        return None  # LinuxKit treats an empty label as no label
    try:
        # The label's origin is the entry that uses the image: that is where a user looks.
        config = parse_container_config(text, file=f"label of {image}", origin=location)
    except ConfigError as exc:
        raise _invalid(image, location, exc) from None
    if config is None:
        # Blank or comment-only text is not "no label" for LinuxKit: its schema check wants an
        # object and gets null.
        raise _invalid(
            image, location, ConfigError("expected a mapping of container settings, got nothing")
        )
    return config


def _invalid(image: str, location: Location | None, problem: ConfigError) -> ImageConfigError:
    # LinuxKit prints "The org.mobyproject.config label is invalid:" followed by the problems.
    where = problem.location
    inside: tuple[str, ...] = ()
    if where is not None and where.line is not None:
        column = f", column {where.column}" if where.column is not None else ""
        inside = (f"at line {where.line}{column} of the label",)
    return ImageConfigError(
        f"image {image}: the {MOBY_CONFIG_LABEL} label is invalid: {problem.message}",
        location=location,
        details=(*inside, *problem.details),
        hint=f"{problem.hint}; {_HINT}" if problem.hint else _HINT,
    )
