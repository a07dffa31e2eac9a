"""The base of every model: strict, frozen, and aware of where in the user's code it was made."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, PrivateAttr

from kitdsl.dsl.origin import caller_location
from kitdsl.errors import Location

_origin_override: ContextVar[Location | None] = ContextVar("origin_override", default=None)


@contextmanager
def defined_at(location: Location | None) -> Iterator[None]:
    """Models constructed inside this block record ``location`` as their origin.

    Loaders of other formats (LinuxKit YAML) use it so errors point at the YAML line.
    """
    token = _origin_override.set(location)
    try:
        yield
    finally:
        _origin_override.reset(token)


def current_location() -> Location | None:
    """Where the user's code is now: the ``defined_at`` location if one is active, else the
    innermost caller outside kitdsl."""
    return _origin_override.get() or caller_location()


class Model(BaseModel):
    """Strict (unknown fields and wrong types are errors), frozen, and records its
    construction site."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # No silent coercion: readonly="yes" or oom_score_adj="5" is a mistake to report,
        # as LinuxKit's schema reports it.
        strict=True,
        validate_by_name=True,
        validate_by_alias=False,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
    )

    _origin: Location | None = PrivateAttr(default=None)
    _field_origins: dict[str, Location] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        origin = current_location()
        self._origin = origin
        if origin is not None:
            self._field_origins = dict.fromkeys(self.model_fields_set, origin)

    @property
    def origin(self) -> Location | None:
        """Where this object was constructed in the user's code (or YAML file)."""
        return self._origin

    def field_origin(self, name: str) -> Location | None:
        """Where field ``name`` was last given a value, if it was given one."""
        return self._field_origins.get(name)

    def set_fields(self) -> dict[str, Any]:
        """The fields the user set explicitly, by Python name."""
        fields = type(self).model_fields
        return {name: getattr(self, name) for name in fields if name in self.model_fields_set}

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied; provenance is kept and the changed
        fields are recorded as set here."""
        where = current_location()
        # Validate at the caller's line, so whole-system checks can say where the system was
        # put together, then keep the original's origin: it is still defined where it was.
        with defined_at(where):
            copy = type(self).model_validate({**self.set_fields(), **changes})
        copy._origin = self._origin
        copy._field_origins = dict(self._field_origins)
        if where is not None:
            copy._field_origins.update(dict.fromkeys(changes, where))
        return copy

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Model)
        return all(getattr(self, name) == getattr(other, name) for name in type(self).model_fields)
