"""Typed records passed between stages: frozen dataclasses that become plain JSON dicts and come back.

A stage's domain functions take and return their own records (`SourceDocument`, `DocumentText` and `PageText`,
`Chunk`, `DocumentSplits`, `DatasetFiles`, `SftDataset`); the Dagster IO manager stores them as the dict
`to_dict()` gives (the same JSON the UI and people read) and rebuilds them with `from_dict()`.

Plain Python: no Dagster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


class Record:
    """Mixin for a frozen dataclass whose fields are JSON values (tuples stored as lists) or other records.

    `from_dict` fills the fields the stored dict has and leaves the rest at their defaults (a value stored before a
    field was added still loads); a subclass with nested records overrides `from_dict` for those fields."""

    def to_dict(self) -> dict:
        return {f.name: to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown} in a stored value")
        return cls(**{k: tuple(v) if isinstance(v, list) and _is_tuple(names[k]) else v for k, v in data.items()})


def _is_tuple(field: dataclasses.Field) -> bool:
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    return str(annotation).startswith("tuple")


def to_json(value: Any) -> Any:
    """`value` with every record in it (at any depth of lists, tuples and dicts) turned into its dict."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value
