"""The part of an OCI (or Docker) image configuration that building a system uses.

An image's configuration document looks like::

    {"architecture": "amd64", "os": "linux",
     "config": {"Entrypoint": [...], "Cmd": [...], "Env": [...], "WorkingDir": "/",
                "User": "", "Labels": {"org.mobyproject.config": "..."}},
     "rootfs": {...}, "history": [...], ...}

Only the execution parameters and the platform matter here; everything else is ignored, as are
keys we do not know (images carry many). Parsing is tolerant the way Go's ``encoding/json`` is:
``null`` means "not given", and keys match case-insensitively (``"env"`` fills ``Env``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kitdsl.errors import ImageConfigError

MOBY_CONFIG_LABEL = "org.mobyproject.config"
"""The label in which LinuxKit packages declare how their container must run."""


def _match_keys(data: object, fields: Mapping[str, str]) -> object:
    """Rename keys to our aliases case-insensitively, preferring exact matches (Go's rule)."""
    if not isinstance(data, Mapping):
        return data
    by_lower = {alias.lower(): alias for alias in fields.values()}
    renamed: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        alias = key if key in by_lower.values() else by_lower.get(key.lower())
        if alias is None:
            continue  # a key we do not use
        if value is None:
            continue  # Go leaves the field at its zero value
        if alias in renamed and key != alias:
            continue  # an exact match elsewhere in the object wins
        renamed[alias] = value
    return renamed


def _aliases(model: type[BaseModel]) -> dict[str, str]:
    return {name: field.alias or name for name, field in model.model_fields.items()}


class ExecutionConfig(BaseModel):
    """The ``config`` object of an image: how a container of it runs by default."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_by_name=True)

    entrypoint: list[str] = Field(default_factory=list, alias="Entrypoint")
    """``ENTRYPOINT``: the start of the command line."""
    cmd: list[str] = Field(default_factory=list, alias="Cmd")
    """``CMD``: the rest of the command line."""
    env: list[str] | None = Field(default=None, alias="Env")
    """``ENV``: the environment, ``NAME=value``; ``None`` when the image sets none."""
    working_dir: str = Field(default="", alias="WorkingDir")
    """``WORKDIR``; empty when unset."""
    user: str = Field(default="", alias="User")
    """``USER``. LinuxKit ignores it (containers run as the entry's ``uid``/``gid``)."""
    labels: dict[str, str] = Field(default_factory=dict, alias="Labels")
    """Image labels."""

    @model_validator(mode="before")
    @classmethod
    def _tolerant_keys(cls, data: object) -> object:
        return _match_keys(data, _aliases(cls))

    @property
    def command(self) -> list[str]:
        """Entrypoint followed by Cmd: the process a container runs unless told otherwise."""
        return [*self.entrypoint, *self.cmd]

    @property
    def moby_config_label(self) -> str:
        """The text of the ``org.mobyproject.config`` label, ``""`` when there is none."""
        return self.labels.get(MOBY_CONFIG_LABEL, "")


class ImageConfig(BaseModel):
    """An image's configuration document, reduced to what a system build needs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    architecture: str = ""
    """CPU architecture, e.g. ``amd64``."""
    os: str = ""
    """Operating system, e.g. ``linux``."""
    variant: str = ""
    """Architecture variant, e.g. ``v8``; usually empty."""
    config: ExecutionConfig = Field(default_factory=ExecutionConfig)
    """Default execution parameters."""

    @model_validator(mode="before")
    @classmethod
    def _tolerant_keys(cls, data: object) -> object:
        return _match_keys(data, _aliases(cls))

    @classmethod
    def parse(cls, document: bytes | str | Mapping[str, Any], *, image: str = "") -> ImageConfig:
        """Read a configuration document (JSON text or already-decoded JSON).

        ``image`` names the image in error messages. Raises :class:`ImageConfigError` when the
        document is not JSON or a field we use has the wrong type.
        """
        what = f"the configuration of image {image}" if image else "an image configuration"
        data: object = document
        if isinstance(document, bytes | str):
            try:
                data = json.loads(document)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ImageConfigError(f"{what} is not valid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ImageConfigError(f"{what} must be a JSON object, not {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            details = tuple(
                ".".join(str(part) for part in error["loc"]) + ": " + error["msg"]
                for error in exc.errors(include_url=False)
            )
            raise ImageConfigError(f"{what} is invalid", details=details) from None

    @property
    def platform(self) -> str:
        """``os/architecture[/variant]``."""
        parts = [self.os, self.architecture, *([self.variant] if self.variant else [])]
        return "/".join(parts)
